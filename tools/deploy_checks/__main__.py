"""Offline checks for the cluster deployment files, run by the default test suite.

``python -m tools.deploy_checks cluster.yaml k8s/*.yaml --crd-dir ../shared/kuberay``: a file
with a ``provider`` is a cluster-launcher YAML, any other a Kubernetes manifest; exit 1 on problems.
"""
from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

import yaml

from tools.deploy_checks import ConfigError, load_yaml_documents, validate_cluster_yaml, validate_k8s_manifest


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m tools.deploy_checks FILE... [--crd-dir DIR]``: exit 1 on problems."""
    p = argparse.ArgumentParser(prog="python -m tools.deploy_checks", description=__doc__.split("\n\n")[0])
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
