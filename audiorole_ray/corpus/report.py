"""The corpus report (SPEC §1 step 9): series (paper Table 1), target characters (Table 2),
what each filter dropped, and audio quality on a sample of clips before/after enhancement.

Built from per-episode aggregates (the enhance markers), summed as they stream in, so its cost
does not grow with the number of dialogue rows.
"""
from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field

from audiorole_ray.filters import FilterConfig
from audiorole_ray.io.storage import join, write_json, write_text
from audiorole_ray.records import Enhanced, EpisodeRow, SeriesSpeaker, TargetStats, Transcribed

QUALITY_KEYS = ("snr_db", "noise_s", "dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl")
TARGET_FIELDS = ("scenes", "dialogues", "train_turns", "test_turns", "single_pairs")


@dataclass
class Totals:
    """Running sums over episodes: everything the report needs, in constant memory."""

    targets: dict[str, TargetStats] = field(default_factory=dict)
    drops: Counter = field(default_factory=Counter)
    too_short: int = 0
    truncated: int = 0
    overlap_trimmed: int = 0
    possible_overlap_cut: int = 0
    orphaned: int = 0
    rows: int = 0
    kept_s: float = 0.0
    kept_overlap_s: float = 0.0
    speech_s: float = 0.0  # diarized speech (RTTM), for the overlap rate
    speech_overlap_s: float = 0.0
    quality_sum: Counter = field(default_factory=Counter)
    quality_n: Counter = field(default_factory=Counter)
    clips_measured: int = 0

    def add_transcribed(self, t: Transcribed) -> None:
        self.too_short += t.too_short
        self.truncated += t.truncated
        self.overlap_trimmed += t.overlap_trimmed
        self.possible_overlap_cut += t.possible_overlap_cut

    def add_enhanced(self, e: Enhanced) -> None:
        for target, s in e.targets.items():
            total = self.targets.setdefault(target, TargetStats())
            for f in TARGET_FIELDS:
                setattr(total, f, getattr(total, f) + getattr(s, f))
        self.drops.update(e.drops)
        self.orphaned += e.orphaned
        self.rows += e.rows
        self.kept_s += e.kept_s
        self.kept_overlap_s += e.overlap_s
        self.clips_measured += len(e.quality)
        for clip in e.quality:
            for k, v in clip.items():
                if k.endswith(("_before", "_after")) and v is not None:
                    self.quality_sum[k] += v
                    self.quality_n[k] += 1

    def mean(self, key: str) -> float | None:
        return round(self.quality_sum[key] / self.quality_n[key], 3) if self.quality_n[key] else None


def build_report(*, episode_rows: list[EpisodeRow], speakers: list[SeriesSpeaker], targets: dict[str, list[str]],
                 totals: Totals, filters: FilterConfig, settings: dict) -> dict:
    series = []
    by_series = defaultdict(list)
    for r in episode_rows:
        if r.status == "done":
            by_series[r.series].append(r)
    for name, eps in sorted(by_series.items()):
        audio = sum(e.duration_s for e in eps)
        speech = sum(e.speech_s for e in eps)
        series.append({"series": name, "episodes": len(eps), "audio_h": round(audio / 3600, 4),
                       "speech_h": round(speech / 3600, 4), "speech_share": round(speech / audio, 3) if audio else 0.0})

    speech_s = {s.speaker_id: s.speech_s for s in speakers}
    characters = []
    for name, spk in sorted((s, t) for s, ts in targets.items() for t in ts):
        st = totals.targets.get(spk, TargetStats())
        characters.append({"series": name, "target": spk, "speech_h": round(speech_s.get(spk, 0.0) / 3600, 4),
                           **{f: getattr(st, f) for f in TARGET_FIELDS}})

    d = totals.drops
    filter_rows = {
        "overlap_dropped_other_role_heard": d["overlap"],
        "overlap_trimmed_to_clean_part": totals.overlap_trimmed,
        # a subset of the two rows above: responses whose cut the diarizer's possible overlap changed
        "overlap_of_them_cut_by_possible_overlap": totals.possible_overlap_cut,
        "duration_too_short_lt_%gs" % filters.min_duration_s: totals.too_short,
        "duration_truncated_gt_%gs" % filters.max_duration_s: totals.truncated,
        "text_too_short_lt_%d_chars" % filters.min_chars: d["text_too_short"],
        "text_too_long_gt_%d_chars" % filters.max_chars: d["text_too_long"],
        "foreign_script_gt_%g" % filters.max_foreign_share: d["foreign_script"],
        "enhance_failed": d["enhance_failed"],
        "orphaned_by_a_dropped_neighbour": totals.orphaned,
    }
    q = {"clips_measured": totals.clips_measured, "enhancer": settings.get("enhancer") or "none",
         "overlap_rate": round(totals.speech_overlap_s / totals.speech_s, 4) if totals.speech_s else 0.0,
         "kept_overlap_rate": round(totals.kept_overlap_s / totals.kept_s, 4) if totals.kept_s else 0.0}
    for k in QUALITY_KEYS:
        for when in ("before", "after"):
            # WADA-SNR reads the near-silent pauses DeepFilterNet leaves as its 100 dB ceiling
            q[f"{k}_{when}"] = None if (k, when) == ("snr_db", "after") else totals.mean(f"{k}_{when}")
    return {"series": series, "characters": characters, "filters": filter_rows, "quality": q, "settings": settings}


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
        + f"Speaker overlap rate (share of diarized speech with two or more speakers at once): {q['overlap_rate']}; "
        f"in the kept clips, after overlaps were trimmed: {q['kept_overlap_rate']}\n\n"
        + _table(qrows, [("figure", "figure"), ("before", "before enhancement"), ("after", "after")])
        + "\nSNR is a blind WADA estimate (paper: 18-19 dB); after DeepFilterNet the pauses are near digital "
        "silence and WADA saturates, so only the figure before enhancement is given. noise_s: seconds per clip "
        "without speech (silero VAD) but above -50 dBFS. DNSMOS P.835 on the clip's first 9.01 s window "
        "(shorter clips repeated to 9.01 s, as Microsoft's DNSMOS does).\n"
    )


def write_report(output: str, report: dict) -> None:
    write_json(join(output, "report.json"), report)
    write_text(join(output, "report.md"), render_markdown(report))
