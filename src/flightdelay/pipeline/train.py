"""Stage train@<variant>: fit one logistic-regression variant, evaluate it, log it to MLflow.

Pure core: :func:`fit_variant`, :func:`fingerprint`. :func:`main` does the I/O: it writes
`reports/metrics/<variant>.json` (DVC metrics), `reports/plots/<variant>/*.csv` (DVC plots) and
`models/runs/<variant>.json` (the record `register` reads). All three are deterministic; the
MLflow run is found again by its `fingerprint` tag, so the same inputs never log a second run.
"""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from sklearn.pipeline import Pipeline

from flightdelay.core import lineage
from flightdelay.core.config import Params, TrainParams, get_pipeline_settings, load_params
from flightdelay.core.errors import UserError
from flightdelay.core.estimator import CLASSIFIER, PREPROCESS, build_pipeline
from flightdelay.core.evaluation import evaluate, rounded
from flightdelay.core.labels import to_binary
from flightdelay.core.model_code import coerce_frame
from flightdelay.core.records import RunRecord
from flightdelay.core.tracking import DatasetRef, LoggedModel, Tracking
from flightdelay.pipeline.plots import curve_frames, write_dvc_plots, write_figures

log = logging.getLogger(__name__)

PACKAGE = Path(__file__).resolve().parents[1]
CODE = (PACKAGE / "core", PACKAGE / "pipeline" / "train.py", PACKAGE / "pipeline" / "plots.py")
UPSTREAM_STAGES = ("target", "get_data", "load", "features")


def feature_frame(frame: pd.DataFrame, train: TrainParams) -> pd.DataFrame:
    """The raw model input: params' categorical + numeric columns, as the data has them."""
    needed = [*train.categorical, *train.numeric]
    missing = [c for c in [*needed, train.target] if c not in frame.columns]
    if missing:
        raise UserError(
            f"params.yaml train: column(s) not in the feature table: {', '.join(missing)}"
        )
    return frame[needed].reset_index(drop=True)


def read_split(path: Path, train: TrainParams, sample_rows: int | None = None) -> pd.DataFrame:
    """The columns training uses (params' features and target) of a split, and with
    `sample_rows` a sample of its rows, drawn in Arrow before anything becomes pandas: the same
    rows, in the same order, as `DataFrame.sample(sample_rows, random_state=train.random_state)`
    of the whole file, without holding it in pandas (a 16x table would need 3.5 GB)."""
    wanted = list(dict.fromkeys([*train.categorical, *train.numeric, train.target]))
    present = set(pq.read_schema(path).names)
    missing = [c for c in wanted if c not in present]
    if missing:
        raise UserError(
            f"params.yaml train: column(s) not in the feature table: {', '.join(missing)}"
        )
    pf = pq.ParquetFile(path)
    total = pf.metadata.num_rows
    if not sample_rows or sample_rows >= total:
        frame: pd.DataFrame = pf.read(columns=wanted).to_pandas()
        return frame
    rows = np.random.RandomState(train.random_state).choice(total, size=sample_rows, replace=False)
    sample: pd.DataFrame = sampled_rows(pf, wanted, rows).to_pandas()
    return sample


def sampled_rows(pf: pq.ParquetFile, columns: list[str], rows: np.ndarray) -> pa.Table:
    """Rows `rows` (file positions, in that order) of `columns`, read one row group at a time:
    only one group and the sample are ever in memory."""
    wanted = np.sort(rows)
    parts, start = [], 0
    for group in range(pf.metadata.num_row_groups):
        end = start + pf.metadata.row_group(group).num_rows
        lo, hi = np.searchsorted(wanted, [start, end])
        if hi > lo:
            parts.append(pf.read_row_group(group, columns=columns).take(wanted[lo:hi] - start))
        start = end
    in_file_order = pa.concat_tables(parts) if parts else pf.schema_arrow.empty_table()
    return in_file_order.take(np.searchsorted(wanted, rows))


def labels(frame: pd.DataFrame, train: TrainParams) -> np.ndarray:
    """The target mapped to 0/1 by `train.positive` (the features stage dropped or refused
    NULL targets already)."""
    return to_binary(frame[train.target], train.positive, target=train.target)


def fit_variant(x: pd.DataFrame, y: np.ndarray, train: TrainParams, variant: str) -> Pipeline:
    """A fitted Pipeline for `train.variants[variant]` on the raw frame `x`."""
    if variant not in train.variants:
        known = ", ".join(train.variants)
        raise UserError(f"unknown variant {variant!r}: params.yaml train.variants has {known}")
    if len(np.unique(y)) < 2:
        raise UserError(
            "the training split has a single class: check train.positive and features.split"
        )
    pipeline = build_pipeline(
        train.categorical, train.numeric, train.variants[variant], train.random_state
    )
    return pipeline.fit(coerce_frame(x, train.categorical, train.numeric), y)


def coefficients(pipeline: Pipeline) -> pd.Series:
    """The regression's coefficients by transformed feature name."""
    names = pipeline.named_steps[PREPROCESS].get_feature_names_out()
    return pd.Series(pipeline.named_steps[CLASSIFIER].coef_[0], index=names)


