"""Batch mode of ``jobs/respond.py``: one resumable pass of :class:`RespondStage` through the
project's runner, then ``responses.parquet`` from the markers."""
from __future__ import annotations

import time

from audiorole_ray.errors import MissingModelError
from audiorole_ray.io.storage import join, write_bytes


def run_batch(model_dir: str, corpus: str, output: str, options: dict, sampling: dict, *, workers: int = 1,
              cpus_per_worker: float = 1.0, gpus_per_worker: float = 0.0, local: bool = False) -> dict:
    from audiorole_ray.arp_model import read_manifest
    from audiorole_ray.pipeline.runner import run_pass
    from audiorole_ray.pipeline.state import MarkerStore
    from audiorole_ray.respond.batch import RESPONSES, RespondStage, assemble, model_stamp, test_items

    t0 = time.perf_counter()
    manifest = read_manifest(model_dir)
    if manifest is None:
        raise MissingModelError(f"{model_dir} is not an ARP-Model (no arp_model.json)")
    character = manifest["character"]
    items = test_items(corpus, character, model_stamp(model_dir))
    stage = RespondStage(corpus=corpus, output=output, model_dir=model_dir, responder_options=options, sampling=sampling,
                         num_cpus=cpus_per_worker, num_gpus=gpus_per_worker)
    result = run_pass(stage, items, MarkerStore(join(output, "_state")), workers=workers, local=local)
    table = assemble(result.done, result.errors, items)
    write_bytes(join(output, RESPONSES), table.to_parquet(index=False))  # through a temporary name
    counts = table["status"].value_counts().to_dict()
    spoken = int(((table.duration_s >= 0.5) & (table.rms_dbfs > -50.0)).sum())
    return {"output": output, "character": character, "dialogues": len(items), "resumed": result.resumed,
            "turns": len(table), "status": counts, "answers_0.5s_non_silent": spoken, "answer_s": round(float(table["duration_s"].sum()), 2),
            "wall_s": round(time.perf_counter() - t0, 1)}

