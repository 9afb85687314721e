"""Checks of a Ray cluster-launcher YAML (``cluster.yaml``, ``ray up``).

They go through Ray's own config preparation and schema check,
``ray.autoscaler._private.util.prepare_config`` and ``validate_config``. Those are private Ray
APIs, so this module is the only place that imports them: if a Ray upgrade moves them, the import
error says so here. On top of Ray's check it validates AWS ``node_config`` against botocore's
bundled EC2 ``RunInstances`` model (offline), which Ray leaves free-form.
"""
from __future__ import annotations

import copy
import difflib
import json
import os
from pathlib import Path

import yaml

from tools.deploy_checks.common import (
    ClusterConfigError,
    check_images,
    check_inline_secrets_in_text,
    check_ray_pins,
    describe_schema_error,
    load_yaml_documents,
    pinned_ray_version,
)

__all__ = ["validate_cluster_yaml"]


def validate_cluster_yaml(path: str | os.PathLike, *, ray_version: str | None = None) -> dict:
    """Validate a Ray cluster-launcher YAML offline; return the config as Ray prepares it.

    Runs Ray's ``prepare_config`` (defaults for the provider, setup commands merged, per-node-type
    worker limits) and ``validate_config`` (Ray's JSON schema, which forbids unknown keys outside
    ``provider`` and ``node_config``, plus head node type and ``min_workers`` sum checks), then:
    every docker image tag carries the Ray version and one Python version; ``ray==`` pins in
    commands match; per node type ``min_workers <= max_workers``; AWS ``node_config`` keys and
    types match EC2 ``RunInstances`` (botocore's model, offline); near-miss ``provider`` keys;
    no AWS credentials written inline. Raises :class:`ClusterConfigError` listing every problem.
    """
    source = str(path)
    version = ray_version or pinned_ray_version()
    try:
        docs = load_yaml_documents(path)
    except (OSError, yaml.YAMLError) as exc:
        raise ClusterConfigError(source, [f"cannot read YAML: {exc}"]) from exc
    if len(docs) != 1 or not isinstance(docs[0], dict):
        raise ClusterConfigError(source, ["a cluster config is one YAML mapping"])
    raw = docs[0]
    provider = raw.get("provider")
    if not isinstance(provider, dict) or not isinstance(provider.get("type"), str):
        raise ClusterConfigError(source, ["`provider` must be a mapping with a `type` (e.g. aws)"])

    prepared = _ray_prepare_and_validate(source, raw)

    problems: list[str] = []
    problems += _check_cluster_images(prepared, version)
    problems += check_ray_pins(_all_commands(prepared), version, "commands")
    problems += check_inline_secrets_in_text(_all_commands(prepared) + _docker_options(prepared), "commands/docker options")
    for name, node_type in prepared.get("available_node_types", {}).items():
        lo, hi = node_type.get("min_workers", 0), node_type.get("max_workers", 0)
        if lo > hi:
            problems.append(f"available_node_types.{name}: min_workers ({lo}) > max_workers ({hi})")
    if provider["type"] == "aws":
        problems += _check_aws_provider_keys(raw["provider"])
        problems += _check_aws_node_configs(prepared)
    if problems:  # setup_commands appear again in head/worker setup: report each problem once
        raise ClusterConfigError(source, list(dict.fromkeys(problems)))
    return prepared


def _ray_prepare_and_validate(source: str, raw: dict) -> dict:
    """Ray's own preparation and schema check: the one use of Ray's private autoscaler API."""
    try:
        import jsonschema
        from ray.autoscaler._private.util import prepare_config, validate_config
    except ImportError as exc:  # a private API: it may move between Ray versions
        raise ClusterConfigError(
            source,
            [
                "cannot import Ray's cluster-config validator "
                f"(ray.autoscaler._private.util.prepare_config/validate_config, a private Ray API): {exc}"
            ],
        ) from exc
    try:
        prepared = prepare_config(copy.deepcopy(raw))
        validate_config(prepared)
    except jsonschema.ValidationError as exc:
        raise ClusterConfigError(source, _all_ray_schema_errors(prepared, exc)) from None
    except (ValueError, RuntimeError, AssertionError, KeyError, TypeError, NotImplementedError) as exc:
        # prepare_config's own checks (docker image, worker limits) run before the schema: add
        # the schema's unknown-field errors, often the cause (`imagee` -> no image)
        typos = [m for m in _all_ray_schema_errors(raw, exc) if "unknown field" in m]
        raise ClusterConfigError(source, [f"Ray rejected the config: {type(exc).__name__}: {exc}", *typos]) from None
    return prepared


