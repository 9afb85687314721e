"""KubeRay CRD schemas as strict JSON schemas: the CRDs' ``openAPIV3Schema`` made to reject
unknown fields (the API server would prune them silently) and to enforce the Kubernetes
extensions ``x-kubernetes-int-or-string`` and ``x-kubernetes-list-type``."""
from __future__ import annotations

import copy
import functools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from tools.deploy_checks.common import YAML_LOADER

RAY_GROUP = "ray.io"

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


@functools.lru_cache(maxsize=None)
def _crd_documents(crd_dir: str) -> tuple[tuple[str, str, dict], ...]:
    """(kind, path, CRD document) of every CustomResourceDefinition under crd_dir."""
    root = Path(crd_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"KubeRay CRD directory not found: {crd_dir}")
    found = []
    for path in sorted(root.glob("*.y*ml")):
        for doc in yaml.load_all(path.read_text(), Loader=YAML_LOADER):
            if isinstance(doc, dict) and doc.get("kind") == "CustomResourceDefinition":
                names = lookup(doc, "spec", "names") or {}
                if lookup(doc, "spec", "group") == RAY_GROUP and names.get("kind"):
                    found.append((names["kind"], str(path), doc))
    return tuple(found)


@functools.lru_cache(maxsize=None)
def crd_validator(crd_dir: str, kind: str, version: str):
    """A strict validator for ``kind`` at CRD ``version`` from the CRDs under ``crd_dir`` (built once).

    FileNotFoundError when ``crd_dir`` is missing; :class:`UnknownVersion` when it has no such schema.
    """
    import jsonschema

    for crd_kind, path, doc in _crd_documents(crd_dir):
        if crd_kind != kind:
            continue
        versions = {v.get("name"): v for v in lookup(doc, "spec", "versions") or []}
        if version not in versions:
            raise UnknownVersion(f"{kind} version {version!r} is not in {path} (has {sorted(versions)})")
        schema = copy.deepcopy(lookup(versions[version], "schema", "openAPIV3Schema"))
        if not isinstance(schema, dict):
            raise UnknownVersion(f"{path}: {kind} {version} has no openAPIV3Schema")
        schema.setdefault("properties", {})["metadata"] = _OBJECT_META
        schema = _strict_schema(schema)
        validator_cls = jsonschema.validators.extend(
            jsonschema.Draft7Validator, {"x-kubernetes-list-type": _list_type_keyword}
        )
        return validator_cls(schema, format_checker=_format_checker())
    raise UnknownVersion(f"no CRD for {kind} under {crd_dir}")


class UnknownVersion(LookupError):
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
        props = lookup(schema, "items", "properties") or {}
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


def lookup(node: Any, *keys: str) -> Any:
    """``node[k1][k2]...``, or None where a level is missing or not a mapping."""
    for key in keys:
        if not isinstance(node, Mapping):
            return None
        node = node.get(key)
    return node

