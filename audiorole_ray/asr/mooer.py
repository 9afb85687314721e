"""MooER (Moore Threads), the paper's ASR: Paraformer encoder + linear adapter + Qwen2 LLM with LoRA.

MooER is not a PyPI package. Its code lives in the ``mooer`` package under ``src/`` of its
GitHub repository and must be installed on the GPU image (see ``MOOER.md`` next to this file).
This backend only *calls* MooER's own entry points; nothing of MooER is copied here, and nothing
is downloaded: every weight comes from one local folder.

The entry points used (all from MooER's ``src/mooer``):

- ``mooer.configs.asr_config.ModelConfig()`` -- the model config object, paths filled in by us;
- ``mooer.models.mooer_model.init_model(model_config=...) -> (model, tokenizer)`` -- builds the
  encoder, adapter and LLM, merges the LoRA weights and loads the adapter checkpoint;
- ``mooer.datasets.speech_processor.load_cmvn(path)``, ``gen_llm_inputs(...)`` (fbank, LFR, CMVN
  and the prompt ids of one clip) and ``process_batch(items, tokenizer)`` (left-pads a batch);
- ``mooer.utils.data_utils.PROMPT_DICT`` / ``PROMPT_TEMPLATE_DICT`` -- the prompts MooER was
  trained with;
- ``model.generate(**batch, num_beams=..., max_new_tokens=...)`` and
  ``tokenizer.batch_decode(ids, skip_special_tokens=True)``.

Clips are batched by duration (:func:`duration_batches`): the encoder and the LLM both run on the
padded batch, so grouping clips of similar length cuts the wasted compute; results are returned
in the caller's order.
"""
from __future__ import annotations

import contextlib
import importlib
import json
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from audiorole_ray.asr.base import AsrBackend
from audiorole_ray.errors import MissingModelError
from audiorole_ray.io.audio import SAMPLE_RATE

# shorter clips give no encoder frame after fbank (25 ms window), LFR (x6) and the adapter (x2)
MIN_CLIP_S = 0.1
MOOER_DOC = "audiorole_ray/asr/MOOER.md"

# where each part sits inside model_dir, following the layout of MooER's pretrained_models/
DEFAULT_LAYOUT = {
    "encoder_path": "paraformer_encoder/paraformer-encoder.pth",
    "cmvn_path": "paraformer_encoder/am.mvn",
    "llm_path": "Qwen2-7B-Instruct",
    "adapter_path": "{variant}/adapter_project.pt",
    "lora_dir": "{variant}/lora_weights",
}
# checkpoint variant (sub-folder) -> MooER prompt key; the multitask model is prompted with "ast"
# and answers "<transcript>\n<translation>", of which we keep the first line
VARIANT_PROMPT = {"asr": "asr", "asr_ast_mtl": "ast"}

LLM_WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")
LORA_WEIGHT_FILES = ("adapter_model.safetensors", "adapter_model.bin")


def duration_batches(durations: list[float], max_batch_s: float, max_batch_size: int) -> list[list[int]]:
    """Group clip indices into batches of similar duration.

    Clips are taken longest first; a batch grows while ``len(batch) * longest_in_batch`` (the
    padded seconds the model actually computes) stays within ``max_batch_s`` and it holds at most
    ``max_batch_size`` clips. A clip longer than ``max_batch_s`` gets a batch of its own. Every
    index appears exactly once; the caller puts results back by index.
    """
    if max_batch_s <= 0 or max_batch_size < 1:
        raise ValueError(f"need max_batch_s > 0 and max_batch_size >= 1, got {max_batch_s}, {max_batch_size}")
    order = sorted(range(len(durations)), key=lambda i: (-durations[i], i))
    batches: list[list[int]] = []
    batch: list[int] = []
    longest = 0.0
    for i in order:
        if batch and (len(batch) + 1 > max_batch_size or (len(batch) + 1) * longest > max_batch_s):
            batches.append(batch)
            batch = []
        if not batch:
            longest = durations[i]
        batch.append(i)
    if batch:
        batches.append(batch)
    return batches


@dataclass(frozen=True)
class MooerPaths:
    encoder_path: Path
    cmvn_path: Path
    llm_path: Path
    adapter_path: Path
    lora_dir: Path


def resolve_paths(model_dir: str | Path, variant: str = "asr", overrides: dict[str, str | None] | None = None) -> MooerPaths:
    """Where each part should be: the default layout, or an override (relative to model_dir or absolute)."""
    root = Path(model_dir)
    parts = {}
    for key, rel in DEFAULT_LAYOUT.items():
        given = (overrides or {}).get(key)
        parts[key] = root / (given if given else rel.format(variant=variant))
    return MooerPaths(**parts)


