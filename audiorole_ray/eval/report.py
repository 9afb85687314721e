"""The ARP-Eval report: the paper's Table 3 layout (character x system x metric), averages,
counts, which backend produced each number, and a figure.

Per cell: the mean over the character's scored items. ``Avg.`` is the mean of the characters'
means (as the paper averages its six characters); ``n`` columns count the items behind a cell.
Rows of status ``out_of_scope`` (a system that answers only its own character's turns) are not
items of their cell: they count as ``out_of_scope``, never in ``items``, ``n`` or a mean.
"""
from __future__ import annotations

import json
import logging
import math

import pandas as pd

from audiorole_ray.io.storage import join, write_text

# aspect -> the metric columns that can stand for it, the paper's first
ASPECTS = {"AQ": ["aq", "distillmos"], "CQ": ["cq", "intelligibility"], "AP": ["ap"], "CP": ["cp", "style_sim"]}
SHORT = {"aq": "AQ", "distillmos": "DMOS*", "cq": "CQ", "intelligibility": "Intell*", "ap": "AP", "cp": "CP", "style_sim": "Style*"}
ORDER = [m for ms in ASPECTS.values() for m in ms]
OUT_OF_SCOPE = "out_of_scope"  # an item's status when its system does not answer its character

log = logging.getLogger(__name__)


def metric_columns(items: pd.DataFrame) -> list[str]:
    """Metrics present in the items, in aspect order; one whose every value failed stays (n = 0)."""
    return [m for m in ORDER if m in items.columns]


def summarize(items: pd.DataFrame, systems: list[str], backends: dict[str, dict]) -> dict:
    """The report as a dict (what report.json holds)."""
    metrics = metric_columns(items)
    chars = sorted(items["character"].unique()) if len(items) else []
    table: dict = {}
    for c in chars:
        table[c] = {}
        for s in systems:
            sub = items[(items["character"] == c) & (items["system"] == s)]
            status = sub["status"] if "status" in sub else pd.Series(["ok"] * len(sub), index=sub.index)
            outside = status == OUT_OF_SCOPE
            sub, status = sub[~outside], status[~outside]
            cell = {"items": int(len(sub)), "ok": int((status == "ok").sum()), "out_of_scope": int(outside.sum())}
            for m in metrics:
                v = pd.to_numeric(sub[m], errors="coerce").dropna() if m in sub else pd.Series(dtype=float)
                cell[m] = {"mean": _num(v.mean()) if len(v) else None, "n": int(len(v))}
            table[c][s] = cell
    average = {}
    for s in systems:
        average[s] = {}
        for m in metrics:
            means = [table[c][s][m]["mean"] for c in chars if table[c][s][m]["mean"] is not None]
            average[s][m] = {"mean": _num(sum(means) / len(means)) if means else None, "characters": len(means),
                             "n": sum(table[c][s][m]["n"] for c in chars)}
    aspects = {}
    for aspect, cols in ASPECTS.items():
        paper, standins = cols[0], [m for m in cols[1:] if m in metrics]
        aspects[aspect] = {"paper_metric": paper if paper in metrics else None, "standins": standins,
                           "paper_missing": None if paper in metrics else backends.get(paper, {}).get("why_missing", "not computed")}
    return {"systems": systems, "characters": chars, "metrics": metrics,
            "backends": {m: backends.get(m, {}) for m in metrics} | {k: v for k, v in backends.items() if k not in metrics},
            "table": table, "average": average, "aspects": aspects}


def _num(x) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else round(float(x), 4)


