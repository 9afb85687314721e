"""Offline checks for the cluster deployment files, run by the default test suite.

Two entry points:

- :func:`validate_cluster_yaml` checks a Ray cluster-launcher YAML (``cluster.yaml``, ``ray up``).
  It goes through Ray's own config preparation and schema check,
  ``ray.autoscaler._private.util.prepare_config`` and ``validate_config``. Those are private
  Ray APIs, so this module is the only place that imports them: if a Ray upgrade moves them,
  the import error says so here. On top of Ray's check it validates AWS ``node_config`` against
  botocore's bundled EC2 ``RunInstances`` model (offline), which Ray leaves free-form.
- :func:`validate_k8s_manifest` checks KubeRay manifests. Each ``RayCluster``/``RayJob`` document
  is validated against the ``openAPIV3Schema`` of the KubeRay CRD with ``jsonschema``, made
  strict: an unknown field is an error (the API server would prune it silently). Each RayJob's
  ``runtimeEnvYAML`` is parsed. ``Service``, ``PodMonitor``, ``ServiceMonitor`` and other kinds
  get a basic structure check.

Both check that ``rayVersion`` and every image tag carry the pinned Ray version
(``ray.__version__``), and that no AWS credential is written inline. Problems are collected and
raised together as one :class:`ConfigError` (``ClusterConfigError`` / ``ManifestError``), one
line per problem, with a path to the offending field and, for a misspelt field, the closest
valid name.

Command line::

    python -m audiorole_ray.cluster.validate cluster.yaml k8s/*.yaml --crd-dir ../shared/kuberay
"""
from __future__ import annotations

import argparse
import copy
import difflib
import functools
import os
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Iterator

import yaml

__all__ = [
    "ClusterConfigError",
    "ConfigError",
    "ManifestError",
    "load_yaml_documents",
    "pinned_ray_version",
    "validate_cluster_yaml",
    "validate_k8s_manifest",
]

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the C loader reads the 2 MB of CRDs in ~1 s

# Kinds validated against a KubeRay CRD, and the longest names KubeRay v1.7 accepts for them (it
# derives Pod and Service names from them).
_RAY_KINDS = {"RayCluster": 53, "RayJob": 47}
_RAY_GROUP = "ray.io"
# The label KubeRay reads in a RayJob's clusterSelector.
_CLUSTER_SELECTOR_KEY = "ray.io/cluster"
# AWS credentials must come from a Secret or an instance role, never a literal value.
_SECRET_ENV_NAMES = ("AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "AWS_SESSION_TOKEN")
_INLINE_SECRET_RE = re.compile(r"\b(AWS_SECRET_ACCESS_KEY|AWS_ACCESS_KEY_ID|AWS_SESSION_TOKEN)\s*=\s*(?![\"']?\$)\S")
_RAY_PIN_RE = re.compile(r"(?<![\w.-])ray(?:\[[^\]]*\])?\s*==\s*([0-9A-Za-z.+-]+)")
_RAY_WHEEL_RE = re.compile(r"(?<![\w.-])ray-([0-9][0-9A-Za-z.+]*)-cp\d+")  # ray-2.60.0-cp311-...whl
_PY_TAG_RE = re.compile(r"(?:^|-)py(\d{2,3})(?:-|$)")

_DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_NAME = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")

# Root ``metadata`` is a free-form object in every CRD (the API server validates it itself).
# This is the part of ObjectMeta a manifest may carry; anything else is a typo.
_OBJECT_META: dict[str, Any] = {
    "type": "object",
    "required": ["name"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "generateName": {"type": "string"},
        "namespace": {"type": "string"},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
        "finalizers": {"type": "array", "items": {"type": "string"}},
        "ownerReferences": {"type": "array", "items": {"type": "object"}},
        # server-set fields, present in manifests exported with kubectl get -o yaml
        "uid": {"type": "string"},
        "resourceVersion": {"type": "string"},
        "generation": {"type": "integer"},
        "creationTimestamp": {"type": ["string", "null"]},
        "deletionTimestamp": {"type": ["string", "null"]},
        "deletionGracePeriodSeconds": {"type": "integer"},
        "managedFields": {"type": "array"},
        "selfLink": {"type": "string"},
    },
}


class ConfigError(ValueError):
    """A deployment file failed validation; ``problems`` holds one message per problem."""

    def __init__(self, source: str, problems: Sequence[str]):
        self.source = source
        self.problems = list(problems)
        n = len(self.problems)
        super().__init__(f"{source}: {n} problem{'s' if n != 1 else ''}\n" + "\n".join(f"  - {p}" for p in self.problems))


class ClusterConfigError(ConfigError):
    """A Ray cluster-launcher YAML is invalid."""


class ManifestError(ConfigError):
    """A Kubernetes manifest is invalid."""


def pinned_ray_version() -> str:
    """The Ray version this project pins (the installed ``ray``; pyproject pins it exactly)."""
    import ray

    return ray.__version__


def load_yaml_documents(path: str | os.PathLike) -> list[Any]:
    """All documents of a YAML file, empty ones (a bare ``---``) dropped."""
    text = Path(path).read_text()
    return [doc for doc in yaml.load_all(text, Loader=_Loader) if doc is not None]


# --------------------------------------------------------------------------------------------
# Ray cluster launcher YAML
# --------------------------------------------------------------------------------------------


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
    problems += _check_ray_pins(_all_commands(prepared), version, "commands")
    problems += _check_inline_secrets_in_text(_all_commands(prepared) + _docker_options(prepared), "commands/docker options")
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
    import json

    import jsonschema
    import ray.autoscaler

    try:
        schema_path = Path(ray.autoscaler.__file__).parent / "ray-schema.json"
        schema = json.loads(schema_path.read_text())
        errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(prepared), key=lambda e: list(map(str, e.absolute_path)))
    except Exception:  # noqa: BLE001 - fall back to the one error Ray gave
        errors = [first]
    return [msg for e in errors for msg in _describe_schema_error(e)] or [str(first)]


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
    return _check_images(images, version)


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
    import json

    import ray.autoscaler

    schema = json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())
    known = set(schema["properties"]["provider"].get("properties", {})) | _AWS_PROVIDER_KEYS
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


