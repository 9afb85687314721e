"""monitoring/grafana-dashboard.json: it parses, every panel queries Prometheus through the
${datasource} variable, and every metric it names is one the project exports (as Ray exports
it: ray_ prefix, _total on counters) or one of Ray's built-in node metrics."""
import json
import time
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "monitoring" / "grafana-dashboard.json"

# Grafana's variables, replaced before the expression is read as PromQL
GRAFANA_VARS = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "3h", "$session": ".*"}
PROMQL_WORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset",
    "and", "or", "unless", "inf", "nan",
}


def project_metrics() -> dict[str, str]:
    """The Prometheus names of the metrics audiorole_ray/pipeline/metrics.py makes, found by
    running its constructor with stand-ins for ray.util.metrics (no Ray started)."""
    pytest.importorskip("ray")
    import ray
    import ray.util.metrics as ray_metrics

    from audiorole_ray.pipeline import metrics

    made = {}

    class Fake:
        kind = ""

        def __init__(self, name, description="", tag_keys=()):
            made[name] = (self.kind, tuple(tag_keys))

    class Counter(Fake):
        kind = "counter"

    class Gauge(Fake):
        kind = "gauge"

    class Histogram(Fake):
        kind = "histogram"

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ray_metrics, "Counter", Counter)
        mp.setattr(ray_metrics, "Gauge", Gauge)
        mp.setattr(ray_metrics, "Histogram", Histogram)
        mp.setattr(ray, "is_initialized", lambda: True)
        built = metrics._metrics.__wrapped__()  # the lru_cache'd constructor, uncached
    assert built and made
    exported = {}
    for name, (kind, tags) in made.items():
        assert "stage" in tags, name
        # ray.util.metrics exports with a "ray_" prefix; Prometheus adds "_total" to counters
        # (checked against a live Ray node's /metrics endpoint, see monitoring/README.md)
        if kind == "counter":
            exported[f"ray_{name}_total"] = kind
        elif kind == "histogram":
            for suffix in ("_bucket", "_sum", "_count"):
                exported[f"ray_{name}{suffix}"] = kind
        else:
            exported[f"ray_{name}"] = kind
    return exported


def ray_node_metrics() -> set[str]:
    """Ray's built-in node metrics (GPU, CPU, memory...) as its reporter agent declares them."""
    pytest.importorskip("ray")
    from ray.dashboard.modules.reporter.reporter_agent import METRICS_GAUGES

    return {f"ray_{name}" for name in METRICS_GAUGES}


def metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression: identifiers that are not functions, keywords,
    label names (inside {...}, by (...), on (...)), durations or strings."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings (label values)
    e = re.sub(r"\{[^}]*\}", "", e)  # label matchers
    e = re.sub(r"\[[^\]]*\]", "", e)  # range durations
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)
    names = set()
    for m in re.finditer(r"(?<![\w.$])([A-Za-z_:][\w:]*)(\s*\()?", e):
        word, call = m.group(1), m.group(2)
        if call or word.lower() in PROMQL_WORDS:
            continue
        names.add(word)
    return names


def substitute(expr: str) -> str:
    for var, value in GRAFANA_VARS.items():
        expr = expr.replace(var, value)
    return expr


@pytest.fixture(scope="module")
def dashboard():
    return json.loads(DASHBOARD.read_text())


def panels(dashboard):
    out = []
    for p in dashboard["panels"]:
        out.append(p)
        out.extend(p.get("panels", []))  # panels inside a collapsed row
    return [p for p in out if p["type"] != "row"]


def test_dashboard_parses_and_uses_the_datasource_variable(dashboard):
    assert dashboard["uid"] and dashboard["title"]
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for p in panels(dashboard):
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
        assert p["targets"], f"panel {p['title']!r} has no query"
        for t in p["targets"]:
            assert t.get("datasource", p["datasource"])["uid"] == "${datasource}", p["title"]
            assert t["expr"].strip() and t["refId"], p["title"]
            assert t["expr"].count("(") == t["expr"].count(")") and t["expr"].count("{") == t["expr"].count("}")
        g = p["gridPos"]
        assert 0 <= g["x"] and g["x"] + g["w"] <= 24 and g["h"] > 0, p["title"]