def check_model_dir(model_dir: str | Path, variant: str = "asr", overrides: dict[str, str | None] | None = None) -> MooerPaths:
    """Check every file MooER's loader reads, before anything heavy is imported.

    MooER's own loader silently skips an adapter checkpoint that is not there (and then
    transcribes garbage), so a missing file is an error here, with every missing path listed.
    """
    root = Path(model_dir)
    if not root.is_dir():
        raise MissingModelError(f"MooER model folder {root} does not exist (see {MOOER_DOC} for its layout)")
    p = resolve_paths(root, variant, overrides)
    missing: list[str] = []

    def need_file(path: Path) -> None:
        if not path.is_file():
            missing.append(str(path))

    def need_any(folder: Path, names: tuple[str, ...]) -> None:
        if not any((folder / n).is_file() for n in names):
            missing.append(f"{folder}/{{{','.join(names)}}} (one of)")

    need_file(p.encoder_path)
    need_file(p.cmvn_path)
    need_file(p.adapter_path)
    # MooER loads the Qwen tokenizer with use_fast=False: the slow tokenizer reads vocab.json + merges.txt
    for name in ("config.json", "vocab.json", "merges.txt"):
        need_file(p.llm_path / name)
    need_any(p.llm_path, LLM_WEIGHT_FILES)
    need_file(p.lora_dir / "adapter_config.json")
    need_any(p.lora_dir, LORA_WEIGHT_FILES)
    if missing:
        lines = "\n  ".join(missing)
        raise MissingModelError(f"MooER model folder {root} is incomplete; missing:\n  {lines}\n(see {MOOER_DOC} for the expected layout)")
    return p


