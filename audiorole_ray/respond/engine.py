"""One ARP-Model answering speech: tokenize the input, generate with the fine-tuned LM in
GLM-4-Voice's chat format, split text from speech tokens, speech tokens -> mel -> waveform.

Parts come from ``MODEL/arp_model.json`` (the LM in ``MODEL/lm``, the decoder in
``MODEL/decoder``, the speech tokenizer named there). Overrides: ``lm`` (a local
``glm-4-voice-9b`` folder), ``decoder_model`` (a local ``glm-4-voice-decoder`` folder run through
GLM-4-Voice's own ``AudioDecoder``: its flow and HiFT), ``vocoder`` (a registry backend for our
decoder's mel), ``tokenizer_model`` / ``codebook``; ``glm4voice_repo`` is the local GLM-4-Voice
checkout every official part is run through.

Input longer than the model's context (the longest sample its LM was trained on, ``max_tokens``
in the manifest; else its LM config's position limit), with room left for ``max_new_tokens``,
is refused (:class:`InputTooLong`) unless ``truncate_input``: then the input keeps its last
tokens, since the answer follows what was said last (a cut start is joining a conversation late;
a cut end would present a speaker stopped mid-word as done), and the cut is recorded in the
answer's ``status`` (``input_cut``) and ``problems``.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from audiorole_ray.errors import ConfigError, InputError, MissingModelError
from audiorole_ray.io.storage import join
from audiorole_ray.respond.parse import Response, split_response


@dataclass
class Sampling:
    """GLM-4-Voice's demo defaults (temperature 0.2, top_p 0.8), but at most 600 new tokens where
    the demo allows 2000: at most 48 s of speech at 12.5 tokens/s (32 s while text is interleaved
    in 13/26 blocks), near the 30 s a corpus clip may last. An under-trained model that never says
    ``<|user|>`` otherwise talks for minutes (the demo's model: 13-158 s with 2000; 12.8-45.7 s
    with 600)."""

    temperature: float = 0.2
    top_p: float = 0.8
    max_new_tokens: int = 600
    seed: int = 0


@dataclass
class Answer:
    text: str
    speech: list[int]
    audio: np.ndarray  # float32 mono at ``rate`` (empty when there is no speech)
    rate: int
    status: str  # ok | input_cut (well formed, to a cut input) | malformed | no_speech
    problems: list[str]
    finished: bool
    input_tokens: int  # speech tokens the LM heard
    seconds: dict
    input_cut: int = 0  # speech tokens cut from the input's start (truncate_input)


class InputTooLong(InputError):
    """The input does not fit the model's context with room for the answer."""


def lm_context(manifest: dict, lm_path: str, lm_override: bool) -> tuple[int | None, str]:
    """(tokens, where that number comes from) of the context the LM can answer in: the longest
    sample the model's LM was trained on, else its config's position limit (a ``--lm`` folder,
    or a manifest from before ``max_tokens`` was recorded); ``None`` when neither says."""
    from audiorole_ray.io.storage import exists, read_json

    trained = ((manifest.get("parts") or {}).get("lm") or {}).get("max_tokens")
    if trained and not lm_override:
        return int(trained), "the longest sample its LM was trained on, train_lm --max-tokens"
    config = join(lm_path, "config.json")
    cfg = read_json(config) if exists(config) else {}
    for key in ("seq_length", "max_position_embeddings", "n_positions"):
        if cfg.get(key):
            return int(cfg[key]), f"{key} of {config}"
    return None, ""


