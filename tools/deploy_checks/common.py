"""What both deployment checks share: errors, YAML loading, the pinned Ray version, image tags,
``ray==`` pins, inline AWS credentials and the wording of JSON-schema errors."""
from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the C loader reads the 2 MB of CRDs in ~1 s

# AWS credentials must come from a Secret or an instance role, never a literal value.
SECRET_ENV_NAMES = ("AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "AWS_SESSION_TOKEN")
_INLINE_SECRET_RE = re.compile(r"\b(AWS_SECRET_ACCESS_KEY|AWS_ACCESS_KEY_ID|AWS_SESSION_TOKEN)\s*=\s*(?![\"']?\$)\S")
_RAY_PIN_RE = re.compile(r"(?<![\w.-])ray(?:\[[^\]]*\])?\s*==\s*([0-9A-Za-z.+-]+)")
_RAY_WHEEL_RE = re.compile(r"(?<![\w.-])ray-([0-9][0-9A-Za-z.+]*)-cp\d+")  # ray-2.60.0-cp311-...whl
PY_TAG_RE = re.compile(r"(?:^|-)py(\d{2,3})(?:-|$)")


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
    return [doc for doc in yaml.load_all(text, Loader=YAML_LOADER) if doc is not None]


# ---- images and version pins ----------------------------------------------------------------


def split_image(image: str) -> tuple[str, str | None, str | None]:
    """(repository, tag, digest) of an image reference."""
    ref, _, digest = image.partition("@")
    last = ref.rsplit("/", 1)[-1]
    if ":" in last:
        repo, _, tag = ref.rpartition(":")
        return repo, tag, digest or None
    return ref, None, digest or None


def check_images(images: Sequence[tuple[str, str]], version: str) -> list[str]:
    """Every ``(where, image)`` is tagged with the pinned Ray version, all with one Python version."""
    problems = []
    pattern = re.compile(rf"^{re.escape(version)}(-[A-Za-z0-9._-]+)?$")
    py_tags = set()
    for where, image in images:
        repo, tag, digest = split_image(image)
        if tag is None:
            problems.append(f"{where}: image {image!r} has no tag; tag it {repo}:{version}-<python>-<platform>")
        elif not pattern.match(tag):
            problems.append(f"{where}: image {image!r} does not carry the pinned Ray version {version} (tag {version} or {version}-...)")
        else:
            py_tags |= set(PY_TAG_RE.findall(tag))
    if len(py_tags) > 1:
        problems.append(f"images mix Python versions {sorted('py' + t for t in py_tags)}; Ray needs one on every node")
    return problems


def check_ray_pins(lines: Sequence[str], version: str, where: str) -> list[str]:
    """``ray==X`` pins and ``ray-X-cp...whl`` wheels must name the project's Ray version."""
    return [
        f"{where}: {line!r} pins ray {m.group(1)}, not the project's {version}"
        for line in lines
        for regex in (_RAY_PIN_RE, _RAY_WHEEL_RE)
        for m in regex.finditer(line)
        if m.group(1) != version
    ]


# ---- inline credentials ---------------------------------------------------------------------


def check_env_secrets(doc: Any, path: str = "") -> list[str]:
    """No ``env`` entry may carry an AWS credential as a literal value."""
    problems = []
    if isinstance(doc, Mapping):
        env = doc.get("env")
        if isinstance(env, list):
            for i, var in enumerate(env):
                if isinstance(var, Mapping) and var.get("name") in SECRET_ENV_NAMES and var.get("value"):
                    problems.append(
                        f"{path}.env[{i}]: {var['name']} is written inline; take it from a Secret (valueFrom.secretKeyRef)"
                    )
        for key, value in doc.items():
            problems += check_env_secrets(value, f"{path}.{key}" if path else str(key))
    elif isinstance(doc, list):
        for i, item in enumerate(doc):
            problems += check_env_secrets(item, f"{path}[{i}]")
    return problems


def check_inline_secrets_in_text(lines: Sequence[str], where: str) -> list[str]:
    """No shell command or option line sets an AWS credential to a literal value."""
    return [
        f"{where}: {m.group(1)} is written inline in {line!r}; use the node's instance role or a credentials file"
        for line in lines
        for m in [_INLINE_SECRET_RE.search(line)]
        if m
    ]


# ---- JSON-schema errors (Ray's cluster schema and the KubeRay CRDs) --------------------------


def describe_schema_error(err) -> list[str]:
    """One line per problem of a ``jsonschema.ValidationError``, with the closest valid name of a
    misspelt field."""
    path = format_path(err.absolute_path) or "<top level>"
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


def format_path(parts) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out
