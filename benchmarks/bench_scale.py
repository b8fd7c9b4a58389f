"""Scale benchmark: the flights pipeline on x1, x4 and x16 the data.

SYNTHETIC DATA, said plainly: x k is the real 2013 flights and weather replicated into the years
2013 .. 2013+k-1 (dates and `time_hour` shifted by whole years, every other column unchanged);
airlines, airports and planes are not replicated. The time split moves with it (test = Nov-Dec of
the last year). Each stage runs as its own process (`flightdelay <stage>` with the paths dvc.yaml
uses) in a scratch project, so wall time and peak RSS are the stage's own (peak RSS: the
process's VmHWM, polled every 0.2 s; wait4's ru_maxrss would count the pages the fork inherits
from this benchmark; the Spark JVM, a child of the score process, is `children_peak_rss_mb`).
A PostgreSQL server's own memory is not counted.

Per scale: load on SQLite and on a throwaway PostgreSQL (and `load_tables` in this process
against `psql \\copy` of the same rows as CSV, written beforehand, untimed: the ratio), features
(SQLite), train with and without `train.sample_rows` (the latter stopped above --train-rss-gb),
register (@serving), and score with pandas, spark-sql and spark-udf on local[1] and local[2]
(rows/s from score.json: the Spark session start and the expression check are left out).
load and features run 3 times at x1, twice at x4, once beyond (median wall time, largest peak
RSS), as the `psql \\copy` ratio does. Time per row is reported twice: wall time over rows, and
after the stage's fixed cost is taken off: the stage on a tiny input (about 1,000 flights, the
other tables as at x1), timed first (`fixed_cost_s`), over the rows beyond the tiny input's.

    python benchmarks/bench_scale.py [--sizes 1,4,16] [--max-minutes 75] [--no-spark]

Writes reports/bench/scale.json and reports/bench/scale.png. Bounded: every stage gets at most
what is left of --max-minutes (a stage cut short is recorded as such, never waited for).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.csv as pacsv
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
    "PYTHONPATH": str(ROOT / "src"),  # this checkout's code, whichever one the venv points at
}
LOAD_REPORT = "data/interim/load.json"
FLIGHTDELAY = [sys.executable, "-m", "flightdelay.cli"]
STAGES = {
    "load": ["load", "--raw-dir", "data/raw", "--report", LOAD_REPORT],
    "features": ["features", "--out-dir", "data/processed", "--load-report", LOAD_REPORT],
    "train": [
        *("train", "ridge", "--data-dir", "data/processed"),
        *("--metrics-dir", "m", "--plots-dir", "p", "--runs-dir", "r"),
    ],
    "register": [
        *("register", "--runs-dir", "r", "--test", "data/processed/test.parquet"),
        *("--out", "reg.json", "--marker", "reg-marker.json"),
    ],
    "score": ["score", "--data-dir", "data/processed", "--out-dir", "data/predictions"],
}
SCORE_RUNS = [("pandas", None), *((e, m) for e in ("spark-sql", "spark-udf") for m in (1, 2))]


class Clock:
    """What is left of the benchmark's time budget."""

    def __init__(self, minutes: float) -> None:
        self.end = time.monotonic() + minutes * 60

    def left(self) -> float:
        return self.end - time.monotonic()


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


def project(tmp: Path, k: int, sample_rows: int | None, **score: Any) -> Path:
    """A scratch project (params.yaml: the moved split, ridge only) for scale `k`."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["features"]["split"] = {
        "strategy": "time",
        "column": "time_hour",
        "cutoff": f"{2013 + k - 1}-11-01T00:00:00-04:00",
    }
    params["train"]["sample_rows"] = sample_rows
    params["train"]["variants"] = {"ridge": params["train"]["variants"]["ridge"]}
    params["score"] = {**params["score"], "spark_partitions": 4, **score}
    (tmp / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return tmp


def _status_mb(pid: int, field: str) -> float:
    """`field` (VmRSS, VmHWM) of /proc/<pid>/status in MB; 0 once the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _descendants(pid: int) -> list[int]:
    """Every process below `pid` (the Spark JVM below the score process)."""
    out, todo = [], [pid]
    while todo:
        for task in Path(f"/proc/{todo.pop()}/task").glob("*/children"):
            with contextlib.suppress(OSError):
                kids = [int(c) for c in task.read_text().split()]
                out += kids
                todo += kids
    return out


