"""Memory plan of an LM fine-tune from the model's ``config.json`` alone (no weights loaded).

Per GPU, for a plugin and a GPU count:
- parameters from the shapes: embedding, per layer attention with grouped KV heads (GQA) and a
  SwiGLU MLP, norms, and the output layer unless tied;
- model states with mixed-precision Adam, 16 bytes per trained parameter (bf16 weight 2 + bf16
  gradient 2 + fp32 master weight 4 + Adam's two moments 8): DDP keeps all 16 on every GPU,
  ZeRO-2 shards gradients and optimizer (2 + 14/n), Gemini (static placement, nothing offloaded)
  shards all of it (16/n); LoRA keeps the frozen bf16 weights (2) and trains a tiny fraction;
- logits: fp32 over the vocabulary for every token, three copies (the bf16-to-fp32 upcast, the
  softmax inside the loss and its gradient);
- activations with gradient checkpointing: each layer's bf16 input kept, plus one layer's
  working set recomputed in the backward pass (its intermediate tensors and their gradients);
  attention through SDPA/flash kernels, so no seq x seq score matrix is kept.

A GPU "fits" when these add up to at most its memory less a reserve for the CUDA context,
communication buffers, Gemini's chunk buffers and allocator fragmentation (4 GB by default).
GB here are 10^9 bytes.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from audiorole_ray.errors import ConfigError, InputError

PLUGINS = ("ddp", "zero2", "gemini")
GB = 1e9


@dataclass(frozen=True)
class Shape:
    vocab: int
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    ffn: int
    tied: bool = False
    qkv_bias: bool = False

    @classmethod
    def from_config(cls, cfg: dict) -> "Shape":
        """From a Hugging Face config: ChatGLM's remote-code names or transformers' own."""
        try:
            if "padded_vocab_size" in cfg or cfg.get("model_type") == "chatglm":  # GLM-4 / GLM-4-Voice remote code
                heads = cfg["num_attention_heads"]
                return cls(vocab=cfg["padded_vocab_size"], hidden=cfg["hidden_size"], layers=cfg["num_layers"],
                           heads=heads, kv_heads=cfg["multi_query_group_num"] if cfg.get("multi_query_attention") else heads,
                           head_dim=cfg.get("kv_channels") or cfg["hidden_size"] // heads, ffn=cfg["ffn_hidden_size"],
                           tied=bool(cfg.get("tie_word_embeddings", False)),
                           qkv_bias=bool(cfg.get("add_qkv_bias") or cfg.get("add_bias_linear")))
            heads = cfg["num_attention_heads"]
            return cls(vocab=cfg["vocab_size"], hidden=cfg["hidden_size"], layers=cfg["num_hidden_layers"], heads=heads,
                       kv_heads=cfg.get("num_key_value_heads") or heads,
                       head_dim=cfg.get("head_dim") or cfg["hidden_size"] // heads, ffn=cfg["intermediate_size"],
                       tied=bool(cfg.get("tie_word_embeddings", False)), qkv_bias=bool(cfg.get("attention_bias", False)))
        except KeyError as exc:
            raise ConfigError(f"the model config lacks {exc}: cannot plan memory for it") from None

    def layer_params(self) -> int:
        q, kv = self.heads * self.head_dim, self.kv_heads * self.head_dim
        attn = self.hidden * (q + 2 * kv) + (q + 2 * kv if self.qkv_bias else 0) + q * self.hidden
        mlp = self.hidden * 2 * self.ffn + self.ffn * self.hidden  # SwiGLU: gate+up, down
        return attn + mlp + 2 * self.hidden  # two norms

    def params(self) -> dict[str, int]:
        emb = self.vocab * self.hidden
        out = {"embedding": emb, "layers": self.layers * self.layer_params(), "final_norm": self.hidden,
               "output_layer": 0 if self.tied else emb}
        out["total"] = sum(out.values())
        return out

    def activation_bytes_per_token(self, checkpointing: bool = True) -> float:
        q, kv = self.heads * self.head_dim, self.kv_heads * self.head_dim
        # one layer's bf16 intermediates: norm outputs, qkv, attention output, projections and
        # residuals (5 h), the MLP's gate/up (2 ffn) and their product (ffn)
        layer = 2 * (5 * self.hidden + (q + 2 * kv) + q + 3 * self.ffn)
        if checkpointing:
            return self.layers * 2 * self.hidden + 2 * layer  # kept inputs + one layer and its gradients
        return self.layers * layer + layer


@dataclass
class Plan:
    model: str
    plugin: str
    gpus: int
    lora: bool
    params: dict
    tokens_per_gpu: int
    gpu_gb: float
    reserve_gb: float
    model_states_gb: float
    logits_gb: float
    activations_gb: float
    total_gb: float
    fits: bool
    logits_mb_per_token: float

    def to_dict(self) -> dict:
        return asdict(self)


def state_bytes_per_param(plugin: str, gpus: int, lora: bool = False) -> float:
    if plugin not in PLUGINS:
        raise ConfigError(f"unknown plugin {plugin!r}; choose one of {PLUGINS}")
    if lora:
        return 2.0  # frozen bf16 weights everywhere; the adapters' states are negligible
    if plugin == "ddp":
        return 16.0
    if plugin == "zero2":
        return 2.0 + 14.0 / gpus
    return 16.0 / gpus  # gemini, static placement


def plan(config: dict, plugin: str = "gemini", gpus: int = 8, micro_batch: int = 1, seq_len: int = 2048,
         gpu_gb: float = 40.0, reserve_gb: float = 4.0, lora: bool = False, checkpointing: bool = True,
         model: str = "") -> Plan:
    shape = Shape.from_config(config)
    params = shape.params()
    tokens = micro_batch * seq_len
    states = params["total"] * state_bytes_per_param(plugin, gpus, lora) / GB
    logits_per_token = shape.vocab * 4  # fp32
    logits = 3 * logits_per_token * tokens / GB
    acts = shape.activation_bytes_per_token(checkpointing) * tokens / GB
    total = states + logits + acts
    return Plan(model=model, plugin=plugin, gpus=gpus, lora=lora, params=params, tokens_per_gpu=tokens, gpu_gb=gpu_gb,
                reserve_gb=reserve_gb, model_states_gb=states, logits_gb=logits, activations_gb=acts, total_gb=total,
                fits=total <= gpu_gb - reserve_gb, logits_mb_per_token=logits_per_token / 1e6)


def load_config(model: str) -> dict:
    """``config.json`` of a model folder (or the file itself)."""
    path = Path(model)
    path = path / "config.json" if path.is_dir() else path
    if not path.is_file():
        raise InputError(f"no config.json at {model!r}: --plan reads the model's config (weights are not needed)")
    return json.loads(path.read_text())


def describe(p: Plan) -> str:
    lines = [
        f"model {p.model or '?'}: {p.params['total'] / 1e9:.2f}B parameters "
        f"(embedding {p.params['embedding'] / 1e9:.2f}B, layers {p.params['layers'] / 1e9:.2f}B, "
        f"output layer {p.params['output_layer'] / 1e9:.2f}B)",
        f"plugin {p.plugin}{' + LoRA' if p.lora else ''} on {p.gpus} GPU(s), {p.tokens_per_gpu} tokens per GPU per step:",
        f"  model states  {p.model_states_gb:7.1f} GB/GPU",
        f"  logits        {p.logits_gb:7.1f} GB/GPU ({p.logits_mb_per_token:.2f} MB per token in fp32, x3)",
        f"  activations   {p.activations_gb:7.1f} GB/GPU (gradient checkpointing)",
        f"  total         {p.total_gb:7.1f} GB/GPU of {p.gpu_gb:g} GB ({p.reserve_gb:g} GB kept for CUDA context, buffers, fragmentation)",
        f"  -> {'fits' if p.fits else 'does NOT fit'} a {p.gpu_gb:g} GB GPU",
    ]
    return "\n".join(lines)


def compare(config: dict, gpus: int = 8, **kw) -> str:
    """Every plugin side by side, with the reason the fitting one fits."""
    rows = [plan(config, plugin=name, gpus=gpus, **kw) for name in PLUGINS]
    lines = [f"{'plugin':8} {'states':>8} {'logits':>8} {'acts':>8} {'total':>8}  fits {rows[0].gpu_gb:g} GB"]
    for r in rows:
        lines.append(f"{r.plugin:8} {r.model_states_gb:8.1f} {r.logits_gb:8.1f} {r.activations_gb:8.1f} {r.total_gb:8.1f}  {'yes' if r.fits else 'no'}")
    lines.append("why:")
    lines += [f"  {r.plugin}: {WHY[r.plugin]}: {r.model_states_gb:.1f} GB of states per GPU -> {'fits' if r.fits else 'does not fit'}"
              for r in rows]
    return "\n".join(lines)


WHY = {
    "ddp": "DDP keeps all 16 B/param (weights, gradients, fp32 master, Adam moments) on every GPU",
    "zero2": "ZeRO-2 shards gradients and optimizer states (14 B/param / n) but keeps a whole bf16 copy of the weights (2 B/param) on every GPU",
    "gemini": "Gemini (static placement) shards weights, gradients and optimizer states alike (16 B/param / n), gathering one chunk at a time",
}
