"""Each character's reference Xc, made once before the pass from its training-split answers.

- AP: the centroid (mean of length-normalised embeddings) of up to ``max_clips`` of the
  character's own training-split answers (role B). Train and test are split by scene, so no
  answer under test is ever part of its own reference.
- ``style_sim``: mean and spread of the prosody statistics of the same clips.
- CP (audio judge): one clip, the longest of those clips up to ``CP_MAX_S`` (the judge hears
  one sample of the character, as in the paper), saved as ``EVAL/references/<character>.wav``.

Written to ``EVAL/references/<character>.json``; workers read it in ``setup()``.
"""
from __future__ import annotations

import time

import numpy as np

from audiorole_ray.eval.items import ClipReader, reference_rows
from audiorole_ray.io.audio import SAMPLE_RATE
from audiorole_ray.io.storage import join, read_json, write_json

CP_MAX_S = 15.0


def reference_uri(output: str, character: str, ext: str = "json") -> str:
    return join(output, "references", f"{character}.{ext}")


def build_reference(corpus: str, output: str, character: str, embedder=None, style=None, max_clips: int = 64,
                    keep_clip: bool = True) -> dict:
    """Compute and write one character's reference; returns it (``error`` set when impossible)."""
    from audiorole_ray.eval.speaker import centroid
    from audiorole_ray.wav import wav_bytes

    t = time.perf_counter()
    rows = reference_rows(corpus, character, max_clips)
    ref: dict = {"character": character, "n_clips": int(len(rows)), "clips": list(rows["audio_key"]) if len(rows) else [],
                 "seconds": float(rows["duration"].sum()) if len(rows) else 0.0, "error": ""}
    if rows.empty:
        ref["error"] = f"{character} has no training-split answers to build a reference from"
        write_json(reference_uri(output, character), ref)
        return ref
    clips = ClipReader(corpus)
    embs, feats, best, problems = [], [], None, []
    for row in rows.itertuples():
        audio = clips(row.audio_path, row.audio_key)
        try:
            if embedder is not None:
                embs.append(embedder(audio))
            if style is not None:
                feats.append(style.features(audio))
        except ValueError as exc:  # a clip too short or silent for one measure: use the others
            problems.append(f"{row.audio_key}: {exc}")
            continue
        dur = audio.size / SAMPLE_RATE
        if dur <= CP_MAX_S and (best is None or dur > best[0]):
            best = (dur, row.audio_key, audio)
    if embedder is not None:
        ref["ap"] = {"backend": embedder.describe(), "n": len(embs),
                     "centroid": centroid(embs).tolist() if embs else None}
    if style is not None:
        from audiorole_ray.eval.style import profile

        ref["style"] = {"backend": style.describe(), "n": len(feats), "profile": profile(feats) if feats else None}
    if keep_clip and best is not None:
        from fsspec.core import url_to_fs

        uri = reference_uri(output, character, "wav")
        fs, path = url_to_fs(uri)
        fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        with fs.open(path, "wb") as f:
            f.write(wav_bytes(best[2]))
        ref["cp_clip"] = {"uri": uri, "audio_key": best[1], "seconds": round(best[0], 3)}
    ref["skipped"] = problems
    from audiorole_ray.pipeline.runner import fingerprint

    ref["fingerprint"] = fingerprint(ref["clips"], ref.get("ap", {}).get("backend"), ref.get("style", {}).get("backend"),
                                     ref.get("cp_clip", {}).get("audio_key"))
    ref["wall_s"] = round(time.perf_counter() - t, 3)
    write_json(reference_uri(output, character), ref)
    return ref


def load_reference(output: str, character: str) -> dict:
    return read_json(reference_uri(output, character))


def reference_embedding(ref: dict) -> np.ndarray | None:
    c = (ref.get("ap") or {}).get("centroid")
    return None if c is None else np.asarray(c, np.float32)
