"""The corpus report (SPEC §1 step 9): series (paper Table 1), target characters (Table 2),
what each filter dropped, and audio quality on a sample of clips before/after enhancement."""
from __future__ import annotations

from collections import Counter, defaultdict
from statistics import fmean

from audiorole_ray.io.storage import join, write_json, write_text

QUALITY_KEYS = ("snr_db", "noise_s", "dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl")


def build_report(*, part1, targets, utterances, dialogues, quality, duration_stats, orphaned, config) -> dict:
    series = []
    by_series = defaultdict(list)
    for r in part1.episode_rows:
        by_series[r["series"]].append(r)
    for name, eps in sorted(by_series.items()):
        done = [e for e in eps if e["status"] == "done"]
        audio = sum(e["duration_s"] for e in done)
        speech = sum(e["speech_s"] for e in done)
        series.append({"series": name, "episodes": len(done), "audio_h": round(audio / 3600, 4),
                       "speech_h": round(speech / 3600, 4), "speech_share": round(speech / audio, 3) if audio else 0.0})

    speech_s = {s["speaker_id"]: s["speech_s"] for s in part1.speakers}
    multi, singles = defaultdict(list), defaultdict(set)  # by target: one pass over the rows
    for d in dialogues:
        if d["kind"] == "multi":
            multi[d["target"]].append(d)
        else:
            singles[d["target"]].add(d["dialogue_id"])
    characters = []
    for name, spk in sorted((s, t) for s, ts in targets.items() for t in ts):
        rows = multi[spk]
        turns = Counter(d["split"] for d in rows if d["role"] == "B")  # one turn = one A/B exchange
        characters.append({
            "series": name, "target": spk, "speech_h": round(speech_s.get(spk, 0.0) / 3600, 4),
            "scenes": len({d["scene_id"] for d in rows}), "dialogues": len({d["dialogue_id"] for d in rows}),
            "train_turns": turns["train"], "test_turns": turns["test"], "single_pairs": len(singles[spk]),
        })

    drops = Counter(u["drop"] for u in utterances if u["drop"])
    # planning counted every episode's duration drops, also those with no utterance left to keep
    drops["too_short"] = duration_stats.dropped.get("too_short", 0)
    filters = {
        "duration_too_short_lt_%gs" % config.filters.min_duration_s: drops["too_short"],
        "duration_truncated_gt_%gs" % config.filters.max_duration_s: duration_stats.truncated,
        "text_too_short_lt_%d_chars" % config.filters.min_chars: drops["text_too_short"],
        "text_too_long_gt_%d_chars" % config.filters.max_chars: drops["text_too_long"],
        "foreign_script_gt_%g" % config.filters.max_foreign_share: drops["foreign_script"],
        "enhance_failed": drops["enhance_failed"],
        "orphaned_by_a_dropped_neighbour": orphaned,
    }

    kept = [u for u in utterances if not u["drop"]]
    kept_s = sum(u["end"] - u["start"] for u in kept)
    q = {"clips_measured": len(quality), "enhancer": config.enhancer or "none",
         "overlap_rate": round(sum(u["overlap_s"] for u in kept) / kept_s, 4) if kept_s else 0.0}
    for k in QUALITY_KEYS:
        for when in ("before", "after"):
            if (k, when) == ("snr_db", "after"):
                # WADA-SNR reads the near-silent pauses DeepFilterNet leaves as its 100 dB ceiling
                q[f"{k}_{when}"] = None
                continue
            vals = [c[f"{k}_{when}"] for c in quality if c.get(f"{k}_{when}") is not None]
            q[f"{k}_{when}"] = round(fmean(vals), 3) if vals else None
    return {"series": series, "characters": characters, "filters": filters, "quality": q,
            "settings": {"max_pause_s": config.max_pause_s, "test_fraction": config.test_fraction, "seed": config.seed,
                         "asr": config.asr, "enhancer": config.enhancer, "audio_rate": config.audio_rate,
                         "quality_every": config.quality_every}}


def _table(rows: list[dict], cols: list[tuple[str, str]]) -> str:
    head = "| " + " | ".join(t for _, t in cols) + " |\n|" + "---|" * len(cols) + "\n"
    return head + "".join("| " + " | ".join(str(r[k]) for k, _ in cols) + " |\n" for r in rows)


def render_markdown(report: dict) -> str:
    q = report["quality"]
    qrows = [{"figure": k, "before": q[f"{k}_before"], "after": q[f"{k}_after"]} for k in QUALITY_KEYS]
    return (
        "# AudioRole corpus report\n\n## Series (paper Table 1)\n\n"
        + _table(report["series"], [("series", "series"), ("episodes", "episodes"), ("audio_h", "audio h"),
                                    ("speech_h", "speech h"), ("speech_share", "speech share")])
        + "\n## Target characters (paper Table 2)\n\nA turn is one A/B exchange of a multi-turn dialogue.\n\n"
        + _table(report["characters"], [("series", "series"), ("target", "target"), ("speech_h", "speech h"),
                                        ("scenes", "scenes"), ("dialogues", "dialogues"), ("train_turns", "train turns"),
                                        ("test_turns", "test turns"), ("single_pairs", "single-turn pairs")])
        + "\n## Filters: utterances dropped\n\n"
        + _table([{"filter": k, "rows": v} for k, v in report["filters"].items()], [("filter", "filter"), ("rows", "rows")])
        + f"\n## Quality ({q['clips_measured']} clips measured; enhancer: {q['enhancer']})\n\n"
        + f"Speaker overlap rate (share of kept utterance time with two or more speakers in the RTTM): {q['overlap_rate']}\n\n"
        + _table(qrows, [("figure", "figure"), ("before", "before enhancement"), ("after", "after")])
        + "\nSNR is a blind WADA estimate (paper: 18-19 dB); after DeepFilterNet the pauses are near digital "
        "silence and WADA saturates, so only the figure before enhancement is given. noise_s: seconds per clip "
        "without speech (silero VAD) but above -50 dBFS. DNSMOS P.835 on the clip's first 9.01 s window "
        "(shorter clips repeated to 9.01 s, as Microsoft's DNSMOS does).\n"
    )


def write_report(output: str, report: dict) -> None:
    write_json(join(output, "report.json"), report)
    write_text(join(output, "report.md"), render_markdown(report))
