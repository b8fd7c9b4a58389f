"""Injected faults on a real native stack, each recovered by the project's own commands and
reported in one line naming the failing service or variable. Tests run in file order: the bad
settings first (the running stack must stay untouched), then the replica faults under load, then
supervisord's death, then down/up. Every test checks that no row, version or alias was lost."""

from __future__ import annotations

import os
import re
import signal
import socket
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from flightdelay.core.config import StackSettings
from flightdelay.stack import manager, procs
from flightdelay.stack.clients import pg_connect
from tests.faults.conftest import FAULT_ENV, fd, wait_ready
from tests.faults.helpers import load, supervisorctl, wait_both_serve

pytestmark = [pytest.mark.stack, pytest.mark.faults]
ROOT_DIR = FAULT_ENV["STACK_DIR"]
PROBE_ROWS = 1000


def pids(settings: StackSettings) -> dict[str, int]:
    return manager.service_pids(settings)


def data_state(settings: StackSettings) -> tuple[int, list[str], int]:
    """(rows of the probe table, aliases of the tiny model, its versions): must never change."""
    conn = pg_connect(settings, settings.postgres_features_db)
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS fault_probe (i int)")
        cur.execute("SELECT count(*) FROM fault_probe")
        if cur.fetchone()[0] == 0:
            cur.execute("INSERT INTO fault_probe SELECT generate_series(1, %s)", (PROBE_ROWS,))
        cur.execute("SELECT count(*) FROM fault_probe")
        rows = int(cur.fetchone()[0])
    conn.close()
    auth = (settings.mlflow_tracking_username, settings.mlflow_tracking_password.get_secret_value())
    base = f"http://127.0.0.1:{settings.nginx_mlflow_port}/api/2.0/mlflow"
    model = httpx.get(f"{base}/registered-models/get", params={"name": "tiny"}, auth=auth).json()
    versions = httpx.get(
        f"{base}/model-versions/search", params={"filter": "name='tiny'"}, auth=auth
    ).json()
    aliases = sorted(a["alias"] for a in model["registered_model"].get("aliases", []))
    return rows, aliases, len(versions["model_versions"])


@pytest.fixture(scope="module")
def baseline(fault_stack: StackSettings) -> tuple[int, list[str], int]:
    state = data_state(fault_stack)
    assert state == (PROBE_ROWS, ["champion"], 1)
    return state


def refused(**bad: str) -> str:
    """`stack up` with `bad` settings: exit 1, one line on stderr; returns that line."""
    t0 = time.monotonic()
    proc = fd("stack", "up", check=False, **bad)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert time.monotonic() - t0 < 60
    print(f"refused in {time.monotonic() - t0:.1f} s: {lines[0]}")
    return lines[0]


def test_taken_port_is_named_and_the_running_stack_untouched(
    fault_stack: StackSettings, baseline: tuple[int, list[str], int]
) -> None:
    before = pids(fault_stack)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 28090))
        taken.listen()
        line = refused(NGINX_HTTP_PORT="28090", MLFLOW_PORT="28001")
    assert "port 28090 (NGINX_HTTP_PORT) is taken by pid" in line, line
    assert "port 28001 is used by MLFLOW_PORT and API_REPLICA_PORTS" in line, line
    assert pids(fault_stack) == before and data_state(fault_stack) == baseline


def test_empty_or_placeholder_secret_is_refused(
    fault_stack: StackSettings, baseline: tuple[int, list[str], int]
) -> None:
    before = pids(fault_stack)
    line = refused(POSTGRES_PASSWORD="", API_TOKEN="change-me-api-token")
    assert "POSTGRES_PASSWORD is empty" in line and "API_TOKEN is a placeholder" in line, line
    assert pids(fault_stack) == before and data_state(fault_stack) == baseline


def test_malformed_database_url_is_named_masked(
    fault_stack: StackSettings, baseline: tuple[int, list[str], int]
) -> None:
    before = pids(fault_stack)
    line = refused(DATABASE_URL="postgresql+psycopg2://postgres:pg-fault-secret@127.0.0.1:x/f")
    assert "DATABASE_URL=postgresql+psycopg2://postgres:***@127.0.0.1:x/f" in line, line
    assert "pg-fault-secret" not in line
    bad_type = refused(POSTGRES_PORT="not-a-port")
    assert bad_type.startswith("error: invalid settings: POSTGRES_PORT='not-a-port'"), bad_type
    assert pids(fault_stack) == before and data_state(fault_stack) == baseline


def wait_new_pid(settings: StackSettings, name: str, old: int, timeout: float) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        pid = pids(settings).get(name, 0)
        if pid and pid != old:
            return time.monotonic() - t0
        time.sleep(0.2)
    raise AssertionError(f"{name} was not restarted within {timeout:.0f} s")


