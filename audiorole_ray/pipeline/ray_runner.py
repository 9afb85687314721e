"""The thin adapter from stages to Ray Data: model stages become actor pools, light ones tasks."""
from __future__ import annotations

import pandas as pd

from audiorole_ray.pipeline.stages import Stage


class _StageActor:
    """Callable class for ``map_batches``: one stage instance per actor, set up once."""

    def __init__(self, stage: Stage):
        self.stage = stage
        self.stage.setup()

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame(self.stage.process(batch.to_dict("records")))


def _run_tasks(batch: pd.DataFrame, stage: Stage) -> pd.DataFrame:
    stage.setup()
    return pd.DataFrame(stage.process(batch.to_dict("records")))


def _named(stage: Stage, base):
    """Ray Data names operators after the callable: give each stage its own name in the
    progress bars and the dashboard (``Diarize`` rather than ``_StageActor``)."""
    name = stage.name.title().replace("_", "")
    if isinstance(base, type):
        return type(name, (base,), {})

    def fn(batch, stage):
        return base(batch, stage)

    fn.__name__ = fn.__qualname__ = name
    return fn


def apply_stage(ds, stage: Stage, workers: int | None = None):
    """Add ``stage`` to a Ray Dataset. ``workers`` > 0 runs it in an actor pool of that size
    (models load once per actor); None runs it as stateless tasks."""
    from ray.data import ActorPoolStrategy

    common = dict(batch_size=stage.batch_size, batch_format="pandas", num_cpus=stage.num_cpus, num_gpus=stage.num_gpus)
    if workers:
        # a fixed-size pool: models load once per actor up front instead of as the pool grows
        return ds.map_batches(
            _named(stage, _StageActor),
            fn_constructor_kwargs={"stage": stage},
            compute=ActorPoolStrategy(size=workers),
            **common,
        )
    return ds.map_batches(_named(stage, _run_tasks), fn_kwargs={"stage": stage}, **common)
