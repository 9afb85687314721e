#!/usr/bin/env python
"""Diarization quality of the embedded backend on series with ground truth, without Ray: DER with
series-level labels (0.25 s collar, overlap scored), main-character purity/coverage (with no
collar, and with a collar: ``--purity-collar``, by default the DER's), the main
character's clean purity (of its time with nobody else named, what clean target clips keep, the
share where the true main character speaks alone; the same for the response clips the corpus
plans for the pipeline's main character), overlapped-speech detection, sweeps of the
clustering and linking thresholds (sensitivity curves), and with ``--ceiling`` the same figures
for segmentation-3.0's own speech/overlap decisions named from the reference (the front-end's
ceiling).

    python benchmarks/eval_diarize.py --data dev heldout sample [--mode segmentation|vad] [--possible-overlap-p P]
        [--purity-collar S] [--ceiling]
        [--sweep cluster|link --values 0.3 0.35 ...] [--truth DIR] [--cache DIR] [--json out.json]

Data sets: ``dev`` and ``heldout`` are the overlapped-speech dev set (``benchmarks/devset``, see
its README; tune on ``dev`` only), ``sample`` the bundled sample series. ``--cache`` keeps each
episode's model outputs (segmentation, embeddings) so sweeps and re-runs redo only clustering,
linking and scoring. CPU time per audio second of the models is printed as ``cpu_rtf``.
``--truth`` scores the same audio against labels of another convention (silero's padding or
threshold changed, ``scripts/make_overlap_devset.py --labels-only``): how much of a figure the
label convention alone decides.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import pickle
import sys
import time
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from audiorole_ray.corpus.plan import plan_episode  # noqa: E402
from audiorole_ray.diarize.calibrate import episode_threshold  # noqa: E402
from audiorole_ray.diarize.embedded import Analysis, EmbeddedBackend, EmbeddedConfig  # noqa: E402
from audiorole_ray.diarize.evaluate import oracle_turns, score_turns  # noqa: E402
from audiorole_ray.io.audio import decode  # noqa: E402
from audiorole_ray.io.rttm import read_rttm  # noqa: E402
from audiorole_ray.link import LinkConfig, link_series, relabel  # noqa: E402
from audiorole_ray.metrics.der import clean_purity  # noqa: E402
from audiorole_ray.records import Turn  # noqa: E402

DATA = {
    "dev": (ROOT / "benchmarks/devset/dev/series", ROOT / "benchmarks/devset/dev/truth"),
    "heldout": (ROOT / "benchmarks/devset/heldout/series", ROOT / "benchmarks/devset/heldout/truth"),
    "sample": (ROOT / "audiorole_ray/sample/series", ROOT / "audiorole_ray/sample/truth"),
}
MODEL_KEYS = ("mode", "seg_step_s", "min_overlap_embed_s", "vad_threshold", "min_silence_s", "min_speech_s", "speech_pad_s",
              "window_s", "step_s", "min_window_s", "runtime")


def analyses(backend: EmbeddedBackend, series_dir: Path, cache: Path | None) -> dict:
    """Episode id -> (Analysis, cpu seconds), from the cache when the model settings and the
    episode's bytes match."""
    # the Analysis fields too: a cache from before a field was added is not reused
    settings = {k: asdict(backend.config)[k] for k in MODEL_KEYS} | {"fields": sorted(Analysis.__dataclass_fields__)}
    key = hashlib.sha1(json.dumps(settings).encode()).hexdigest()[:10]
    out = {}
    for ep in sorted(p for p in series_dir.iterdir() if p.is_file()):
        eid = f"{series_dir.name}/{ep.stem}"
        # the file's bytes too: a regenerated or replaced episode is analysed again, not read back
        audio_key = hashlib.sha1(ep.read_bytes()).hexdigest()[:10]
        path = cache / f"{key}_{audio_key}_{series_dir.parent.parent.name}_{series_dir.name}_{ep.stem}.pkl" if cache else None
        if path and path.exists():
            out[eid] = pickle.loads(path.read_bytes())
            continue
        audio = decode(str(ep))
        t = time.process_time()
        result = (backend.analyse(audio), time.process_time() - t)
        if path:
            path.write_bytes(pickle.dumps(result))
        out[eid] = result
    return out


def read_truth(truth_root: Path, series: str) -> tuple[dict[str, list[Turn]], str]:
    """A series' reference turns per episode, and its main character."""
    ref = {}
    for f in sorted((truth_root / series).glob("*.rttm")):
        ref.update(read_rttm(f))
    return ref, json.loads((truth_root / series / "cast.json").read_text())["main_character"]


