"""GLM-4-Voice tokenizer backend: folder checks, import errors, and the loading and calling code
against a stand-in ``speech_tokenizer`` package with GLM-4-Voice's interface (a WhisperVQ-like
encoder: conv strides 1 and 2, pooling, a VQ codebook, ``quantized_token_ids`` out), saved as a
tiny random model with ``save_pretrained``. GLM-4-Voice's own code is not on PyPI."""
import json
import math
import sys
import textwrap

import numpy as np
import pytest

from audiorole_ray import registry
from audiorole_ray.errors import ConfigError, MissingDependencyError, MissingModelError
from audiorole_ray.tokens.glm4voice import Glm4VoiceTokenizer, check_tokenizer_dir, length_batches

transformers = pytest.importorskip("transformers")
torch = pytest.importorskip("torch")

SR = 16_000

# A stand-in of GLM-4-Voice's speech_tokenizer package: same module names, class names, config
# fields and call signature; a tiny encoder of our own, not GLM-4-Voice's code.
CONFIGURATION = '''
from transformers import WhisperConfig


class WhisperVQConfig(WhisperConfig):
    def __init__(self, pooling_kernel_size=None, quantize_vocab_size=None, quantize_position=16, **kwargs):
        self.pooling_kernel_size = pooling_kernel_size
        self.quantize_vocab_size = quantize_vocab_size
        self.quantize_position = quantize_position
        super().__init__(**kwargs)
'''
MODELING = '''
from dataclasses import dataclass

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers.modeling_outputs import BaseModelOutput

from .configuration_whisper import WhisperVQConfig

CALLS = []


@dataclass
class QuantizedBaseModelOutput(BaseModelOutput):
    quantized_token_ids: torch.LongTensor = None


class WhisperVQEncoder(PreTrainedModel):
    config_class = WhisperVQConfig
    main_input_name = "input_features"

    def __init__(self, config):
        super().__init__(config)
        self.conv1 = nn.Conv1d(config.num_mel_bins, config.d_model, kernel_size=3, padding=1)
        self.conv2 = nn.Conv1d(config.d_model, config.d_model, kernel_size=3, stride=2, padding=1)
        self.pooling_layer = nn.AvgPool1d(config.pooling_kernel_size)
        self.codebook = nn.Embedding(config.quantize_vocab_size, config.d_model)
        self.post_init()

    def _init_weights(self, module):
        if isinstance(module, (nn.Conv1d, nn.Embedding)):
            module.weight.data.normal_(0.0, 1.0)

    def forward(self, input_features, attention_mask=None):
        CALLS.append({"shape": tuple(input_features.shape), "mask": tuple(attention_mask.shape),
                      "device": str(input_features.device), "grad": torch.is_grad_enabled()})
        h = nn.functional.gelu(self.conv2(nn.functional.gelu(self.conv1(input_features))))
        h = self.pooling_layer(h).permute(0, 2, 1)
        d = (h.unsqueeze(2) - self.codebook.weight[None, None]).pow(2).sum(-1)
        return QuantizedBaseModelOutput(last_hidden_state=h, quantized_token_ids=d.argmin(-1))
'''


@pytest.fixture
def glm_repo(tmp_path):
    """A fake GLM-4-Voice checkout; every speech_tokenizer* module is dropped again afterwards."""
    saved = {k: v for k, v in sys.modules.items() if k.split(".")[0] == "speech_tokenizer"}
    for k in saved:
        del sys.modules[k]
    repo = tmp_path / "GLM-4-Voice"
    pkg = repo / "speech_tokenizer"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "configuration_whisper.py").write_text(textwrap.dedent(CONFIGURATION))
    (pkg / "modeling_whisper.py").write_text(textwrap.dedent(MODELING))
    yield repo
    for k in [k for k in sys.modules if k.split(".")[0] == "speech_tokenizer"]:
        del sys.modules[k]
    sys.modules.update(saved)
    if str(repo) in sys.path:
        sys.path.remove(str(repo))


@pytest.fixture
def tiny_model(glm_repo, tmp_path):
    """A tiny random WhisperVQ encoder + Whisper feature extractor saved like glm-4-voice-tokenizer."""
    sys.path.insert(0, str(glm_repo))
    from speech_tokenizer.configuration_whisper import WhisperVQConfig
    from speech_tokenizer.modeling_whisper import WhisperVQEncoder

    torch.manual_seed(0)
    config = WhisperVQConfig(pooling_kernel_size=4, quantize_vocab_size=64, d_model=8, num_mel_bins=80,
                             encoder_layers=1, decoder_layers=1, encoder_attention_heads=2, decoder_attention_heads=2)
    folder = tmp_path / "glm-4-voice-tokenizer"
    WhisperVQEncoder(config).save_pretrained(folder)
    transformers.WhisperFeatureExtractor(feature_size=80).save_pretrained(folder)
    sys.path.remove(str(glm_repo))
    for k in [k for k in sys.modules if k.split(".")[0] == "speech_tokenizer"]:
        del sys.modules[k]  # the backend must import it from the repo it is given
    return folder


