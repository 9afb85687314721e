"""MooER backend: duration batching, model-folder checks, import errors, and the call sequence
against a fake ``mooer`` package (MooER itself is not on PyPI and cannot run here)."""
import json
import random
import sys
import types

import numpy as np
import pytest
import torch

from audiorole_ray import registry
from audiorole_ray.asr.mooer import MooerBackend, check_model_dir, duration_batches, resolve_paths
from audiorole_ray.errors import MissingModelError

SR = 16_000


# ---------------------------------------------------------------------------- duration batching

def _padded(batch, durations):
    return len(batch) * max(durations[i] for i in batch)


def test_duration_batches_example():
    d = [2.0, 30.0, 1.0, 29.0, 5.0, 3.0]
    # longest first: 30 | 29 (2 x 30 s padded > 50) | 5, 3, 2 (size cap 3) | 1
    assert duration_batches(d, max_batch_s=50, max_batch_size=3) == [[1], [3], [4, 5, 0], [2]]
    assert duration_batches(d, max_batch_s=60, max_batch_size=4) == [[1, 3], [4, 5, 0, 2]]
    # one clip over the cap still gets a batch, alone
    assert duration_batches([100.0, 1.0], max_batch_s=10, max_batch_size=8) == [[0], [1]]
    assert duration_batches([], 10, 2) == []
    with pytest.raises(ValueError):
        duration_batches([1.0], 0, 2)
    with pytest.raises(ValueError):
        duration_batches([1.0], 10, 0)


@pytest.mark.parametrize("seed", range(20))
def test_duration_batches_properties(seed):
    rng = random.Random(seed)
    n = rng.randint(1, 200)
    d = [rng.choice([rng.uniform(0.1, 3), rng.uniform(1, 30), rng.uniform(30, 90)]) for _ in range(n)]
    cap, size = rng.uniform(20, 120), rng.randint(1, 16)
    batches = duration_batches(d, cap, size)
    assert sorted(i for b in batches for i in b) == list(range(n))  # every clip once
    for b in batches:
        assert len(b) <= size
        assert len(b) == 1 or _padded(b, d) <= cap + 1e-9
    # sorting by length wastes less than batching in arrival order with the same caps
    naive, cur = [], []
    for i in range(n):
        if cur and (len(cur) + 1 > size or (len(cur) + 1) * max(d[j] for j in cur + [i]) > cap):
            naive.append(cur)
            cur = []
        cur.append(i)
    naive.append(cur)
    assert sum(_padded(b, d) for b in batches) <= sum(_padded(b, d) for b in naive) + 1e-9


# ---------------------------------------------------------------------------- model folder

def make_model_dir(root, variant="asr", hidden_size=1536):
    """A folder in MooER's pretrained_models layout, with placeholder files (never loaded here)."""
    enc = root / "paraformer_encoder"
    enc.mkdir(parents=True)
    (enc / "paraformer-encoder.pth").write_bytes(b"x")
    (enc / "am.mvn").write_text("<Nnet>\n")
    llm = root / "Qwen2-7B-Instruct"
    llm.mkdir()
    (llm / "config.json").write_text(f'{{"hidden_size": {hidden_size}}}')
    for name in ("vocab.json", "merges.txt", "model.safetensors.index.json"):
        (llm / name).write_text("{}")
    lora = root / variant / "lora_weights"
    lora.mkdir(parents=True)
    (lora / "adapter_config.json").write_text("{}")
    (lora / "adapter_model.bin").write_bytes(b"x")
    (root / variant / "adapter_project.pt").write_bytes(b"x")
    return root


def test_complete_folder_passes(tmp_path):
    p = check_model_dir(make_model_dir(tmp_path))
    assert p.adapter_path == tmp_path / "asr" / "adapter_project.pt"
    assert p.lora_dir == tmp_path / "asr" / "lora_weights"
    # overrides: relative to model_dir, or absolute
    q = resolve_paths(tmp_path, overrides={"llm_path": "llm", "lora_dir": "/abs/lora"})
    assert q.llm_path == tmp_path / "llm" and str(q.lora_dir) == "/abs/lora"


def test_missing_folder_names_the_path(tmp_path):
    gone = tmp_path / "nope"
    with pytest.raises(MissingModelError, match="does not exist") as err:
        registry.create("asr", "mooer", model=str(gone)).load()
    assert str(gone) in str(err.value)
    with pytest.raises(MissingModelError, match="no embedded weights"):
        registry.create("asr", "mooer").load()
    with pytest.raises(MissingModelError, match="needs a local model folder"):
        MooerBackend().load()