# --------------------------------------------------------------------------------------------
# Kubernetes manifests
# --------------------------------------------------------------------------------------------


def validate_k8s_manifest(
    path_or_doc: str | os.PathLike | Mapping | Sequence[Mapping],
    crd_dir: str | os.PathLike,
    *,
    ray_version: str | None = None,
) -> list[dict]:
    """Validate Kubernetes manifests offline; return the validated documents.

    ``path_or_doc`` is a YAML file (any number of ``---`` documents), one parsed document, or a
    list of them. ``crd_dir`` holds the KubeRay CRDs (``ray.io_rayclusters.yaml``,
    ``ray.io_rayjobs.yaml``). RayCluster and RayJob documents are validated against the CRD
    version named by their ``apiVersion`` with unknown fields as errors; ``x-kubernetes-int-or-string``
    and ``x-kubernetes-list-type: map|set`` (unique keys, e.g. container or env names) are
    enforced. Then KubeRay's own rules that the schema cannot express, the Ray version pins,
    the RayJob ``runtimeEnvYAML``, and the absence of inline AWS credentials. Raises
    :class:`ManifestError` listing every problem.
    """
    version = ray_version or pinned_ray_version()
    if isinstance(path_or_doc, Mapping):
        source, docs = "<document>", [path_or_doc]
    elif isinstance(path_or_doc, (str, os.PathLike)):
        source = str(path_or_doc)
        try:
            docs = load_yaml_documents(path_or_doc)
        except (OSError, yaml.YAMLError) as exc:
            raise ManifestError(source, [f"cannot read YAML: {exc}"]) from exc
    else:
        source, docs = "<documents>", list(path_or_doc)
    if not docs:
        raise ManifestError(source, ["no YAML documents"])

    problems: list[str] = []
    for i, doc in enumerate(docs):
        where = f"document {i + 1}"
        if not isinstance(doc, Mapping):
            problems.append(f"{where}: not a mapping")
            continue
        doc = dict(doc)
        kind, api = doc.get("kind"), doc.get("apiVersion")
        name = (doc.get("metadata") or {}).get("name") if isinstance(doc.get("metadata"), Mapping) else None
        where = f"{kind or '?'}/{name or '?'} ({where})"
        problems += [f"{where}: {p}" for p in _basic_structure(doc)]
        if not isinstance(kind, str) or not isinstance(api, str):
            continue
        group = api.rpartition("/")[0]
        if group == _RAY_GROUP and kind in _RAY_KINDS:
            problems += [f"{where}: {p}" for p in _check_ray_document(doc, Path(crd_dir), version)]
        else:
            problems += [f"{where}: {p}" for p in _check_other_kind(doc)]
        problems += [f"{where}: {p}" for p in _check_env_secrets(doc)]
    if problems:
        raise ManifestError(source, problems)
    return [dict(d) for d in docs]


