"""Benchmark the main job: cold `dvc repro` on the embedded default, then a no-op `dvc repro`.

Runs in a fresh copy of the working tree (installs excluded). Writes reports/bench/repro.json.
Targets: cold <= 90 s on 2 cores, no-op <= 5 s.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.conftest import copy_repo, venv_env

OUT = Path("reports/bench/repro.json")
ENV = {
    "DATABASE_URL": "sqlite:///data/interim/flights.db",
    "MLFLOW_TRACKING_URI": "sqlite:///mlflow.db",
    "MLFLOW_ARTIFACT_ROOT": "mlruns",
}


def timed_repro(cwd: Path) -> tuple[float, str]:
    t0 = time.perf_counter()
    proc = subprocess.run(
        ["dvc", "repro"], cwd=cwd, env=venv_env(ENV), capture_output=True, text=True
    )
    elapsed = round(time.perf_counter() - t0, 2)
    if proc.returncode != 0:
        sys.exit(f"dvc repro failed:\n{proc.stderr[-2000:]}")
    return elapsed, proc.stdout


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        repo = copy_repo(Path(tmp))
        cold, out = timed_repro(repo)
        noop, out2 = timed_repro(repo)
    stages = out.count("Running stage")
    result = {
        "cold_repro_s": cold,
        "stages_run_cold": stages,
        "noop_repro_s": noop,
        "stages_run_noop": out2.count("Running stage"),
        "targets": {"cold_repro_s_max": 90, "noop_repro_s_max": 5},
        "meets_targets": cold <= 90 and noop <= 5,
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
