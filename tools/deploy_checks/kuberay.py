"""Checks of Kubernetes manifests for KubeRay.

Each ``RayCluster``/``RayJob`` document is validated against the ``openAPIV3Schema`` of the
KubeRay CRD, made strict (:mod:`tools.deploy_checks.crd_schema`): an unknown field is an error.
Then KubeRay's own rules that the schema cannot express, and each RayJob's ``runtimeEnvYAML``.
``Service``, ``PodMonitor``, ``ServiceMonitor`` and other kinds get a basic structure check.
"""
from __future__ import annotations

import difflib
import os
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Iterator

import yaml

from tools.deploy_checks.common import (
    PY_TAG_RE,
    SECRET_ENV_NAMES,
    YAML_LOADER,
    ManifestError,
    check_env_secrets,
    check_images,
    check_ray_pins,
    describe_schema_error,
    load_yaml_documents,
    pinned_ray_version,
    split_image,
)
from tools.deploy_checks.crd_schema import RAY_GROUP, UnknownVersion, crd_validator, lookup

__all__ = ["validate_k8s_manifest"]

# Kinds validated against a KubeRay CRD, and the longest names KubeRay v1.7 accepts for them (it
# derives Pod and Service names from them).
_RAY_KINDS = {"RayCluster": 53, "RayJob": 47}
# The label KubeRay reads in a RayJob's clusterSelector.
_CLUSTER_SELECTOR_KEY = "ray.io/cluster"

_DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_NAME = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


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
        if group == RAY_GROUP and kind in _RAY_KINDS:
            problems += [f"{where}: {p}" for p in _check_ray_document(doc, Path(crd_dir), version)]
        else:
            problems += [f"{where}: {p}" for p in _check_other_kind(doc)]
        problems += [f"{where}: {p}" for p in check_env_secrets(doc)]
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


def _find_images(node: Any, path: str = "") -> Iterator[tuple[str, str]]:
    return _walk(node, lambda k, v, _: k == "image" and isinstance(v, str), path)


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


# ---- RayCluster / RayJob --------------------------------------------------------------------


def _check_ray_document(doc: dict, crd_dir: Path, version: str) -> list[str]:
    kind, api = doc["kind"], doc["apiVersion"]
    crd_version = api.rpartition("/")[2]
    try:
        validator = crd_validator(str(crd_dir.resolve()), kind, crd_version)
    except UnknownVersion as exc:
        return [str(exc)]
    problems = [msg for err in _sorted_errors(validator, doc) for msg in describe_schema_error(err)]
    spec = doc.get("spec") if isinstance(doc.get("spec"), Mapping) else {}
    if kind == "RayCluster":
        problems += _check_cluster_spec(spec, "spec", version)
    else:
        problems += _check_job_spec(spec, version)
    problems += check_images(list(_find_images(doc)), version)
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
        pod = lookup(group, "template", "spec")
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
            python_tags |= set(PY_TAG_RE.findall(split_image(image)[1] or ""))
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
        env = yaml.load(text, Loader=YAML_LOADER)
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
        for name in SECRET_ENV_NAMES:
            if env_vars.get(name):
                problems.append(f"{where}.env_vars.{name} is written inline; take it from a Secret in the pod spec")
    pip = env.get("pip")
    packages = pip.get("packages") if isinstance(pip, Mapping) else pip
    if isinstance(packages, list):
        problems += check_ray_pins([str(p) for p in packages], version, f"{where}.pip")
    if not problems:
        remote = {k: v for k, v in env.items() if k not in ("working_dir", "py_modules")}
        try:  # Ray's own field checks (types of pip, env_vars, ...), offline
            RuntimeEnv(**remote)
        except (TypeError, ValueError) as exc:
            problems.append(f"{where}: Ray rejects it: {exc}")
    return problems
