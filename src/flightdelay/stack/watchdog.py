"""The replicas' watchdog, a supervisord program of the native stack: every second it asks each
API replica's /health (1 s timeout); a replica that supervisord counts as RUNNING but that has
not answered for WATCHDOG_SECONDS (10) is hung (SIGSTOP, a deadlock, a stuck event loop), and
gets SIGKILL to its process group: supervisord then restarts it (autorestart). nginx has already
failed over from it by then (its timeouts and max_fails).

Run as `python -m flightdelay.stack.watchdog`, configured by its environment:
WATCHDOG_TARGETS=api1=18001,api2=18002 and SUPERVISOR_SOCKET (supervisord's unix socket).
Standard library only, so it starts in a fraction of a second and stays small.
"""

from __future__ import annotations

import contextlib
import http.client
import logging
import os
import signal
import time
import xmlrpc.client
from typing import Any

log = logging.getLogger("flightdelay.watchdog")


def answers(port: int, timeout: float = 1.0) -> bool:
    """Whether GET /health on 127.0.0.1:`port` answers (any status) within `timeout`."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", "/health")
        conn.getresponse().read()
        return True
    except OSError:
        return False
    finally:
        conn.close()


def _rpc(socket_path: str) -> Any:
    from supervisor.xmlrpc import SupervisorTransport

    transport = SupervisorTransport(None, None, f"unix://{socket_path}")
    return xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport).supervisor


def parse_targets(raw: str) -> dict[str, int]:
    """`api1=18001,api2=18002` -> {"api1": 18001, "api2": 18002}."""
    pairs = (item.split("=", 1) for item in raw.split(",") if "=" in item)
    return {name.strip(): int(port) for name, port in pairs}


class Watch:
    """Since when each replica (by its current pid) has not answered."""

    def __init__(self, limit: float) -> None:
        self.limit = limit
        self.silent_since: dict[tuple[str, int], float] = {}

    def hung(self, name: str, pid: int, ok: bool, now: float) -> bool:
        """Record one probe; True once `name` (pid `pid`) has been silent for `limit` s."""
        key = (name, pid)
        if ok or not pid:
            self.silent_since.pop(key, None)
            return False
        since = self.silent_since.setdefault(key, now)
        return now - since >= self.limit


def _kill(name: str, pid: int, silent: float) -> None:
    log.warning("%s (pid %d) has not answered /health for %.0f s: killing it", name, pid, silent)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)  # supervisord starts each program in its own group


def check_once(rpc: Any, targets: dict[str, int], watch: Watch) -> None:
    """One round of probes; kills what has been hung for too long."""
    now = time.monotonic()
    for name, port in targets.items():
        try:
            info = rpc.getProcessInfo(name)
        except (OSError, xmlrpc.client.Error):
            continue
        pid = int(info.get("pid") or 0) if info.get("statename") == "RUNNING" else 0
        ok = bool(pid) and answers(port)
        if watch.hung(name, pid, ok, now):
            _kill(name, pid, now - watch.silent_since[(name, pid)])
            watch.silent_since.pop((name, pid), None)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    targets = parse_targets(os.environ["WATCHDOG_TARGETS"])
    limit = float(os.environ.get("WATCHDOG_SECONDS", "10"))
    rpc, watch = _rpc(os.environ["SUPERVISOR_SOCKET"]), Watch(limit)
    log.info("watching %s (restart after %.0f s without an answer)", targets, limit)
    while True:
        check_once(rpc, targets, watch)
        time.sleep(1)


if __name__ == "__main__":
    main()