def test_empty_folder_lists_every_missing_file(tmp_path):
    with pytest.raises(MissingModelError) as err:
        check_model_dir(tmp_path)
    msg = str(err.value)
    for part in ("paraformer_encoder/paraformer-encoder.pth", "paraformer_encoder/am.mvn", "asr/adapter_project.pt",
                 "Qwen2-7B-Instruct/config.json", "Qwen2-7B-Instruct/vocab.json", "Qwen2-7B-Instruct/merges.txt",
                 "asr/lora_weights/adapter_config.json"):
        assert str(tmp_path / part) in msg, part
    # weights: any one of the usual file names
    assert f"{tmp_path / 'Qwen2-7B-Instruct'}/{{model.safetensors," in msg
    assert f"{tmp_path / 'asr' / 'lora_weights'}/{{adapter_model.safetensors,adapter_model.bin}}" in msg


def test_one_missing_file_is_named(tmp_path):
    make_model_dir(tmp_path)
    (tmp_path / "asr" / "adapter_project.pt").unlink()
    with pytest.raises(MissingModelError) as err:
        check_model_dir(tmp_path)
    msg = str(err.value)
    assert str(tmp_path / "asr" / "adapter_project.pt") in msg
    assert "am.mvn" not in msg and "config.json" not in msg
    # the multitask checkpoint is looked for in its own sub-folder
    with pytest.raises(MissingModelError, match="asr_ast_mtl"):
        check_model_dir(tmp_path, variant="asr_ast_mtl")


def test_bad_options_fail_at_construction(tmp_path):
    with pytest.raises(ValueError, match="not an ASR checkpoint"):
        MooerBackend(model=str(tmp_path), variant="ast")
    with pytest.raises(ValueError):
        MooerBackend(model=str(tmp_path), max_batch_size=0)
    assert "mooer" in registry.names("asr")
    assert MooerBackend(model=str(tmp_path)).model_dir == str(tmp_path)


# ---------------------------------------------------------------------------- imports

@pytest.fixture
def mooer_modules():
    """Install entries in sys.modules for one test; restore every mooer* entry afterwards."""
    def is_ours(k):
        return k in ("mooer", "peft") or k.startswith("mooer.")

    saved = {k: v for k, v in sys.modules.items() if is_ours(k)}
    for k in saved:  # a real MooER imported earlier must not answer for the fake
        del sys.modules[k]

    def install(mapping):
        sys.modules.update(mapping)

    yield install
    for k in [k for k in sys.modules if is_ours(k)]:
        del sys.modules[k]
    sys.modules.update(saved)


def test_folder_is_checked_before_the_package(tmp_path, mooer_modules):
    mooer_modules({"mooer": None})  # MooER not installed
    with pytest.raises(MissingModelError) as err:
        registry.create("asr", "mooer", model=str(tmp_path)).load()
    assert str(tmp_path) in str(err.value) and "PYTHONPATH" not in str(err.value)


def test_missing_package_says_what_to_install(tmp_path, mooer_modules):
    mooer_modules({"mooer": None})
    with pytest.raises(MissingModelError, match="PYTHONPATH") as err:
        registry.create("asr", "mooer", model=str(make_model_dir(tmp_path))).load()
    assert "MooreThreads/MooER" in str(err.value) and "MOOER.md" in str(err.value)


def test_missing_dependency_of_mooer_is_named(tmp_path, mooer_modules, monkeypatch):
    src = tmp_path / "src"
    (src / "mooer" / "configs").mkdir(parents=True)
    (src / "mooer" / "models").mkdir()
    (src / "mooer" / "__init__.py").write_text("")
    (src / "mooer" / "configs" / "asr_config.py").write_text("")
    (src / "mooer" / "models" / "mooer_model.py").write_text("import peft\n")
    monkeypatch.syspath_prepend(str(src))
    mooer_modules({"peft": None})  # peft not installed
    with pytest.raises(MissingModelError, match="imports peft") as err:
        registry.create("asr", "mooer", model=str(make_model_dir(tmp_path / "model"))).load()
    assert "requirements.txt" in str(err.value)


# ---------------------------------------------------------------------------- glue, with a fake MooER

