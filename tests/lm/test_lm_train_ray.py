"""End to end on the bundled sample's main character: corpus (sitcom series, fast options) ->
speech tokens -> jobs/train_lm.py with 2 Ray Train workers on ColossalAI's DDP plugin, killed
after its first checkpoint and re-run with the same command; the saved model loads and generates."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from audiorole_ray.train.metrics import epoch_means, read_metrics
from audiorole_ray.train.runner import SNAPSHOT, latest_state

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
TARGET = "sitcom_spk00"
EPOCHS = 3


def _env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


@pytest.fixture(scope="module")
def sample_corpus(tmp_path_factory, sample_series) -> Path:
    root = tmp_path_factory.mktemp("lm-sample")
    shutil.copytree(sample_series / "sitcom", root / "in" / "sitcom")  # the series of the main character
    corpus = root / "corpus"
    for cmd in (["jobs/build_corpus.py", "--input", str(root / "in"), "--output", str(corpus), "--enhancer", "none",
                 "--quality-every", "0"],
                ["jobs/tokenize_corpus.py", "--corpus", str(corpus), "--codebook-size", "64"]):
        done = subprocess.run([sys.executable, *cmd], cwd=REPO, env=_env(), capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return corpus


@pytest.fixture(scope="module")
def trained(sample_corpus, tmp_path_factory, run_and_kill_at) -> dict:
    out = tmp_path_factory.mktemp("lm-model") / "model"
    cmd = [sys.executable, "jobs/train_lm.py", "--corpus", str(sample_corpus), "--target", TARGET, "--model", "tiny",
           "--output", str(out), "--epochs", str(EPOCHS), "--checkpoint-every", "4"]
    storage = out / "lm" / "_ray"
    # killed with the local Ray it started, as a crash would, once its first checkpoint is recorded
    run_and_kill_at(cmd, storage / "lm" / SNAPSHOT, out.parent / "run1.log", cwd=REPO, env=_env(), timeout=600)
    killed_at = latest_state(str(storage), "lm")["step"]
    assert not (out / "lm" / "config.json").exists(), "the first run must not have finished"
    run2 = subprocess.run(cmd, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=900)
    assert run2.returncode == 0, run2.stdout[-4000:] + run2.stderr[-4000:]
    return {"out": out, "killed_at": killed_at, "log": run2.stdout + run2.stderr,
            "summary": json.loads(run2.stdout.strip().splitlines()[-1])}


def test_loss_falls_on_the_main_character(trained):
    rows = read_metrics(str(trained["out"] / "lm"))
    assert [r["step"] for r in rows] == list(range(1, len(rows) + 1)), "each step once, resumed or not"
    assert set(rows[0]) == {"step", "epoch", "loss", "lr", "tokens_per_s"}
    assert all(r["tokens_per_s"] > 0 and r["lr"] > 0 for r in rows)
    means = epoch_means(rows)
    assert sorted(means) == list(range(EPOCHS))
    assert means[EPOCHS - 1] <= 0.7 * means[0], means  # target: last epoch's mean at most 70 % of the first's
    assert (trained["out"] / "lm" / "loss.png").read_bytes()[:4] == b"\x89PNG"


def test_killed_run_resumes_from_its_checkpoint(trained):
    k = trained["killed_at"]
    assert k >= 4
    log = trained["log"]
    assert f"continuing run 'lm' from its checkpoint at step {k}" in log
    # what the workers themselves loaded (their stdout reaches the driver's log only best-effort)
    assert trained["summary"]["resumed_at"] == [k], "the re-run's workers start from the checkpoint"
    assert trained["summary"]["resumed_from_step"] == k
    assert trained["summary"]["steps"] == len(read_metrics(str(trained["out"] / "lm")))


def test_driver_prints_every_step_and_epoch(trained):
    """The driver's progress comes from the reported metrics (not the workers' forwarded output):
    after the resume, one line for every step still to do and one for every epoch finished."""
    import re

    k, steps = trained["killed_at"], trained["summary"]["steps"]
    printed = [int(g) for g in re.findall(r"^\[train\] epoch \d+/%d step \d+/\d+ \(global (\d+)\) loss [\d.]+ lr "
                                         % EPOCHS, trained["log"], flags=re.M)]
    assert printed == list(range(k + 1, steps + 1)), printed
    done = re.findall(r"^\[train\] epoch (\d+)/%d done: mean loss [\d.]+$" % EPOCHS, trained["log"], flags=re.M)
    assert done and [int(e) for e in done] == list(range(EPOCHS - len(done) + 1, EPOCHS + 1))


def test_outputs_and_manifest(trained, sample_corpus):
    out = trained["out"]
    manifest = json.loads((out / "arp_model.json").read_text())
    assert manifest["character"] == TARGET and manifest["corpus"] == str(sample_corpus)
    assert manifest["tokenizer"]["name"] == "whisper-units" and manifest["tokenizer"]["vocab_size"] == 64
    assert manifest["parts"]["lm"]["steps"] == trained["summary"]["steps"]
    assert manifest["parts"]["lm"]["plugin"] == "ddp" and manifest["parts"]["lm"]["epochs"] == EPOCHS
    preview = [json.loads(line) for line in (out / "lm" / "preview.jsonl").read_text().splitlines()]
    assert preview and all(len(p["tokens"]) == len(p["labels_mask"]) for p in preview)


def test_saved_model_loads_and_generates(trained):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from audiorole_ray.lm.task import lm_loss
    from audiorole_ray.lm.tiny import build_tiny_model

    folder = trained["out"] / "lm"
    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    tok = AutoTokenizer.from_pretrained(folder)
    row = json.loads((folder / "preview.jsonl").read_text().splitlines()[0])
    ids = tok.convert_tokens_to_ids(row["tokens"])
    labels = [i if m else -100 for i, m in zip(ids, row["labels_mask"])]
    batch = {"input_ids": torch.tensor([ids]), "labels": torch.tensor([labels]), "attention_mask": torch.ones(1, len(ids), dtype=torch.long)}
    with torch.no_grad():
        trained_loss, _ = lm_loss(model, batch)
        fresh_loss, _ = lm_loss(build_tiny_model(model.config.to_dict() | {"architectures": None}, seed=0), batch)
    assert float(trained_loss) < 0.7 * float(fresh_loss)  # the trained weights were saved, not the initial ones
    prompt = ids[: row["labels_mask"].index(1)]  # up to the first response
    with torch.no_grad():
        out = model.generate(torch.tensor([prompt]), attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
                             max_new_tokens=40, do_sample=False)
    new = out[0, len(prompt):].tolist()
    assert new and all(0 <= i < model.config.vocab_size for i in new)
    assert any(t.startswith("<|audio_") for t in tok.convert_ids_to_tokens(new)), tok.decode(new)
