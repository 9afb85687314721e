"""What every job's command line shares: storage and Ray options, one-line errors with exit
code 2 for anything that stops a job before work starts, and a Ray start that checks the
cluster can hold the job's actors.

A job's ``main`` is wrapped with :func:`run_main`; it raises :class:`AudioRoleError` subclasses
for bad input, options, models and storage, never prints a traceback for them.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable

from audiorole_ray.errors import AudioRoleError, ConfigError
from audiorole_ray.io.storage import STORAGE_SETTINGS

log = logging.getLogger("audiorole_ray")

# what Ray Train workers need in their environment: ColossalAI's advice for NCCL streams, one
# thread per CPU worker, and Train V2 not printing each worker's lines twice
TRAIN_ENV = {"CUDA_DEVICE_MAX_CONNECTIONS": "1", "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
             "TOKENIZERS_PARALLELISM": "false", "RAY_TRAIN_ENABLE_PRINT_PATCH": "0"}


def add_common_args(p: argparse.ArgumentParser, workers: int = 2) -> None:
    g = p.add_argument_group("Ray and storage")
    g.add_argument("--workers", type=int, default=workers, help=f"actors per stage (default {workers})")
    g.add_argument("--cpus-per-worker", type=float, default=1.0, help="CPUs each actor reserves (default 1)")
    g.add_argument("--gpus-per-worker", type=float, default=0.0,
                   help="GPUs each actor of a GPU-capable stage reserves, e.g. 1, or 0.5 to pack two (default 0)")
    g.add_argument("--address", default=os.environ.get("RAY_ADDRESS"),
                   help="Ray cluster address (default: RAY_ADDRESS, else a local Ray)")
    g.add_argument("--storage-timeout", type=float, default=STORAGE_SETTINGS["AUDIOROLE_STORAGE_READ_TIMEOUT"],
                   help="object storage: seconds to wait for a connection or an answer (default %(default)s)")
    g.add_argument("--storage-attempts", type=int, default=STORAGE_SETTINGS["AUDIOROLE_STORAGE_ATTEMPTS"],
                   help="object storage: attempts per request before failing (default %(default)s)")
    p.add_argument("-v", "--verbose", action="store_true")


def apply_common_args(args: argparse.Namespace) -> dict[str, str]:
    """Validate the shared options and set the storage settings in this process's environment;
    returns the variables Ray workers need too."""
    if args.workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {args.workers}")
    if args.cpus_per_worker <= 0:
        raise ConfigError(f"--cpus-per-worker must be > 0, got {args.cpus_per_worker}")
    if args.gpus_per_worker < 0:
        raise ConfigError(f"--gpus-per-worker must be >= 0, got {args.gpus_per_worker}")
    if args.storage_timeout <= 0 or args.storage_attempts < 1:
        raise ConfigError("--storage-timeout must be > 0 and --storage-attempts >= 1")
    env = {
        "AUDIOROLE_STORAGE_CONNECT_TIMEOUT": str(min(args.storage_timeout, 10.0)),
        "AUDIOROLE_STORAGE_READ_TIMEOUT": str(args.storage_timeout),
        "AUDIOROLE_STORAGE_ATTEMPTS": str(args.storage_attempts),
    }
    os.environ.update(env)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    return env


def check_writable_outputs(args: argparse.Namespace) -> None:
    """A training job's ``--output`` and ``--storage`` take a probe file (written and removed):
    the last check before the job's lock, once every read-only check has passed."""
    from audiorole_ray.io.storage import check_writable

    check_writable(args.output)
    if args.storage:
        check_writable(args.storage, "--storage")


def init_ray(args: argparse.Namespace, env: dict[str, str], cpus: float, gpus: float) -> None:
    """Start or join Ray, passing ``env`` to workers, and check the cluster has room for one
    actor (``cpus``/``gpus``): a local Ray that cannot ever hold it is an error; a cluster is
    told what the job waits for, since an autoscaler may add nodes."""
    import ray

    if not ray.is_initialized():  # a caller (a test, a notebook) may have joined a cluster already
        ray.init(address=args.address, logging_level=logging.WARNING, log_to_driver=args.verbose,
                 runtime_env={"env_vars": env})
    have = ray.cluster_resources()
    short = [f"{need:g} {name}" for name, need in (("CPU", cpus), ("GPU", gpus)) if need > have.get(name, 0.0)]
    if not short:
        return
    where = f"the cluster has {have.get('CPU', 0):g} CPU and {have.get('GPU', 0):g} GPU"
    if args.address is None:
        ray.shutdown()
        raise ConfigError(f"each worker needs {' and '.join(short)}, but {where}; lower --cpus-per-worker/--gpus-per-worker")
    print(f"waiting: each worker needs {' and '.join(short)} and {where} now; the job starts when nodes with them join",
          file=sys.stderr)


def run_main(main: Callable[[list[str] | None], int], argv: list[str] | None = None) -> int:
    """Run a job's main; an AudioRoleError becomes ``error: <message>`` and exit code 2."""
    try:
        return main(argv)
    except AudioRoleError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
