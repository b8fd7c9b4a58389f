"""Counters across the workers of one server (`API_WORKERS > 1`).

uvicorn's `--workers N` runs N processes behind one port, so a scrape reaches one of them; on
its own each would report only its share. Each worker therefore writes a snapshot of its
counters every :data:`FLUSH_SECONDS` (and when it stops) to a directory that belongs to the
server (named after uvicorn's supervisor process, the workers' common parent), and the worker
that is scraped adds the other workers' latest snapshots to its own live numbers. A dead
worker's last snapshot stays, so the sums never go down when uvicorn replaces a worker. This is
what Prometheus' multiprocess mode does with mmap files; the service's counters are plain dicts
(see :mod:`flightdelay.serving.metrics`), so they are shared as small JSON files instead. A
single-process server (no parent process from `multiprocessing`) shares nothing.

`API_METRICS_DIR` sets where the directories go (default: the temp directory).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

FLUSH_SECONDS = 1.0
Snapshot = dict[str, Any]


class WorkerShare:
    """This worker's snapshot file and its siblings' in `directory`."""

    def __init__(self, directory: Path, pid: int) -> None:
        self.directory, self.pid = directory, pid
        self.path = directory / f"{pid}.json"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def for_this_process(cls) -> WorkerShare | None:
        """The share of this uvicorn worker, or None when the server runs in one process."""
        parent = multiprocessing.parent_process()
        if parent is None or parent.pid is None:
            return None
        base = Path(os.environ.get("API_METRICS_DIR") or tempfile.gettempdir())
        directory = base / f"flightdelay-metrics-{parent.pid}"
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        return cls(directory, os.getpid())

    def write(self, snapshot: Snapshot) -> None:
        """Replace this worker's file with `snapshot` (atomically: readers see old or new)."""
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(snapshot))
        os.replace(tmp, self.path)

    def others(self) -> list[Snapshot]:
        """The latest snapshot of every other worker this server has had (dead ones too)."""
        found = []
        for path in self.directory.glob("*.json"):
            if path != self.path:
                try:
                    found.append(json.loads(path.read_text()))
                except (OSError, ValueError):  # replaced while reading: next scrape has it
                    continue
        return found

    def start(self, snapshot: Callable[[], Snapshot]) -> None:
        """Write `snapshot()` every FLUSH_SECONDS from a daemon thread until :meth:`stop`."""

        def run() -> None:
            while not self._stop.wait(FLUSH_SECONDS):
                self.write(snapshot())

        self._thread = threading.Thread(target=run, name="metrics-share", daemon=True)
        self._thread.start()

    def stop(self, snapshot: Callable[[], Snapshot]) -> None:
        """Stop the thread and write the final numbers."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.write(snapshot())
