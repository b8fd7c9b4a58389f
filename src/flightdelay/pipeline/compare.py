"""Stage compare: every variant's ROC, precision-recall and calibration points in one file per
curve (with a `variant` column), so dvc.yaml's top-level plots overlay them in one chart each.

Pure file work, deterministic: adding a variant in params.yaml adds its curves here.
"""

from __future__ import annotations

from pathlib import Path

from flightdelay.core.config import get_pipeline_settings, load_params
from flightdelay.pipeline.plots import write_overlays


def main(plots_dir: str, out_dir: str) -> None:
    """Merge `plots_dir/<variant>/<curve>.csv` into `out_dir/<curve>.csv`."""
    params = load_params(get_pipeline_settings().params_path)
    write_overlays(Path(plots_dir), list(params.train.variants), Path(out_dir))
