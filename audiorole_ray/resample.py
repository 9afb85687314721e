"""Sample-rate conversion for the stages after the corpus: tokens (16 kHz for the tokenizer),
the decoder's mel (22.05 kHz), responses and evaluation (16 kHz)."""
from __future__ import annotations

from math import gcd

import numpy as np


def resample(audio: np.ndarray, rate: int, target: int) -> np.ndarray:
    """Polyphase resampling (scipy), exact for the rational ratios of audio rates; float32 out."""
    if rate == target:
        return np.asarray(audio, dtype=np.float32)
    from scipy.signal import resample_poly

    g = gcd(int(rate), int(target))
    return resample_poly(np.asarray(audio, dtype=np.float64), int(target) // g, int(rate) // g).astype(np.float32)
