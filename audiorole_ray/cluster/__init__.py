"""Cluster deployment: offline validation of the Ray cluster-launcher YAML and KubeRay manifests.

See :mod:`audiorole_ray.cluster.validate` (also a command:
``python -m audiorole_ray.cluster.validate cluster.yaml k8s/*.yaml``).
"""
from __future__ import annotations

__all__ = [
    "ClusterConfigError",
    "ConfigError",
    "ManifestError",
    "pinned_ray_version",
    "validate_cluster_yaml",
    "validate_k8s_manifest",
]


def __getattr__(name: str):
    # imported lazily so that `python -m audiorole_ray.cluster.validate` runs the module once
    if name in __all__:
        from audiorole_ray.cluster import validate

        return getattr(validate, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