class Responder:
    def __init__(self, model_dir: str, device: str = "cpu", sampling: Sampling | None = None, vocoder: str = "hifigan",
                 vocoder_model: str | None = None, lm: str | None = None, decoder_model: str | None = None,
                 codebook: str | None = None, tokenizer_model: str | None = None, glm4voice_repo: str | None = None,
                 n_timesteps: int = 10, truncate_input: bool = False):
        self.model_dir, self.device = model_dir, device
        self.sampling = sampling or Sampling()
        self.truncate_input = truncate_input
        self.manifest: dict | None = None
        # glm4voice_repo: one local GLM-4-Voice checkout for every official part (tokenizer, HiFT, decoder)
        self.options = dict(vocoder=vocoder, vocoder_model=vocoder_model, lm=lm, decoder_model=decoder_model,
                            codebook=codebook, tokenizer_model=tokenizer_model, glm4voice_repo=glm4voice_repo)
        self.n_timesteps = n_timesteps
        self.loaded = False

    # ------------------------------------------------------------------ loading
    def prepare(self) -> "Responder":
        """What checking an input needs, without any weights: the manifest, the LM's text
        tokenizer and the context. Refuses a model without its parts, and sampling that leaves
        no room for an input."""
        from audiorole_ray.arp_model import read_manifest

        if self.manifest is not None:
            return self
        o = self.options
        manifest = read_manifest(self.model_dir)
        if manifest is None:
            raise MissingModelError(f"{self.model_dir} is not an ARP-Model (no arp_model.json): train it with jobs/train_lm.py and jobs/train_decoder.py")
        parts = manifest.get("parts", {})
        if "lm" not in parts and not o["lm"]:
            raise MissingModelError(f"{self.model_dir} has no trained LM (run jobs/train_lm.py) and no --lm was given")
        if "decoder" not in parts and not o["decoder_model"]:
            raise MissingModelError(f"{self.model_dir} has no trained decoder (run jobs/train_decoder.py) and no --decoder-model was given")
        self.lm_path = o["lm"] or join(self.model_dir, "lm")
        from audiorole_ray.io.storage import exists

        if not exists(join(self.lm_path, "config.json")):
            raise MissingModelError(f"{self.lm_path} holds no LM (no config.json): give --lm with a model folder, or retrain "
                                    f"{self.model_dir}'s LM with jobs/train_lm.py")
        self._load_text_tokenizer(self.lm_path, int(manifest["tokenizer"].get("vocab_size") or 0))
        self.context, self.context_source = lm_context(manifest, self.lm_path, bool(o["lm"]))
        room = self.input_room()
        if room is not None and room < 1:
            raise ConfigError(f"--max-new-tokens {self.sampling.max_new_tokens} leaves no room for an input in the model's "
                              f"{self.context}-token context ({self.context_source}): lower --max-new-tokens")
        self.manifest = manifest
        return self

    def load(self) -> "Responder":
        o = self.options
        self.prepare()
        manifest = self.manifest
        self._load_speech_tokenizer(manifest["tokenizer"])
        self._load_lm(self.lm_path)
        if o["decoder_model"]:
            self._load_official_decoder(o["decoder_model"], o["glm4voice_repo"])
        else:
            from audiorole_ray import registry
            from audiorole_ray.decoder.load import load_flow_decoder

            self.flow, self.flow_meta = load_flow_decoder(join(self.model_dir, "decoder"), self.device)
            self.vocoder = registry.create("vocoder", o["vocoder"], model=o["vocoder_model"], device=self.device,
                                           **({"repo": o["glm4voice_repo"]} if o["vocoder"] == "hift" else {}))
            self.official = None
        self.loaded = True
        return self

    def _load_speech_tokenizer(self, info: dict) -> None:
        from audiorole_ray import registry

        from audiorole_ray.arp_model import model_codebook

        name, o = info.get("name"), self.options
        options = {}
        if name == "whisper-units":
            # the model's own copy, checked against its manifest: a later re-fit of the corpus's codebook
            # cannot change what it hears; --codebook overrides
            options["codebook"] = o["codebook"] or model_codebook(self.model_dir, self.manifest)
        elif name == "glm4voice" and o["glm4voice_repo"]:
            options["repo"] = o["glm4voice_repo"]
        self.tokenizer = registry.create("tokenizer", name, model=o["tokenizer_model"] or info.get("local_model"),
                                         device=self.device, **options)
        self.tokenizer.load()

    @staticmethod
    def _remote_code(path: str) -> bool:
        from pathlib import Path

        # glm-4-voice-9b brings its model code (modeling_chatglm.py); our tiny GLM is transformers' own
        return "://" not in str(path) and any(Path(path).glob("*.py"))

    def _load_text_tokenizer(self, path: str, n_audio: int) -> None:
        from audiorole_ray.errors import require

        require("transformers", "'audiorole-ray[train]'", "the ARP-Model's LM")
        from transformers import AutoTokenizer

        from audiorole_ray.lm.format import ChatTokens

        self.text_tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=self._remote_code(path))
        # checks <|audio_N|> covers every code; without the count (an old manifest) once the speech tokenizer is loaded
        self.ct = ChatTokens.from_tokenizer(self.text_tokenizer, n_audio) if n_audio else None

    def _load_lm(self, path: str) -> None:
        from transformers import AutoModelForCausalLM

        from audiorole_ray.lm.format import ChatTokens

        self.lm = AutoModelForCausalLM.from_pretrained(path, trust_remote_code=self._remote_code(path)).to(self.device).eval()
        if self.ct is None:
            self.ct = ChatTokens.from_tokenizer(self.text_tokenizer, int(self.tokenizer.vocab_size))

    def _load_official_decoder(self, folder: str, repo: str | None) -> None:
        """GLM-4-Voice's own ``AudioDecoder`` (flow + HiFT) from its checkout."""
        from audiorole_ray.vocoder.hift import add_glm4voice_repo

        add_glm4voice_repo(repo)
        from pathlib import Path

        import flow_inference  # GLM-4-Voice's module at the checkout's root

        f = Path(folder)
        self.official = flow_inference.AudioDecoder(config_path=str(f / "config.yaml"), flow_ckpt_path=str(f / "flow.pt"),
                                                    hift_ckpt_path=str(f / "hift.pt"), device=self.device)
        self.flow = self.vocoder = None

    # ------------------------------------------------------------------ answering
    def prompt_ids(self, codes: list[int]) -> list[int]:
        from audiorole_ray.lm.format import head_ids

        ct = self.ct
        return [*head_ids(ct), *ct.newline, ct.begin_audio, *ct.speech(codes), ct.end_audio, ct.assistant, *ct.response_header]

    def input_room(self) -> int | None:
        """Speech tokens an input may have: the context less the prompt around it and
        ``max_new_tokens`` (``None``: no known context)."""
        if self.context is None:
            return None
        ct = self.ct
        around = len(self.prompt_ids([])) if ct is not None else 0
        return self.context - around - self.sampling.max_new_tokens

    @property
    def samples_per_token(self) -> int:
        from audiorole_ray.tokens.base import SAMPLE_RATE, TOKEN_RATE

        rate = float((self.manifest or {}).get("tokenizer", {}).get("frame_rate") or TOKEN_RATE)
        return int(round(SAMPLE_RATE / rate))

    def fit_input(self, n_tokens: int) -> int:
        """How many of an input's ``n_tokens`` speech tokens to keep (all, or its last ones with
        ``truncate_input``); a longer input than fits is refused with the counts and the fix."""
        room = self.input_room()
        if room is None or n_tokens <= room:
            return n_tokens
        if self.truncate_input:
            return room
        from audiorole_ray.tokens.base import SAMPLE_RATE

        rate = SAMPLE_RATE / self.samples_per_token
        raise InputTooLong(f"the input is {n_tokens} speech tokens ({n_tokens / rate:.1f} s) but the model's context is "
                           f"{self.context} tokens ({self.context_source}), room for {room} input tokens ({room / rate:.1f} s) "
                           f"with max_new_tokens {self.sampling.max_new_tokens}: give a shorter input, or --truncate-input "
                           f"(jobs/respond.py) to keep its last {room} tokens")

    def check_input(self, n_samples: int) -> int:
        """:meth:`fit_input` for 16 kHz audio of ``n_samples``, before it is tokenized (the
        count is the tokenizers': one token per started frame); returns the samples to keep."""
        from audiorole_ray.tokens.base import expected_tokens

        spt = self.samples_per_token
        n = expected_tokens(n_samples, spt)
        keep = self.fit_input(n)
        return n_samples if keep == n else keep * spt

    @torch.no_grad()
    def generate(self, codes: list[int]) -> list[int]:
        s = self.sampling
        ids = torch.tensor([self.prompt_ids(codes)], device=self.device)
        torch.manual_seed(s.seed)
        out = self.lm.generate(ids, attention_mask=torch.ones_like(ids), do_sample=s.temperature > 0,
                               temperature=s.temperature if s.temperature > 0 else None, top_p=s.top_p,
                               max_new_tokens=s.max_new_tokens, eos_token_id=self.ct.user,
                               pad_token_id=self.text_tokenizer.pad_token_id or self.ct.user)
        return out[0, ids.shape[1]:].tolist()

    @torch.no_grad()
    def speak(self, speech: list[int]) -> tuple[np.ndarray, int]:
        if self.official is not None:
            audio = self.official.offline_inference(torch.tensor([speech], dtype=torch.long))
            return audio.reshape(-1).float().numpy(), 22050
        vocab = self.flow.vocab_size
        if max(speech) >= vocab:
            raise ConfigError(f"speech code {max(speech)} is outside the decoder's {vocab} codes: LM and decoder use different speech tokenizers")
        mel = self.flow.inference(torch.tensor(speech), n_timesteps=self.n_timesteps, seed=self.sampling.seed)
        return self.vocoder(mel), self.vocoder.sample_rate

    def respond(self, audio16k: np.ndarray) -> Answer:
        if not self.loaded:
            self.load()
        t = {}
        t0 = time.perf_counter()
        from audiorole_ray.tokens.base import expected_tokens

        audio16k, n, spt = np.asarray(audio16k, np.float32), len(audio16k), self.samples_per_token
        kept = self.check_input(n)  # refused, or its end kept, before 10 minutes are tokenized
        cut = expected_tokens(n, spt) - expected_tokens(kept, spt)
        codes = self.tokenizer.tokenize([audio16k[n - kept:]])[0]
        if not codes:
            raise ConfigError("the input gave no speech tokens (too short?)")
        keep = self.fit_input(len(codes))  # the count made, in case a tokenizer counts otherwise
        codes, cut = codes[len(codes) - keep:], cut + len(codes) - keep
        t["tokenize"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        generated = self.generate(codes)
        t["generate"] = time.perf_counter() - t0
        r: Response = split_response(generated, self.ct)
        text = self.text_tokenizer.decode(r.text_ids, skip_special_tokens=True)
        audio, rate = np.zeros(0, np.float32), (22050 if self.official is not None else self.vocoder.sample_rate)
        if r.speech:
            t0 = time.perf_counter()
            audio, rate = self.speak(r.speech)
            t["decode"] = time.perf_counter() - t0
        status, problems = r.status, list(r.problems)
        if cut:
            problems.insert(0, f"input cut to its last {len(codes)} of {len(codes) + cut} speech tokens (--truncate-input): the model's "
                               f"context is {self.context} tokens with max_new_tokens {self.sampling.max_new_tokens}")
            status = "input_cut" if status == "ok" else status
        return Answer(text=text, speech=r.speech, audio=np.asarray(audio, np.float32), rate=rate, status=status,
                      problems=problems, finished=r.finished, input_tokens=len(codes), input_cut=cut,
                      seconds={k: round(v, 3) for k, v in t.items()})
