"""CLI commands of the native stack: `flightdelay stack up|down|status|env|doctor`."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import typer


def register(app: typer.Typer, user_errors: Callable[[Any], Any]) -> None:
    """Mount the `stack` command group on the main CLI."""
    stack = typer.Typer(
        help="The native stack (local processes under supervisord).", no_args_is_help=True
    )

    @stack.command("up")
    @user_errors
    def up() -> None:
        """Start every service and wait until each is healthy (idempotent)."""
        from flightdelay.core.config import get_stack_settings
        from flightdelay.stack import manager

        timings = manager.up(get_stack_settings())
        for name, seconds in timings.items():
            print(f"{name:<9} healthy  ({seconds:.1f} s)")
        print("stack is up: `flightdelay stack env` prints the settings to use it")

    @stack.command("down")
    @user_errors
    def down() -> None:
        """Stop every service (the data in STACK_DIR stays)."""
        from flightdelay.core.config import get_stack_settings
        from flightdelay.stack import manager

        manager.down(get_stack_settings())
        print("stack is down")

    @stack.command("status")
    @user_errors
    def status() -> None:
        """Each service's state."""
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

    @stack.command("env")
    @user_errors
    def env(
        as_json: bool = typer.Option(False, "--json", help="One JSON object."),
        export: bool = typer.Option(
            False, "--export", help='Shell `export` lines: eval "$(flightdelay stack env --export)"'
        ),
    ) -> None:
        """Print the settings that point `dvc repro` and the API at the stack (for .env)."""
        import shlex

        from flightdelay.core.config import get_stack_settings
        from flightdelay.stack.render import client_env

        values = client_env(get_stack_settings())
        if as_json:
            print(json.dumps(values))
        else:
            for key, value in values.items():
                print(f"export {key}={shlex.quote(value)}" if export else f"{key}={value}")

    @stack.command("doctor")
    @user_errors
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

    app.add_typer(stack, name="stack")