def evaluate(backend, data: str, cache, cluster_threshold=None, link_threshold=None, link_alpha=None,
             purity_collar=None, ceiling=False, truth_root: Path | None = None) -> dict:
    """``truth_root``: score against this truth (another label convention) instead of the data
    set's own; the row then also holds those labels scored against the data set's own
    (``labels_vs_committed``)."""
    series_root, committed = DATA[data]
    truth_root = truth_root or committed
    rows = {}
    for series_dir in sorted(p for p in series_root.iterdir() if p.is_dir()):
        series = series_dir.name
        eps = analyses(backend, series_dir, cache)
        diar = [backend.decide(eid, a, cluster_threshold) for eid, (a, _) in eps.items()]
        link = LinkConfig(threshold=link_threshold) if link_alpha is None else LinkConfig(threshold=link_threshold, alpha=link_alpha)
        linked = link_series(series, diar, link)
        hyp = {d.episode_id.split("/", 1)[1]: relabel(d.turns, linked.labels(d.episode_id)) for d in diar}
        ref, main = read_truth(truth_root, series)
        possible = {d.episode_id.split("/", 1)[1]: d.possible_overlap for d in diar}
        s = score_turns(ref, hyp, main, hyp_main=linked.main, possible_overlap=possible, purity_collar=purity_collar)
        s.update(target_clips(ref, hyp, possible, main, linked.main, series))
        if ceiling and all(a.count is not None for a, _ in eps.values()):
            # the front-end's own speech/overlap decisions, named by the reference (``oracle_turns``)
            oracle = {ep: oracle_turns(ref[ep], eps[f"{series}/{ep}"][0].count) for ep in ref}
            s["ceiling"] = score_turns(ref, oracle, main)
        if truth_root != committed:
            s["labels_vs_committed"] = score_turns(read_truth(committed, series)[0], ref, main, hyp_main=main)
        audio_s = sum(a.duration_s for a, _ in eps.values())
        s.update(episodes=len(eps), audio_s=audio_s, cpu_rtf=sum(c for _, c in eps.values()) / audio_s,
                 link_threshold=linked.threshold,
                 cluster_thresholds=[round(backend.threshold_for(a), 3) for a, _ in eps.values()]
                 if cluster_threshold is None else [cluster_threshold])
        rows[series] = s
    return rows


def target_clips(ref: dict, hyp: dict, possible_overlap: dict, main: str, hyp_main: str, series: str) -> dict:
    """The corpus's own planning of the pipeline's main character on these turns: the seconds of
    its response (B) clips kept at plan time (clean parts, duration filter; before ASR) and the
    share of them where the true main character speaks alone."""
    clips = {}
    for ep, turns in hyp.items():
        plan = plan_episode(f"{series}/{ep}", turns, [hyp_main], possible_overlap=possible_overlap.get(ep, ()))
        clips[ep] = [Turn(u.start, u.end, "clip") for u in plan.utterances if u.role == "B" and not u.drop]
    share, seconds = clean_purity(ref, clips, main, "clip")
    return {"clips_s": seconds, "clips_main_alone": share}


def pooled(rows: dict) -> dict:
    """Speech-weighted means over series (each series' DER weighted by its audio)."""
    w = {k: r["audio_s"] for k, r in rows.items()}
    tot = sum(w.values())
    return {m: sum(rows[k][m] * w[k] for k in rows) / tot for m in ("der", "missed", "false_alarm", "confusion")}


