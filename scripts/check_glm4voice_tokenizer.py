#!/usr/bin/env python
"""Check the glm4voice backend against GLM-4-Voice's real speech_tokenizer code, without its weights.

    python scripts/check_glm4voice_tokenizer.py --repo /src/GLM-4-Voice

Builds a tiny random WhisperVQEncoder with GLM-4-Voice's own config class in the layout of the
real tokenizer (average pooling x4 before quantization, block-causal attention), saves it with a
Whisper feature extractor to a temporary folder, tokenizes noise clips of several lengths (one
over 30 s) through audiorole_ray's backend, and checks the token counts (12.5 per second, per
30 s piece) and the agreement with the model called on one piece at a time. Run it in an
environment with GLM-4-Voice's requirements (transformers 4.44); it needs no GPU.
"""
from __future__ import annotations

import argparse
import math
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repo", required=True, help="a local checkout of THUDM/GLM-4-Voice")
    args = p.parse_args()

    import torch
    import transformers

    from audiorole_ray.tokens.glm4voice import Glm4VoiceTokenizer, import_encoder_class

    encoder_cls = import_encoder_class(args.repo)
    from speech_tokenizer.configuration_whisper import WhisperVQConfig

    torch.manual_seed(0)
    config = WhisperVQConfig(d_model=32, encoder_layers=2, encoder_attention_heads=2, encoder_ffn_dim=64, decoder_layers=1,
                             decoder_attention_heads=2, decoder_ffn_dim=64, num_mel_bins=128, pooling_kernel_size=4,
                             pooling_type="avg", pooling_position=1, quantize_vocab_size=128, quantize_position=2,
                             quantize_encoder_only=True, quantize_causal_encoder=True, quantize_causal_block_size=200)
    folder = Path(tempfile.mkdtemp()) / "glm-4-voice-tokenizer"
    encoder_cls(config).save_pretrained(folder)
    transformers.WhisperFeatureExtractor(feature_size=128).save_pretrained(folder)

    tok = Glm4VoiceTokenizer(model=str(folder), repo=args.repo, batch_size=4)
    rng = np.random.default_rng(0)
    clips = [rng.normal(size=n).astype(np.float32) * 0.1 for n in (1, 1281, 16_000 * 3, 16_000 * 7 + 5, 16_000 * 31)]
    out = tok.tokenize(clips)
    fe = transformers.WhisperFeatureExtractor.from_pretrained(folder)
    model = encoder_cls.from_pretrained(folder).eval()
    ok = True
    for clip, ids in zip(clips, out):
        expected, ref = 0, []
        for s in range(0, clip.size, 480_000):
            piece = clip[s : s + 480_000]
            expected += math.ceil(piece.size / 1280)
            f = fe([piece], sampling_rate=16_000, return_attention_mask=True, return_tensors="pt", padding="longest", pad_to_multiple_of=1280)
            with torch.no_grad():
                q = model(**f).quantized_token_ids[0]
            ref += q[f["attention_mask"][0, ::2][::4].bool()].tolist()
        agree = sum(a == b for a, b in zip(ref, ids)) / max(len(ids), 1)
        print(f"{clip.size / 16_000:7.3f} s: {len(ids)} tokens (expected {expected}), ids {min(ids)}..{max(ids)}, "
              f"{agree:.1%} equal to one piece at a time")
        ok &= len(ids) == expected and all(0 <= i < tok.vocab_size for i in ids)
    print("OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
