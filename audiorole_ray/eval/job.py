"""The evaluation job: items, references, one Ray Data pass, items.parquet and the report."""
from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, replace

import pandas as pd

from audiorole_ray import registry
from audiorole_ray.errors import ConfigError
from audiorole_ray.eval.items import characters_of, exchange_items
from audiorole_ray.eval.references import build_reference
from audiorole_ray.eval.report import OUT_OF_SCOPE, write_report
from audiorole_ray.eval.stage import IDENTITY, EvalSettings, EvalStage
from audiorole_ray.eval.systems import GENERATING, answers_version
from audiorole_ray.io.storage import join, write_bytes, write_json
from audiorole_ray.pipeline.runner import fingerprint, run_pass
from audiorole_ray.pipeline.state import MarkerStore

log = logging.getLogger(__name__)

# Judges known not to judge (OFFLINE-MODELS.md: SmolLM2-135M scores sensible and nonsense alike):
# their numbers are plumbing checks and the report says so.
PLUMBING_JUDGES = ("smollm2",)


def is_plumbing(model: str) -> bool:
    return any(p in model.lower() for p in PLUMBING_JUDGES)


# a probe is one small request: a host that does not take the connection fails it in seconds; a
# local server may still be loading its model, so the answer itself gets longer
PROBE_CONNECT_S = 5.0
PROBE_TIMEOUT_S = 30.0


def _probe_chat(cfg: dict, model: str, retries: int = 1, timeout_s: float = PROBE_TIMEOUT_S):
    """A client for one probe of the endpoint ``cfg`` describes (a judge's or the systems' settings)."""
    from audiorole_ray.eval.judge import DEFAULT_KEY_ENV, ChatClient

    # the same concurrency as the pass's clients: in one process they share the endpoint's gate
    return ChatClient(cfg["url"], model, api_key_env=cfg.get("api_key_env") or cfg.get("key_env") or DEFAULT_KEY_ENV,
                      timeout_s=timeout_s, max_retries=retries, backoff_s=0.5, connect_timeout_s=PROBE_CONNECT_S,
                      concurrency=cfg.get("concurrency", 4))


def _api_systems(settings: EvalSettings) -> list[dict]:
    return [s for s in settings.systems if s["kind"] == "openai"]


def _judges(settings: EvalSettings) -> list[tuple[str, str, dict]]:
    """(what, flag of its URL, config) of each judge given."""
    return [(what, flag, cfg) for what, flag, cfg in (("the text judge", "--judge-url", settings.text_judge),
                                                      ("the audio judge", "--audio-judge-url", settings.audio_judge)) if cfg]


def endpoint_lines(settings: EvalSettings) -> list[str]:
    """Which endpoint each ``openai:`` system and judge sends to, and from where (never a key)."""
    from audiorole_ray.eval.judge import DEFAULT_KEY_ENV, key_note

    api = settings.api
    lines = [f"endpoint of system {s['name']} (openai:{s['arg']}): {api['url']} (from {api.get('url_from', '--api-url')}), "
             f"{key_note(api.get('key_env', DEFAULT_KEY_ENV))}" for s in _api_systems(settings)]
    lines += [f"endpoint of {what} {cfg['model']}: {cfg['url']} (from {flag}), {key_note(cfg.get('api_key_env', DEFAULT_KEY_ENV))}"
              for what, flag, cfg in _judges(settings)]
    return lines


def preflight(settings: EvalSettings) -> dict:
    """Checks before any work, one small request each: every ``openai:`` system's endpoint answers,
    takes the key and knows the model; the judges answer; the audio judge hears audio. Raises
    ConfigError in seconds (a refused connection is retried once or twice, not per item for minutes)."""
    from audiorole_ray.eval.judge import ChatError, text_part
    from audiorole_ray.eval.probe import endpoint_problem, require_audio, require_endpoint

    facts = {}
    api = settings.api
    for s in _api_systems(settings):
        chat = _probe_chat(api, s["arg"])
        facts[f"system {s['name']}"] = require_endpoint(chat, f"system {s['name']} (openai:{s['arg']})")
    if settings.text_judge:
        cfg = settings.text_judge
        chat = _probe_chat(cfg, cfg["model"], 2, cfg.get("timeout_s", 120.0))
        try:
            chat.create([{"role": "user", "content": [text_part("Reply with the number 1.")]}], temperature=0, max_tokens=4)
        except ChatError as exc:
            raise endpoint_problem(chat, f"the text judge {cfg['model']}", exc, "--judge-url", "--judge-key-env") from None
        facts["text_judge"] = "answers"
    if settings.audio_judge:
        cfg = settings.audio_judge
        chat = _probe_chat(cfg, cfg["model"], 2, cfg.get("timeout_s", 120.0))
        res = require_audio(chat)
        facts["audio_judge_probe"] = {"recalls": res.recalls}
    return facts


