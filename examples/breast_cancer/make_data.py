"""Write the breast-cancer example's two tables into examples/breast_cancer/data/external/.

Source: the Wisconsin diagnostic breast-cancer CSV that ships inside scikit-learn
(`sklearn/datasets/data/breast_cancer.csv`, 569 rows: 30 measurements and the diagnosis code,
0 = malignant, 1 = benign). It is split into two related tables joined by `patient_id`:

- `patients.csv`: patient_id, diagnosis (the text "malignant" / "benign") and the 10 mean
  measurements;
- `measurements.parquet`: patient_id, the 10 standard errors (`*_error`) and the 10 worst
  values (`worst_*`).

The CSV copies the source's numbers verbatim, so its bytes (and the sha256 in params.yaml) do
not depend on any library version. Run from the repo root:
`.venv/bin/python examples/breast_cancer/make_data.py`
"""

from __future__ import annotations

import csv
import io
from importlib import resources
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

OUT = Path(__file__).resolve().parent / "data" / "external"
BASE = [
    "radius", "texture", "perimeter", "area", "smoothness",
    "compactness", "concavity", "concave_points", "symmetry", "fractal_dimension",
]  # fmt: skip
MEAN = [f"mean_{b}" for b in BASE]
ERROR = [f"{b}_error" for b in BASE]
WORST = [f"worst_{b}" for b in BASE]
DIAGNOSIS = {"0": "malignant", "1": "benign"}


def source_rows() -> list[list[str]]:
    """The data rows of sklearn's breast_cancer.csv (its first line is a count header)."""
    text = resources.files("sklearn.datasets.data").joinpath("breast_cancer.csv").read_text()
    rows = list(csv.reader(io.StringIO(text)))
    n_rows, n_features = int(rows[0][0]), int(rows[0][1])
    data = rows[1:]
    assert len(data) == n_rows and all(len(r) == n_features + 1 for r in data)
    return data


def main() -> None:
    """Write patients.csv and measurements.parquet."""
    rows = source_rows()
    OUT.mkdir(parents=True, exist_ok=True)
    with (OUT / "patients.csv").open("w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["patient_id", "diagnosis", *MEAN])
        for i, r in enumerate(rows, 1):
            writer.writerow([i, DIAGNOSIS[r[30]], *r[0:10]])
    columns: dict[str, list[float] | list[int]] = {"patient_id": list(range(1, len(rows) + 1))}
    for j, name in enumerate(ERROR + WORST, 10):
        columns[name] = [float(r[j]) for r in rows]
    pq.write_table(pa.table(columns), OUT / "measurements.parquet", compression="snappy")
    print(f"wrote {OUT}/patients.csv and measurements.parquet ({len(rows)} rows each)")


if __name__ == "__main__":
    main()
