"""Scale benchmark: the flights pipeline on x1, x4 and x16 the data (embedded default, SQLite).

SYNTHETIC DATA, said plainly: x k is the real 2013 flights and weather replicated into the years
2013 .. 2013+k-1 (dates and `time_hour` shifted by whole years, every other column unchanged);
airlines, airports and planes are not replicated. The time split moves with it (test = Nov-Dec of
the last year). Each stage runs as its own process (`flightdelay <stage>` with the paths
dvc.yaml uses) in a scratch project, so wall time and peak RSS (`wait4`) are the stage's own.

Writes reports/bench/scale.json and reports/bench/scale.png. `SCALES=1,4` limits the sizes;
`TRAIN_SAMPLE_ROWS` (default 200000) is the `train.sample_rows` of the sampled train run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.conftest import venv_env  # noqa: E402

OUT = ROOT / "reports/bench/scale.json"
PLOT = ROOT / "reports/bench/scale.png"
ENV = {
    "DATABASE_URL": "sqlite:///data/interim/flights.db",
    "MLFLOW_TRACKING_URI": "sqlite:///mlflow.db",
    "MLFLOW_ARTIFACT_ROOT": "mlruns",
}


def shift_years(frame: pd.DataFrame, years: int) -> pd.DataFrame:
    """`frame` moved `years` later: `year` and `time_hour` shifted, nothing else changed."""
    out = frame.copy()
    out["year"] = out["year"] + years
    if "time_hour" in out.columns:
        stamps = pd.to_datetime(out["time_hour"], utc=True) + pd.DateOffset(years=years)
        out["time_hour"] = stamps.dt.strftime("%Y-%m-%dT%H:%M:%SZ")  # as the raw files hold it
    return out


def replicate(raw: Path, dest: Path, k: int) -> int:
    """Write data/raw for scale `k` under `dest`; returns the number of flights."""
    dest.mkdir(parents=True, exist_ok=True)
    for path in raw.glob("*.parquet"):
        frame = pd.read_parquet(path)
        if path.stem in ("flights", "weather"):
            frame = pd.concat([shift_years(frame, i) for i in range(k)], ignore_index=True)
        frame.to_parquet(dest / path.name, index=False)
    return len(pd.read_parquet(dest / "flights.parquet", columns=["year"]))


def project(tmp: Path, k: int, sample_rows: int | None) -> Path:
    """A scratch project (params.yaml with the moved split) for scale `k`."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["features"]["split"] = {
        "strategy": "time",
        "column": "time_hour",
        "cutoff": f"{2013 + k - 1}-11-01T00:00:00-04:00",
    }
    params["train"]["sample_rows"] = sample_rows
    (tmp / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return tmp


def run_stage(cmd: list[str], cwd: Path) -> dict[str, float]:
    """Run one stage command; its wall time (s) and peak RSS (MB) from wait4."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        cmd, cwd=cwd, env=venv_env(ENV), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if status != 0:
        err = proc.stderr.read().decode()[-1500:] if proc.stderr else ""
        sys.exit(f"{' '.join(cmd)} failed:\n{err}")
    return {"wall_s": round(wall, 2), "peak_rss_mb": round(usage.ru_maxrss / 1024, 1)}


LOAD_REPORT = "data/interim/load.json"
STAGES = {
    "load": ["flightdelay", "load", "--raw-dir", "data/raw", "--report", LOAD_REPORT],
    "features": [
        *("flightdelay", "features", "--out-dir", "data/processed"),
        *("--load-report", LOAD_REPORT),
    ],
    "train": [
        *("flightdelay", "train", "ridge", "--data-dir", "data/processed"),
        *("--metrics-dir", "m", "--plots-dir", "p", "--runs-dir", "r"),
    ],
}


def measure(raw: Path, k: int, sample_rows: int) -> dict[str, Any]:
    """Every stage at scale `k` (train with and, up to x4, without `train.sample_rows`)."""
    with tempfile.TemporaryDirectory() as tmp:
        root = project(Path(tmp), k, sample_rows)
        rows = replicate(raw, root / "data/raw", k)
        result: dict[str, Any] = {"rows": rows}
        for name, cmd in STAGES.items():
            result[name] = run_stage(cmd, root)
        if k <= 4:
            project(root, k, None)
            result["train_all_rows"] = run_stage(STAGES["train"], root)
        for name in ("load", "features", "train", "train_all_rows"):
            if name in result:
                result[name]["us_per_row"] = round(result[name]["wall_s"] / rows * 1e6, 2)
    return result


def plot(results: dict[str, dict[str, Any]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    scales = sorted(results, key=int)
    for stage in ("load", "features", "train"):
        ax1.plot(scales, [results[k][stage]["us_per_row"] for k in scales], marker="o", label=stage)
        ax2.plot(
            scales, [results[k][stage]["peak_rss_mb"] for k in scales], marker="o", label=stage
        )
    ax1.set(xlabel="scale (x flights, synthetic)", ylabel="µs per row", title="time per row")
    ax2.set(xlabel="scale (x flights, synthetic)", ylabel="MB", title="peak RSS")
    ax2.axhline(2048, color="grey", linestyle="--", label="2 GB target")
    for ax in (ax1, ax2):
        ax.legend()
    fig.tight_layout()
    PLOT.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(PLOT, dpi=80)


def main() -> None:
    scales = [int(s) for s in os.environ.get("SCALES", "1,4,16").split(",")]
    sample = int(os.environ.get("TRAIN_SAMPLE_ROWS", "200000"))
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            ["flightdelay", "get-data", "--out-dir", f"{tmp}/raw"],
            cwd=ROOT,
            env=venv_env(ENV),
            check=True,
            capture_output=True,
        )
        results = {str(k): measure(Path(tmp) / "raw", k, sample) for k in scales}
        shutil.rmtree(tmp, ignore_errors=True)
    summary = {
        "data": "SYNTHETIC: 2013 flights + weather replicated into later years",
        "train_sample_rows": sample,
        "results": results,
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(summary, indent=2) + "\n")
    plot(results)
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