@dataclass
class Plan:
    """What a run asks for, worked out before anything is written."""

    items: list[dict]  # the selected exchanges
    characters: list[str]  # the characters asked about (--character, else all the corpus's)
    scopes: dict[str, str]  # system name -> the one character it answers ("" = every character)


def plan(settings: EvalSettings, characters: list[str] | None = None, limit: int | None = None) -> Plan:
    """The exchanges to score and each system's scope; a selection that leaves a system nothing to
    answer is refused (ConfigError / InputError), before the output is touched."""
    from audiorole_ray.eval.systems import SystemSpec, answer_scope

    items = exchange_items(settings.corpus, characters)
    if limit:
        items = items[:limit]
    all_chars = characters or characters_of(settings.corpus)
    if not items:
        raise ConfigError(f"no test-split exchanges in {settings.corpus} for {all_chars}: nothing to evaluate")
    scopes = {s["name"]: answer_scope(SystemSpec(**s)) for s in settings.systems}
    present = {it["character"] for it in items}
    for name, only in scopes.items():
        if only and only not in present:
            raise ConfigError(f"system {name} is an ARP-Model of {only!r} and answers only its turns, but the selected exchanges "
                              f"(--character, --limit) have none: select --character {only}, or add ,all-characters=true to its --system")
    return Plan(items, list(all_chars), scopes)