class Peak:
    """Peak RSS of a stage process, polled: its own VmHWM (wait4's ru_maxrss would count the
    pages a fork inherits from this, large, process) and, summed in, its children's (the JVM)."""

    def __init__(self, pid: int) -> None:
        self.pid, self.own, self.children = pid, 0.0, 0.0

    def poll(self) -> float:
        """Update the peaks; returns the current RSS of the process (for the cap)."""
        self.own = max(self.own, _status_mb(self.pid, "VmHWM"))
        kids = sum(_status_mb(k, "VmRSS") for k in _descendants(self.pid))
        self.children = max(self.children, kids)
        return _status_mb(self.pid, "VmRSS")


def cut_short(clock: Clock, until: float, minutes: float, rss: float, cap: float) -> str:
    """Why a running stage must stop now ('' while it may go on)."""
    if clock.left() <= 0:
        return "time budget used up"
    if time.monotonic() > until:
        return f"longer than {minutes:g} min"
    if cap and rss > cap:
        return f"RSS above {cap:.0f} MB"
    return ""


def run_stage(
    name: str,
    cwd: Path,
    clock: Clock,
    env: dict[str, str] | None = None,
    rss_cap_mb: float = 0,
    minutes: float = 0,
) -> dict[str, Any]:
    """Run one stage command; its wall time (s) and peak RSS (MB, polled). A stage past the
    time left (or its own `minutes`), or past `rss_cap_mb`, is killed and recorded as cut short."""
    if clock.left() < 5:
        return {"skipped": "time budget used up"}
    t0 = time.perf_counter()
    until = time.monotonic() + minutes * 60 if minutes else float("inf")
    proc = subprocess.Popen(
        [*FLIGHTDELAY, *STAGES[name]],
        cwd=cwd,
        env=venv_env({**ENV, **(env or {})}),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    why: list[str] = []
    done = threading.Event()  # set once wait4 reaped the child (never poll(): it would reap it)

    peak = Peak(proc.pid)

    def guard() -> None:
        while not done.wait(0.2):
            reason = cut_short(clock, until, minutes, peak.poll(), rss_cap_mb)
            if reason:
                why.append(reason)
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                return

    threading.Thread(target=guard, daemon=True).start()
    err = proc.stderr.read().decode() if proc.stderr else ""
    _, status, usage = os.wait4(proc.pid, 0)
    done.set()
    wall = round(time.perf_counter() - t0, 2)
    del usage  # ru_maxrss counts what the fork inherited from this process: polled instead
    result: dict[str, Any] = {"wall_s": wall, "peak_rss_mb": round(peak.own, 1)}
    if peak.children:
        result["children_peak_rss_mb"] = round(peak.children, 1)
    if why:
        return {**result, "killed": why[0]}
    if status != 0:
        return {**result, "failed": err.strip().splitlines()[-1:]}
    return result


def median_run(
    name: str, cwd: Path, clock: Clock, repeats: int, env: dict[str, str] | None = None
) -> dict[str, Any]:
    """`run_stage` `repeats` times (the small scales, where one run is a second or two and the
    first run of a process pays cold caches): the median wall time, the largest peak RSS."""
    runs = [run_stage(name, cwd, clock, env=env) for _ in range(repeats)]
    done = [r for r in runs if "wall_s" in r and not {"failed", "killed"} & set(r)]
    if len(done) < len(runs):
        return next(r for r in runs if r not in done)
    out = dict(done[0])
    out["wall_s"] = round(statistics.median(r["wall_s"] for r in done), 2)
    out["peak_rss_mb"] = max(r["peak_rss_mb"] for r in done)
    out["runs_wall_s"] = [r["wall_s"] for r in done]
    return out


def psql_copy(info: dict[str, str], csv_dir: Path) -> float:
    """`psql \\copy` of the CSV files into fresh tables of schema.sql, in one transaction."""
    from flightdelay.core.db import read_schema, read_sql

    schema = read_schema(read_sql("schema.sql"))
    script = ["BEGIN;", *(f"DROP TABLE IF EXISTS {n};" for n in reversed(list(schema.tables)))]
    script += [s + ";" for s in schema.statements]
    for name, ddl in schema.tables.items():
        cols = ",".join(c.name for c in ddl.columns)
        script.append(f"\\copy {name} ({cols}) FROM '{csv_dir / name}.csv' WITH (FORMAT csv)")
    script.append("COMMIT;")
    base = ["psql", "-q", "-v", "ON_ERROR_STOP=1", "-h", info["host"], "-p", info["port"]]
    t0 = time.perf_counter()
    subprocess.run(
        [*base, "-U", info["user"], "-d", "features"],
        input="\n".join(script),
        text=True,
        check=True,
        env=dict(os.environ, PGPASSWORD=info["password"]),
    )
    return time.perf_counter() - t0


def copy_ratio(raw: Path, info: dict[str, str], repeats: int) -> dict[str, Any]:
    """`load_tables` (read, validate, COPY) against `psql \\copy`, alternated; medians."""
    from flightdelay.core.config import LoadParams
    from flightdelay.core.db import read_schema, read_sql
    from flightdelay.pipeline.load import load_tables, read_raw

    params = LoadParams(progress_min_rows=10**12, chunk_rows=50_000)
    ours, theirs = [], []
    with tempfile.TemporaryDirectory() as csv_dir:
        os.chmod(csv_dir, 0o755)
        data = read_raw(raw, read_schema(read_sql("schema.sql")), "postgresql")
        opts = pacsv.WriteOptions(include_header=False, quoting_style="all_valid")
        for name, table in data.items():
            pacsv.write_csv(table, f"{csv_dir}/{name}.csv", write_options=opts)
        del data
        for _ in range(repeats):
            t0 = time.perf_counter()
            load_tables(info["features"], raw, params)
            ours.append(time.perf_counter() - t0)
            theirs.append(psql_copy(info, Path(csv_dir)))
    a, b = statistics.median(ours), statistics.median(theirs)
    return {"ours_s": round(a, 2), "psql_copy_s": round(b, 2), "ratio": round(a / b, 2)}


def score_runs(root: Path, k: int, args: argparse.Namespace, out: dict[str, Any]) -> None:
    """Every engine (and Spark on local[1] and local[2]) over the splits; spark-udf only up to
    --udf-max-scale (it is the slowest: every row crosses Arrow into a Python worker)."""
    sample, clock = args.sample, args.clock
    for engine, cores in SCORE_RUNS if args.spark else SCORE_RUNS[:1]:
        if engine == "spark-udf" and k > args.udf_max_scale:
            out[f"{engine}@local[{cores}]"] = {"skipped": f"--udf-max-scale {args.udf_max_scale}"}
            continue
        label = engine if cores is None else f"{engine}@local[{cores}]"
        project(root, k, sample, engine=engine)
        env = {} if cores is None else {"SPARK_MASTER": f"local[{cores}]"}
        result = run_stage("score", root, clock, env=env)
        report = root / "data/predictions/score.json"
        if report.is_file() and "failed" not in result and "killed" not in result:
            got = json.loads(report.read_text())
            rows = sum(s["rows"] for s in got["splits"].values())
            seconds = sum(s["seconds"] for s in got["splits"].values())
            result |= {"engine_ran": got["engine"], "rows_per_s": round(rows / seconds)}
            if "spark" in got:  # tasks per split and the driver's serial merge of their parts
                result["tasks"] = {s: v.get("tasks") for s, v in got["splits"].items()}
                merge = sum(v.get("merge_seconds", 0) for v in got["splits"].values())
                result["merge_s"] = round(merge, 2)
            result["us_per_row"] = round(seconds / rows * 1e6, 2)
            report.unlink()
        out[label] = result
        args.save()
    for engine in ("spark-sql", "spark-udf"):
        one, two = (out.get(f"{engine}@local[{c}]", {}).get("rows_per_s") for c in (1, 2))
        if one and two:
            out[f"{engine}_speedup_local2_vs_local1"] = round(two / one, 2)
    args.save()


def measure(
    raw: Path, k: int, args: argparse.Namespace, pg: dict[str, str], result: dict[str, Any]
) -> None:
    """Every stage at scale `k`, into `result` (saved after each stage)."""
    clock = args.clock
    with tempfile.TemporaryDirectory(prefix=f"fd-scale-x{k}-") as tmp:
        root = project(Path(tmp), k, None)
        rows = replicate(raw, root / "data/raw", k)
        result["rows"] = rows
        repeats = 3 if k == 1 else 2 if k <= 4 else 1
        result["load"] = median_run("load", root, clock, repeats)
        result["load_postgres"] = median_run(
            "load", root, clock, repeats, env={"DATABASE_URL": pg["url"]}
        )
        result["load_postgres_vs_psql_copy"] = copy_ratio(root / "data/raw", pg, repeats)
        result["features"] = median_run("features", root, clock, repeats)
        cap = args.train_rss_gb * 1024
        result["train_all_rows"] = run_stage(
            "train", root, clock, rss_cap_mb=cap, minutes=args.train_all_minutes
        )
        project(root, k, args.sample)
        result["train"] = run_stage("train", root, clock)
        result["register"] = run_stage("register", root, clock)
        for name in ("load", "load_postgres", "features", "train", "train_all_rows"):
            if "wall_s" in result[name]:
                result[name]["us_per_row"] = round(result[name]["wall_s"] / rows * 1e6, 2)
                fixed = args.fixed.get(name)
                if isinstance(fixed, float) and name in FIXED_STAGES:
                    work = result[name]["wall_s"] - fixed
                    per_row = work / (rows - args.fixed["rows"]) * 1e6
                    result[name]["us_per_row_after_fixed_cost"] = round(per_row, 2)
        args.save()
        result["score"] = {}
        score_runs(root, k, args, result["score"])


FIXED_STAGES = ("load", "load_postgres", "features")
FIXED = "us_per_row_after_fixed_cost"
TINY_EVERY = 337  # the tiny input: every 337th flight (1,000 rows), the other tables as at x1


def fixed_costs(raw: Path, pg: dict[str, str], clock: Clock) -> dict[str, Any]:
    """What load (SQLite, PostgreSQL) and features cost on a tiny input (about 1,000 flights
    spread over the year, the other tables as at x1; median of 3 runs): their fixed cost
    (process start, imports, settings, DDL, the small tables), taken off before time per row."""
    with tempfile.TemporaryDirectory(prefix="fd-scale-tiny-") as tmp:
        root = project(Path(tmp), 1, None)
        replicate(raw, root / "data/raw", 1)
        flights = root / "data/raw/flights.parquet"
        pd.read_parquet(flights).iloc[::TINY_EVERY].to_parquet(flights, index=False)
        out: dict[str, Any] = {"rows": len(pd.read_parquet(flights, columns=["year"]))}
        env = {"load": None, "load_postgres": {"DATABASE_URL": pg["url"]}, "features": None}
        for name in FIXED_STAGES:
            stage = "features" if name == "features" else "load"
            run = median_run(stage, root, clock, 3, env=env[name])
            ok = not {"failed", "killed", "skipped"} & set(run)
            out[name] = run["wall_s"] if ok else run  # a failed run is recorded, never used
    return out


def flatness(results: dict[str, dict[str, Any]], key: str = "us_per_row") -> dict[str, Any]:
    """Time per row (`key`) at the largest scale over the smallest, per stage (target: within
    +-25%); score: rows/s from score.json, which leaves process and Spark start-up out."""
    scales = sorted(results, key=int)
    lo, hi = results[scales[0]], results[scales[-1]]
    out = {}
    for name in ("load", "load_postgres", "features"):
        a, b = (r.get(name, {}).get(key) for r in (lo, hi))
        out[name] = round(b / a, 2) if a and b else None
    a, b = (r.get("score", {}).get("pandas", {}).get("us_per_row") for r in (lo, hi))
    out["score_pandas"] = round(b / a, 2) if a and b else None
    return out


def plot(results: dict[str, dict[str, Any]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(15, 4))
    scales = sorted(results, key=int)
    for stage in ("load", "load_postgres", "features", "train", "train_all_rows"):
        pts = [(int(k), results[k][stage]) for k in scales if "us_per_row" in results[k][stage]]
        ax1.plot([p[0] for p in pts], [p[1]["us_per_row"] for p in pts], marker="o", label=stage)
        ax2.plot([p[0] for p in pts], [p[1]["peak_rss_mb"] for p in pts], marker="o", label=stage)
        fixed = [(k, r["us_per_row_after_fixed_cost"]) for k, r in pts if FIXED in r]
        if fixed:
            xs, ys = zip(*fixed, strict=True)
            ax1.plot(xs, ys, linestyle="--", marker=".", label=f"{stage}, after fixed cost")
    for run, _ in [(f"{e}@local[{c}]" if c else e, 0) for e, c in SCORE_RUNS]:
        pts = [(int(k), results[k]["score"].get(run, {}).get("rows_per_s")) for k in scales]
        pts = [p for p in pts if p[1]]
        if pts:
            ax3.plot([p[0] for p in pts], [p[1] / 1000 for p in pts], marker="o", label=run)
    ax1.set(xlabel="scale (x flights, SYNTHETIC)", ylabel="µs per row", title="time per row")
    ax2.set(xlabel="scale (x flights, SYNTHETIC)", ylabel="MB", title="peak RSS per stage")
    ax2.axhline(2048, color="grey", linestyle="--", label="2 GB target")
    ax3.set(xlabel="scale (x flights, SYNTHETIC)", ylabel="k rows/s", title="score engines")
    for ax in (ax1, ax2, ax3):
        ax.set_xscale("log", base=2)
        ax.legend(fontsize=7)
    fig.tight_layout()
    PLOT.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(PLOT, dpi=80)


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,4,16", help="comma-separated scales")
    parser.add_argument("--max-minutes", type=float, default=75.0, help="time budget")
    parser.add_argument("--train-sample-rows", dest="sample", type=int, default=200_000)
    parser.add_argument("--train-rss-gb", type=float, default=10.0, help="cap of train, all rows")
    parser.add_argument("--train-all-minutes", type=float, default=10.0, help="its time cap")
    parser.add_argument("--udf-max-scale", type=int, default=4, help="largest spark-udf scale")
    parser.add_argument("--no-spark", dest="spark", action="store_false", help="pandas only")
    parser.add_argument("--out", type=Path, default=OUT, help="the JSON report")
    args = parser.parse_args()
    try:
        args.scales = [int(s) for s in args.sizes.split(",")]
    except ValueError:
        parser.error(f"--sizes: {args.sizes!r} is not a comma-separated list of integers")
    if args.spark and not shutil.which("java"):
        args.spark = False  # recorded in the report
    args.clock = Clock(args.max_minutes)
    return args


def main() -> None:
    from flightdelay.stack.pgcluster import throwaway_postgres

    args = arguments()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp, throwaway_postgres() as pg:
        pg["url"] = pg["features"]
        raw = Path(tmp) / "raw"
        subprocess.run(
            [*FLIGHTDELAY, "get-data", "--out-dir", str(raw)],
            cwd=ROOT,
            env=venv_env(ENV),
            check=True,
            capture_output=True,
        )
        args.fixed = fixed_costs(raw, pg, args.clock)
        results: dict[str, dict[str, Any]] = {}
        args.save = lambda: save(args, results, started)  # after every stage: nothing is lost
        for k in args.scales:
            results[str(k)] = {}
            measure(raw, k, args, pg, results[str(k)])
    summary = save(args, results, started)
    if args.out == OUT:
        plot(results)
    print(json.dumps(summary, indent=2))


def save(args: argparse.Namespace, results: dict[str, Any], started: float) -> dict[str, Any]:
    """Write the report as measured so far; returns it."""
    summary = {
        "data": "SYNTHETIC: 2013 flights + weather replicated into later years (shifted dates)",
        "machine": f"{os.cpu_count()} cores shared with other work; medians are noisy",
        "train_sample_rows": args.sample,
        "train_all_rows_rss_cap_mb": args.train_rss_gb * 1024,
        "spark": args.spark,
        "bench_minutes": round((time.perf_counter() - started) / 60, 1),
        "fixed_cost_s": args.fixed,
        "us_per_row_largest_over_smallest": flatness(results),
        "us_per_row_after_fixed_cost_largest_over_smallest": flatness(
            results, "us_per_row_after_fixed_cost"
        ),
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2) + "\n")
    return summary


if __name__ == "__main__":
    main()
