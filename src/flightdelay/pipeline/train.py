"""Stage train@<variant>: fit one logistic-regression variant, evaluate it, log it to MLflow.

Pure core: :func:`fit_variant` and :func:`evaluate`. :func:`main` does the I/O: it writes
`reports/metrics/<variant>.json` (DVC metrics), `reports/plots/<variant>/*.csv` (DVC plots) and
`models/runs/<variant>.json` (the run pointer the register stage reads).
"""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    brier_score_loss,
    f1_score,
    log_loss,
    precision_score,
    recall_score,
    roc_auc_score,
)
from sklearn.pipeline import Pipeline

from flightdelay.core import tracking
from flightdelay.core.config import Params, TrainParams, get_pipeline_settings, load_params
from flightdelay.core.errors import UserError
from flightdelay.core.estimator import CLASSIFIER, PREPROCESS, build_pipeline, coerce_frame
from flightdelay.pipeline.plots import curve_frames, write_dvc_plots, write_figures

log = logging.getLogger(__name__)


def split_xy(frame: pd.DataFrame, train: TrainParams) -> tuple[pd.DataFrame, np.ndarray]:
    """The model input (params' categorical + numeric columns) and the 0/1 target."""
    needed = [*train.categorical, *train.numeric, train.target]
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise UserError(
            f"params.yaml train: column(s) not in the feature table: {', '.join(missing)}"
        )
    return coerce_frame(frame, train.categorical, train.numeric), frame[train.target].to_numpy(int)


def fit_variant(x: pd.DataFrame, y: np.ndarray, train: TrainParams, variant: str) -> Pipeline:
    """A fitted Pipeline for `train.variants[variant]`."""
    if variant not in train.variants:
        known = ", ".join(train.variants)
        raise UserError(f"unknown variant {variant!r}: params.yaml train.variants has {known}")
    if len(np.unique(y)) < 2:
        raise UserError("the training split has a single class: check label and split params")
    pipeline = build_pipeline(
        train.categorical, train.numeric, train.variants[variant], train.random_state
    )
    return pipeline.fit(x, y)


def evaluate(y: np.ndarray, proba: np.ndarray, threshold: float) -> dict[str, float]:
    """Ranking, probability and thresholded metrics of `proba` against `y`."""
    pred = (proba >= threshold).astype(int)
    return {
        "roc_auc": float(roc_auc_score(y, proba)),
        "pr_auc": float(average_precision_score(y, proba)),
        "log_loss": float(log_loss(y, proba, labels=[0, 1])),
        "brier": float(brier_score_loss(y, proba)),
        "accuracy": float(accuracy_score(y, pred)),
        "precision": float(precision_score(y, pred, zero_division=0)),
        "recall": float(recall_score(y, pred, zero_division=0)),
        "f1": float(f1_score(y, pred, zero_division=0)),
    }


def coefficients(pipeline: Pipeline) -> pd.Series:
    """The regression's coefficients by transformed feature name."""
    names = pipeline.named_steps[PREPROCESS].get_feature_names_out()
    return pd.Series(pipeline.named_steps[CLASSIFIER].coef_[0], index=names)


def run_params(params: Params, variant: str) -> dict[str, Any]:
    """What the MLflow run records as params."""
    train = params.train
    knobs = train.variants[variant].model_dump()
    return {
        "variant": variant,
        **knobs,
        "decision_threshold": train.decision_threshold,
        "label_threshold_minutes": params.label.threshold_minutes,
        "cancelled_as_delayed": params.label.cancelled_as_delayed,
        "categorical": train.categorical,
        "numeric": train.numeric,
        "sample_rows": train.sample_rows,
        "random_state": train.random_state,
    }


def train_and_log(params: Params, variant: str, data_dir: Path, plots_dir: Path) -> dict[str, Any]:
    """Fit, evaluate and log one variant; returns the run record (run id, metrics, hashes)."""
    settings = get_pipeline_settings()
    train_path, test_path = data_dir / "train.parquet", data_dir / "test.parquet"
    train_df, test_df = pd.read_parquet(train_path), pd.read_parquet(test_path)
    tp = params.train
    if tp.sample_rows and tp.sample_rows < len(train_df):
        train_df = train_df.sample(tp.sample_rows, random_state=tp.random_state)
    x_train, y_train = split_xy(train_df, tp)
    x_test, y_test = split_xy(test_df, tp)
    pipeline = fit_variant(x_train, y_train, tp, variant)
    proba = pipeline.predict_proba(x_test)[:, 1]
    metrics = evaluate(y_test, proba, tp.decision_threshold)
    frames = curve_frames(y_test, proba, tp.decision_threshold)
    write_dvc_plots(frames, plots_dir)
    tags = {
        "variant": variant,
        "git_sha": tracking.git_sha(),
        "data.train_md5": tracking.file_md5(train_path),
        "data.test_md5": tracking.file_md5(test_path),
        "database_url": settings.masked_database_url(),
    }
    tracking.configure_tracking(settings)
    experiment_id = tracking.ensure_experiment(params.mlflow.experiment, settings)
    with tempfile.TemporaryDirectory() as tmp:
        write_figures(frames, coefficients(pipeline), variant, Path(tmp))
        run_id = tracking.log_pipeline_run(
            pipeline,
            x_train,
            run_params(params, variant),
            metrics,
            tags,
            experiment_id,
            run_name=variant,
            artifacts_dir=Path(tmp),
        )
    log.info(
        "%s: run %s, %s", variant, run_id, ", ".join(f"{k}={v:.4f}" for k, v in metrics.items())
    )
    return {
        "variant": variant,
        "run_id": run_id,
        "experiment_id": experiment_id,
        "metrics": metrics,
        "tags": tags,
    }


def main(variant: str, data_dir: str, metrics_dir: str, plots_dir: str, runs_dir: str) -> None:
    """Run the stage for one variant with params.yaml and the configured MLflow."""
    params = load_params()
    if variant not in params.train.variants:
        known = ", ".join(params.train.variants)
        raise UserError(f"unknown variant {variant!r}: params.yaml train.variants has {known}")
    record = train_and_log(params, variant, Path(data_dir), Path(plots_dir) / variant)
    for folder, payload in ((metrics_dir, record["metrics"]), (runs_dir, record)):
        out = Path(folder) / f"{variant}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
