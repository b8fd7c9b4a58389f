"""Benchmark the native stack: seconds to healthy and resident memory per service.

Starts a throwaway stack from nothing (own state folder and ports; the tools in .stack/tools are
reused), measures, and stops it. Writes reports/bench/stack.json.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from flightdelay.config import Settings  # noqa: E402
from flightdelay.stack import manager  # noqa: E402

OUT = ROOT / "reports/bench/stack.json"
PORTS = {
    "postgres_port": 57432,
    "s3_port": 59433,
    "seaweed_base_port": 59950,
    "mlflow_port": 57000,
    "pgadmin_port": 57050,
    "api_replica_ports": "28001,28002",
    "nginx_http_port": 28080,
    "nginx_https_port": 28443,
    "nginx_mlflow_port": 25080,
    "nginx_pgadmin_port": 25050,
    "nginx_s3_port": 29000,
}


def rss_mb(pid: int) -> float:
    """Resident memory of a process and all its descendants, in MB."""
    out = subprocess.run(["ps", "-eo", "pid=,ppid=,rss="], capture_output=True, text=True).stdout
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for line in out.splitlines():
        p, pp, r = (int(x) for x in line.split())
        children.setdefault(pp, []).append(p)
        rss[p] = r
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        total += rss.get(p, 0)
        todo += children.get(p, [])
    return round(total / 1024, 1)


def main() -> None:
    os.chdir(ROOT)  # the API replicas run here (params.yaml)
    state = ROOT / ".stack" / "bench"  # git-ignored, like every stack state folder
    settings = Settings(stack_dir=state, stack_tools_dir=ROOT / ".stack" / "tools", **PORTS)  # type: ignore[arg-type]
    manager.down(settings)
    shutil.rmtree(state, ignore_errors=True)
    t0 = time.monotonic()
    timings = manager.up(settings, configure_dvc=False)
    total = round(time.monotonic() - t0, 1)
    time.sleep(3)  # let the API replicas settle
    pids = manager.service_pids(settings)
    memory = {name: rss_mb(pid) for name, pid in pids.items()}
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
        "seconds_to_healthy": timings,
        "warm_up_total_s": warm_total,
        "warm_seconds_to_healthy": warm,
        "down_s": down_s,
        "rss_mb": memory,
        "rss_total_mb": round(sum(memory.values()), 1),
        "cpus": os.cpu_count(),
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
