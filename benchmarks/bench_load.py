"""Benchmark the load stage: ours vs pandas `to_sql` vs `psql \\copy`, SQLite and PostgreSQL.

Needs data/raw (run `dvc repro get_data`). Starts a throwaway PostgreSQL cluster.
Writes reports/bench/load.json. Targets: Postgres load <= 1.2x `\\copy` of the same rows as CSV
(ours and `\\copy` alternated, medians of --repeats), >= 10x faster than to_sql. Records the
COPY format the load used (binary when pgpq is installed, CSV otherwise).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pyarrow.csv as pacsv
from sqlalchemy import text

from flightdelay.core.config import LoadParams, load_params
from flightdelay.core.db import make_engine, read_schema, read_sql
from flightdelay.pipeline.load import load_tables, to_arrow
from flightdelay.stack.pgcluster import throwaway_postgres

RAW = Path("data/raw")
OUT = Path("reports/bench/load.json")


def timed(fn) -> float:  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    fn()
    return round(time.perf_counter() - t0, 3)


def to_sql_all(url: str, frames: dict[str, pd.DataFrame]) -> None:
    engine = make_engine(url)
    with engine.begin() as conn:
        for name, frame in frames.items():
            frame.to_sql(f"tosql_{name}", conn, if_exists="replace", index=False, chunksize=50_000)
    engine.dispose()


def psql_copy_all(info: dict[str, str], csv_dir: Path) -> None:
    """`psql \\copy` of the same rows (CSV prepared beforehand, not timed) into fresh tables."""
    schema = read_schema(read_sql("schema.sql"))
    env = dict(os.environ, PGPASSWORD=info["password"])
    base = [
        "psql",
        "-q",
        "-v",
        "ON_ERROR_STOP=1",
        "-h",
        info["host"],
        "-p",
        info["port"],
        "-U",
        info["user"],
        "-d",
        "features",
    ]
    script = ["BEGIN;"]
    script += [f"DROP TABLE IF EXISTS {name};" for name in schema.tables]
    script += [statement + ";" for statement in schema.statements]
    for name, ddl in schema.tables.items():
        cols = ",".join(c.name for c in ddl.columns)
        script.append(
            f"\\copy {name} ({cols}) FROM '{csv_dir / (name + '.csv')}' WITH (FORMAT csv)"
        )
    script.append("COMMIT;")
    subprocess.run(base, input="\n".join(script), text=True, check=True, env=env)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="alternated runs (medians)")
    repeats = parser.parse_args().repeats
    if not (RAW / "flights.parquet").is_file():
        sys.exit("data/raw missing: run `dvc repro get_data` first")
    params: LoadParams = load_params().load
    frames = {p.stem: pd.read_parquet(p) for p in sorted(RAW.glob("*.parquet"))}
    rows = {k: len(v) for k, v in frames.items()}
    results: dict[str, object] = {"rows": rows, "total_rows": sum(rows.values())}
    with tempfile.TemporaryDirectory() as tmp:
        sqlite_url = f"sqlite:///{tmp}/bench.db"
        results["sqlite_ours_s"] = timed(lambda: load_tables(sqlite_url, RAW, params))
        results["sqlite_to_sql_s"] = timed(lambda: to_sql_all(sqlite_url, frames))
    with throwaway_postgres() as info, tempfile.TemporaryDirectory() as csv_tmp:
        os.chmod(csv_tmp, 0o755)
        schema = read_schema(read_sql("schema.sql"))
        for name, ddl in schema.tables.items():  # the same rows as CSV, written before timing \copy
            pacsv.write_csv(
                to_arrow(ddl, frames[name], "postgresql"),
                f"{csv_tmp}/{name}.csv",
                write_options=pacsv.WriteOptions(include_header=False),
            )
        url = info["features"]
        ours_runs, copy_runs = [], []
        for _ in range(repeats):  # alternated: the machine's other load hits both alike
            ours_runs.append(timed(lambda: load_tables(url, RAW, params)))
            copy_runs.append(timed(lambda: psql_copy_all(info, Path(csv_tmp))))
        results["postgres_ours_s"] = statistics.median(ours_runs)
        results["postgres_psql_copy_s"] = statistics.median(copy_runs)
        results["postgres_copy_format"] = "binary" if importlib.util.find_spec("pgpq") else "csv"
        results["postgres_to_sql_s"] = timed(lambda: to_sql_all(url, frames))
        engine = make_engine(url)
        with engine.connect() as conn:
            assert (
                conn.execute(text("SELECT COUNT(*) FROM flights")).scalar_one() == rows["flights"]
            )
        engine.dispose()
    ours, copy, tosql = (
        float(results[k])  # type: ignore[arg-type]
        for k in ("postgres_ours_s", "postgres_psql_copy_s", "postgres_to_sql_s")
    )
    ratio, speedup = round(ours / copy, 2), round(tosql / ours, 1)
    results["postgres_ours_vs_copy"] = ratio
    results["postgres_speedup_vs_to_sql"] = speedup
    results["targets"] = {"postgres_ours_vs_copy_max": 1.2, "postgres_speedup_vs_to_sql_min": 10}
    results["meets_targets"] = ratio <= 1.2 and speedup >= 10
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
