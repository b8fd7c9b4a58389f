"""deploy/prometheus: promtool accepts the configs, rules and rule tests; every alert has firing
and quiet unit tests; the rules use only metrics and labels that something exports; the scrape
targets are the stack's ports."""

from __future__ import annotations

import ast
import importlib.util
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from flightdelay.core.config import StackSettings

ROOT = Path(__file__).resolve().parents[2]
PROM = ROOT / "deploy/prometheus"
METRICS_PY = ROOT / "src/flightdelay/serving/metrics.py"
RULE_FILES = ("rules/recording.yml", "rules/alerts.yml")
CONFIGS = ("prometheus.yml", "prometheus.compose.yml")

# what every scrape adds, and the standard client collectors (process, GC, platform)
STANDARD = {"up", "scrape_duration_seconds", "scrape_samples_scraped", "scrape_series_added"}
STANDARD_PREFIXES = ("process_", "python_gc_", "python_info")
# `mlflow server --expose-prometheus`: prometheus_flask_exporter's defaults under the prefix
# "mlflow" (mlflow/server/prometheus_exporter.py), as a live server exports them
MLFLOW = {
    "mlflow_http_request_total",
    "mlflow_http_request_exceptions_total",
    "mlflow_exporter_info",
    *(f"mlflow_http_request_duration_seconds_{s}" for s in ("bucket", "sum", "count")),
}
MLFLOW_LABELS = {"method", "status", "mlflow_version"}
TARGET_LABELS = {"job", "instance", "replica", "le"}  # scrape config labels, histogram buckets

PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right"}
PROMQL_WORDS |= {"and", "or", "unless", "bool", "offset", "inf", "nan"}
_SERIES_SUFFIXES = {
    "Counter": ("_total",),
    "CounterMetricFamily": ("_total",),
    "Gauge": ("",),
    "GaugeMetricFamily": ("",),
    "Histogram": ("_bucket", "_sum", "_count"),
    "HistogramMetricFamily": ("_bucket", "_sum", "_count"),
    "Summary": ("_sum", "_count"),
    "SummaryMetricFamily": ("_sum", "_count"),
    "Info": ("_info",),
}


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def _rules(name: str) -> list[dict[str, Any]]:
    return [r for g in _yaml(PROM / name)["groups"] for r in g["rules"]]


def _unit_tests() -> list[tuple[Path, dict[str, Any]]]:
    return [(f, t) for f in sorted(PROM.glob("tests/*.yml")) for t in _yaml(f)["tests"]]


def exported_metrics(source: str) -> tuple[set[str], set[str]]:
    """The series names and label names the metrics module exports (prometheus_client types)."""
    names: set[str] = set()
    labels: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        kind = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
        if kind not in _SERIES_SUFFIXES or not node.args:
            continue
        first = node.args[0]
        if not (isinstance(first, ast.Constant) and isinstance(first.value, str)):
            continue
        base = first.value.removesuffix("_total")
        names |= {base + suffix for suffix in _SERIES_SUFFIXES[kind]}
        given = [k.value for k in node.keywords if k.arg in ("labels", "labelnames")]
        for value in [*node.args[2:3], *given]:
            if isinstance(value, ast.List | ast.Tuple):
                labels |= {str(e.value) for e in value.elts if isinstance(e, ast.Constant)}
    return names, labels


def promql_names(expr: str) -> tuple[set[str], set[str]]:
    """The metric names and label names a PromQL expression refers to (a small tokenizer, enough
    for rules: strings, matchers, grouping clauses and ranges removed, then functions)."""
    labels: set[str] = set()
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    for inner in re.findall(r"\{([^}]*)\}", text):
        labels |= set(re.findall(r"([A-Za-z_]\w*)\s*(?:=~|!~|!=|=)", inner))
    text = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", text)
    clause = r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)"
    for inner in re.findall(clause, text):
        labels |= {w.strip() for w in inner.split(",") if w.strip()}
    text = re.sub(clause, " ", text)
    text = re.sub(r"\b(?:group_left|group_right)\b", " ", text)
    tokens = re.findall(r"(?<![\w.:])([A-Za-z_:][\w:]*)(\s*\()?", text)
    names = {t for t, call in tokens if not call and t.lower() not in PROMQL_WORDS}
    return names, labels


