"""Score a job's output folder against ground truth: the figures the diarization targets name."""
from __future__ import annotations

import json
from pathlib import Path

from audiorole_ray.io.rttm import read_rttm
from audiorole_ray.metrics.der import cluster_purity_coverage, der_many


def score_series(output: str | Path, truth: str | Path, series: str, collar: float = 0.25) -> dict:
    """DER with series-level labels (one mapping over all episodes), per-file-mapped DER for
    comparison, and purity/coverage of the cluster that holds the true main character."""
    truth_dir, out_dir = Path(truth) / series, Path(output) / "rttm" / series
    ref, hyp = {}, {}
    for path in sorted(truth_dir.glob("*.rttm")):
        ref.update(read_rttm(path))
        hyp_path = out_dir / path.name
        hyp.update(read_rttm(hyp_path) if hyp_path.exists() else {path.stem: []})
    hyp = {k: hyp.get(k, []) for k in ref}
    pairs = {k: (ref[k], hyp[k]) for k in ref}
    series_level = der_many(pairs, collar=collar, global_mapping=True)
    per_file = der_many(pairs, collar=collar, global_mapping=False)
    main = json.loads((truth_dir / "cast.json").read_text())["main_character"]
    purity, coverage, label = cluster_purity_coverage(ref, hyp, main)
    return {
        "series": series,
        "episodes": len(ref),
        "der": series_level.der,
        "missed": series_level.missed / max(series_level.total, 1e-9),
        "false_alarm": series_level.false_alarm / max(series_level.total, 1e-9),
        "confusion": series_level.confusion / max(series_level.total, 1e-9),
        "der_per_episode_mapping": per_file.der,
        "main_character": main,
        "main_cluster": label,
        "main_purity": purity,
        "main_coverage": coverage,
        "ref_speakers": len({t.speaker for turns in ref.values() for t in turns}),
        "hyp_speakers": len({t.speaker for turns in hyp.values() for t in turns}),
    }
