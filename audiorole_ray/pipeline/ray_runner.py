"""The thin adapter from stages to Ray Data: model stages become actor pools, light ones tasks."""
from __future__ import annotations

import pandas as pd

from audiorole_ray.pipeline.stage import Stage


class _StageActor:
    """Callable class for ``map_batches``: one stage instance per actor, set up once.

    The stage travels as a class attribute of a per-stage subclass (see ``apply_stage``) rather
    than as constructor arguments, which Ray would park in the object store for actor restarts.
    """

    stage: Stage

    def __init__(self):
        self.stage.setup()

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame(self.stage.process(batch.to_dict("records")))


def _op_name(stage: Stage) -> str:
    # Ray Data names operators after the callable: "Diarize" rather than "_StageActor"
    return stage.name.title().replace("_", "")


def apply_stage(ds, stage: Stage, workers: int | None = None):
    """Add ``stage`` to a Ray Dataset. ``workers`` > 0 runs it in a fixed pool of that many actors
    (models load once per actor, up front); None runs it as stateless tasks."""
    from ray.data import ActorPoolStrategy

    common = dict(batch_size=stage.batch_size, batch_format="pandas", num_cpus=stage.num_cpus, num_gpus=stage.num_gpus)
    if workers:
        actor = type(_op_name(stage), (_StageActor,), {"stage": stage})
        return ds.map_batches(actor, compute=ActorPoolStrategy(size=workers), **common)

    def fn(batch):
        stage.setup()
        return pd.DataFrame(stage.process(batch.to_dict("records")))

    fn.__name__ = fn.__qualname__ = _op_name(stage)
    return ds.map_batches(fn, **common)