class FakeTokenizer:
    pad_token_id = 0

    def encode(self, text):
        return [ord(c) % 100 + 1 for c in text[:8]]

    def batch_decode(self, sequences, add_special_tokens=False, skip_special_tokens=False):
        assert skip_special_tokens
        # the multitask model answers "transcript\ntranslation"
        return [f"  clip {int(row[0])}\nthe translation" for row in sequences.tolist()]


class FakeModel:
    def __init__(self, log):
        self.log = log

    def to(self, device):
        self.log["to"] = device
        return self

    def eval(self):
        self.log["eval"] = True
        return self

    def generate(self, input_ids=None, attention_mask=None, position_ids=None, past_key_values=None,
                 inputs_embeds=None, labels=None, use_cache=None, output_attentions=None,
                 output_hidden_states=None, return_dict=None, compute_llm=True, **kwargs):
        mel = kwargs["audio_mel"]
        assert not torch.is_grad_enabled()
        assert input_ids.shape[0] == mel.shape[0] == attention_mask.shape[0]
        self.log["generate"].append({"batch": mel.shape[0], "frames": mel.shape[1],
                                     "reallen": kwargs["audio_mel_reallen"].tolist(),
                                     "num_beams": kwargs.get("num_beams"), "max_new_tokens": kwargs.get("max_new_tokens")})
        # "recognise" each clip by the constant value it was filled with (features = value * 1000)
        return torch.round(mel[:, :1, 0]).long()


def fake_mooer(log):
    """Modules with the names and signatures of the MooER entry points the backend calls."""
    asr_config = types.ModuleType("mooer.configs.asr_config")

    class ModelConfig:
        def __init__(self):
            self.llm_name = "qwen2_7b_chat"
            self.llm_path = "pretrained_models/Qwen2-7B-Instruct"
            self.encoder_path = "pretrained_models/paraformer_encoder/paraformer-encoder.pth"
            self.adapter_path = "pretrained_models/asr_ast_mtl/adapter_project.pt"
            self.lora_dir = "pretrained_models/asr_ast_mtl/lora_weights"
            self.cmvn_path = "pretrained_models/paraformer_encoder/am.mvn"
            self.prompt_key = "ast"
            self.llm_dim = 3584
            self.load_dtype = "bfloat16"
            self.encoder_name = "paraformer"
            self.adapter_downsample_rate = 2
            self.is_inference = True
            self.prompt_template_key = "qwen"

        def __getitem__(self, key):
            return getattr(self, key)

        def get(self, name, default=None):
            return getattr(self, name, default)

    asr_config.ModelConfig = ModelConfig

    mooer_model = types.ModuleType("mooer.models.mooer_model")

    def init_model(model_config, train_config=None, peft_config=None):
        log["init"].append(model_config)
        return FakeModel(log), FakeTokenizer()

    mooer_model.init_model = init_model

    sp = types.ModuleType("mooer.datasets.speech_processor")

    def load_cmvn(cmvn_file):
        log["cmvn"] = cmvn_file
        return torch.zeros(2, 560)

    def gen_llm_inputs(data, tokenizer, ignore_index=-100, input_type="raw", normalize=True, mel_size=128,
                       prompt_template=None, is_inference=False, autoprocesser=None, is_paraformer=False,
                       cmvn=None, prompt_org="Transcribe speech to text. ", adapter_downsample_rate=5,
                       instruction=False):
        assert is_inference and is_paraformer and cmvn is not None
        log["prompt"].add((prompt_template, prompt_org, adapter_downsample_rate))
        for sample in data:
            wav = sample["wav"][0]
            assert sample["wav"].dim() == 2 and wav.dtype == torch.float32
            frames = len(wav) // 960  # 60 ms per frame after LFR
            audio_length = frames // adapter_downsample_rate
            prompt_ids = torch.tensor(tokenizer.encode(prompt_template.format(prompt_org)))
            ids = torch.cat((torch.full((audio_length,), -1), prompt_ids))
            yield {"input_ids": ids, "attention_mask": ids.ge(-1),
                   "audio_mel": torch.full((frames, 4), float(wav[0]) * 1000), "audio_length": audio_length,
                   "key": sample["key"], "target": sample["txt"], "prompt_length": len(prompt_ids)}

    def process_batch(samples, tokenizer):
        lens = [s["audio_mel"].shape[0] for s in samples]
        top = max(lens)
        mel = torch.stack([torch.cat((s["audio_mel"], torch.zeros(top - s["audio_mel"].shape[0], 4))) for s in samples])
        width = max(len(s["input_ids"]) for s in samples)
        ids = torch.stack([torch.cat((torch.full((width - len(s["input_ids"]),), tokenizer.pad_token_id), s["input_ids"]))
                           for s in samples])
        return {"input_ids": ids, "attention_mask": ids.ne(tokenizer.pad_token_id), "audio_mel": mel,
                "audio_mel_post_mask": torch.ones(len(samples), top), "modality_mask": ids.eq(-1),
                "audio_mel_reallen": torch.tensor(lens, dtype=torch.int32)}

    sp.load_cmvn, sp.gen_llm_inputs, sp.process_batch = load_cmvn, gen_llm_inputs, process_batch

    data_utils = types.ModuleType("mooer.utils.data_utils")
    data_utils.PROMPT_TEMPLATE_DICT = {"qwen": "<|im_start|>user\n{}<|im_end|>\n<|im_start|>assistant\n"}
    data_utils.PROMPT_DICT = {"asr": "Transcribe speech to text. ", "ast": "Translate speech to english text. "}

    mods = {"mooer": types.ModuleType("mooer")}
    for pkg in ("configs", "models", "datasets", "utils"):
        mods[f"mooer.{pkg}"] = types.ModuleType(f"mooer.{pkg}")
    for m in (asr_config, mooer_model, sp, data_utils):
        mods[m.__name__] = m
    return mods


