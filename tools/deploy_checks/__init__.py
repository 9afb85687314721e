"""Offline checks of the deployment files (``cluster.yaml``, ``k8s/*.yaml``), run by the tests
and by ``make check-manifests``. CI tooling: it lives outside the ``audiorole_ray`` package so
that workers never ship it (nor its use of Ray's private autoscaler API).

Two entry points:

- :func:`validate_cluster_yaml` (:mod:`.cluster_yaml`) checks a Ray cluster-launcher YAML with
  Ray's own config preparation and schema check, plus AWS ``node_config`` against botocore's
  EC2 model.
- :func:`validate_k8s_manifest` (:mod:`.kuberay`) checks KubeRay manifests against the KubeRay
  CRDs' schemas made strict (:mod:`.crd_schema`), KubeRay's own rules and RayJob runtime envs.

Both check that ``rayVersion`` and every image tag carry the pinned Ray version
(``ray.__version__``), and that no AWS credential is written inline (:mod:`.common`). Problems
are collected and raised together as one :class:`ConfigError` (``ClusterConfigError`` /
``ManifestError``), one line per problem, with a path to the offending field and, for a misspelt
field, the closest valid name.

Command line (from the repository root)::

    python -m tools.deploy_checks cluster.yaml k8s/*.yaml --crd-dir ../shared/kuberay
"""
from tools.deploy_checks.cluster_yaml import validate_cluster_yaml
from tools.deploy_checks.common import (
    ClusterConfigError,
    ConfigError,
    ManifestError,
    load_yaml_documents,
    pinned_ray_version,
)
from tools.deploy_checks.kuberay import validate_k8s_manifest

__all__ = [
    "ClusterConfigError",
    "ConfigError",
    "ManifestError",
    "load_yaml_documents",
    "pinned_ray_version",
    "validate_cluster_yaml",
    "validate_k8s_manifest",
]
