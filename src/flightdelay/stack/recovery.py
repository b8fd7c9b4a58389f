"""Recovery from a supervisord that died (SIGKILL, OOM): its programs run on as orphans, holding
the stack's ports. `stack up` stops them cleanly (each program's own stop signal, so Postgres
shuts down fast and checkpoints) and starts everything again under a fresh supervisord;
`stack down` stops them; `stack status` shows them as ORPHANED."""

from __future__ import annotations

import logging

from flightdelay.core.errors import UserError
from flightdelay.stack import procs
from flightdelay.stack.backends import supervisor
from flightdelay.stack.layout import Layout

log = logging.getLogger(__name__)


def orphans(layout: Layout) -> list[procs.Proc]:
    """Processes of this stack that no live supervisord of it runs (supervisord itself aside)."""
    found = procs.stack_processes(layout.root)
    sup = supervisor.supervisord_pid(layout)
    managed = procs.descendants(found, sup) | {sup} if sup else set()
    return [p for p in found if p.pid not in managed and p.service != "supervisord"]


def _stop(layout: Layout, found: list[procs.Proc]) -> None:
    left = procs.stop(found, procs.stop_signals(layout.supervisor_conf))
    if left:
        raise UserError(f"could not stop processes of this stack: {procs.describe(left)}")


def clean_stale(layout: Layout) -> None:
    """Remove the pid file and socket a dead supervisord left behind."""
    if not supervisor.running(layout):
        for name in ("supervisord.pid", "supervisor.sock"):
            (layout.root / name).unlink(missing_ok=True)


def take_over(layout: Layout) -> list[procs.Proc]:
    """Stop the orphans (if any), so `stack up` can start every service under supervisord;
    returns what was stopped."""
    found = orphans(layout)
    if found:
        log.warning(
            "supervisord of this stack is gone but its programs still run: %s;"
            " stopping them to restart them under a new supervisord",
            procs.describe(found),
        )
        _stop(layout, found)
    clean_stale(layout)
    return found


def stop_everything(layout: Layout) -> list[procs.Proc]:
    """After supervisord's own shutdown: stop whatever process of this stack still runs (a
    crashed supervisord's orphans, a stray child, a supervisord that did not exit)."""
    found = procs.stack_processes(layout.root)
    if found:
        log.warning("stopping processes of this stack: %s", procs.describe(found))
        _stop(layout, found)
    clean_stale(layout)
    return found