def _basic_structure(doc: dict) -> list[str]:
    problems = []
    api, kind, meta = doc.get("apiVersion"), doc.get("kind"), doc.get("metadata")
    if not isinstance(api, str) or not re.fullmatch(r"([a-z0-9.-]+/)?v[0-9]+((alpha|beta)[0-9]+)?", api):
        problems.append(f"apiVersion {api!r} is not <group>/<version> (e.g. ray.io/v1) or v1")
    if not isinstance(kind, str) or not kind[:1].isupper():
        problems.append(f"kind {kind!r} is missing or not a Kind name")
    if not isinstance(meta, Mapping):
        problems.append("metadata is missing")
        return problems
    name = meta.get("name")
    if not isinstance(name, str) or not name:
        problems.append("metadata.name is missing")
    elif kind in _RAY_KINDS:
        limit = _RAY_KINDS[kind]
        if len(name) > limit or not _DNS1035_LABEL.match(name):
            problems.append(f"metadata.name {name!r}: a {kind} name is a DNS-1035 label of at most {limit} characters")
    elif kind == "Service":
        if len(name) > 63 or not _DNS1035_LABEL.match(name):
            problems.append(f"metadata.name {name!r}: a Service name is a DNS-1035 label of at most 63 characters")
    elif len(name) > 253 or not _DNS1123_SUBDOMAIN.match(name):
        problems.append(f"metadata.name {name!r} is not a DNS-1123 subdomain")
    problems += _check_labels_everywhere(doc)
    return problems


def _check_labels_everywhere(doc: Any, path: str = "") -> list[str]:
    """Label keys and values of every ``metadata.labels`` (object and pod templates) and selectors."""
    problems = []
    for p, labels in _find_label_maps(doc, path):
        if not isinstance(labels, Mapping):
            continue
        for key, value in labels.items():
            prefix, _, name = str(key).rpartition("/")
            if (prefix and (len(prefix) > 253 or not _DNS1123_SUBDOMAIN.match(prefix))) or len(name) > 63 or not _LABEL_NAME.match(name):
                problems.append(f"{p}: invalid label key {key!r}")
            if not isinstance(value, str) or len(value) > 63 or not _LABEL_VALUE.match(value):
                problems.append(f"{p}: invalid value {value!r} for label {key!r} (a string of at most 63 characters: letters, digits, -_.)")
    return problems


def _walk(node: Any, match: Callable[[str, Any, str], bool], path: str = "") -> Iterator[tuple[str, Any]]:
    """(path, value) of every mapping entry ``match(key, value, parent_path)`` accepts; the walk
    does not descend into accepted values."""
    if isinstance(node, Mapping):
        for key, value in node.items():
            sub = f"{path}.{key}" if path else str(key)
            if match(key, value, path):
                yield sub, value
            else:
                yield from _walk(value, match, sub)
    elif isinstance(node, list):
        for i, item in enumerate(node):
            yield from _walk(item, match, f"{path}[{i}]")


def _find_label_maps(node: Any, path: str) -> Iterator[tuple[str, Any]]:
    return _walk(node, lambda k, _, parent: k == "matchLabels" or (k == "labels" and parent.endswith("metadata")), path)


