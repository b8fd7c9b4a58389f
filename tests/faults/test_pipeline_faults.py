"""Pipeline stages killed or starved on the fault stack: SIGKILL of `load` mid-COPY, S3 down
during `train`, SIGKILL of `register` midway. Each is recovered by re-running the stage (and
`stack up`), and loses no row, version or alias. Tests run in file order (each stage feeds the
next: the loaded tables -> the splits -> the trained run -> its registered version)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from flightdelay.core.config import StackSettings
from flightdelay.stack.clients import pg_connect
from tests.faults.conftest import PROJECT, fd, stage, start
from tests.faults.helpers import Registry, kept, registry, supervisorctl, until

pytestmark = [pytest.mark.stack, pytest.mark.faults]
LOAD = ("load", "--raw-dir", "raw", "--report", "load_report.json")
FEATURES = ("features", "--out-dir", "processed", "--load-report", "load_report.json")
TRAIN = (
    *("train", "ridge", "--data-dir", "processed", "--metrics-dir", "metrics"),
    *("--plots-dir", "plots", "--runs-dir", "runs"),
)
REGISTER = (
    *("register", "--runs-dir", "runs", "--test", "processed/test.parquet"),
    *("--out", "registry.json", "--marker", "registered.json"),
)


def tables(settings: StackSettings) -> dict[str, int]:
    """Every table of the feature database and its rows."""
    conn = pg_connect(settings, settings.postgres_features_db)
    with conn.cursor() as cur:
        cur.execute("SET statement_timeout = '20s'")
        cur.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")
        names = [r[0] for r in cur.fetchall()]
        counts = {}
        for name in names:
            cur.execute(f'SELECT count(*) FROM "{name}"')
            counts[name] = int(cur.fetchone()[0])
    conn.close()
    return counts


def backends(settings: StackSettings, like: str) -> list[int]:
    """Server pids of the feature database's sessions whose query matches `like`."""
    conn = pg_connect(settings, "postgres")
    with conn.cursor() as cur:
        cur.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND query ILIKE %s"
            " AND pid <> pg_backend_pid()",
            (settings.postgres_features_db, like),
        )
        found = [int(r[0]) for r in cur.fetchall()]
    conn.close()
    return found


def killed(proc: subprocess.Popen[str]) -> None:
    """SIGKILL `proc`, which must still be running."""
    assert proc.poll() is None, f"the command ended (status {proc.returncode}) before the kill"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)


@pytest.fixture(scope="module")
def loaded(fault_stack: StackSettings, project: Path) -> dict[str, int]:
    """The previous tables: one complete load, and the feature table with its splits."""
    stage(fault_stack, *LOAD)
    stage(fault_stack, *FEATURES)
    return tables(fault_stack)


def test_sigkill_of_load_mid_copy_keeps_the_previous_tables(
    fault_stack: StackSettings, loaded: dict[str, int]
) -> None:
    assert loaded["flights"] == loaded["flight_features"] == 336_776, loaded
    report = (PROJECT / "load_report.json").read_bytes()
    copy = "COPY %flights%FROM STDIN%"
    proc = start(fault_stack, *LOAD)
    try:
        until(lambda: backends(fault_stack, copy), 60, "COPY into flights")
        killed(proc)
    finally:
        proc.kill()
    gone = until(lambda: not backends(fault_stack, copy), 15, "the killed COPY's session ending")
    assert tables(fault_stack) == loaded  # no half-written table: the transaction rolled back
    assert (PROJECT / "load_report.json").read_bytes() == report
    _, took = stage(fault_stack, *LOAD)
    assert tables(fault_stack) == loaded
    rows = json.loads((PROJECT / "load_report.json").read_text())["tables"]
    assert {name: t["rows"] for name, t in rows.items()} == {n: loaded[n] for n in rows}
    print(f"SIGKILL load mid-COPY: session gone {gone:.1f} s later, tables intact; re-run load")
    print(f"  {took:.1f} s")


def test_s3_down_during_train_is_one_line_and_stack_up_recovers(
    fault_stack: StackSettings, loaded: dict[str, int]
) -> None:
    before = registry(fault_stack)
    supervisorctl("stop", "s3")
    try:
        proc, failed_in = stage(fault_stack, *TRAIN, check=False)
    finally:
        t0 = time.monotonic()
        fd("stack", "up")
        up_s = time.monotonic() - t0
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert proc.returncode == 1 and len(errors) == 1, proc.stderr
    assert "Traceback" not in proc.stderr and proc.stderr.strip().endswith(errors[0])
    uri = f"http://127.0.0.1:{fault_stack.nginx_mlflow_port}"
    assert errors[0].startswith(f"error: MLflow at {uri} answers but could not"), errors
    assert "(S3) is down" in errors[0], errors[0]
    assert failed_in < 60, failed_in
    assert registry(fault_stack) == before and not (PROJECT / "runs/ridge.json").exists()
    _, took = stage(fault_stack, *TRAIN)
    assert (PROJECT / "runs/ridge.json").exists() and registry(fault_stack) == before
    print(f"S3 down during train: failed in {failed_in:.1f} s: {errors[0][:150]}")
    print(f"  stack up {up_s:.1f} s, train again {took:.1f} s")


def _new_version(settings: StackSettings, before: Registry) -> int | None:
    new = set(registry(settings).versions) - set(before.versions)
    return new.pop() if new else None


def test_sigkill_of_register_midway_then_a_rerun_completes_it_once(
    fault_stack: StackSettings, loaded: dict[str, int]
) -> None:
    if not (PROJECT / "runs/ridge.json").exists():
        stage(fault_stack, *TRAIN)
    before = registry(fault_stack)
    proc = start(fault_stack, *REGISTER)
    try:  # killed once its version exists: before the decision's aliases and tags
        until(lambda: _new_version(fault_stack, before), 120, "the new version")
        killed(proc)
    finally:
        proc.kill()
    midway = registry(fault_stack)
    (new,) = set(midway.versions) - set(before.versions)
    assert "decision.action" not in midway.versions[new] and midway.aliases == before.aliases
    assert not (PROJECT / "registry.json").exists()
    _, took = stage(fault_stack, *REGISTER)
    after = registry(fault_stack)
    assert set(after.versions) == set(midway.versions)  # the re-run registered nothing twice
    kept(before, after)
    report = json.loads((PROJECT / "registry.json").read_text())
    decision, tags = report["decision"], after.versions[new]
    record = json.loads((PROJECT / "runs/ridge.json").read_text())
    assert report["candidate"]["version"] == new
    assert tags["decision.action"] == decision["action"] and tags["decision.reason"]
    assert tags["fingerprint"] == record["fingerprint"] and tags["schema.inputs"]
    assert tags["metric.roc_auc"] == str(record["metrics"]["roc_auc"])
    if decision["action"] == "promote":
        assert after.aliases["champion"] == new
    else:  # tiny v1 carries no input schema: the candidate cannot be compared, so challenger
        assert decision["action"] == "challenger" and after.aliases["challenger"] == new
        assert after.aliases["champion"] == before.aliases["champion"]
    print(f"SIGKILL register after v{new} was created: re-run completed it once in {took:.1f} s")
    print(f"  ({decision['action']}: {decision['reason'][:80]})")
