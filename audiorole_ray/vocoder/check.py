"""Resynthesis check: does a vocoder keep the voice? real speech -> mel -> vocoder -> audio,
then the CAM++ speaker-embedding cosine between original and resynthesis (both at 16 kHz),
plus the log-mel distance between the two."""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from audiorole_ray.decoder.mel import mel_spectrogram
from audiorole_ray.resample import resample
from audiorole_ray.io.audio import SAMPLE_RATE


@lru_cache(maxsize=1)
def _campplus():
    from audiorole_ray.diarize.models import load_campplus

    return load_campplus("cpu")


@torch.inference_mode()
def speaker_embedding(audio16k: np.ndarray) -> np.ndarray:
    """One 192-dim CAM++ embedding of a whole 16 kHz clip (mean-normalised fbank, as the
    diarizer does)."""
    from audiorole_ray.diarize.features import fbank

    feats = fbank(torch.from_numpy(np.ascontiguousarray(audio16k, dtype=np.float32)))
    feats = feats - feats.mean(dim=0, keepdim=True)
    return _campplus()(feats[None]).float()[0].numpy()


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))


def resynthesize(vocoder, audio: np.ndarray, rate: int) -> np.ndarray:
    """Audio at the vocoder's rate from the mel of ``audio``."""
    return vocoder(mel_spectrogram(audio, rate, vocoder.mel))


def resynthesis_scores(vocoder, audio: np.ndarray, rate: int) -> dict:
    """{'cosine': CAM++ cosine original vs resynthesis, 'mel_l1': mean |log-mel difference|}."""
    out = resynthesize(vocoder, audio, rate)
    a16, b16 = resample(audio, rate, SAMPLE_RATE), resample(out, vocoder.sample_rate, SAMPLE_RATE)
    n = min(len(a16), len(b16))
    m_a = mel_spectrogram(audio, rate, vocoder.mel)
    m_b = mel_spectrogram(out, vocoder.sample_rate, vocoder.mel)
    t = min(m_a.shape[-1], m_b.shape[-1])
    return {"cosine": cosine(speaker_embedding(a16[:n]), speaker_embedding(b16[:n])),
            "mel_l1": float((m_a[:, :t] - m_b[:, :t]).abs().mean()), "seconds": len(audio) / rate}