def _check_other_kind(doc: dict) -> list[str]:
    kind, spec = doc.get("kind"), doc.get("spec")
    problems = []
    if kind == "Service":
        if doc.get("apiVersion") != "v1":
            problems.append("a Service is apiVersion v1")
        ports = spec.get("ports") if isinstance(spec, Mapping) else None
        if not isinstance(ports, list) or not ports:
            problems.append("spec.ports must list at least one port")
        else:
            for i, port in enumerate(ports):
                if not isinstance(port, Mapping) or not isinstance(port.get("port"), int) or not 0 < port["port"] < 65536:
                    problems.append(f"spec.ports[{i}].port must be an integer 1-65535")
        if isinstance(spec, Mapping) and spec.get("type", "ClusterIP") != "ExternalName" and not spec.get("selector"):
            problems.append("spec.selector is empty: the Service would match no Pod")
    elif kind in ("PodMonitor", "ServiceMonitor"):
        if doc.get("apiVersion") != "monitoring.coreos.com/v1":
            problems.append(f"a {kind} is apiVersion monitoring.coreos.com/v1")
        endpoints_key = "podMetricsEndpoints" if kind == "PodMonitor" else "endpoints"
        if not isinstance(spec, Mapping):
            problems.append("spec is missing")
        else:
            if not isinstance(spec.get("selector"), Mapping):
                problems.append("spec.selector is missing")
            endpoints = spec.get(endpoints_key)
            if not isinstance(endpoints, list) or not endpoints:
                problems.append(f"spec.{endpoints_key} must list at least one endpoint")
            else:
                for i, ep in enumerate(endpoints):
                    if not isinstance(ep, Mapping) or not (ep.get("port") or ep.get("targetPort") or ep.get("portNumber")):
                        problems.append(f"spec.{endpoints_key}[{i}] names no port")
    return problems


def _check_env_secrets(doc: Any, path: str = "") -> list[str]:
    """No ``env`` entry may carry an AWS credential as a literal value."""
    problems = []
    if isinstance(doc, Mapping):
        env = doc.get("env")
        if isinstance(env, list):
            for i, var in enumerate(env):
                if isinstance(var, Mapping) and var.get("name") in _SECRET_ENV_NAMES and var.get("value"):
                    problems.append(
                        f"{path}.env[{i}]: {var['name']} is written inline; take it from a Secret (valueFrom.secretKeyRef)"
                    )
        for key, value in doc.items():
            problems += _check_env_secrets(value, f"{path}.{key}" if path else str(key))
    elif isinstance(doc, list):
        for i, item in enumerate(doc):
            problems += _check_env_secrets(item, f"{path}[{i}]")
    return problems


def _check_inline_secrets_in_text(lines: Sequence[str], where: str) -> list[str]:
    return [
        f"{where}: {m.group(1)} is written inline in {line!r}; use the node's instance role or a credentials file"
        for line in lines
        for m in [_INLINE_SECRET_RE.search(line)]
        if m
    ]


# ---- RayCluster / RayJob --------------------------------------------------------------------


def _check_ray_document(doc: dict, crd_dir: Path, version: str) -> list[str]:
    kind, api = doc["kind"], doc["apiVersion"]
    crd_version = api.rpartition("/")[2]
    try:
        validator = _crd_validator(str(crd_dir.resolve()), kind, crd_version)
    except _UnknownVersion as exc:
        return [str(exc)]
    problems = [msg for err in _sorted_errors(validator, doc) for msg in _describe_schema_error(err)]
    spec = doc.get("spec") if isinstance(doc.get("spec"), Mapping) else {}
    if kind == "RayCluster":
        problems += _check_cluster_spec(spec, "spec", version)
    else:
        problems += _check_job_spec(spec, version)
    problems += _check_images(list(_find_images(doc)), version)
    return problems


def _sorted_errors(validator, doc) -> list:
    return sorted(validator.iter_errors(doc), key=lambda e: [str(p) for p in e.absolute_path])


