"""CLI commands of the stack: `flightdelay stack up|down|status|env|doctor|compose`.

Each command imports what it needs when it runs, so `flightdelay --help` stays fast.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from flightdelay.core.errors import UserError

if TYPE_CHECKING:
    from flightdelay.core.config import StackSettings


def _settings() -> StackSettings:
    """The stack's settings; one line naming each bad variable when they cannot be read."""
    from pydantic import ValidationError

    from flightdelay.core.config import get_stack_settings
    from flightdelay.stack.validate import settings_error

    try:
        return get_stack_settings()
    except ValidationError as exc:
        raise settings_error(exc) from None


def _settings_to_stop() -> StackSettings:
    """For `down` and `status`: the settings, or when they cannot be read (a bad port in .env),
    just STACK_DIR / STACK_TOOLS_DIR, which is all these two need."""
    from pydantic import ValidationError
    from pydantic_settings import BaseSettings, SettingsConfigDict

    from flightdelay.core.config import StackSettings

    try:
        return _settings()
    except UserError as exc:
        if not isinstance(exc.__context__, ValidationError):
            raise

    class Where(BaseSettings):
        model_config = SettingsConfigDict(env_file=".env", extra="ignore")
        stack_dir: Path = Path(".stack")
        stack_tools_dir: Path | None = None

    where = Where()
    return StackSettings.model_construct(
        stack_dir=where.stack_dir, stack_tools_dir=where.stack_tools_dir
    )


def _redacted(func: Callable[[], None]) -> Callable[[], None]:
    """No secret and no URL password in an error message of a stack command."""
    import functools

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        try:
            func(*args, **kwargs)
        except UserError as exc:
            from flightdelay.core.config import get_stack_settings, mask_url
            from flightdelay.stack.validate import SECRETS

            text = mask_url(str(exc))
            try:
                values = [getattr(get_stack_settings(), n).get_secret_value() for n in SECRETS]
            except Exception:  # settings that cannot be read hold no secret to hide
                values = []
            for value in sorted((v for v in values if len(v) >= 4), key=len, reverse=True):
                text = text.replace(value, "***")
            raise UserError(text) from None

    return wrapper


def up() -> None:
    """Start every service and wait until each is healthy (idempotent). With no .env, write one
    from .env.example with fresh random secrets first."""
    from flightdelay.core.config import clear_settings_cache
    from flightdelay.stack import manager
    from flightdelay.stack.envfile import ensure_env

    fresh = ensure_env()
    if fresh:
        clear_settings_cache()
        print(f"wrote .env (mode 0600) from .env.example with fresh random {', '.join(fresh)}")
    timings = manager.up(_settings())
    for name, seconds in timings.items():
        print(f"{name:<10} healthy  ({seconds:.1f} s)")
    print("stack is up: `flightdelay stack env` prints the settings to use it")


def down() -> None:
    """Stop every service, and any process of the stack a crashed supervisord left (the data in
    STACK_DIR stays)."""
    from flightdelay.stack import manager

    stray = manager.down(_settings_to_stop())
    if stray:
        print(f"stopped processes supervisord no longer ran: {', '.join(stray)}")
    print("stack is down")


def status() -> None:
    """Each service's state (exit 3 unless every one is RUNNING)."""
    from flightdelay.stack import manager

    states = manager.status(_settings_to_stop())
    if not states:
        print("stack is down")
        raise typer.Exit(3)
    for name, state in states.items():
        print(f"{name:<10} {state}")
    if "ORPHANED" in states.values():
        print("supervisord of this stack is gone: `flightdelay stack up` restarts these under a")
        print("new one, `flightdelay stack down` stops them")
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
        stack.command(name)(user_errors(_redacted(command)))
    app.add_typer(stack, name="stack")
