"""The evaluation job: items, references, one Ray Data pass, items.parquet and the report."""
from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict

import pandas as pd

from audiorole_ray import registry
from audiorole_ray.errors import ConfigError
from audiorole_ray.eval.items import characters_of, exchange_items
from audiorole_ray.eval.references import build_reference
from audiorole_ray.eval.report import write_report
from audiorole_ray.eval.stage import EvalSettings, EvalStage
from audiorole_ray.io.storage import join

log = logging.getLogger(__name__)

# Judges known not to judge (OFFLINE-MODELS.md: SmolLM2-135M scores sensible and nonsense alike):
# their numbers are plumbing checks and the report says so.
PLUMBING_JUDGES = ("smollm2",)


def is_plumbing(model: str) -> bool:
    return any(p in model.lower() for p in PLUMBING_JUDGES)


def preflight(settings: EvalSettings) -> dict:
    """Checks before any work: judges answer, the audio judge hears audio. Raises ConfigError."""
    from audiorole_ray.eval.judge import ChatClient, text_part
    from audiorole_ray.eval.probe import require_audio

    facts = {}
    if settings.text_judge:
        cfg = settings.text_judge
        chat = ChatClient(cfg["url"], cfg["model"], api_key_env=cfg.get("api_key_env", "OPENAI_API_KEY"), max_retries=2, backoff_s=0.5)
        try:
            chat.create([{"role": "user", "content": [text_part("Reply with the number 1.")]}], temperature=0, max_tokens=4)
        except RuntimeError as exc:
            raise ConfigError(f"the text judge {cfg['model']} at {cfg['url']} does not answer: {exc}") from None
        facts["text_judge"] = "answers"
    if settings.audio_judge:
        cfg = settings.audio_judge
        chat = ChatClient(cfg["url"], cfg["model"], api_key_env=cfg.get("api_key_env", "OPENAI_API_KEY"), max_retries=2, backoff_s=0.5)
        res = require_audio(chat)
        facts["audio_judge_probe"] = {"recalls": res.recalls}
    return facts


def backend_facts(settings: EvalSettings) -> dict[str, dict]:
    """What produced each metric, for the report."""
    out: dict[str, dict] = {}
    aq = registry.get("aq", settings.aq).load_class()
    out[aq.metric] = {"label": aq.label, "backend": {"name": settings.aq, "model": settings.aq_model or "embedded"}}
    if aq.metric != "aq":
        out["aq"] = {"why_missing": "no Audiobox Aesthetics checkpoint given (--aq audiobox --aq-model PATH; its weights are on the model hub only)"}
    ap = registry.get("speaker_embedding", settings.ap).load_class()
    out["ap"] = {"label": ap.label + f"; reference: centroid of the character's training-split answers",
                 "backend": {"name": settings.ap, "model": settings.ap_model or "embedded"}}
    whisper = {"asr": "whisper (faster-whisper)", "model": settings.asr_model or "embedded tiny.en"}
    if settings.text_judge:
        j = settings.text_judge
        plumbing = is_plumbing(j["model"])
        out["cq"] = {"label": "CQ: text judge, paper Table 6 prompt, integer 0-2"
                     + (" -- PLUMBING CHECK ONLY: this model cannot judge, the numbers are not content quality" if plumbing else ""),
                     "backend": {"judge_model": j["model"], "judge_url": j["url"], **whisper}, "plumbing": plumbing}
    else:
        out["cq"] = {"why_missing": "no text judge given (--judge-url, --judge-model); answers are transcribed only"}
    if settings.audio_judge:
        j = settings.audio_judge
        out["cp"] = {"label": "CP: audio judge, paper Table 7 prompt, integer 0-2 (audio hearing checked by a probe)",
                     "backend": {"judge_model": j["model"], "judge_url": j["url"]}, "plumbing": is_plumbing(j["model"])}
    else:
        out["cp"] = {"why_missing": "no audio judge given (--audio-judge-url, --audio-judge-model): no audio LLM runs offline"}
    out["intelligibility"] = {"label": "CQ stand-in: intelligibility, Whisper's mean token probability of the answer (0-1); "
                              "how clearly it is words, not whether they answer well", "backend": whisper}
    if settings.cp_standin:
        st = registry.get("cp_standin", "style").load_class()
        out["style_sim"] = {"label": st.label, "backend": {"name": "style"}}
    return out


