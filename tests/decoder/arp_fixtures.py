"""An ARP-Model folder for the respond tests, made without Ray: the tiny GLM trained in-process
for a few dozen steps on the fixture corpus's dialogues (enough to learn the 13/26 answer
format), and a tiny flow decoder trained a few steps on the character's clips."""
from __future__ import annotations

from pathlib import Path

import torch


def build_arp_model(corpus: Path, out: Path, lm_steps: int = 60, decoder_steps: int = 20, seed: int = 0) -> Path:
    from audiorole_ray.arp_model import update_part
    from audiorole_ray.decoder import data
    from audiorole_ray.decoder.presets import build_flow, preset_config
    from audiorole_ray.decoder.task import write_decoder
    from audiorole_ray.lm.data import build_samples, read_speech_tokens, target_dialogues
    from audiorole_ray.lm.format import IGNORE, ChatTokens
    from audiorole_ray.lm.job import load_tokenizer
    from audiorole_ray.lm.tiny import build_tiny_model

    target = "sitcom_spk00"
    codes, info = read_speech_tokens(str(corpus), "whisper-units")
    tokenizer_info = {"name": "whisper-units", **info}
    tok, cfg = load_tokenizer("tiny", int(info["vocab_size"]))
    ct = ChatTokens.from_tokenizer(tok, int(info["vocab_size"]))
    samples, _ = build_samples(target_dialogues(str(corpus), target), codes, ct,
                               lambda s: tok.encode(s, add_special_tokens=False), 1024)
    lm = build_tiny_model(cfg, seed)
    opt = torch.optim.AdamW(lm.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(seed)
    lm.train()
    for _ in range(lm_steps):
        s = samples[int(torch.randint(len(samples), (1,), generator=g))]
        ids, labels = torch.tensor([s["input_ids"]]), torch.tensor([s["labels"]])
        logits = lm(input_ids=ids).logits[:, :-1]
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1).float(), labels[:, 1:].flatten(), ignore_index=IGNORE)
        opt.zero_grad()
        loss.backward()
        opt.step()
    lm.eval()
    lm.save_pretrained(out / "lm")
    tok.save_pretrained(out / "lm")
    update_part(str(out), character=target, corpus=str(corpus), tokenizer=tokenizer_info, part="lm",
                info={"base_model": "tiny", "steps": lm_steps})

    flow_cfg = preset_config("tiny", vocab_size=int(info["vocab_size"]), input_frame_rate=12.5)
    flow_cfg.pop("train")
    torch.manual_seed(seed)
    flow = build_flow(flow_cfg)
    clips = data.character_clips(str(corpus), target)
    items, _ = data.shard_items(clips, {k: v for k, v in codes.items()})
    rows = [r for it in items[:2] for r in data.ClipMels(str(corpus))(it)][:4]
    batch = data.collate(rows)
    opt = torch.optim.Adam(flow.parameters(), lr=2e-3)
    flow.train()
    for _ in range(decoder_steps):
        loss = flow(batch["tokens"], batch["token_len"], batch["mel"], batch["mel_len"])
        opt.zero_grad()
        loss.backward()
        opt.step()
    flow.eval()
    write_decoder(flow, str(out / "decoder"), "tiny", flow_cfg, tokenizer_info)
    update_part(str(out), character=target, corpus=str(corpus), tokenizer=tokenizer_info, part="decoder",
                info={"preset": "tiny", "steps": decoder_steps})
    return out