def backend_facts(settings: EvalSettings) -> dict[str, dict]:
    """What produced each metric, for the report."""
    out: dict[str, dict] = {}
    aq = registry.get("aq", settings.aq).load_class()
    out[aq.metric] = {"label": aq.label, "backend": {"name": settings.aq, "model": settings.aq_model or "embedded"}}
    if aq.metric != "aq":
        out["aq"] = {"why_missing": "no Audiobox Aesthetics checkpoint given (--aq audiobox --aq-model PATH; its weights are on the model hub only)"}
    ap = registry.get("speaker_embedding", settings.ap).load_class()
    out["ap"] = {"label": ap.label + "; reference: centroid of the character's training-split answers",
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


def item_inputs(item: dict, system: dict, ref: dict) -> str:
    """What an item's scores are made from: the clips, the system and the character's reference.
    An answer file of responses:DIR counts by its size, so a replaced file is scored again."""
    # options choose which items a system answers (all-characters), not its answers: not hashed
    system = {k: v for k, v in system.items() if k not in ("options", "scope")}
    parts = [system, item["a_audio_path"], item["a_audio_key"], item["b_audio_path"], item["b_audio_key"], ref.get("fingerprint", "")]
    if system["kind"] == "responses":
        from audiorole_ray.eval.systems import responses_fingerprint

        parts.append(responses_fingerprint(system["arg"], item))
    return fingerprint(*parts)


def with_answers_versions(settings: EvalSettings) -> EvalSettings:
    """A copy of ``settings`` whose generating systems (``openai:``, ``arp:``) have a ``version``:
    :func:`answers_version` as of now. Other systems have none (it would only change their items'
    hashes). ``settings`` itself is not changed."""
    systems = [{**s, "version": answers_version(s["kind"], s["arg"])} if s["kind"] in GENERATING
               else {k: v for k, v in s.items() if k != "version"} for s in settings.systems]
    return replace(settings, systems=systems)


def run(settings: EvalSettings, characters: list[str] | None = None, workers: int = 2, cpus_per_worker: float = 1.0,
        gpus_per_worker: float = 0.0, max_reference_clips: int = 64, limit: int | None = None, local: bool = False,
        planned: Plan | None = None) -> dict:
    """Score the planned items (``planned``, else :func:`plan` of ``characters`` and ``limit``)."""
    t0 = time.perf_counter()
    planned = planned or plan(settings, characters, limit)
    items = planned.items
    with_items = sorted({it["character"] for it in items})
    without = [c for c in planned.characters if c not in with_items]

    # a copy of the settings whose generating systems carry their answers' version, read here and
    # not kept in the caller's settings: in the items' hashes, a retrained model redoes its items,
    # and in the workers' SystemSpec, its answers go to a folder of their own
    settings = with_answers_versions(settings)
    asked, skipped = [], []
    for s in settings.systems:
        only = planned.scopes.get(s["name"], "")
        for it in items:
            if only and it["character"] != only:  # not asked: no request, no cost, no marker
                skipped.append({**{k: it[k] for k in IDENTITY if k != "system"}, "system": s["name"], "status": OUT_OF_SCOPE, "error": ""})
            else:
                asked.append((s, it))

    # references, in the driver: a few dozen clips per character that has items to score
    t = time.perf_counter()
    embedder = registry.create("speaker_embedding", settings.ap, model=settings.ap_model, device=settings.device)
    style = registry.create("cp_standin", "style") if settings.cp_standin else None
    refs = {c: build_reference(settings.corpus, settings.output, c, embedder, style, max_reference_clips)
            for c in sorted({it["character"] for _, it in asked})}
    t_refs = time.perf_counter() - t

    rows = [{**it, "id": f"{s['name']}/{it['dialogue_id']}/{it['turn_index']}", "uri": f"{s['name']}:{it['dialogue_id']}#{it['turn_index']}",
             "system": s["name"], "inputs": item_inputs(it, s, refs[it["character"]])} for s, it in asked]
    stage = EvalStage(config=settings, num_cpus=cpus_per_worker, num_gpus=gpus_per_worker, batch_size=1)
    store = MarkerStore(join(settings.output, "_state"))
    result = run_pass(stage, rows, store, workers=workers, local=local,
                      keep=lambda m: {**m.payload, "status": "ok", "error": "", "wall_s": m.wall_s})
    by_id = {r["id"]: r for r in rows}
    failed = [{**{k: by_id[e.episode_id][k] for k in IDENTITY}, "status": "error", "error": e.error} for e in result.errors]
    table = pd.DataFrame([result.done[r["id"]] for r in rows if r["id"] in result.done] + failed + skipped)
    table = table.sort_values(["system", "character", "dialogue_id", "turn_index"]).reset_index(drop=True)
    _write_items(settings.output, table)

    systems = [s["name"] for s in settings.systems]
    throughput = {}
    for s in systems:
        sub = table[(table["system"] == s) & (table["status"] == "ok")]
        wall = float(sub["wall_s"].sum()) if "wall_s" in sub else 0.0
        throughput[s] = {"items": int(len(sub)), "worker_s": round(wall, 2),
                         "items_per_worker_s": round(len(sub) / wall, 3) if wall > 0 else None}
    notes = []
    if without:
        notes.append(f"characters without test-split exchanges (not in the table): {', '.join(without)}")
    for name, only in planned.scopes.items():
        if only:
            notes.append(f"{name} answers only {only}'s turns (its ARP-Model's character): its cells of other characters are "
                         f"out of scope, not asked and not averaged (n = 0); --system {name}=arp:...,all-characters=true asks for them")
    for c, r in refs.items():
        if r.get("error"):
            notes.append(f"{c}: {r['error']}")
        else:
            notes.append(f"{c}: reference = {r['n_clips']} training-split answers, {r['seconds']:.1f} s"
                         + (f"; CP clip {r['cp_clip']['audio_key']} ({r['cp_clip']['seconds']} s)" if r.get("cp_clip") else ""))
    answered = int((table["status"] == "ok").sum())
    summary = {
        "corpus": settings.corpus, "output": settings.output, "items": len(items), "rows": len(table),
        "asked": len(rows), "out_of_scope": len(skipped), "answered": answered, "errors": len(failed),
        "metric_errors": metric_errors(table), "resumed": result.resumed,
        "characters": with_items, "characters_without_test_turns": without,
        "systems": [{**{k: s[k] for k in ("name", "kind", "arg")}, "scope": planned.scopes.get(s["name"]) or "all"}
                    for s in settings.systems],
        "wall_s": {"references": round(t_refs, 2), "pass": result.wall_s, "total": round(time.perf_counter() - t0, 2)},
        "throughput": throughput, "workers": workers,
    }
    rep = write_report(settings.output, table, systems, backend_facts(settings), notes,
                       extra={"run": summary, "settings": _public_settings(settings)})
    summary["files"] = ["items.parquet", *rep["files"], "summary.json"]
    summary["figure_error"] = rep.get("figure_error", "")
    write_json(join(settings.output, "summary.json"), summary)
    summary["report"] = rep
    return summary


def metric_errors(table: pd.DataFrame) -> dict[str, int]:
    """Per metric (``<metric>_error`` column), the answered rows on which it failed: the numbers
    the report leaves out of its means. Rows without an answer are counted in ``errors``."""
    ok = table[table["status"] == "ok"]
    return {c[: -len("_error")]: int(ok[c].fillna("").astype(str).ne("").sum()) for c in table.columns if c.endswith("_error")}


def _public_settings(settings: EvalSettings) -> dict:
    """The settings as written to the report: names of key variables, never their values."""
    d = asdict(settings)
    return json.loads(json.dumps(d, default=str))


def _write_items(output: str, table: pd.DataFrame) -> None:
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(table, preserve_index=False), buf)
    write_bytes(join(output, "items.parquet"), buf.getvalue())