@pytest.fixture
def fake(mooer_modules):
    log = {"init": [], "generate": [], "prompt": set()}
    mooer_modules(fake_mooer(log))
    return log


def clips_of(seconds):
    # clip i is filled with (i + 1) / 1000, which the fake model reads back as "clip i+1"
    return [np.full(int(s * SR), (i + 1) / 1000, dtype=np.float32) for i, s in enumerate(seconds)]


def test_transcribe_batches_by_duration_and_keeps_order(tmp_path, fake):
    seconds = [2.0, 30.0, 1.0, 29.0, 5.0, 0.05, 3.0, 12.0]
    backend = registry.create("asr", "mooer", model=str(make_model_dir(tmp_path)), max_batch_s=50,
                              max_batch_size=4, num_beams=2, max_new_tokens=50)
    out = backend.transcribe(clips_of(seconds), language="en")
    # order restored; the multitask second line dropped; a 50 ms clip is too short and stays empty
    assert out == ["clip 1", "clip 2", "clip 3", "clip 4", "clip 5", "", "clip 7", "clip 8"]

    cfg = fake["init"][0]
    assert cfg.adapter_path == str(tmp_path / "asr" / "adapter_project.pt")
    assert cfg.lora_dir == str(tmp_path / "asr" / "lora_weights")
    assert cfg.encoder_path == str(tmp_path / "paraformer_encoder" / "paraformer-encoder.pth")
    assert cfg.llm_path == str(tmp_path / "Qwen2-7B-Instruct")
    assert cfg.cmvn_path == fake["cmvn"] == str(tmp_path / "paraformer_encoder" / "am.mvn")
    assert cfg.llm_dim == 1536  # read from the LLM's config.json, not MooER's 7B default
    assert cfg.prompt_key == "asr" and cfg.load_dtype == "float32"
    assert fake["to"] == "cpu" and fake["eval"]
    assert fake["prompt"] == {("<|im_start|>user\n{}<|im_end|>\n<|im_start|>assistant\n", "Transcribe speech to text. ", 2)}

    calls = fake["generate"]
    kept = [s for s in seconds if s >= 0.1]
    assert len(calls) == len(duration_batches(kept, 50, 4)) == 4
    assert [c["batch"] for c in calls] == [1, 1, 4, 1]  # 30 | 29 | 12, 5, 3, 2 (48 s padded) | 1
    for c in calls:
        assert c["batch"] <= 4 and c["num_beams"] == 2 and c["max_new_tokens"] == 50
        assert c["batch"] == 1 or c["batch"] * c["frames"] * 0.06 <= 50
    stats = backend.stats()
    assert stats["clips"] == 7 and stats["batches"] == 4
    assert stats["audio_s"] == pytest.approx(sum(kept))
    assert stats["padded_s"] == pytest.approx(30 + 29 + 4 * 12 + 1)
    assert set(backend.timings()) == {"load", "features", "generate"}

    # loaded once per worker; an empty call is fine
    assert backend.transcribe([]) == []
    backend.transcribe(clips_of([1.0]))
    assert len(fake["init"]) == 1


