"""Read and write NIST RTTM ("SPEAKER <file> 1 <start> <dur> <NA> <NA> <speaker> <NA> <NA>")."""
from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from audiorole_ray.records import Turn


def format_rttm(file_id: str, turns: Iterable[Turn]) -> str:
    lines = [
        f"SPEAKER {file_id} 1 {t.start:.3f} {t.duration:.3f} <NA> <NA> {t.speaker} <NA> <NA>"
        for t in sorted(turns)
    ]
    return "\n".join(lines) + ("\n" if lines else "")


def parse_rttm(text: str) -> dict[str, list[Turn]]:
    """Turns per file id, sorted by start."""
    out: dict[str, list[Turn]] = {}
    for n, line in enumerate(text.splitlines(), 1):
        parts = line.split()
        if not parts or parts[0] != "SPEAKER":
            continue
        if len(parts) < 8:
            raise ValueError(f"RTTM line {n} has {len(parts)} fields, expected 10: {line!r}")
        start, dur = float(parts[3]), float(parts[4])
        out.setdefault(parts[1], []).append(Turn(start, start + dur, parts[7]))
    for turns in out.values():
        turns.sort()
    return out


def read_rttm(path: str | Path) -> dict[str, list[Turn]]:
    return parse_rttm(Path(path).read_text())
