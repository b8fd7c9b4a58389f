"""The registry under the serving fleet: an alias moved by `flightdelay promote` under load
(every replica follows within API_POLL_SECONDS, no request fails), then `flightdelay rollback`;
MLflow down while /predict is under load (the replicas serve from memory) and, after `stack up`,
the fleet following the registry again."""

from __future__ import annotations

import re
import time
from pathlib import Path

import httpx
import pytest

from flightdelay.core.config import StackSettings
from tests.faults.conftest import FAULT_ENV, fd, register_tiny_version, stage, start
from tests.faults.helpers import (
    REPLICAS,
    kept,
    load,
    registry,
    served_versions,
    supervisorctl,
    until,
    wait_both_serve,
    wait_served,
)

pytestmark = [pytest.mark.stack, pytest.mark.faults]
POLL_SECONDS = float(FAULT_ENV["API_POLL_SECONDS"])


@pytest.fixture(scope="module")
def second(fault_stack: StackSettings) -> int:
    """A second tiny version (other weights: other answers, same inputs), no alias."""
    return register_tiny_version(fault_stack, 0.01, None)


def test_alias_move_under_load_then_rollback(
    fault_stack: StackSettings, project: Path, second: int
) -> None:
    wait_both_serve(fault_stack)
    before = registry(fault_stack)
    old, new = before.aliases["champion"], second
    # tiny versions carry no input-schema tag (the conftest registers them directly), so
    # promote cannot tell their inputs are the same: the flag says so
    promote = ("promote", str(new), "--reason", "fault suite: alias move under load")
    with load(fault_stack, workers=2, pause=0.02) as running:
        proc = start(fault_stack, *promote, "--allow-schema-change")
        try:
            until(lambda: registry(fault_stack).aliases["champion"] == new, 60, "@champion moving")
            converged = wait_served(new, POLL_SECONDS + 20)
            assert proc.wait(timeout=60) == 0
        finally:
            proc.kill()
        time.sleep(0.5)
    seen = [v for _, v in running.versions]
    assert running.failed() == [] and len(running.results) > 20, running.failed()[:5]
    assert set(seen) == {old, new} and seen[-1] == new, set(seen)
    # one poll, then the download and load of the version (seconds on this loaded machine)
    assert converged <= POLL_SECONDS + 15, converged
    moved = registry(fault_stack)
    assert moved.aliases["champion"] == new and moved.versions[new]["champion.previous"] == str(old)
    kept(before, moved)
    _, took = stage(fault_stack, "rollback", "--reason", "fault suite: back")
    back = wait_served(old, POLL_SECONDS + 20)
    after = registry(fault_stack)
    assert after.aliases["champion"] == old and after.aliases.get("serving") == old
    kept(before, after)
    print(f"alias move under load: {len(running.results)} requests, 0 failed, answers from v{old}")
    print(f"  and v{new}; every replica on v{new} {converged:.1f} s after the alias moved")
    print(
        f"  (API_POLL_SECONDS={POLL_SECONDS:g}); rollback {took:.1f} s, served {back:.1f} s later"
    )


def _ready() -> dict[int, int]:
    return {p: httpx.get(f"http://127.0.0.1:{p}/ready", timeout=5).status_code for p in REPLICAS}


def test_mlflow_down_under_load_serves_from_memory_then_up_recovers(
    fault_stack: StackSettings, project: Path, second: int
) -> None:
    wait_both_serve(fault_stack)
    before, serving = registry(fault_stack), served_versions()
    with load(fault_stack) as running:
        supervisorctl("stop", "mlflow")
        t_down = time.monotonic()
        ready = []
        while time.monotonic() - t_down < 5:  # past two alias polls that fail
            ready.append(_ready())
            time.sleep(0.5)
    during = [r for r in running.results if r[0] >= t_down]
    status = fd("stack", "status", check=False)
    t0 = time.monotonic()
    fd("stack", "up")
    up_s = time.monotonic() - t0
    assert running.failed() == [] and len(during) > 20, running.failed()[:5]
    assert all(r == {p: 200 for p in REPLICAS} for r in ready), ready
    assert status.returncode == 3, status.stdout
    assert re.search(r"^mlflow +STOPPED$", status.stdout, re.M), status.stdout
    assert served_versions() == serving
    kept(before, registry(fault_stack))
    assert registry(fault_stack).aliases == before.aliases
    print(f"MLflow down under load: {len(during)} requests, 0 failed, /ready 200 throughout;")
    print(f"  `stack status` names it STOPPED; stack up {up_s:.1f} s, still v{serving}")
    # recovered means the fleet follows the registry again: an alias poll that was retrying
    # against the dead MLflow must not hold the next move back
    reason = "fault suite: after the MLflow outage"
    stage(fault_stack, "promote", str(second), "--reason", reason, "--allow-schema-change")
    follows = wait_served(second, POLL_SECONDS + 15)
    print(f"  after stack up, a promote reached every replica in {follows:.1f} s")