def test_required_panels_are_there(dashboard):
    exprs = {p["title"]: " ".join(t["expr"] for t in p["targets"]) for p in panels(dashboard)}

    def has(pattern):
        return [title for title, e in exprs.items() if re.search(pattern, e)]

    assert has(r"rate\(ray_audiorole_audio_seconds_total.*\* 3600 / 3600"), "audio hours per hour"
    assert has(r"rate\(ray_audiorole_items_total"), "items per second"
    assert has(r"ray_audiorole_errors_total"), "errors"
    assert has(r"ray_audiorole_rtf"), "real-time factor"
    assert has(r"ray_node_gpus_utilization"), "GPU utilisation"
    assert has(r"ray_node_gram_used"), "GPU memory"
    for title, e in exprs.items():
        if "audiorole" in e and "stage" not in e:
            pytest.fail(f"panel {title!r} does not split by stage")


def test_every_metric_is_exported(dashboard):
    ours, ray_builtin = project_metrics(), ray_node_metrics()
    assert set(ours) == {
        "ray_audiorole_audio_seconds_total", "ray_audiorole_items_total", "ray_audiorole_errors_total", "ray_audiorole_rtf",
    }
    assert {"ray_node_gpus_utilization", "ray_node_gram_used", "ray_node_gram_available", "ray_node_cpu_utilization"} <= ray_builtin
    known = set(ours) | ray_builtin
    used = set()
    for p in panels(dashboard):
        for t in p["targets"]:
            names = metric_names(substitute(t["expr"]))
            assert names, t["expr"]
            assert names <= known, f"{p['title']!r}: unknown metric(s) {sorted(names - known)}"
            used |= names
    for v in dashboard["templating"]["list"]:
        if v["type"] == "query":
            q = v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
            name = re.search(r"label_values\(\s*([\w:]+)", q).group(1)
            assert name in known, q
    assert set(ours) <= used, f"exported but not on the dashboard: {sorted(set(ours) - used)}"


def test_metric_name_extraction():
    assert metric_names('sum by (stage) (rate(a_total{SessionName=~".*", x="by"}[5m])) * 60') == {"a_total"}
    assert metric_names("(x + y) * 1024 / on() (sum(z) or vector(0))") == {"x", "y", "z"}


def test_expressions_parse_as_promql(dashboard):
    """With the optional promql-parser package: each query is valid PromQL, and its vector
    selectors are exactly the names the regex above finds."""
    promql = pytest.importorskip("promql_parser")
    for p in panels(dashboard):
        for t in p["targets"]:
            expr = substitute(t["expr"])
            found = set()

            def visit(node):
                if isinstance(node, promql.VectorSelector):
                    found.add(node.name)

            promql.walk(promql.parse(expr), visit)
            assert found == metric_names(expr), expr


@pytest.mark.slow
def test_names_match_a_live_ray_node():
    """The names and types above are what a Ray node really serves on its Prometheus endpoint
    (Ray on 127.0.0.1, metrics reported every 0.5 s)."""
    ray = pytest.importorskip("ray")
    import urllib.request

    import ray._private.ray_constants as ray_constants

    expected = project_metrics()
    if ray.is_initialized():
        ray.shutdown()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # bind Ray to loopback only
        mp.setattr(ray_constants, "ENABLE_RAY_CLUSTER", False)
        ray.init(num_cpus=1, include_dashboard=False, logging_level="ERROR", _system_config={"metrics_report_interval_ms": 500})
        try:

            @ray.remote
            class Stage:
                def work(self):
                    from audiorole_ray.pipeline.metrics import record

                    record("diarize", audio_s=60.0, wall_s=6.0)
                    record("diarize", error=True)

            actor = Stage.remote()
            ray.get(actor.work.remote())
            node = ray.nodes()[0]
            assert node["NodeManagerAddress"] == "127.0.0.1"
            url = f"http://127.0.0.1:{node['MetricsExportPort']}/metrics"
            for _ in range(60):
                text = urllib.request.urlopen(url, timeout=10).read().decode()
                if all(name in text for name in expected) and "ray_node_cpu_utilization" in text:
                    break
                time.sleep(0.5)
        finally:
            ray.shutdown()
    types = dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M))
    for name, kind in expected.items():
        base = re.sub(r"_total$", "", name) if kind == "counter" else name
        assert types.get(name, types.get(base)) == kind, (name, kind)
        assert re.search(rf'^{name}\{{[^}}]*stage="diarize"[^}}]*\}} ', text, re.M), name
    assert re.search(r'^ray_audiorole_audio_seconds_total\{[^}]*\} 60(\.0)?$', text, re.M)
    assert re.search(r'^ray_audiorole_rtf\{[^}]*\} 0\.1$', text, re.M)
    assert types.get("ray_node_cpu_utilization") == "gauge"