def _fmt(x, digits: int = 2) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def markdown(rep: dict) -> str:
    systems, metrics = rep["systems"], rep["metrics"]
    lines = ["# ARP-Eval report", ""]
    head = ["Character"] + [f"{s} {SHORT[m]}" for s in systems for m in metrics]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for c in rep["characters"]:
        cells = [c] + [_fmt(rep["table"][c][s][m]["mean"]) for s in systems for m in metrics]
        lines.append("| " + " | ".join(cells) + " |")
    cells = ["**Avg.**"] + [_fmt(rep["average"][s][m]["mean"]) for s in systems for m in metrics]
    lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Cells are means over the character's scored test exchanges; Avg. is the mean of the "
              "characters' means (as in the paper's Table 3). Metrics marked * are offline stand-ins, not the "
              "paper's metric (see below).", ""]
    lines += ["## Counts (scored items per cell)", ""]
    head = ["Character", "system", "items", "ok"] + [SHORT[m] for m in metrics]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for c in rep["characters"]:
        for s in systems:
            cell = rep["table"][c][s]
            items = str(cell["items"]) + (f" ({cell['out_of_scope']} out of scope)" if cell.get("out_of_scope") else "")
            lines.append("| " + " | ".join([c, s, items, str(cell["ok"])] + [str(cell[m]["n"]) for m in metrics]) + " |")
    lines += ["", "## What produced each number", ""]
    for m, b in rep["backends"].items():
        if m in metrics:
            lines.append(f"- **{SHORT[m]}** (`{m}`): {b.get('label', '')}. Backend: `{json.dumps(b.get('backend', b), sort_keys=True)}`")
    lines += ["", "## Aspects", ""]
    for aspect, a in rep.get("aspects", {}).items():
        parts = [f"the paper's {aspect}: " + (f"`{a['paper_metric']}`" if a["paper_metric"] else f"not computed ({a['paper_missing']})")]
        if a["standins"]:
            parts.append("stand-in: " + ", ".join(f"`{m}`" for m in a["standins"]))
        lines.append(f"- **{aspect}**: " + "; ".join(parts))
    if rep.get("notes"):
        lines += ["", "## Notes", ""] + [f"- {note}" for note in rep["notes"]]
    return "\n".join(lines) + "\n"


def figure(rep: dict, path_png: str) -> None:
    """One panel per metric: bars per system, grouped by character (plus Avg.)."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from fsspec.core import url_to_fs

    metrics, systems = rep["metrics"], rep["systems"]
    groups = rep["characters"] + ["Avg."]
    fig, axes = plt.subplots(1, max(len(metrics), 1), figsize=(3.6 * max(len(metrics), 1), 3.4), squeeze=False)
    width = 0.8 / max(len(systems), 1)
    for ax, m in zip(axes[0], metrics):
        for k, s in enumerate(systems):
            vals = [rep["table"][c][s][m]["mean"] for c in rep["characters"]] + [rep["average"][s][m]["mean"]]
            xs = [i + (k - (len(systems) - 1) / 2) * width for i in range(len(groups))]
            ax.bar(xs, [v if v is not None else 0.0 for v in vals], width, label=s)
        ax.set_title(SHORT[m])
        ax.set_xticks(range(len(groups)))
        ax.set_xticklabels(groups, rotation=30, ha="right", fontsize=7)
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.suptitle("ARP-Eval: mean per character and system (* offline stand-in)", fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    fs, p = url_to_fs(path_png)
    with fs.open(p, "wb") as f:
        f.write(buf.getvalue())


def write_report(output: str, items: pd.DataFrame, systems: list[str], backends: dict[str, dict], notes: list[str] | None = None,
                 extra: dict | None = None) -> dict:
    """report.json, report.md and, when there is something to plot and matplotlib can, report.png.
    ``rep["files"]`` names the files written; a figure that could not be made leaves no stale
    report.png behind and says why in ``rep["figure_error"]`` and the notes."""
    from audiorole_ray.io.storage import exists, remove

    rep = summarize(items, systems, backends)
    rep["notes"] = list(notes or [])
    rep.update(extra or {})
    png, files = join(output, "report.png"), ["report.json", "report.md"]
    if rep["metrics"] and rep["characters"]:
        try:
            figure(rep, png)
            files.append("report.png")
        except Exception as exc:  # noqa: BLE001 - the figure is a convenience; the tables are the report
            rep["figure_error"] = f"{type(exc).__name__}: {exc}"
    else:
        rep["figure_error"] = "no metric was scored: nothing to plot"
    if "figure_error" in rep:
        log.warning("no report.png: %s", rep["figure_error"])
        rep["notes"].append(f"no figure (report.png): {rep['figure_error']}")
        if exists(png):  # an earlier run's figure would contradict these tables
            remove([png])
    rep["files"] = files
    write_text(join(output, "report.json"), json.dumps(rep, indent=2, sort_keys=True, default=str))
    text = markdown(rep)
    if "report.png" in files:
        text += "\n![metrics per system and character](report.png)\n"
    write_text(join(output, "report.md"), text)
    return rep