def llm_hidden_size(llm_path: Path) -> int:
    """The LLM width the adapter projects to (3584 for Qwen2-7B, 1536 for Qwen2-1.5B)."""
    config = llm_path / "config.json"
    try:
        return int(json.loads(config.read_text())["hidden_size"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise MissingModelError(f"cannot read hidden_size from {config}: {exc}") from exc


def _import_mooer() -> dict:
    """MooER's modules, or a MissingModelError that says what to install."""
    names = {
        "asr_config": "mooer.configs.asr_config",
        "mooer_model": "mooer.models.mooer_model",
        "speech_processor": "mooer.datasets.speech_processor",
        "data_utils": "mooer.utils.data_utils",
    }
    mods = {}
    for key, name in names.items():
        try:
            mods[key] = importlib.import_module(name)
        except ImportError as exc:
            missing = exc.name or ""
            if missing == "mooer" or missing.startswith("mooer."):
                raise MissingModelError(
                    f"the MooER backend needs MooER's 'mooer' package ({name} is not importable). It is not on "
                    "PyPI: clone https://github.com/MooreThreads/MooER on the GPU image, pip install -r "
                    f"requirements.txt and put its src/ on PYTHONPATH (see {MOOER_DOC})"
                ) from exc
            raise MissingModelError(
                f"MooER's {name} imports {missing or 'a module'} which is not installed: "
                f"pip install -r MooER/requirements.txt on the GPU image (see {MOOER_DOC}); error: {exc}"
            ) from exc
    return mods


class MooerBackend(AsrBackend):
    name = "mooer"

    def __init__(
        self,
        model: str | None = None,
        variant: str = "asr",
        encoder_path: str | None = None,
        cmvn_path: str | None = None,
        llm_path: str | None = None,
        adapter_path: str | None = None,
        lora_dir: str | None = None,
        max_batch_s: float = 300.0,
        max_batch_size: int = 16,
        num_beams: int = 4,
        max_new_tokens: int = 200,
        dtype: str | None = None,
        device: str = "cpu",
    ):
        if variant not in VARIANT_PROMPT:
            raise ValueError(f"MooER variant {variant!r} is not an ASR checkpoint; choose one of {tuple(VARIANT_PROMPT)}")
        self.model_dir = model
        self.variant = variant
        self.overrides = {"encoder_path": encoder_path, "cmvn_path": cmvn_path, "llm_path": llm_path,
                          "adapter_path": adapter_path, "lora_dir": lora_dir}
        self.max_batch_s = float(max_batch_s)
        self.max_batch_size = int(max_batch_size)
        duration_batches([], self.max_batch_s, self.max_batch_size)  # validates the caps now, not mid-job
        self.num_beams = num_beams
        self.max_new_tokens = max_new_tokens
        self.device = device
        # MooER runs bf16 on GPUs; bf16 matmuls on a CPU are slow, so float32 there
        self.dtype = dtype or ("float32" if device == "cpu" else "bfloat16")
        if self.dtype not in ("float32", "float16", "bfloat16"):
            raise ValueError(f"dtype must be float32, float16 or bfloat16, not {self.dtype!r}")
        self._model = None
        self._tokenizer = None
        self._cfg = None
        self._cmvn = None
        self._sp = None
        self._prompt = ""
        self._template = ""
        self._torch = None
        self._times: dict[str, float] = defaultdict(float)
        self._stats: dict[str, float] = defaultdict(float)

    def paths(self) -> MooerPaths:
        if not self.model_dir:
            raise MissingModelError(
                "the MooER backend needs a local model folder: registry.create('asr', 'mooer', model=DIR) "
                f"or --asr mooer --asr-model DIR (see {MOOER_DOC})"
            )
        return check_model_dir(self.model_dir, self.variant, self.overrides)

    def load(self) -> None:
        t = time.perf_counter()
        paths = self.paths()  # the folder first: a wrong path is the error users should see first
        llm_dim = llm_hidden_size(paths.llm_path)
        mods = _import_mooer()
        import torch

        cfg = mods["asr_config"].ModelConfig()
        cfg.encoder_path = str(paths.encoder_path)
        cfg.cmvn_path = str(paths.cmvn_path)
        cfg.llm_path = str(paths.llm_path)
        cfg.adapter_path = str(paths.adapter_path)
        cfg.lora_dir = str(paths.lora_dir)
        cfg.prompt_key = VARIANT_PROMPT[self.variant]
        cfg.llm_dim = llm_dim
        cfg.load_dtype = self.dtype
        cfg.is_inference = True
        model, tokenizer = mods["mooer_model"].init_model(model_config=cfg)
        model.to(self.device)
        model.eval()
        sp = mods["speech_processor"]
        self._cmvn = sp.load_cmvn(str(paths.cmvn_path))
        self._prompt = mods["data_utils"].PROMPT_DICT[cfg.prompt_key]
        self._template = mods["data_utils"].PROMPT_TEMPLATE_DICT[cfg.get("prompt_template_key", "qwen")]
        self._sp, self._cfg, self._model, self._tokenizer = sp, cfg, model, tokenizer
        self._torch = torch
        self._times["load"] += time.perf_counter() - t

    def _autocast(self):
        if self.dtype == "float32":
            return contextlib.nullcontext()
        dtype = getattr(self._torch, self.dtype)
        return self._torch.autocast(device_type=str(self.device).split(":")[0], dtype=dtype)

    def transcribe(self, clips: list[np.ndarray], language: str = "en") -> list[str]:
        """One transcript per clip, in order. MooER takes no language argument: one model covers
        Mandarin and English, so ``language`` is accepted and not used."""
        if self._model is None:
            self.load()
        torch = self._torch
        out = [""] * len(clips)
        waves = [np.ascontiguousarray(np.asarray(c, dtype=np.float32).reshape(-1)) for c in clips]
        # clips too short for one encoder frame stay "" (the corpus drops < 1 s utterances anyway)
        keep = [i for i, w in enumerate(waves) if len(w) >= MIN_CLIP_S * SAMPLE_RATE]
        durations = [len(waves[i]) / SAMPLE_RATE for i in keep]
        for batch in duration_batches(durations, self.max_batch_s, self.max_batch_size):
            idx = [keep[b] for b in batch]
            t = time.perf_counter()
            samples = [{"key": str(i), "txt": "", "wav": torch.from_numpy(waves[i]).unsqueeze(0), "sample_rate": SAMPLE_RATE} for i in idx]
            items = list(self._sp.gen_llm_inputs(
                samples, self._tokenizer, is_inference=True, is_paraformer=True, cmvn=self._cmvn,
                prompt_template=self._template, prompt_org=self._prompt,
                adapter_downsample_rate=self._cfg.adapter_downsample_rate,
            ))
            inputs = self._sp.process_batch(items, tokenizer=self._tokenizer)
            inputs = {k: v.to(self.device) if isinstance(v, torch.Tensor) else v for k, v in inputs.items()}
            t2 = time.perf_counter()
            self._times["features"] += t2 - t
            with torch.no_grad(), self._autocast():
                ids = self._model.generate(**inputs, num_beams=self.num_beams, max_new_tokens=self.max_new_tokens)
            texts = self._tokenizer.batch_decode(ids, skip_special_tokens=True)
            self._times["generate"] += time.perf_counter() - t2
            if len(texts) != len(idx):
                raise RuntimeError(f"MooER returned {len(texts)} transcripts for a batch of {len(idx)} clips")
            for i, text in zip(idx, texts):
                # the multitask checkpoint answers "transcript\ntranslation": the transcript is line one
                out[i] = text.strip().split("\n")[0].strip()
            self._stats["batches"] += 1
            self._stats["clips"] += len(idx)
            self._stats["audio_s"] += sum(len(waves[i]) for i in idx) / SAMPLE_RATE
            self._stats["padded_s"] += len(idx) * max(len(waves[i]) for i in idx) / SAMPLE_RATE
        return out

    def timings(self) -> dict[str, float]:
        return dict(self._times)

    def stats(self) -> dict[str, float]:
        """Batches, clips, audio seconds and padded seconds computed (padded_s / audio_s >= 1)."""
        return dict(self._stats)