def run(settings: EvalSettings, characters: list[str] | None = None, workers: int = 2, cpus_per_worker: float = 1.0,
        gpus_per_worker: float = 0.0, max_reference_clips: int = 64, limit: int | None = None) -> dict:
    import ray

    from audiorole_ray.pipeline.ray_runner import apply_stage

    t0 = time.perf_counter()
    items = exchange_items(settings.corpus, characters)
    if limit:
        items = items[:limit]
    all_chars = characters or characters_of(settings.corpus)
    with_items = sorted({it["character"] for it in items})
    without = [c for c in all_chars if c not in with_items]
    if not items:
        raise ConfigError(f"no test-split exchanges in {settings.corpus} for {all_chars}: nothing to evaluate")

    # references, in the driver: a few dozen clips per character
    t = time.perf_counter()
    embedder = registry.create("speaker_embedding", settings.ap, model=settings.ap_model, device=settings.device)
    style = registry.create("cp_standin", "style") if settings.cp_standin else None
    refs = {c: build_reference(settings.corpus, settings.output, c, embedder, style, max_reference_clips) for c in with_items}
    t_refs = time.perf_counter() - t

    rows = [{**it, "system": s["name"], "system_spec": f"{s['kind']}:{s['arg']}" if s["arg"] else s["kind"]}
            for s in settings.systems for it in items]
    stage = EvalStage(settings=settings, num_cpus=cpus_per_worker, num_gpus=gpus_per_worker, batch_size=1)
    t = time.perf_counter()
    ds = ray.data.from_items(rows, override_num_blocks=min(len(rows), max(workers * 4, 1)))
    results = apply_stage(ds, stage, workers=min(workers, len(rows))).take_all()
    t_pass = time.perf_counter() - t

    table = pd.DataFrame(results)
    keep = [c for c in table.columns if not c.startswith(("a_", "b_")) and c not in ("context",)]
    table = table[keep].sort_values(["system", "character", "dialogue_id", "turn_index"]).reset_index(drop=True)
    _write_items(settings.output, table)

    systems = [s["name"] for s in settings.systems]
    throughput = {}
    for s in systems:
        sub = table[table["system"] == s]
        wall = float(sub["evaluate_wall_s"].sum()) if "evaluate_wall_s" in sub else 0.0
        throughput[s] = {"items": int(len(sub)), "worker_s": round(wall, 2),
                         "items_per_worker_s": round(len(sub) / wall, 3) if wall > 0 else None}
    notes = []
    if without:
        notes.append(f"characters without test-split exchanges (not in the table): {', '.join(without)}")
    for c, r in refs.items():
        if r.get("error"):
            notes.append(f"{c}: {r['error']}")
        else:
            notes.append(f"{c}: reference = {r['n_clips']} training-split answers, {r['seconds']:.1f} s"
                         + (f"; CP clip {r['cp_clip']['audio_key']} ({r['cp_clip']['seconds']} s)" if r.get("cp_clip") else ""))
    summary = {
        "corpus": settings.corpus, "output": settings.output, "items": len(items), "rows": len(table),
        "errors": int((table["status"] == "error").sum()) if "status" in table else 0,
        "characters": with_items, "characters_without_test_turns": without,
        "systems": [{k: s[k] for k in ("name", "kind", "arg")} for s in settings.systems],
        "wall_s": {"references": round(t_refs, 2), "pass": round(t_pass, 2), "total": round(time.perf_counter() - t0, 2)},
        "throughput": throughput, "workers": workers,
    }
    rep = write_report(settings.output, table, systems, backend_facts(settings), notes,
                       extra={"run": summary, "settings": _public_settings(settings)})
    summary["report"] = rep
    from audiorole_ray.io.storage import write_json

    write_json(join(settings.output, "summary.json"), {k: v for k, v in summary.items() if k != "report"})
    return summary


def _public_settings(settings: EvalSettings) -> dict:
    """The settings as written to the report: names of key variables, never their values."""
    d = asdict(settings)
    return json.loads(json.dumps(d, default=str))


def _write_items(output: str, table: pd.DataFrame) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq
    from fsspec.core import url_to_fs

    fs, path = url_to_fs(join(output, "items.parquet"))
    fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    with fs.open(path, "wb") as f:
        pq.write_table(pa.Table.from_pandas(table, preserve_index=False), f)
