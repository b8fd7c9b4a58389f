"""Prometheus in the native stack, through nginx with basic auth: it scrapes every API replica
and MLflow (signed in), loads deploy/prometheus's rules, and a stopped replica's alert shows up
in its API."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from flightdelay.core.config import StackSettings
from flightdelay.stack import manager

pytestmark = pytest.mark.stack
ALERT_WAIT_S = 60  # one failed scrape (5 s) + one rule evaluation (5 s), with room for a busy CI
FIRING_WAIT_S = 100  # pending + the alert's `for: 1m` + an evaluation, with room for a busy CI


def _login(s: StackSettings) -> tuple[str, str]:
    return s.mlflow_tracking_username, s.mlflow_tracking_password.get_secret_value()


def prom(s: StackSettings, path: str, **params: str) -> Any:
    url = f"http://127.0.0.1:{s.nginx_mlflow_port}/prometheus/api/v1/{path}"
    r = httpx.get(url, params=params, auth=_login(s), timeout=10)
    assert r.status_code == 200, r.text[:300]
    return r.json()["data"]


def _until(what: str, check: Any, seconds: float) -> Any:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        found = check()
        if found:
            return found
        time.sleep(1)
    raise AssertionError(f"{what} not within {seconds:.0f} s")


def test_prometheus_behind_nginx_with_basic_auth(stack: StackSettings) -> None:
    base = f"http://127.0.0.1:{stack.nginx_mlflow_port}/prometheus"
    assert httpx.get(f"{base}/-/ready", timeout=5).status_code == 401
    wrong = (stack.mlflow_tracking_username, "not-the-password")
    assert httpx.get(f"{base}/api/v1/targets", auth=wrong, timeout=5).status_code == 401
    ui = httpx.get(f"{base}/graph", auth=_login(stack), timeout=5, follow_redirects=True)
    assert ui.status_code == 200 and "Prometheus" in ui.text
    assert str(ui.url).startswith(f"{base}/"), ui.url  # its links stay behind nginx
    # bound to loopback, served under the route prefix only
    assert httpx.get(f"http://127.0.0.1:{stack.prometheus_port}/-/ready").status_code == 404


def test_every_replica_and_mlflow_are_scraped_and_the_rules_loaded(stack: StackSettings) -> None:
    def all_up() -> list[dict[str, Any]]:
        targets = prom(stack, "targets", state="active")["activeTargets"]
        ok = all(t["health"] == "up" for t in targets) and len(targets) == 4
        return targets if ok else []

    targets = _until("every target up", all_up, 30)
    replicas = sorted(
        t["labels"].get("replica", "") for t in targets if t["labels"]["job"] == "api"
    )
    assert replicas == ["api1", "api2"]
    assert {t["labels"]["job"] for t in targets} == {"api", "mlflow", "prometheus"}
    mlflow = _until(
        "MLflow's request counter",
        lambda: prom(stack, "query", query="mlflow_http_request_total")["result"],
        30,
    )
    assert mlflow, "MLflow's /metrics (signed scrape) holds no series"
    alerts = {
        r["name"]
        for g in prom(stack, "rules")["groups"]
        for r in g["rules"]
        if "alert" in r["type"]
    }
    assert "FlightdelayApiReplicaDown" in alerts and len(alerts) == 7


def _replica_alert(stack: StackSettings, replica: str) -> dict[str, Any] | None:
    for alert in prom(stack, "alerts")["alerts"]:
        labels = alert["labels"]
        if labels["alertname"] == "FlightdelayApiReplicaDown" and labels["replica"] == replica:
            return alert  # type: ignore[no-any-return]
    return None


def test_a_stopped_replica_raises_its_alert(stack: StackSettings) -> None:
    """api2 stopped (supervisorctl, through the manager): FlightdelayApiReplicaDown for api2 is
    pending after the next scrape and rule evaluation, and firing once its `for: 1m` passed."""
    _until("api2 scraped", lambda: _replica_alert(stack, "api2") is None, 30)
    manager.control(stack, "stop", "api2")
    t0 = time.monotonic()
    try:
        alert = _until("the api2 alert", lambda: _replica_alert(stack, "api2"), ALERT_WAIT_S)
        seen = time.monotonic() - t0
        assert alert["state"] in ("pending", "firing"), alert
        assert alert["labels"]["severity"] == "critical"
        assert _replica_alert(stack, "api1") is None
        print(f"FlightdelayApiReplicaDown {alert['state']} {seen:.1f} s after api2 stopped")
        firing = _until(
            "the api2 alert firing",
            lambda: (a := _replica_alert(stack, "api2")) is not None and a["state"] == "firing",
            FIRING_WAIT_S,
        )
        assert firing
        print(f"FlightdelayApiReplicaDown firing {time.monotonic() - t0:.1f} s after api2 stopped")
    finally:
        manager.control(stack, "start", "api2")
    _until("the alert gone", lambda: _replica_alert(stack, "api2") is None, ALERT_WAIT_S)
