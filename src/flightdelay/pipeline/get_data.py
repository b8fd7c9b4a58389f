"""Stage get_data: materialize the source tables as parquet in data/raw/, verified.

Two sources (params.yaml `get_data.source`):
- `package`: the CSVs shipped inside an installed, pinned package (`get_data.package`), with
  their sha256 and row counts recorded in `get_data.tables` (the flights example);
- `files`: your own CSV or parquet files under data/external/ (`get_data.files`), each with an
  optional sha256 and row count. CSV columns get pandas' dtype inference (integers with gaps
  stay integers); the load stage then checks every value against sql/schema.sql.

Every table is read and checked before any file is written, so a mismatch writes nothing.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

import pandas as pd

from flightdelay.core.config import FileSpec, GetDataParams, TableSpec, load_params
from flightdelay.core.db import arrow_table, write_parquet
from flightdelay.core.errors import UserError
from flightdelay.core.lineage import file_digest

log = logging.getLogger(__name__)

EXTERNAL_DIR = Path("data/external")  # the stage's dep in dvc.yaml: every file must be inside
FORMATS = (".csv", ".csv.gz", ".parquet")


def package_data_dir(package: str) -> Path:
    """The `data/` folder of an installed package, found without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise UserError(f"package {package!r} is not installed (run `make install`)")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def source_file(data_dir: Path, table: str) -> Path:
    """The shipped file of `table` (`<table>.csv` or `<table>.csv.zip`)."""
    for name in (f"{table}.csv", f"{table}.csv.zip"):
        if (data_dir / name).is_file():
            return data_dir / name
    raise UserError(f"params.yaml get_data.tables.{table}: table {table!r} not found in {data_dir}")


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    return file_digest(path, "sha256")


def read_verified(data_dir: Path, table: str, rows: int, sha256: str) -> pd.DataFrame:
    """Read one packaged table after checking its file hash, then its row count."""
    path = source_file(data_dir, table)
    actual = sha256_file(path)
    if actual != sha256:
        raise UserError(
            f"{table}: content hash {actual[:12]}… does not match params.yaml "
            f"get_data.tables.{table}.sha256 {sha256[:12]}…"
        )
    frame = pd.read_csv(path, keep_default_na=True, na_values=["NA"])
    if len(frame) != rows:
        raise UserError(
            f"{table}: {len(frame)} rows, params.yaml get_data.tables.{table}.rows says {rows}"
        )
    return frame


def read_file(table: str, spec: FileSpec, check_only: bool = False) -> pd.DataFrame:
    """Read one user file (CSV or parquet) after checking its optional sha256, then rows."""
    key = f"params.yaml get_data.files.{table}"
    path = spec.path
    if path.is_absolute() or ".." in path.parts or path.parts[:2] != EXTERNAL_DIR.parts:
        raise UserError(f"{key}.path: {path} must be a relative path under {EXTERNAL_DIR}/")
    if not path.name.endswith(FORMATS):
        raise UserError(f"{key}.path: {path} must end with one of {', '.join(FORMATS)}")
    if not spec.path.is_file():
        raise UserError(f"{key}.path: {spec.path} not found (run from the project root)")
    if spec.sha256 is not None:
        actual = sha256_file(spec.path)
        if actual != spec.sha256:
            raise UserError(
                f"{spec.path}: sha256 {actual[:12]}… does not match {key}.sha256 "
                f"{spec.sha256[:12]}…"
            )
    if check_only:
        return pd.DataFrame()
    try:
        if spec.path.name.endswith(".parquet"):
            frame = pd.read_parquet(spec.path)
        else:
            frame = pd.read_csv(spec.path, dtype_backend="numpy_nullable")
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:120]
        raise UserError(f"{spec.path}: cannot be read ({first})") from None
    if spec.rows is not None and len(frame) != spec.rows:
        raise UserError(f"{spec.path}: {len(frame)} rows, {key}.rows says {spec.rows}")
    return frame


def read_tables(params: GetDataParams) -> dict[str, pd.DataFrame]:
    """Every configured table, read and verified (paths, hashes and counts first: a wrong
    path or hash is reported before any large file is parsed)."""
    if params.source == "files":
        files = params.files or {}
        for table, spec in files.items():
            read_file(table, spec, check_only=True)
        return {table: read_file(table, spec) for table, spec in files.items()}
    data_dir = package_data_dir(params.package or "")
    tables: dict[str, TableSpec] = params.tables or {}
    return {t: read_verified(data_dir, t, s.rows, s.sha256) for t, s in tables.items()}


def materialize(params: GetDataParams, out_dir: Path) -> dict[str, int]:
    """Write every configured table to `out_dir/<table>.parquet`; returns rows per table.

    All tables are verified before any file is written, so a mismatch writes nothing. Files
    of tables no longer configured are removed, so data/raw holds exactly the params' tables.
    """
    frames = read_tables(params)
    out_dir.mkdir(parents=True, exist_ok=True)
    for table, frame in frames.items():
        write_parquet(arrow_table(frame), out_dir / f"{table}.parquet")
        log.info("wrote %s (%d rows)", out_dir / f"{table}.parquet", len(frame))
    for stale in out_dir.glob("*.parquet"):
        if stale.name.removesuffix(".parquet") not in frames:
            stale.unlink()
    return {table: len(frame) for table, frame in frames.items()}


def main(out_dir: str) -> None:
    """Run the stage with params.yaml."""
    materialize(load_params().get_data, Path(out_dir))
