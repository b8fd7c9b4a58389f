"""Evaluation plots: PNG figures for MLflow and CSV series for `dvc plots show`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.calibration import calibration_curve
from sklearn.metrics import confusion_matrix, precision_recall_curve, roc_curve

from flightdelay.core.evaluation import round_sig


def curve_frames(
    y_true: np.ndarray, proba: np.ndarray, threshold: float
) -> dict[str, pd.DataFrame]:
    """ROC, precision-recall, calibration and confusion-matrix data as small frames."""
    fpr, tpr, _ = roc_curve(y_true, proba)
    precision, recall, _ = precision_recall_curve(y_true, proba)
    frac_pos, mean_pred = calibration_curve(y_true, proba, n_bins=10, strategy="quantile")
    pred = (proba >= threshold).astype(int)
    cm = pd.DataFrame({"actual": y_true.astype(int), "predicted": pred})
    return {
        "roc": _thin(pd.DataFrame({"fpr": fpr, "tpr": tpr})),
        "pr": _thin(pd.DataFrame({"recall": recall, "precision": precision})),
        "calibration": pd.DataFrame({"mean_predicted": mean_pred, "fraction_positive": frac_pos}),
        "confusion": cm,
        "confusion_counts": pd.DataFrame(
            confusion_matrix(y_true, pred, labels=[0, 1]),
            index=["actual_0", "actual_1"],
            columns=["predicted_0", "predicted_1"],
        ),
    }


def _thin(frame: pd.DataFrame, points: int = 200) -> pd.DataFrame:
    """At most `points` evenly spaced rows (keeps the plot files small)."""
    if len(frame) <= points:
        return frame
    idx = np.unique(np.linspace(0, len(frame) - 1, points).astype(int))
    return frame.iloc[idx].reset_index(drop=True)


CURVES = ("roc", "pr", "calibration")


def write_dvc_plots(frames: dict[str, pd.DataFrame], out_dir: Path) -> None:
    """CSV series for dvc.yaml `plots:` (roc, pr, calibration, confusion), values rounded to
    6 significant digits so the committed files reproduce byte for byte."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in (*CURVES, "confusion"):
        frame = frames[name]
        if name in CURVES:
            frame = frame.map(round_sig)
        frame.to_csv(out_dir / f"{name}.csv", index=False, lineterminator="\n")


def write_overlays(plots_dir: Path, variants: list[str], out_dir: Path) -> None:
    """One CSV per curve with every variant's points and a `variant` column (dvc.yaml's
    top-level plots draw them in one chart each)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in CURVES:
        parts = []
        for variant in sorted(variants):
            frame = pd.read_csv(plots_dir / variant / f"{name}.csv")
            frame.insert(0, "variant", variant)
            parts.append(frame)
        pd.concat(parts, ignore_index=True).to_csv(
            out_dir / f"{name}.csv", index=False, lineterminator="\n"
        )


def write_figures(
    frames: dict[str, pd.DataFrame],
    coefficients: pd.Series,
    title: str,
    out_dir: Path,
    top: int = 20,
) -> list[Path]:
    """PNG figures (ROC, PR, calibration, confusion matrix, top coefficients); returns paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    out_dir.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []

    def save(fig: Figure, name: str) -> None:
        fig.suptitle(f"{title}: {name.replace('_', ' ')}")
        fig.tight_layout()
        path = out_dir / f"{name}.png"
        fig.savefig(path, dpi=80)
        plt.close(fig)
        paths.append(path)

    fig, ax = plt.subplots(figsize=(5, 4))
    ax.plot(frames["roc"]["fpr"], frames["roc"]["tpr"])
    ax.plot([0, 1], [0, 1], "--", color="grey")
    ax.set(xlabel="false positive rate", ylabel="true positive rate")
    save(fig, "roc_curve")

    fig, ax = plt.subplots(figsize=(5, 4))
    ax.plot(frames["pr"]["recall"], frames["pr"]["precision"])
    ax.set(xlabel="recall", ylabel="precision")
    save(fig, "pr_curve")

    fig, ax = plt.subplots(figsize=(5, 4))
    cal = frames["calibration"]
    ax.plot(cal["mean_predicted"], cal["fraction_positive"], marker="o")
    ax.plot([0, 1], [0, 1], "--", color="grey")
    ax.set(xlabel="mean predicted probability", ylabel="fraction delayed")
    save(fig, "calibration")

    fig, ax = plt.subplots(figsize=(4, 4))
    counts = frames["confusion_counts"].to_numpy()
    ax.imshow(counts, cmap="Blues")
    for (i, j), v in np.ndenumerate(counts):
        ax.text(j, i, str(v), ha="center", va="center")
    ax.set(xticks=[0, 1], yticks=[0, 1], xlabel="predicted", ylabel="actual")
    save(fig, "confusion_matrix")

    fig, ax = plt.subplots(figsize=(6, 6))
    biggest = coefficients.reindex(coefficients.abs().sort_values(ascending=False).index[:top])
    biggest.iloc[::-1].plot.barh(ax=ax)
    ax.set(xlabel="coefficient (standardised / one-hot)")
    save(fig, "top_coefficients")
    return paths
