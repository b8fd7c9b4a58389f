"""CLI command of stage score: `flightdelay score` (mounted by flightdelay.cli)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import typer


def register(
    app: typer.Typer, user_errors: Callable[[Any], Any], client_env: Callable[[Any], Any]
) -> None:
    """Add `score` to the main CLI (with MLflow's client environment, as the other MLflow
    commands); the stage module is imported only when it runs."""
    app.command("score")(user_errors(client_env(score_cmd)))


def score_cmd(
    data_dir: str = typer.Option(..., help="The feature splits: <dir>/{train,test}.parquet."),
    out_dir: str = typer.Option(..., help="Where <split>.parquet and score.json go."),
) -> None:
    """Stage score: models:/<name>@serving over the feature table (params.yaml score.engine)
    -> <out-dir>/{train,test}.parquet and the `predictions` table of DATABASE_URL."""
    from flightdelay.pipeline.score import main

    main(data_dir, out_dir)