def test_multitask_checkpoint_uses_its_prompt(tmp_path, fake):
    backend = registry.create("asr", "mooer", model=str(make_model_dir(tmp_path, variant="asr_ast_mtl")),
                              variant="asr_ast_mtl", device="cpu")
    assert backend.transcribe(clips_of([1.5, 2.5])) == ["clip 1", "clip 2"]
    cfg = fake["init"][0]
    assert cfg.prompt_key == "ast" and cfg.adapter_path.endswith("asr_ast_mtl/adapter_project.pt")
    assert {p[1] for p in fake["prompt"]} == {"Translate speech to english text. "}


# ---------------------------------------------------------------------------- real MooER, tiny random model

def build_tiny_mooer_dir(root, seed=0):
    """MooER's folder layout with tiny random weights: a 2-layer Qwen2 (width 64) with a byte-level
    tokenizer, a LoRA on it, a random adapter checkpoint and a unit CMVN. The Paraformer encoder
    file is an empty state dict: MooER loads it with strict=False, so the encoder keeps its
    (fixed-size, ~158M parameter) random initialisation."""
    from peft import LoraConfig, get_peft_model
    from transformers import Qwen2Config, Qwen2ForCausalLM, Qwen2Tokenizer
    from transformers.models.gpt2.tokenization_gpt2 import bytes_to_unicode

    torch.manual_seed(seed)
    enc = root / "paraformer_encoder"
    enc.mkdir(parents=True)
    torch.save({}, enc / "paraformer-encoder.pth")
    row = lambda v: " ".join([str(v)] * 560)  # noqa: E731
    (enc / "am.mvn").write_text(f"<Nnet>\n<AddShift> 560 560\n<LearnRateCoef> 0 [ {row(-8.0)} ]\n"
                                f"<Rescale> 560 560\n<LearnRateCoef> 0 [ {row(0.25)} ]\n</Nnet>\n")
    llm = root / "Qwen2-7B-Instruct"
    llm.mkdir()
    vocab = {c: i for i, c in enumerate(bytes_to_unicode().values())}
    vocab["<|endoftext|>"] = len(vocab)
    (llm / "vocab.json").write_text(json.dumps(vocab))
    (llm / "merges.txt").write_text("#version: 0.2\n")
    tok = Qwen2Tokenizer(str(llm / "vocab.json"), str(llm / "merges.txt"))
    tok.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
    tok.save_pretrained(llm)
    config = Qwen2Config(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
                         eos_token_id=tok.convert_tokens_to_ids("<|im_end|>"), bos_token_id=None)
    model = Qwen2ForCausalLM(config)
    model.save_pretrained(llm)
    lora = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))
    lora.save_pretrained(root / "asr" / "lora_weights")
    adapter = {"encoder_projector.linear1.weight": torch.randn(2048, 512 * 2) * 0.02,
               "encoder_projector.linear1.bias": torch.randn(2048) * 0.02,
               "encoder_projector.linear2.weight": torch.randn(64, 2048) * 0.02,
               "encoder_projector.linear2.bias": torch.randn(64) * 0.02}
    torch.save(adapter, root / "asr" / "adapter_project.pt")
    return adapter


def test_real_mooer_with_a_tiny_random_model(tmp_path):
    """Runs only where MooER's package and its dependencies are importable (the GPU image)."""
    pytest.importorskip("mooer.models.mooer_model", reason="MooER is not installed (see audiorole_ray/asr/MOOER.md)")
    adapter = build_tiny_mooer_dir(tmp_path)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    backend = registry.create("asr", "mooer", model=str(tmp_path), max_batch_s=60, max_batch_size=3,
                              num_beams=1, max_new_tokens=4, dtype="float32", device=device)
    backend.load()
    assert backend._cfg.llm_dim == 64
    proj = backend._model.encoder_projector.linear2.bias.detach().cpu()
    assert torch.equal(proj, adapter["encoder_projector.linear2.bias"])  # our adapter_path reached MooER's loader
    rng = np.random.default_rng(0)
    clips = [(0.1 * rng.standard_normal(int(s * SR))).astype(np.float32) for s in (2.0, 0.05, 3.5, 1.0)]
    batched = backend.transcribe(clips)
    assert len(batched) == 4 and batched[1] == "" and all(isinstance(t, str) for t in batched)
    assert backend.stats()["batches"] == 1
    backend.max_batch_size = 1  # the same clips one by one: left-padding must not change greedy output
    assert backend.transcribe(clips) == batched