def test_loads_and_tokenizes_at_12_5_hz(tiny_model, glm_repo, speech16k):
    tok = registry.create("tokenizer", "glm4voice", model=str(tiny_model), repo=str(glm_repo), batch_size=3)
    assert tok.vocab_size == 64 and tok.frame_rate == 12.5  # from the folder, before loading
    long = np.concatenate(speech16k)  # 53 s: a 30 s piece and a rest
    clips = [long[:1], long[:1281], speech16k[0], speech16k[1], speech16k[2], long[: 30 * SR], long]
    tokens = tok.tokenize(clips)
    for clip, t in zip(clips, tokens):
        # GLM-4-Voice's count: one per started 1280 samples, per 30 s piece
        pieces = [min(30 * SR, clip.size - s) for s in range(0, clip.size, 30 * SR)]
        assert len(t) == sum(math.ceil(p / 1280) for p in pieces)
        assert abs(len(t) - clip.size / SR * 12.5) < 2
        assert all(0 <= i < 64 for i in t)
    import speech_tokenizer.modeling_whisper as fake

    assert sys.modules["speech_tokenizer"].__file__.startswith(str(glm_repo))
    # 7 clips -> 8 pieces of 30 s or less (the 53 s clip gives 2), in batches of 3, longest
    # first, on the CPU, without gradients
    assert long.size // (30 * SR) == 1
    assert len(fake.CALLS) == 3 and all(c["device"] == "cpu" and not c["grad"] for c in fake.CALLS)
    assert [c["shape"][0] for c in fake.CALLS] == [3, 3, 2]
    assert fake.CALLS[0]["shape"][2] == 3000  # 30 s pieces: 3000 mel frames
    # the last batch (1 and 1281 samples) is padded to its longest piece's two tokens only
    assert fake.CALLS[-1]["shape"][2] == 16


def test_batching_does_not_change_a_clips_tokens(tiny_model, glm_repo, speech16k):
    tok = Glm4VoiceTokenizer(model=str(tiny_model), repo=str(glm_repo), batch_size=8)
    clips = speech16k[:5]
    together = tok.tokenize(clips)
    longest = int(np.argmax([c.size for c in clips]))
    # the longest clip of a batch is not padded at all: alone or batched, the same tokens
    assert tok.tokenize([clips[longest]])[0] == together[longest]
    # and the model called directly, as GLM-4-Voice's extract_speech_token does, agrees with it
    fe = transformers.WhisperFeatureExtractor.from_pretrained(str(tiny_model))
    feats = fe([clips[longest]], sampling_rate=SR, return_attention_mask=True, return_tensors="pt",
               padding="longest", pad_to_multiple_of=1280)
    import speech_tokenizer.modeling_whisper as fake

    model = fake.WhisperVQEncoder.from_pretrained(str(tiny_model)).eval()
    with torch.no_grad():
        ids = model(**feats).quantized_token_ids[0]
    mask = feats["attention_mask"][0, ::2][::4].bool()
    assert ids[mask].tolist() == together[longest]
    # every clip: same count alone as in the batch
    assert [len(t) for t in together] == [len(tok.tokenize([c])[0]) for c in clips]


def test_describe_and_settings(tiny_model, glm_repo):
    tok = Glm4VoiceTokenizer(model=str(tiny_model), repo=str(glm_repo))
    d = tok.describe()
    assert d["name"] == "glm4voice" and d["vocab_size"] == 64 and d["frame_rate"] == 12.5
    assert d["model"] == str(tiny_model) and d["codebook_hash"] is None
    assert tok.settings()["dtype"] == "float32"


def test_folder_checks(tmp_path):
    with pytest.raises(MissingModelError, match="does not exist"):
        check_tokenizer_dir(tmp_path / "none")
    with pytest.raises(MissingModelError) as err:
        check_tokenizer_dir(tmp_path)
    msg = str(err.value)
    assert str(tmp_path / "config.json") in msg and str(tmp_path / "preprocessor_config.json") in msg
    assert "model.safetensors" in msg and "TOKENS.md" in msg
    (tmp_path / "config.json").write_text(json.dumps({"d_model": 8}))
    (tmp_path / "preprocessor_config.json").write_text("{}")
    (tmp_path / "model.safetensors").write_bytes(b"x")
    with pytest.raises(MissingModelError, match="quantize_vocab_size"):
        check_tokenizer_dir(tmp_path)
    with pytest.raises(MissingModelError, match="glm-4-voice-tokenizer folder"):
        registry.create("tokenizer", "glm4voice")
    with pytest.raises(ConfigError):
        Glm4VoiceTokenizer(model=str(tmp_path), batch_size=0)
    with pytest.raises(ConfigError):
        Glm4VoiceTokenizer(model=str(tmp_path), dtype="int8")


def test_code_not_found(tiny_model, tmp_path, glm_repo):
    with pytest.raises(MissingModelError, match="not a GLM-4-Voice checkout"):
        Glm4VoiceTokenizer(model=str(tiny_model), repo=str(tmp_path / "empty")).load()
    sys.modules["speech_tokenizer"] = None  # not importable, and no repo given
    with pytest.raises(MissingModelError, match="--glm4voice-repo") as err:
        Glm4VoiceTokenizer(model=str(tiny_model)).load()
    assert "THUDM/GLM-4-Voice" in str(err.value)


def test_missing_dependency_of_glm_code_is_named(tiny_model, glm_repo):
    (glm_repo / "speech_tokenizer" / "modeling_whisper.py").write_text("import torchaudio_not_here\n")
    with pytest.raises(MissingDependencyError, match="torchaudio_not_here") as err:
        Glm4VoiceTokenizer(model=str(tiny_model), repo=str(glm_repo)).load()
    assert "requirements.txt" in str(err.value)


def test_length_batches():
    assert length_batches([5, 30, 1, 30, 7], 2) == [[1, 3], [4, 0], [2]]
    assert length_batches([], 4) == []
