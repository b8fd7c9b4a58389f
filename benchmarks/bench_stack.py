"""Benchmark the native stack: seconds to healthy and resident memory per service.

Starts a throwaway stack from nothing (own state folder and ports; the tools in .stack/tools are
reused), measures, and stops it. Writes reports/bench/stack.json.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from flightdelay.core.config import StackSettings  # noqa: E402
from flightdelay.stack import manager  # noqa: E402
from flightdelay.stack.validate import SECRETS  # noqa: E402

OUT = ROOT / "reports/bench/stack.json"
# below Linux's ephemeral range (32768-60999), away from the defaults and the stack tests' ports
PORTS = {
    "postgres_port": 27432,
    "s3_port": 27333,
    "seaweed_base_port": 27900,
    "mlflow_port": 27000,
    "pgadmin_port": 27050,
    "api_replica_ports": "28001,28002",
    "nginx_http_port": 28080,
    "nginx_https_port": 28443,
    "nginx_mlflow_port": 25080,
    "nginx_pgadmin_port": 25050,
    "nginx_s3_port": 29000,
}


def _tree(pid: int) -> list[int]:
    """`pid` and all its descendants."""
    out = subprocess.run(["ps", "-eo", "pid=,ppid="], capture_output=True, text=True).stdout
    children: dict[int, list[int]] = {}
    for line in out.splitlines():
        p, pp = (int(x) for x in line.split())
        children.setdefault(pp, []).append(p)
    tree, todo = [], [pid]
    while todo:
        p = todo.pop()
        tree.append(p)
        todo += children.get(p, [])
    return tree


def memory_mb(pid: int) -> tuple[float, float]:
    """(RSS, PSS) of a process tree in MB. RSS counts shared pages once per process (Postgres'
    shared buffers, forked workers); PSS splits them, so PSS sums to what the service costs."""
    rss = pss = 0
    for p in _tree(pid):
        try:
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                key, _, rest = line.partition(":")
                if key in ("Rss", "Pss"):
                    kb = int(rest.split()[0])
                    rss, pss = (rss + kb, pss) if key == "Rss" else (rss, pss + kb)
        except OSError:
            continue
    return round(rss / 1024, 1), round(pss / 1024, 1)


def main() -> None:
    os.chdir(ROOT)  # the API replicas run here (params.yaml)
    state = ROOT / ".stack" / "bench"  # git-ignored, like every stack state folder
    fresh = {name: secrets.token_urlsafe(24) for name in SECRETS}  # placeholders are refused
    settings = StackSettings(
        stack_dir=state, stack_tools_dir=ROOT / ".stack" / "tools", **PORTS, **fresh
    )  # type: ignore[arg-type]
    manager.down(settings)
    shutil.rmtree(state, ignore_errors=True)
    t0 = time.monotonic()
    timings = manager.up(settings, configure_dvc=False)
    total = round(time.monotonic() - t0, 1)
    time.sleep(3)  # let the API replicas settle
    pids = manager.service_pids(settings)
    memory = {name: memory_mb(pid) for name, pid in pids.items()}
    t1 = time.monotonic()
    manager.down(settings)
    down_s = round(time.monotonic() - t1, 1)
    t2 = time.monotonic()
    warm = manager.up(settings, configure_dvc=False)
    warm_total = round(time.monotonic() - t2, 1)
    manager.down(settings)
    shutil.rmtree(state, ignore_errors=True)
    result = {
        "cold_up_total_s": total,
        # installs (once), initdb, pgAdmin's set-up, rendering: the part before services start
        "cold_prepare_s": round(total - sum(timings.values()), 1),
        "seconds_to_healthy": timings,
        "warm_up_total_s": warm_total,
        "warm_seconds_to_healthy": warm,
        "down_s": down_s,
        "rss_mb": {name: m[0] for name, m in memory.items()},
        "pss_mb": {name: m[1] for name, m in memory.items()},
        "rss_total_mb": round(sum(m[0] for m in memory.values()), 1),
        "pss_total_mb": round(sum(m[1] for m in memory.values()), 1),
        "cpus": os.cpu_count(),
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
