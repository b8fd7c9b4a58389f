"""CLI commands of the stack: `flightdelay stack up|down|status|env|doctor|compose`.

Each command imports what it needs when it runs, so `flightdelay --help` stays fast.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from flightdelay.core.errors import UserError


def up() -> None:
    """Start every service and wait until each is healthy (idempotent)."""
    from flightdelay.core.config import get_stack_settings
    from flightdelay.stack import manager

    timings = manager.up(get_stack_settings())
    for name, seconds in timings.items():
        print(f"{name:<9} healthy  ({seconds:.1f} s)")
    print("stack is up: `flightdelay stack env` prints the settings to use it")


def down() -> None:
    """Stop every service (the data in STACK_DIR stays)."""
    from flightdelay.core.config import get_stack_settings
    from flightdelay.stack import manager

    manager.down(get_stack_settings())
    print("stack is down")


def status() -> None:
    """Each service's state (exit 3 unless every one is RUNNING)."""
    from flightdelay.core.config import get_stack_settings
    from flightdelay.stack import manager

    states = manager.status(get_stack_settings())
    if not states:
        print("stack is down")
        raise typer.Exit(3)
    for name, state in states.items():
        print(f"{name:<9} {state}")
    if any(s != "RUNNING" for s in states.values()):
        raise typer.Exit(3)


def env(
    as_json: bool = typer.Option(False, "--json", help="One JSON object."),
    export: bool = typer.Option(
        False, "--export", help='Shell `export` lines: eval "$(flightdelay stack env --export)"'
    ),
) -> None:
    """Print the settings that point `dvc repro` and the API at the stack (for .env)."""
    import shlex

    from flightdelay.core.config import get_stack_settings
    from flightdelay.stack.spec import client_env

    values = client_env(get_stack_settings())
    if as_json:
        print(json.dumps(values))
        return
    for key, value in values.items():
        print(f"export {key}={shlex.quote(value)}" if export else f"{key}={value}")


def doctor() -> None:
    """Check every endpoint, credential, bucket, the proxy, the DB and the DVC remote."""
    from flightdelay.core.config import get_stack_settings
    from flightdelay.stack.doctor import run_checks

    results = run_checks(get_stack_settings())
    for r in results:
        mark = "ok  " if r.ok else "FAIL"
        print(f"{mark} {r.name:<28} {r.detail}" + ("" if r.ok else f"  -> fix: {r.hint}"))
    if not all(r.ok for r in results):
        raise typer.Exit(1)


def compose(
    check: bool = typer.Option(
        False, "--check", help="Write nothing; exit 1 when the committed files differ."
    ),
) -> None:
    """Write docker-compose.yaml and Docker/'s config files from the spec (in the project root)."""
    from flightdelay.core.config import get_pipeline_settings, load_params
    from flightdelay.stack.backends import compose as backend

    name = load_params(get_pipeline_settings().params_path).registry.model_name
    if check:
        differ = backend.drift(Path.cwd(), name)
        if differ:
            raise UserError(
                f"differ from the stack spec: {', '.join(differ)}"
                " (run `flightdelay stack compose` and commit the result)"
            )
        print("docker-compose.yaml and Docker/ match the stack spec")
        return
    changed = backend.write(Path.cwd(), name)
    print(f"wrote {', '.join(changed)}" if changed else "nothing to change")


def register(app: typer.Typer, user_errors: Callable[[Any], Any]) -> None:
    """Mount the `stack` command group on the main CLI."""
    stack = typer.Typer(
        help="The stack: native processes under supervisord, or docker compose files.",
        no_args_is_help=True,
    )
    for name, command in (
        ("up", up),
        ("down", down),
        ("status", status),
        ("env", env),
        ("doctor", doctor),
        ("compose", compose),
    ):
        stack.command(name)(user_errors(command))
    app.add_typer(stack, name="stack")