def _check_cluster_spec(spec: Mapping, path: str, version: str) -> list[str]:
    """KubeRay rules the CRD schema does not carry, and the Ray version pin."""
    problems = []
    ray_version = spec.get("rayVersion")
    if ray_version != version:
        problems.append(f"{path}.rayVersion is {ray_version!r}; this project pins Ray {version}")
    groups: list[tuple[str, Mapping]] = []
    head = spec.get("headGroupSpec")
    if isinstance(head, Mapping):
        groups.append((f"{path}.headGroupSpec", head))
    for i, group in enumerate(spec.get("workerGroupSpecs") or []):
        if isinstance(group, Mapping):
            groups.append((f"{path}.workerGroupSpecs[{i}]", group))
            lo, hi, n = group.get("minReplicas", 0), group.get("maxReplicas"), group.get("replicas")
            if isinstance(lo, int) and isinstance(hi, int):
                if lo > hi:
                    problems.append(f"{path}.workerGroupSpecs[{i}]: minReplicas ({lo}) > maxReplicas ({hi})")
                if isinstance(n, int) and not lo <= n <= hi:
                    problems.append(f"{path}.workerGroupSpecs[{i}]: replicas ({n}) outside [minReplicas, maxReplicas] = [{lo}, {hi}]")
    names = [g.get("groupName") for _, g in groups[1 if isinstance(head, Mapping) else 0 :]]
    for name in sorted({n for n in names if names.count(n) > 1}, key=str):
        problems.append(f"{path}.workerGroupSpecs: groupName {name!r} is used more than once")
    python_tags: set[str] = set()
    for gpath, group in groups:
        pod = _get(group, "template", "spec")
        containers = pod.get("containers") if isinstance(pod, Mapping) else None
        if not containers:
            problems.append(f"{gpath}.template.spec.containers: at least one container (the Ray container first)")
            continue
        start = group.get("rayStartParams") or {}
        if isinstance(start, Mapping) and any(k in start for k in ("num-cpus", "num-gpus", "memory", "resources")) and group.get("resources"):
            problems.append(f"{gpath}: Ray resources set both in rayStartParams and in `resources`; KubeRay accepts one")
        if isinstance(start, Mapping) and "labels" in start:
            problems.append(f"{gpath}: rayStartParams.labels is not accepted; use the group's `labels`")
        for j, c in enumerate(containers):
            if isinstance(c, Mapping):
                problems += _check_container_resources(c, f"{gpath}.template.spec.containers[{j}]")
        image = containers[0].get("image") if isinstance(containers[0], Mapping) else None
        if isinstance(image, str) and image:
            python_tags |= set(_PY_TAG_RE.findall(_split_image(image)[1] or ""))
        else:
            problems.append(f"{gpath}.template.spec.containers[0].image is missing")
    if len(python_tags) > 1:
        problems.append(f"{path}: head and worker images mix Python versions {sorted('py' + t for t in python_tags)}; Ray needs one")
    return problems


def _check_container_resources(container: Mapping, path: str) -> list[str]:
    """Extended resources (nvidia.com/gpu) cannot be overcommitted: requests equal limits."""
    res = container.get("resources")
    if not isinstance(res, Mapping):
        return []
    limits, requests = res.get("limits") or {}, res.get("requests") or {}
    problems = []
    for name in set(limits) | set(requests):
        if "/" in name and not name.startswith(("hugepages-", "requests.")):
            if name in requests and name not in limits:
                problems.append(f"{path}.resources: {name} requested but not in limits (extended resources are set in limits)")
            elif name in requests and str(requests[name]) != str(limits[name]):
                problems.append(f"{path}.resources: {name} requests ({requests[name]}) must equal limits ({limits[name]})")
    return problems