def _all_ray_schema_errors(prepared: dict, first: Exception) -> list[str]:
    """Ray's validate_config stops at the first schema error; list them all, same schema."""
    import jsonschema

    try:
        validator = jsonschema.Draft7Validator(_ray_schema())
        errors = sorted(validator.iter_errors(prepared), key=lambda e: list(map(str, e.absolute_path)))
    except Exception:  # noqa: BLE001 - fall back to the one error Ray gave
        errors = [first]
    return [msg for e in errors for msg in describe_schema_error(e)] or [str(first)]


def _ray_schema() -> dict:
    """The JSON schema Ray's validate_config checks against (a file shipped with Ray)."""
    import ray.autoscaler

    return json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())


def _check_cluster_images(config: dict, version: str) -> list[str]:
    images: list[tuple[str, str]] = []
    docker = config.get("docker") or {}
    for key in ("image", "head_image", "worker_image"):
        if docker.get(key):
            images.append((f"docker.{key}", docker[key]))
    for name, node_type in (config.get("available_node_types") or {}).items():
        image = (node_type.get("docker") or {}).get("worker_image")
        if image:
            images.append((f"available_node_types.{name}.docker.worker_image", image))
    if not images:
        return ["no docker image: set docker.image to rayproject/ray:<ray version>-pyXYZ-<platform>"]
    return check_images(images, version)


def _all_commands(config: dict) -> list[str]:
    keys = (
        "initialization_commands",
        "setup_commands",
        "head_setup_commands",
        "worker_setup_commands",
        "head_start_ray_commands",
        "worker_start_ray_commands",
    )
    cmds = [c for k in keys for c in (config.get(k) or [])]
    for node_type in (config.get("available_node_types") or {}).values():
        for k in ("initialization_commands", "worker_setup_commands"):
            cmds += node_type.get(k) or []
    return [str(c) for c in cmds]


def _docker_options(config: dict) -> list[str]:
    docker = config.get("docker") or {}
    opts = [o for k in ("run_options", "head_run_options", "worker_run_options") for o in (docker.get(k) or [])]
    for node_type in (config.get("available_node_types") or {}).values():
        opts += (node_type.get("docker") or {}).get("worker_run_options") or []
    return [str(o) for o in opts]


# Keys Ray's AWS provider reads from `provider` beyond those its schema lists. The schema leaves
# `provider` open, so a misspelt key (say `regoin`) passes it silently: flag near misses only.
_AWS_PROVIDER_KEYS = {
    "aws_credentials",
    "key_pair",
    "use_external_head_ip",
    "cache_stopped_nodes",
    "security_group",
    "cloudwatch",
    "availability_zone",
    "region",
    "use_internal_ips",
    "disable_node_updaters",
}


def _check_aws_provider_keys(provider: dict) -> list[str]:
    known = set(_ray_schema()["properties"]["provider"].get("properties", {})) | _AWS_PROVIDER_KEYS
    problems = []
    for key in provider:
        if key in known or key.startswith("_"):
            continue
        close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.8)
        if close:
            problems.append(f"provider: unknown key {key!r} (did you mean {close[0]!r}?)")
    return problems


def _check_aws_node_configs(config: dict) -> list[str]:
    """node_config is handed to EC2 RunInstances; Ray's schema does not look inside it."""
    try:
        import botocore.session
        from botocore.validate import ParamValidator
    except ImportError:  # botocore comes with s3fs; without it this check is skipped
        return []
    shape = botocore.session.get_session().get_service_model("ec2").operation_model("RunInstances").input_shape
    problems = []
    for name, node_type in (config.get("available_node_types") or {}).items():
        params = copy.deepcopy(node_type.get("node_config") or {})
        params.pop("SubnetIds", None)  # Ray's own key: it picks one SubnetId from the list
        params.setdefault("MinCount", 1)
        params.setdefault("MaxCount", 1)
        report = ParamValidator().validate(params, shape)
        if report.has_errors():
            for line in report.generate_report().splitlines():
                problems.append(f"available_node_types.{name}.node_config (EC2 RunInstances): {line}")
    return problems