def run_params(params: Params, variant: str) -> dict[str, Any]:
    """What the MLflow run records as params (the variant's knobs and the shared train ones)."""
    train = params.train
    shared = train.model_dump(exclude={"variants"})
    sql = {f"sql.{k}": v for k, v in params.features.sql_params.items()}
    return {"variant": variant, **train.variants[variant].model_dump(), **shared, **sql}


def fingerprint(params: Params, variant: str, data: dict[str, str], code_md5: str) -> str:
    """Deterministic identity of a training run: params, data md5s and code."""
    payload = {"params": run_params(params, variant), "data": data, "code": code_md5}
    return lineage.stable_hash(payload)[:32]


@dataclass(frozen=True)
class Evaluated:
    """A fitted variant and what it scored on the test split."""

    pipeline: Pipeline
    x_train: pd.DataFrame
    metrics: dict[str, float]
    frames: dict[str, pd.DataFrame]


def fit_and_evaluate(params: Params, variant: str, data_dir: Path) -> Evaluated:
    """Fit `variant` on train.parquet and evaluate it on test.parquet."""
    tp = params.train
    train_df = read_split(data_dir / "train.parquet", tp, tp.sample_rows)
    test_df = read_split(data_dir / "test.parquet", tp)
    x_train, x_test = feature_frame(train_df, tp), feature_frame(test_df, tp)
    pipeline = fit_variant(x_train, labels(train_df, tp), tp, variant)
    proba = pipeline.predict_proba(coerce_frame(x_test, tp.categorical, tp.numeric))[:, 1]
    y_test = labels(test_df, tp)
    metrics = rounded(evaluate(y_test, proba, tp.decision_threshold))
    return Evaluated(pipeline, x_train, metrics, curve_frames(y_test, proba, tp.decision_threshold))


def model_config(params: Params) -> dict[str, Any]:
    """What the logged pyfunc model carries besides its pipeline."""
    tp = params.train
    return {
        "model_name": params.registry.model_name,
        "categorical": list(tp.categorical),
        "numeric": list(tp.numeric),
        "target": tp.target,
        "positive": tp.positive,
        "decision_threshold": tp.decision_threshold,
    }


def log_run(
    tracking: Tracking, experiment_id: str, params: Params, fitted: Evaluated, record: RunRecord
) -> str:
    """The MLflow run of `record` (an existing one with the same fingerprint, else a new one)."""
    variant = record.variant
    existing = tracking.find_run(experiment_id, record.fingerprint)
    if existing:
        log.info("%s: run %s has the same fingerprint; nothing new to log", variant, existing)
        return existing
    tags = {
        "variant": variant,
        "fingerprint": record.fingerprint,
        "params_hash": lineage.stable_hash(run_params(params, variant))[:32],
        **lineage.git_state(),
        **lineage.dvc_stage_hashes(Path("dvc.lock"), UPSTREAM_STAGES),
        **lineage.dvc_experiment(),
    }
    contexts = {"train": "training", "test": "evaluation"}
    inputs = [
        DatasetRef(name, md5, f"data/processed/{name}.parquet", contexts.get(name, name))
        for name, md5 in sorted(record.data.items())
    ]
    with tempfile.TemporaryDirectory() as tmp:
        write_figures(fitted.frames, coefficients(fitted.pipeline), variant, Path(tmp))
        return tracking.log_model_run(
            experiment_id,
            variant,
            LoggedModel(fitted.pipeline, fitted.x_train, model_config(params)),
            run_params(params, variant),
            fitted.metrics,
            tags,
            figures_dir=Path(tmp),
            inputs=inputs,
        )


def main(variant: str, data_dir: str, metrics_dir: str, plots_dir: str, runs_dir: str) -> None:
    """Run the stage for one variant with params.yaml and the configured MLflow."""
    params = load_params(get_pipeline_settings().params_path)
    if variant not in params.train.variants:
        known = ", ".join(params.train.variants)
        raise UserError(f"unknown variant {variant!r}: params.yaml train.variants has {known}")
    # before the fit (minutes on real data): a dead MLflow, or S3 behind it, fails in seconds
    tracking = Tracking(get_pipeline_settings()).check()
    experiment_id = tracking.experiment_id(params.mlflow.experiment)
    tracking.check_artifacts(experiment_id)
    data = Path(data_dir)
    fitted = fit_and_evaluate(params, variant, data)
    md5s = {name: lineage.file_md5(data / f"{name}.parquet") for name in ("test", "train")}
    record = RunRecord(
        variant,
        fingerprint(params, variant, md5s, lineage.tree_md5(CODE, PACKAGE)),
        fitted.metrics,
        md5s,
    )
    write_dvc_plots(fitted.frames, Path(plots_dir) / variant)
    run_id = log_run(tracking, experiment_id, params, fitted, record)
    shown = ", ".join(f"{k}={v}" for k, v in fitted.metrics.items())
    log.info("%s: run %s, %s", variant, run_id, shown)
    record.write(Path(runs_dir) / f"{variant}.json")
    metrics_path = Path(metrics_dir) / f"{variant}.json"
    metrics_path.parent.mkdir(parents=True, exist_ok=True)
    metrics_path.write_text(json.dumps(fitted.metrics, indent=2, sort_keys=True) + "\n")