def _check_job_spec(spec: Mapping, version: str) -> list[str]:
    problems = []
    if not str(spec.get("entrypoint") or "").strip():
        problems.append("spec.entrypoint is empty")
    cluster, selector = spec.get("rayClusterSpec"), spec.get("clusterSelector")
    if not cluster and not selector:
        problems.append("spec: set rayClusterSpec (a cluster for this job) or clusterSelector (an existing RayCluster)")
    if cluster and selector:
        problems.append("spec: both rayClusterSpec and clusterSelector are set; KubeRay uses the selector and ignores the spec")
    if selector and not (isinstance(selector, Mapping) and selector.get(_CLUSTER_SELECTOR_KEY)):
        problems.append(f"spec.clusterSelector needs the key {_CLUSTER_SELECTOR_KEY!r} (the RayCluster's name)")
    if isinstance(cluster, Mapping):
        problems += _check_cluster_spec(cluster, "spec.rayClusterSpec", version)
    shutdown = bool(spec.get("shutdownAfterJobFinishes"))
    if (spec.get("ttlSecondsAfterFinished") or 0) > 0 and not shutdown:
        problems.append("spec.ttlSecondsAfterFinished needs shutdownAfterJobFinishes: true")
    if spec.get("suspend") and not shutdown:
        problems.append("spec.suspend needs shutdownAfterJobFinishes: true")
    if spec.get("suspend") and selector:
        problems.append("spec.suspend is not supported with clusterSelector")
    if isinstance(spec.get("backoffLimit"), int) and spec["backoffLimit"] < 0:
        problems.append("spec.backoffLimit must be >= 0")
    if isinstance(spec.get("activeDeadlineSeconds"), int) and spec["activeDeadlineSeconds"] <= 0:
        problems.append("spec.activeDeadlineSeconds must be > 0")
    if spec.get("submissionMode") == "InteractiveMode" and (spec.get("backoffLimit") or 0) > 0:
        problems.append("spec.backoffLimit is not supported in InteractiveMode")
    if "runtimeEnvYAML" in spec:
        problems += _check_runtime_env(spec["runtimeEnvYAML"], version)
    return problems


