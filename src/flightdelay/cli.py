"""The `flightdelay` command: pipeline stages, the service, the client and the stack.

Errors a user can fix print as one line on stderr and exit 1; nothing else is printed.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import typer

from flightdelay.core.errors import UserError

P = ParamSpec("P")
R = TypeVar("R")

app = typer.Typer(help=__doc__, no_args_is_help=True, pretty_exceptions_enable=False)


def user_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Turn UserError (and Ctrl-C) into one readable line and exit status 1."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except UserError as exc:
            print(f"error: {exc}", file=sys.stderr)
            raise SystemExit(1) from None
        except KeyboardInterrupt:
            print("error: interrupted", file=sys.stderr)
            raise SystemExit(130) from None
        except (SystemExit, typer.Exit):
            raise
        except Exception as exc:  # an unexpected failure: one line, the traceback only with -v
            logging.getLogger("flightdelay").debug("traceback", exc_info=True)
            first = (str(exc).strip().splitlines() or [""])[0][:300]
            print(
                f"error: {type(exc).__name__}: {first} (run with -v for details)", file=sys.stderr
            )
            raise SystemExit(1) from None

    return wrapper


def mlflow_client_env(func: Callable[P, R]) -> Callable[P, R]:
    """Run the command in a process whose environment holds what MLflow's client reads from it
    (:func:`~flightdelay.core.tracking.client_env`: timeouts, retries and, for a server, the
    credentials from .env): when something is missing, the command re-executes itself once with
    it added, so the process's environment is never written at call time."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        from flightdelay.core.config import get_pipeline_settings
        from flightdelay.core.tracking import client_env

        missing = client_env(get_pipeline_settings(), os.environ)
        if missing:
            argv = [sys.executable, "-m", "flightdelay.cli", *sys.argv[1:]]
            os.execve(sys.executable, argv, {**os.environ, **missing})
        return func(*args, **kwargs)

    return wrapper


@app.callback()
def _main(verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging.")) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for noisy in ("alembic", "botocore", "urllib3", "git", "matplotlib", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # urllib3's per-retry warnings would turn one outage into several lines: the error says it
    logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)


# --- pipeline stages (paths are written once, in dvc.yaml: no defaults here) -------------


@app.command("target")
@user_errors
def target_cmd(
    database: str = typer.Option(..., help="Where the masked DATABASE_URL goes."),
    mlflow: str = typer.Option(..., help="Where the masked MLFLOW_TRACKING_URI goes."),
) -> None:
    """Stage target: record where the data lives (masked URLs), so moving it re-runs stages."""
    from flightdelay.pipeline.target import main

    main(database, mlflow)


@app.command("get-data")
@user_errors
def get_data_cmd(
    out_dir: str = typer.Option(..., help="Where the parquet files go."),
) -> None:
    """Stage get_data: write the source tables (package or data/external files) to parquet."""
    from flightdelay.pipeline.get_data import main

    main(out_dir)


@app.command("load")
@user_errors
def load_cmd(
    raw_dir: str = typer.Option(...),
    report: str = typer.Option(...),
) -> None:
    """Stage load: create sql/schema.sql tables in DATABASE_URL and bulk-load the raw files."""
    from flightdelay.pipeline.load import main

    main(raw_dir, report)


@app.command("features")
@user_errors
def features_cmd(
    out_dir: str = typer.Option(...),
    load_report: str = typer.Option(...),
) -> None:
    """Stage features: build the feature table with sql/features.sql and export the splits."""
    from flightdelay.pipeline.features import main

    main(out_dir, load_report)


@app.command("train")
@user_errors
@mlflow_client_env
def train_cmd(
    variant: str = typer.Argument(..., help="A key of train.variants in params.yaml."),
    data_dir: str = typer.Option(...),
    metrics_dir: str = typer.Option(...),
    plots_dir: str = typer.Option(...),
    runs_dir: str = typer.Option(...),
) -> None:
    """Stage train@<variant>: fit, evaluate and log one variant to MLflow."""
    from flightdelay.pipeline.train import main

    main(variant, data_dir, metrics_dir, plots_dir, runs_dir)


@app.command("compare")
@user_errors
def compare_cmd(
    plots_dir: str = typer.Option(...),
    out_dir: str = typer.Option(...),
) -> None:
    """Stage compare: every variant's curves in one file each (overlaid by `dvc plots show`)."""
    from flightdelay.pipeline.compare import main

    main(plots_dir, out_dir)


@app.command("register")
@user_errors
@mlflow_client_env
def register_cmd(
    runs_dir: str = typer.Option(...),
    test: str = typer.Option(..., help="The test split the champion is re-scored on."),
    out: str = typer.Option(..., help="The untracked decision report."),
    marker: str = typer.Option(..., help="The fingerprints now registered (DVC output)."),
) -> None:
    """Stage register: register new runs once; promote only what beats @champion."""
    from flightdelay.pipeline.register import main

    main(runs_dir, test, out, marker)


@app.command("promote")
@user_errors
@mlflow_client_env
def promote_cmd(
    version: str = typer.Argument(..., help="The registered version to make @champion."),
    reason: str = typer.Option(..., "--reason", help="Why: recorded in the audit tags."),
    allow_schema_change: bool = typer.Option(
        False, help="Allow a version whose inputs differ from the served one."
    ),
) -> None:
    """Make a version @champion (and @serving) by hand, with an audit trail; clears any pin."""
    from flightdelay.pipeline.promote import promote

    promote(version, reason, allow_schema_change)


@app.command("rollback")
@user_errors
@mlflow_client_env
def rollback_cmd(
    reason: str = typer.Option("rollback", "--reason", help="Why: recorded in the audit tags."),
) -> None:
    """Move @champion (and @serving) back to the version it replaced; clears any pin."""
    from flightdelay.pipeline.promote import rollback

    rollback(reason)


def _mount_optional() -> None:
    """Mount the service and stack command groups (their modules import lazily inside)."""
    from flightdelay.pipeline.score_cli import register as register_score
    from flightdelay.serving.cli import register as register_serving
    from flightdelay.stack.cli import register as register_stack

    register_score(app, user_errors, mlflow_client_env)
    register_serving(app, user_errors)
    register_stack(app, user_errors)


_mount_optional()


if __name__ == "__main__":  # pragma: no cover
    app()