def test_promtool_checks_pass() -> None:
    """check config (both stacks), check rules, test rules: all through the script CI runs."""
    proc = subprocess.run(
        ["bash", str(ROOT / "scripts/prometheus-check.sh")],
        capture_output=True,
        text=True,
        timeout=900,  # a first run installs Debian's prometheus package
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "prometheus-check: OK" in proc.stdout
    assert "FAILED" not in proc.stdout + proc.stderr
    for name in (*CONFIGS, *RULE_FILES):
        assert name.split("/")[-1] in proc.stdout


def test_every_alert_has_firing_and_quiet_unit_tests() -> None:
    alerts = {r["alert"] for r in _rules("rules/alerts.yml")}
    assert len(alerts) >= 5
    firing: set[str] = set()
    quiet: set[str] = set()
    for path, test in _unit_tests():
        for case in test.get("alert_rule_test", []):
            name = case["alertname"]
            assert name in alerts, f"{path.name}: unknown alert {name}"
            (firing if case.get("exp_alerts") else quiet).add(name)
            for alert in case.get("exp_alerts") or []:
                # the whole alert is checked: its severity and its rendered annotations
                assert alert["exp_labels"]["severity"] in ("critical", "warning")
                assert set(alert["exp_annotations"]) == {"summary", "description"}
    assert alerts - firing == set(), "alerts without a firing case"
    assert alerts - quiet == set(), "alerts without a not-firing case"


def test_every_recording_rule_has_a_value_test() -> None:
    records = {r["record"] for r in _rules("rules/recording.yml")}
    tested = {
        name
        for _, test in _unit_tests()
        for case in test.get("promql_expr_test", [])
        for name in promql_names(case["expr"])[0]
    }
    assert records - tested == set()


def test_rules_are_well_formed() -> None:
    for rule in _rules("rules/alerts.yml"):
        assert rule["labels"]["severity"] in ("critical", "warning"), rule["alert"]
        assert {"summary", "description"} <= set(rule["annotations"]), rule["alert"]
        assert re.fullmatch(r"\d+[sm]", rule["for"]), rule["alert"]
        assert rule["alert"].startswith("Flightdelay")
    for rule in _rules("rules/recording.yml"):
        assert re.fullmatch(r"[a-z_]+:[a-z0-9_]+:[a-z0-9_]+", rule["record"]), rule["record"]
    for path in PROM.glob("tests/*.yml"):
        files = _yaml(path)["rule_files"]
        assert all((path.parent / f).resolve().is_file() for f in files), path.name
        assert "../rules/recording.yml" in files, path.name


def test_rules_use_only_exported_metrics_and_labels() -> None:
    exported, labels = exported_metrics(METRICS_PY.read_text())
    # the module's families, as the API's /metrics names them
    assert {"http_requests_total", "http_request_duration_seconds_bucket"} <= exported
    assert {"model_version", "predictions_total", "model_loads_total"} <= exported
    assert {"method", "route", "status", "model_version"} <= labels
    records = {r["record"] for r in _rules("rules/recording.yml")}
    known_labels = labels | MLFLOW_LABELS | TARGET_LABELS
    for rule in _rules("rules/recording.yml") + _rules("rules/alerts.yml"):
        names, used_labels = promql_names(rule["expr"])
        assert names, rule
        for name in names - records - exported - STANDARD - MLFLOW:
            assert name.startswith(STANDARD_PREFIXES), f"{name} is exported by nothing"
        assert used_labels <= known_labels, (rule, used_labels - known_labels)


def test_the_promql_tokenizer() -> None:
    expr = (
        'sum by (job, route) (rate(http_requests_total{status=~"5..", route!="/ready"}[5m]))'
        ' / on (job) group_left count_values("version", model_version > 0) unless up == bool 1'
    )
    assert promql_names(expr) == (
        {"http_requests_total", "model_version", "up"},
        {"job", "route", "status"},
    )


def test_mlflow_exporter_names() -> None:
    """MLFLOW above holds while mlflow keeps the exporter's prefix (read, not imported)."""
    spec = importlib.util.find_spec("mlflow")
    if spec is None or spec.origin is None:
        pytest.skip("mlflow is not installed")
    exporter = Path(spec.origin).parent / "server/prometheus_exporter.py"
    text = exporter.read_text()
    assert 'defaults_prefix="mlflow"' in text and "export_defaults=True" in text


def _port_defaults() -> dict[str, Any]:
    return {n: f.default for n, f in StackSettings.model_fields.items() if n.endswith("_port")}


def test_native_targets_are_the_stack_defaults() -> None:
    config = _yaml(PROM / "prometheus.yml")
    jobs = {j["job_name"]: j for j in config["scrape_configs"]}
    assert set(jobs) == {"api", "mlflow", "prometheus"}
    replica_ports = StackSettings.model_fields["api_replica_ports"].default.split(",")
    groups = jobs["api"]["static_configs"]
    assert [g["targets"] for g in groups] == [[f"127.0.0.1:{p}"] for p in replica_ports]
    assert [g["labels"]["replica"] for g in groups] == [
        f"api{i}" for i in range(1, len(replica_ports) + 1)
    ]
    mlflow_port = StackSettings.model_fields["mlflow_port"].default
    assert jobs["mlflow"]["static_configs"] == [{"targets": [f"127.0.0.1:{mlflow_port}"]}]
    # Prometheus' own port is PROMETHEUS_PORT, and no other default is
    own = int(jobs["prometheus"]["static_configs"][0]["targets"][0].rsplit(":", 1)[1])
    defaults = _port_defaults()
    assert own == defaults.pop("prometheus_port")
    taken = {int(p) for p in defaults.values()} | {int(p) for p in replica_ports}
    seaweed = StackSettings.model_fields["seaweed_base_port"].default
    taken |= set(range(seaweed, seaweed + 10))
    assert own not in taken
    assert jobs["mlflow"]["basic_auth"] == {
        "username": StackSettings.model_fields["mlflow_tracking_username"].default,
        "password_file": "mlflow.password",  # next to the config, 0600 (the stack writes it)
    }


def test_the_committed_configs_are_the_stacks_own() -> None:
    """`flightdelay stack compose` renders both from the spec: the native one at the default
    settings (the stack writes the same text with its own into STACK_DIR/prometheus/)."""
    from flightdelay.stack.backends.compose import render

    files = render("flightdelay")
    for name in CONFIGS:
        assert files[f"deploy/prometheus/{name}"][0] == (PROM / name).read_text(), name


def _compose_port(service: dict[str, Any]) -> int:
    command = service["command"]
    return int(command[command.index("--port") + 1])


def test_compose_targets_are_the_compose_services() -> None:
    compose = _yaml(ROOT / "docker-compose.yaml")["services"]
    config = _yaml(PROM / "prometheus.compose.yml")
    jobs = {j["job_name"]: j for j in config["scrape_configs"]}
    assert set(jobs) == {"api", "mlflow", "prometheus"}
    [dns] = jobs["api"]["dns_sd_configs"]
    assert dns["names"] == ["api"] and dns["type"] == "A"
    assert dns["port"] == _compose_port(compose["api"])
    mlflow = f"mlflow:{_compose_port(compose['mlflow'])}"
    assert jobs["mlflow"]["static_configs"] == [{"targets": [mlflow]}]


@pytest.mark.parametrize("name", CONFIGS)
def test_configs_scrape_every_5s_and_load_the_rules(name: str) -> None:
    config = _yaml(PROM / name)
    assert config["global"]["scrape_interval"] == "5s"
    assert config["global"]["evaluation_interval"] == "5s"
    assert config["rule_files"] == list(RULE_FILES)
    for job in config["scrape_configs"]:  # Prometheus itself serves under /prometheus/
        own = "/prometheus/metrics" if job["job_name"] == "prometheus" else "/metrics"
        assert job.get("metrics_path", "/metrics") == own