def _check_runtime_env(text: Any, version: str) -> list[str]:
    where = "spec.runtimeEnvYAML"
    if not isinstance(text, str):
        return [f"{where} must be a string holding YAML (use a `|` block)"]
    if not text.strip():
        return []
    try:
        env = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        return [f"{where} is not valid YAML: {' '.join(str(exc).split())}"]
    if not isinstance(env, dict):
        return [f"{where} must be a YAML mapping of runtime_env fields, got {type(env).__name__}"]
    from ray.runtime_env import RuntimeEnv

    problems = []
    known = set(RuntimeEnv.known_fields) | {"nsight", "rocprof_sys"}
    for key in env:
        if key not in known:
            close = difflib.get_close_matches(str(key), sorted(k for k in known if not k.startswith("_")), n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            problems.append(f"{where}: unknown runtime_env field {key!r}{hint}")
    # the submitter has no local checkout: code must come from a URI
    for key in ("working_dir",):
        if isinstance(env.get(key), str) and "://" not in env[key]:
            problems.append(f"{where}.{key} {env[key]!r} must be a remote URI (https://, s3://, gs://) in a RayJob")
    for i, mod in enumerate(env.get("py_modules") or []):
        if isinstance(mod, str) and "://" not in mod:
            problems.append(f"{where}.py_modules[{i}] {mod!r} must be a remote URI in a RayJob")
    env_vars = env.get("env_vars")
    if isinstance(env_vars, Mapping):
        for name in _SECRET_ENV_NAMES:
            if env_vars.get(name):
                problems.append(f"{where}.env_vars.{name} is written inline; take it from a Secret in the pod spec")
    pip = env.get("pip")
    packages = pip.get("packages") if isinstance(pip, Mapping) else pip
    if isinstance(packages, list):
        problems += _check_ray_pins([str(p) for p in packages], version, f"{where}.pip")
    if not problems:
        remote = {k: v for k, v in env.items() if k not in ("working_dir", "py_modules")}
        try:  # Ray's own field checks (types of pip, env_vars, ...), offline
            RuntimeEnv(**remote)
        except (TypeError, ValueError) as exc:
            problems.append(f"{where}: Ray rejects it: {exc}")
    return problems


# ---- images and version pins ----------------------------------------------------------------


def _find_images(node: Any, path: str = "") -> Iterator[tuple[str, str]]:
    return _walk(node, lambda k, v, _: k == "image" and isinstance(v, str), path)


def _split_image(image: str) -> tuple[str, str | None, str | None]:
    """(repository, tag, digest) of an image reference."""
    ref, _, digest = image.partition("@")
    last = ref.rsplit("/", 1)[-1]
    if ":" in last:
        repo, _, tag = ref.rpartition(":")
        return repo, tag, digest or None
    return ref, None, digest or None


def _check_images(images: Sequence[tuple[str, str]], version: str) -> list[str]:
    problems = []
    pattern = re.compile(rf"^{re.escape(version)}(-[A-Za-z0-9._-]+)?$")
    py_tags = set()
    for where, image in images:
        repo, tag, digest = _split_image(image)
        if tag is None:
            problems.append(f"{where}: image {image!r} has no tag; tag it {repo}:{version}-<python>-<platform>")
        elif not pattern.match(tag):
            problems.append(f"{where}: image {image!r} does not carry the pinned Ray version {version} (tag {version} or {version}-...)")
        else:
            py_tags |= set(_PY_TAG_RE.findall(tag))
    if len(py_tags) > 1:
        problems.append(f"images mix Python versions {sorted('py' + t for t in py_tags)}; Ray needs one on every node")
    return problems


def _check_ray_pins(lines: Sequence[str], version: str, where: str) -> list[str]:
    """``ray==X`` pins and ``ray-X-cp...whl`` wheels must name the project's Ray version."""
    return [
        f"{where}: {line!r} pins ray {m.group(1)}, not the project's {version}"
        for line in lines
        for regex in (_RAY_PIN_RE, _RAY_WHEEL_RE)
        for m in regex.finditer(line)
        if m.group(1) != version
    ]


# ---- CRD schemas ----------------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def _crd_documents(crd_dir: str) -> tuple[tuple[str, str, dict], ...]:
    """(kind, path, CRD document) of every CustomResourceDefinition under crd_dir."""
    root = Path(crd_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"KubeRay CRD directory not found: {crd_dir}")
    found = []
    for path in sorted(root.glob("*.y*ml")):
        for doc in yaml.load_all(path.read_text(), Loader=_Loader):
            if isinstance(doc, dict) and doc.get("kind") == "CustomResourceDefinition":
                names = _get(doc, "spec", "names") or {}
                if _get(doc, "spec", "group") == _RAY_GROUP and names.get("kind"):
                    found.append((names["kind"], str(path), doc))
    return tuple(found)


@functools.lru_cache(maxsize=None)
def _crd_validator(crd_dir: str, kind: str, version: str):
    import jsonschema

    for crd_kind, path, doc in _crd_documents(crd_dir):
        if crd_kind != kind:
            continue
        versions = {v.get("name"): v for v in _get(doc, "spec", "versions") or []}
        if version not in versions:
            raise _UnknownVersion(f"{kind} version {version!r} is not in {path} (has {sorted(versions)})")
        schema = copy.deepcopy(_get(versions[version], "schema", "openAPIV3Schema"))
        if not isinstance(schema, dict):
            raise _UnknownVersion(f"{path}: {kind} {version} has no openAPIV3Schema")
        schema.setdefault("properties", {})["metadata"] = _OBJECT_META
        schema = _strict_schema(schema)
        validator_cls = jsonschema.validators.extend(
            jsonschema.Draft7Validator, {"x-kubernetes-list-type": _list_type_keyword}
        )
        return validator_cls(schema, format_checker=_format_checker())
    raise _UnknownVersion(f"no CRD for {kind} under {crd_dir}")


class _UnknownVersion(LookupError):
    """The CRDs are there but have no schema for this kind/version: a problem of the manifest."""


_INT_OR_STRING = [{"type": "integer"}, {"type": "string"}]


def _strict_schema(node: Any) -> Any:
    """An OpenAPI v3 (structural) schema as a JSON schema that rejects unknown fields.

    Adds ``additionalProperties: false`` where a node lists ``properties`` and neither allows
    extra keys nor preserves unknown fields; ``x-kubernetes-int-or-string`` becomes
    ``anyOf: [integer, string]`` and ``nullable`` allows ``null``.
    """
    if not isinstance(node, dict):
        return node
    out = dict(node)
    if isinstance(out.get("properties"), dict):
        out["properties"] = {k: _strict_schema(v) for k, v in out["properties"].items()}
        if "additionalProperties" not in out and not out.get("x-kubernetes-preserve-unknown-fields"):
            out["additionalProperties"] = False
    if isinstance(out.get("additionalProperties"), dict):
        out["additionalProperties"] = _strict_schema(out["additionalProperties"])
    if isinstance(out.get("items"), dict):
        out["items"] = _strict_schema(out["items"])
    for key in ("anyOf", "allOf", "oneOf"):
        if isinstance(out.get(key), list):
            out[key] = [_strict_schema(s) for s in out[key]]
    if isinstance(out.get("not"), dict):
        out["not"] = _strict_schema(out["not"])
    if out.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out.setdefault("anyOf", _INT_OR_STRING)
    if out.get("nullable") and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    if out.get("x-kubernetes-embedded-resource") and isinstance(out.get("properties"), dict):
        for key in ("apiVersion", "kind"):
            out["properties"].setdefault(key, {"type": "string"})
        out["properties"].setdefault("metadata", _OBJECT_META)
    return out


def _list_type_keyword(validator, list_type, instance, schema):
    """``x-kubernetes-list-type``: ``map`` items are unique by their keys, ``set`` items unique."""
    import jsonschema

    if not isinstance(instance, list):
        return
    if list_type == "map":
        keys = schema.get("x-kubernetes-list-map-keys") or []
        props = _get(schema, "items", "properties") or {}
        seen: dict[tuple, int] = {}
        for i, item in enumerate(instance):
            if not isinstance(item, Mapping):
                continue
            ident = tuple(repr(item.get(k, (props.get(k) or {}).get("default"))) for k in keys)
            if ident in seen:
                shown = ", ".join(f"{k}={item.get(k, (props.get(k) or {}).get('default'))!r}" for k in keys)
                yield jsonschema.ValidationError(f"items {seen[ident]} and {i} have the same {shown}; they must be unique")
            else:
                seen[ident] = i
    elif list_type == "set":
        seen_items: list = []
        for i, item in enumerate(instance):
            if item in seen_items:
                yield jsonschema.ValidationError(f"item {i} ({item!r}) is repeated; this list is a set")
            seen_items.append(item)


def _format_checker():
    import jsonschema

    checker = jsonschema.FormatChecker(formats=())

    @checker.checks("int32")
    def _int32(value):
        return not isinstance(value, int) or -(2**31) <= value < 2**31

    @checker.checks("int64")
    def _int64(value):
        return not isinstance(value, int) or -(2**63) <= value < 2**63

    return checker


def _describe_schema_error(err) -> list[str]:
    path = _format_path(err.absolute_path) or "<top level>"
    schema = err.schema if isinstance(err.schema, dict) else {}
    if err.validator == "additionalProperties" and err.validator_value is False and isinstance(err.instance, Mapping):
        allowed = set(schema.get("properties") or {})
        patterns = [re.compile(p) for p in (schema.get("patternProperties") or {})]
        extras = [k for k in err.instance if k not in allowed and not any(p.search(str(k)) for p in patterns)]
        out = []
        for key in extras or ["?"]:
            close = difflib.get_close_matches(str(key), sorted(allowed), n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            out.append(f"{path}: unknown field {key!r}{hint}")
        return out
    if err.validator == "anyOf" and schema.get("x-kubernetes-int-or-string"):
        return [f"{path}: {err.instance!r} must be an integer or a string"]
    if err.validator == "pattern" and "([KMGTPE]i)" in str(err.validator_value):
        return [f"{path}: {err.instance!r} is not a Kubernetes quantity (e.g. 8, 500m, 32Gi)"]
    return [f"{path}: {err.message}"]


def _format_path(parts) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def _get(node: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(node, Mapping):
            return None
        node = node.get(key)
    return node


# --------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m audiorole_ray.cluster.validate FILE... [--crd-dir DIR]``: exit 1 on problems."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("files", nargs="+", help="cluster launcher YAML (with a `provider`) or Kubernetes manifests")
    p.add_argument("--crd-dir", default=os.environ.get("KUBERAY_CRD_DIR", "../shared/kuberay"), help="KubeRay CRDs")
    args = p.parse_args(argv)
    failed = 0
    for f in args.files:
        try:
            docs = load_yaml_documents(f)
            if len(docs) == 1 and isinstance(docs[0], dict) and "provider" in docs[0]:
                validate_cluster_yaml(f)
            else:
                validate_k8s_manifest(f, args.crd_dir)
            print(f"ok      {f}")
        except (ConfigError, FileNotFoundError, yaml.YAMLError) as exc:
            failed += 1
            print(f"FAILED  {exc}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