def signal_under_load(
    settings: StackSettings, replica: str, port: int, sig: signal.Signals, timeout: float
) -> tuple[Any, float, float]:
    """Send `sig` to `replica` while the bounded load runs; wait until it is replaced and ready
    again -> (the load's results, when the signal went, seconds until the new process)."""
    wait_both_serve(settings)
    old = pids(settings)[replica]
    with load(settings) as running:
        os.kill(old, sig)
        t_signal = time.monotonic()
        restarted = wait_new_pid(settings, replica, old, timeout)
        wait_ready(port)
        time.sleep(1)
    return running, t_signal, restarted


def test_hung_replica_fails_over_within_2s_and_the_watchdog_restarts_it(
    fault_stack: StackSettings, baseline: tuple[int, list[str], int]
) -> None:
    running, t_stop, restarted = signal_under_load(fault_stack, "api1", 28001, signal.SIGSTOP, 30)
    during = [r for r in running.results if r[0] >= t_stop]
    assert running.failed() == [] and len(during) > 20
    assert max(r[1] for r in during) < 2.0, max(r[1] for r in during)
    assert 9 <= restarted <= 20, restarted  # WATCHDOG_SECONDS = 10, plus one probe round
    worst = max(r[1] for r in during)
    print(f"SIGSTOP api1: {len(during)} requests, 0 failed, slowest {worst:.2f} s, restarted")
    print(f"  by the watchdog after {restarted:.1f} s")
    assert data_state(fault_stack) == baseline


def test_killed_replica_under_load_loses_no_request(
    fault_stack: StackSettings, baseline: tuple[int, list[str], int]
) -> None:
    running, _, back = signal_under_load(fault_stack, "api2", 28002, signal.SIGKILL, 15)
    assert running.failed() == [] and len(running.results) > 20
    assert data_state(fault_stack) == baseline
    worst = max(r[1] for r in running.results)
    print(f"SIGKILL api2: {len(running.results)} requests, 0 failed, slowest {worst:.2f} s,")
    print(f"  restarted by supervisord after {back:.1f} s")


def test_postgres_down_is_named_by_doctor_and_up_recovers(
    fault_stack: StackSettings, baseline: tuple[int, list[str], int]
) -> None:
    """MLflow's /health says 200 without Postgres; its health check here (a REST call that
    needs the backend store) and `stack doctor` name Postgres."""
    from flightdelay.stack.spec import MLFLOW_PROBE

    supervisorctl("stop", "postgres")
    t0 = time.monotonic()
    doctor = fd("stack", "doctor", check=False)
    took = time.monotonic() - t0
    line = next(ln for ln in doctor.stdout.splitlines() if "mlflow with credentials" in ln)
    assert doctor.returncode == 1 and line.startswith("FAIL"), doctor.stdout
    assert f"Postgres 127.0.0.1:{fault_stack.postgres_port}, is down" in line, line
    probe = httpx.get(f"http://127.0.0.1:{fault_stack.mlflow_port}{MLFLOW_PROBE}", timeout=10)
    assert probe.status_code != 200
    t0 = time.monotonic()
    fd("stack", "up")
    print(
        f"postgres down: doctor named it in {took:.1f} s; stack up recovered in"
        f" {time.monotonic() - t0:.1f} s: {line}"
    )
    assert data_state(fault_stack) == baseline


def _kill_supervisord() -> int:
    pid = int(Path(ROOT_DIR, "supervisord.pid").read_text().strip())
    os.kill(pid, signal.SIGKILL)
    time.sleep(0.5)
    return pid


def test_sigkill_of_supervisord_then_status_up_and_down(
    fault_stack: StackSettings, baseline: tuple[int, list[str], int]
) -> None:
    _kill_supervisord()
    status = fd("stack", "status", check=False)
    assert status.returncode == 3, status.stdout
    assert re.search(r"^postgres +ORPHANED$", status.stdout, re.M), status.stdout
    t0 = time.monotonic()
    fd("stack", "up")  # no manual step: the orphans are stopped and started again
    up_s = time.monotonic() - t0
    assert all(" RUNNING" in ln for ln in fd("stack", "status").stdout.splitlines())
    for port in (28001, 28002):
        wait_ready(port)
    assert data_state(fault_stack) == baseline
    _kill_supervisord()
    t0 = time.monotonic()
    out = fd("stack", "down").stdout
    down_s = time.monotonic() - t0
    assert "stopped processes supervisord no longer ran" in out and "postgres" in out, out
    assert procs.stack_processes(Path(ROOT_DIR)) == []
    assert fd("stack", "status", check=False).stdout.strip() == "stack is down"
    print(f"after SIGKILL of supervisord: stack up {up_s:.1f} s, stack down {down_s:.1f} s")


def test_down_then_up_keeps_every_row_version_and_alias(
    fault_stack: StackSettings, baseline: tuple[int, list[str], int]
) -> None:
    fd("stack", "down", POSTGRES_PORT="not-a-port")  # down needs only STACK_DIR
    assert procs.stack_processes(Path(ROOT_DIR)) == []
    t0 = time.monotonic()
    fd("stack", "up")
    for port in (28001, 28002):
        wait_ready(port)
    assert data_state(fault_stack) == baseline
    print(f"down/up: serving again after {time.monotonic() - t0:.1f} s, nothing lost")