def fmt(series: str, r: dict) -> str:
    return (f"  {series:<10} DER {r['der']:6.1%} (miss {r['missed']:5.1%} FA {r['false_alarm']:5.1%} "
            f"conf {r['confusion']:5.1%}; per-episode mapping {r['der_per_file_mapping']:5.1%})  "
            f"main purity {r['main_purity']:6.1%} (over speech {r['main_purity_speech']:5.1%}, silence {r['main_silence']:4.1%}) "
            f"coverage {r['main_coverage']:6.1%} (collar {r['purity_collar']:.2f} s: purity {r['main_purity_collar']:5.1%} "
            f"coverage {r['main_coverage_collar']:5.1%}, {r['main_scored_collar']:4.0%} scored) clean {r['main_clean_purity']:6.1%} of {r['main_clean_s']:4.0f} s, "
            f"clips {r['clips_main_alone']:6.1%} of {r['clips_s']:4.0f} s "
            f"{'found' if r['main_found'] else 'WRONG MAIN'}  OSD P {r['osd_precision']:5.1%} "
            f"R {r['osd_recall']:5.1%}  speakers {r['ref_speakers']}/{r['hyp_speakers']}  cpu RTF {r['cpu_rtf']:.3f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", nargs="+", choices=sorted(DATA), default=["dev"])
    p.add_argument("--mode", choices=("segmentation", "vad"), default="segmentation")
    p.add_argument("--seg-step", type=float, default=EmbeddedConfig.seg_step_s)
    p.add_argument("--possible-overlap-p", type=float, default=EmbeddedConfig.possible_overlap_p,
                   help="threshold of possible overlap (0: off); default %(default)s")
    p.add_argument("--cluster-threshold", type=float, help="fixed (default: calibrated per episode)")
    p.add_argument("--link-threshold", type=float, help="fixed (default: calibrated per series)")
    p.add_argument("--sweep", choices=("cluster", "link", "cluster-alpha", "link-alpha"),
                   help="fixed thresholds, or the alpha of the calibrations (where between the two populations)")
    p.add_argument("--values", type=float, nargs="+", default=[0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6])
    p.add_argument("--purity-collar", type=float, default=None,
                   help="half-width (s) of the collar of the second main purity/coverage figures; default: the DER's 0.25")
    p.add_argument("--ceiling", action="store_true",
                   help="also score segmentation-3.0's own speech/overlap decisions named by the reference "
                        "(what perfect clustering and naming could reach on them)")
    p.add_argument("--truth", type=Path,
                   help="score dev/heldout against another label convention: DIR/<part>/truth as written by "
                        "scripts/make_overlap_devset.py --labels-only --out DIR (the audio stays the committed one)")
    p.add_argument("--cache", type=Path)
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    if args.purity_collar is not None and args.purity_collar < 0:
        p.error(f"--purity-collar must be >= 0, got {args.purity_collar}")
    truths: dict[str, Path] = {}  # part -> the truth scored instead of the committed one
    if args.truth:
        if "sample" in args.data:
            p.error("--truth replaces the dev set's labels only; leave 'sample' out of --data")
        for part in args.data:
            truth = args.truth / part / "truth"
            if not truth.is_dir():
                p.error(f"--truth {args.truth}: no {truth} (make it with scripts/make_overlap_devset.py "
                        f"--labels-only --out {args.truth})")
            missing = [d.name for d in sorted(DATA[part][0].iterdir())
                       if d.is_dir() and not (truth / d.name / "cast.json").is_file()]
            if missing:
                p.error(f"--truth {args.truth}: no truth for {part} series {', '.join(missing)} in {truth}")
            truths[part] = truth
    if args.cache:
        args.cache.mkdir(parents=True, exist_ok=True)
    import torch

    torch.set_num_threads(1)
    backend = EmbeddedBackend(mode=args.mode, seg_step_s=args.seg_step,
                              possible_overlap_p=args.possible_overlap_p if args.possible_overlap_p > 0 else None)
    out = {"mode": args.mode, "seg_step_s": args.seg_step, "results": {}}
    for data in args.data:
        print(f"{data} ({args.mode} mode):")
        if args.sweep:
            curve = []
            for v in args.values:
                ct = v if args.sweep == "cluster" else args.cluster_threshold
                lt = v if args.sweep == "link" else args.link_threshold
                if args.sweep == "cluster-alpha":
                    backend.threshold_for = lambda a, v=v: episode_threshold(a, alpha=v)
                rows = evaluate(backend, data, args.cache, ct, lt, v if args.sweep == "link-alpha" else None,
                                purity_collar=args.purity_collar, truth_root=truths.get(data))
                pool = pooled(rows)
                worst = min(rows.values(), key=lambda r: r["main_purity"])
                curve.append({"value": v, **pool, "series": rows})
                print(f"  {args.sweep} threshold {v:.3f}: DER {pool['der']:6.1%} (miss {pool['missed']:5.1%} "
                      f"FA {pool['false_alarm']:5.1%} conf {pool['confusion']:5.1%}); worst main purity "
                      f"{worst['main_purity']:.1%}, coverage {min(r['main_coverage'] for r in rows.values()):.1%}, "
                      f"main found in {sum(r['main_found'] for r in rows.values())}/{len(rows)} series")
            out["results"][data] = curve
        else:
            rows = evaluate(backend, data, args.cache, args.cluster_threshold, args.link_threshold,
                            purity_collar=args.purity_collar, ceiling=args.ceiling, truth_root=truths.get(data))
            for series, r in rows.items():
                print(fmt(series, r))
                if "ceiling" in r:
                    c = r["ceiling"]
                    print(f"  {'':<10} ceiling (front-end's count, perfect naming): DER {c['der']:6.1%}  main purity "
                          f"{c['main_purity']:6.1%} (silence {c['main_silence']:4.1%}) coverage {c['main_coverage']:6.1%}")
                if "labels_vs_committed" in r:
                    c = r["labels_vs_committed"]
                    print(f"  {'':<10} these labels against the committed ones: main purity {c['main_purity']:6.1%} "
                          f"coverage {c['main_coverage']:6.1%} DER {c['der']:5.1%}")
            pool = pooled(rows)
            print(f"  {'all':<10} DER {pool['der']:6.1%} (miss {pool['missed']:5.1%} FA {pool['false_alarm']:5.1%} "
                  f"conf {pool['confusion']:5.1%})")
            out["results"][data] = {"series": rows, "pooled": pool}
    if args.json:
        args.json.write_text(json.dumps(out, indent=1, default=float))


if __name__ == "__main__":
    main()
