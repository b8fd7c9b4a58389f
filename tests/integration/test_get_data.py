"""get_data: the pinned tables, verified; a mismatch is one line and writes nothing."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import text

from flightdelay.core.config import GetDataParams, LoadParams, load_params
from flightdelay.core.db import make_engine
from flightdelay.core.errors import UserError
from flightdelay.pipeline.get_data import materialize, sha256_file
from flightdelay.pipeline.load import load_tables
from tests.conftest import ROOT, venv_env


def test_small_tables_match_recorded_counts(tmp_path: Path) -> None:
    gd = load_params(ROOT / "params.yaml").get_data
    assert gd.tables is not None
    small = gd.model_copy(update={"tables": {k: v for k, v in gd.tables.items() if k != "flights"}})
    counts = materialize(small, tmp_path)
    assert counts == {"airlines": 16, "airports": 1458, "planes": 3322, "weather": 26115}
    assert len(pd.read_parquet(tmp_path / "weather.parquet")) == 26115


def test_hash_mismatch_writes_nothing(tmp_path: Path) -> None:
    gd = load_params(ROOT / "params.yaml").get_data
    tables = dict(gd.tables)
    tables["planes"] = tables["planes"].model_copy(update={"sha256": "0" * 64})
    with pytest.raises(UserError, match=r"planes: content hash .* does not match params.yaml"):
        materialize(gd.model_copy(update={"tables": tables}), tmp_path / "raw")
    assert not (tmp_path / "raw").exists()


def test_row_count_mismatch_is_clear(tmp_path: Path) -> None:
    gd = load_params(ROOT / "params.yaml").get_data
    tables = {"airlines": gd.tables["airlines"].model_copy(update={"rows": 17})}
    with pytest.raises(UserError, match=r"airlines: 16 rows, params.yaml .* says 17"):
        materialize(gd.model_copy(update={"tables": tables}), tmp_path)


def test_cli_error_is_one_line_and_nonzero(tmp_path: Path) -> None:
    (tmp_path / "params.yaml").write_text(
        (ROOT / "params.yaml").read_text().replace("C: 1.0", "C: -1")
    )
    proc = subprocess.run(
        [
            *("flightdelay", "train", "ridge", "--data-dir", "d", "--metrics-dir", "m"),
            *("--plots-dir", "p", "--runs-dir", "r"),
        ],
        cwd=tmp_path,
        env=venv_env(),
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().count("\n") == 0, proc.stderr
    assert "train.variants.ridge.C" in proc.stderr and "Traceback" not in proc.stderr


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """cwd = a folder with data/external/{customers.csv, orders.parquet}."""
    ext = tmp_path / "data/external"
    ext.mkdir(parents=True)
    (ext / "customers.csv").write_text(
        "customer_id,zip,income,signup,default\n1,10001,50.5,2013-01-01,Yes\n2,,61,,No\n3,02139,,2013-02-01,No\n"
    )
    pd.DataFrame({"order_id": [10, 11], "customer_id": [1, 3]}).to_parquet(
        ext / "orders.parquet", index=False
    )
    monkeypatch.chdir(tmp_path)
    return tmp_path


def files_params(**files: dict) -> GetDataParams:
    base = {
        "customers": {"path": "data/external/customers.csv", "rows": 3},
        "orders": {"path": "data/external/orders.parquet"},
    }
    return GetDataParams.model_validate({"source": "files", "files": {**base, **files}})


def md5s(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_files_source_reads_csv_and_parquet(project: Path) -> None:
    sha = sha256_file(project / "data/external/customers.csv")
    counts = materialize(
        files_params(customers={"path": "data/external/customers.csv", "sha256": sha}),
        project / "raw",
    )
    assert counts == {"customers": 3, "orders": 2}
    customers = pd.read_parquet(project / "raw/customers.parquet")
    assert customers["customer_id"].tolist() == [1, 2, 3]
    assert str(customers["zip"].dtype) == "int64" or customers["zip"].isna().sum() == 1
    first = md5s(project / "raw")
    materialize(files_params(), project / "raw")
    assert md5s(project / "raw") == first  # byte-stable


def test_files_source_loads_into_a_schema(project: Path) -> None:
    materialize(files_params(), project / "raw")
    schema = """
    CREATE TABLE customers (customer_id INTEGER NOT NULL PRIMARY KEY, zip TEXT,
        income DOUBLE PRECISION, signup TIMESTAMP WITH TIME ZONE, "default" TEXT NOT NULL);
    CREATE TABLE orders (order_id INTEGER NOT NULL, customer_id INTEGER NOT NULL);
    """
    url = f"sqlite:///{project / 'db.sqlite'}"
    report = load_tables(
        url, project / "raw", LoadParams(progress_min_rows=10, chunk_rows=2), schema_sql=schema
    )
    assert report["tables"] == {"customers": {"rows": 3}, "orders": {"rows": 2}}
    engine = make_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(text('SELECT zip, income, "default" FROM customers ORDER BY 1')).all()
    engine.dispose()
    assert [tuple(r) for r in rows] == [
        (None, 61.0, "No"),
        ("10001", 50.5, "Yes"),
        ("2139", None, "No"),  # inferred as a number by the CSV reader: the leading 0 is gone
    ]


@pytest.mark.parametrize(
    ("files", "message"),
    [
        (
            {"orders": {"path": "data/external/ordrs.parquet"}},
            r"get_data.files.orders.path: data/external/ordrs.parquet not found",
        ),
        (
            {"orders": {"path": "elsewhere/orders.parquet"}},
            r"get_data.files.orders.path: .* under data/external/",
        ),
        (
            {"orders": {"path": "data/external/orders.xlsx"}},
            r"get_data.files.orders.path: .* must end with",
        ),
        (
            {"orders": {"path": "data/external/orders.parquet", "sha256": "0" * 64}},
            r"data/external/orders.parquet: sha256 .* does not match params.yaml "
            r"get_data.files.orders.sha256",
        ),
        (
            {"customers": {"path": "data/external/customers.csv", "rows": 4}},
            r"data/external/customers.csv: 3 rows, "
            r"params.yaml get_data.files.customers.rows says 4",
        ),
    ],
)
def test_bad_files_are_one_line_and_write_nothing(project: Path, files: dict, message: str) -> None:
    with pytest.raises(UserError, match=message) as err:
        materialize(files_params(**files), project / "raw")
    assert "\n" not in str(err.value)
    assert not (project / "raw").exists()


def test_removed_tables_leave_no_raw_file(project: Path) -> None:
    materialize(files_params(), project / "raw")
    params = GetDataParams.model_validate(
        {"source": "files", "files": {"orders": {"path": "data/external/orders.parquet"}}}
    )
    materialize(params, project / "raw")
    assert sorted(p.name for p in (project / "raw").iterdir()) == ["orders.parquet"]
