"""Metrics of predicted probabilities against 0/1 labels (train and register use the same)."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
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

SIGNIFICANT_DIGITS = 6


def round_sig(value: float, digits: int = SIGNIFICANT_DIGITS) -> float:
    """`value` rounded to `digits` significant digits (committed files stay byte-stable)."""
    if value == 0 or not math.isfinite(value):
        return value
    return round(value, digits - 1 - math.floor(math.log10(abs(value))))


def rounded(metrics: Mapping[str, float]) -> dict[str, float]:
    """Every value rounded by :func:`round_sig`."""
    return {k: round_sig(float(v)) for k, v in metrics.items()}


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
