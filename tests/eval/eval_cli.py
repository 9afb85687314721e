"""jobs/evaluate.py in this process (run_main: exit codes and one-line errors as on the command line)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def evaluate_job():
    spec = importlib.util.spec_from_file_location("evaluate_job", ROOT / "jobs" / "evaluate.py")
    job = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(job)
    return job


def run_evaluate(argv: list[str]) -> int:
    from audiorole_ray.cli import run_main

    return run_main(evaluate_job().main, argv)
