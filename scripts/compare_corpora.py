#!/usr/bin/env python
"""Compare two corpora built by jobs/build_corpus.py: dialogue rows, RTTM files, speakers and
the members of every episode's shard. Shards are matched by episode, so corpora of different
layouts (one shard file per episode under any name) compare too.

    python scripts/compare_corpora.py OUT_A OUT_B     # exit 0 when they are the same
"""
from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pandas as pd  # noqa: E402

from audiorole_ray.corpus.reader import read_dialogues  # noqa: E402
from audiorole_ray.corpus.shards import read_shard  # noqa: E402


def shard_members(root: Path, rows: pd.DataFrame) -> dict[str, dict[str, str]]:
    """{episode id: {member name: sha256 of its bytes}}."""
    out = {}
    for (episode, path), _ in rows.groupby(["episode_id", "audio_path"]):
        members = {}
        for key, sample in read_shard(str(root / path)).items():
            for ext, data in sample.items():
                blob = data if isinstance(data, bytes) else repr(sorted(data.items())).encode()
                members[f"{key}.{ext}"] = hashlib.sha256(blob).hexdigest()
        out[episode] = members
    return out


def compare(a: Path, b: Path) -> list[str]:
    problems = []
    da, db = read_dialogues(str(a)), read_dialogues(str(b))
    cols = [c for c in da.columns if c != "audio_path"]
    sa = da[cols].sort_values(["dialogue_id", "turn_index"]).reset_index(drop=True)
    sb = db[cols].sort_values(["dialogue_id", "turn_index"]).reset_index(drop=True)
    if not sa.equals(sb):
        problems.append(f"dialogue rows differ ({len(sa)} vs {len(sb)} rows)")
    ra = {p.relative_to(a / "rttm"): p.read_text() for p in (a / "rttm").rglob("*.rttm")}
    rb = {p.relative_to(b / "rttm"): p.read_text() for p in (b / "rttm").rglob("*.rttm")}
    if ra != rb:
        problems.append(f"RTTM differ: {sorted(str(k) for k in set(ra) ^ set(rb) | {k for k in ra if ra.get(k) != rb.get(k)})}")
    if not pd.read_parquet(a / "speakers.parquet").equals(pd.read_parquet(b / "speakers.parquet")):
        problems.append("speakers.parquet differs")
    ma, mb = shard_members(a, da), shard_members(b, db)
    if ma != mb:
        problems.append(f"shard members differ for episodes {sorted(k for k in set(ma) | set(mb) if ma.get(k) != mb.get(k))}")
    return problems


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("a", type=Path)
    p.add_argument("b", type=Path)
    args = p.parse_args()
    problems = compare(args.a, args.b)
    for line in problems:
        print(line)
    if not problems:
        print(f"same: dialogue rows, RTTM, speakers and shard members of {args.a} and {args.b}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
