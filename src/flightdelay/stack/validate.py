"""Every check of new settings that `stack up` makes BEFORE it stops or starts anything: all
ports at once (range, clashes between settings, taken by a process that is not this stack's),
secrets (none empty, none a `change-me` placeholder), names, and the URLs in .env. Bad settings
leave a running stack untouched; the error is one line naming every bad variable and port."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from pydantic import SecretStr, ValidationError

from flightdelay.core.config import StackSettings, mask_url
from flightdelay.core.errors import UserError
from flightdelay.stack import procs
from flightdelay.stack.layout import Layout, Tools
from flightdelay.stack.targets import Native

PLACEHOLDER = "change-me"
SECRETS = tuple(name for name, f in StackSettings.model_fields.items() if f.annotation is SecretStr)
NAMES = (
    "postgres_user",
    "postgres_readonly_user",
    "postgres_mlflow_db",
    "postgres_features_db",
    "postgres_mlflow_auth_db",
    "aws_access_key_id",
    "mlflow_tracking_username",
)
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


def bad_secrets(settings: StackSettings) -> list[str]:
    """`NAME is empty` / `NAME is a placeholder (change-me…)` for each such secret."""
    out = []
    for name in SECRETS:
        value = getattr(settings, name).get_secret_value()
        if not value.strip():
            out.append(f"{name.upper()} is empty")
        elif value.strip().lower().startswith(PLACEHOLDER):
            out.append(f"{name.upper()} is a placeholder ({PLACEHOLDER}…)")
    return out


def _names(settings: StackSettings) -> list[str]:
    out = [f"{n.upper()} is empty" for n in NAMES if not str(getattr(settings, n)).strip()]
    if settings.postgres_readonly_user == settings.postgres_user:
        out.append("POSTGRES_READONLY_USER must differ from POSTGRES_USER")
    for field in ("s3_bucket_mlflow", "s3_bucket_dvc"):
        if not _BUCKET.match(getattr(settings, field)):
            out.append(f"{field.upper()}={getattr(settings, field)!r} is not an S3 bucket name")
    if "@" not in settings.pgadmin_email:
        out.append(f"PGADMIN_EMAIL={settings.pgadmin_email!r} is not an e-mail address")
    if settings.stack_start_timeout <= 0:
        out.append("STACK_START_TIMEOUT must be > 0")
    return out


def _url_problem(name: str, url: str) -> str | None:
    """Why `url` (DATABASE_URL or MLFLOW_TRACKING_URI) cannot be used; None when it can."""
    shown = f"{name}={mask_url(url)}"
    if name == "DATABASE_URL":
        from sqlalchemy.engine import make_url

        try:
            _ = make_url(url).port
        except Exception as exc:  # ArgumentError, ValueError: one line either way
            why = "a port that is not a number" if isinstance(exc, ValueError) else "no scheme"
            return f"{shown} is not a valid database URL ({why})"
        return None
    parts = urlsplit(url)
    try:
        _ = parts.port
    except ValueError:
        return f"{shown} is not a valid URL (bad port)"
    if not parts.scheme or (parts.scheme in ("http", "https") and not parts.hostname):
        return f"{shown} is not a valid URL (expected http://host:port or sqlite:///file)"
    return None


def _urls(settings: StackSettings) -> list[str]:
    found = [
        _url_problem("DATABASE_URL", settings.database_url),
        _url_problem("MLFLOW_TRACKING_URI", settings.mlflow_tracking_uri),
    ]
    return [p for p in found if p]


def planned_ports(settings: StackSettings) -> list[tuple[str, int]]:
    """(setting, port) of every port the native stack listens on, from the spec."""
    from flightdelay.stack import spec

    layout = Layout.of(settings)
    target = Native(settings, layout, Tools.expected(layout))
    return [(p.setting, p.number) for s in spec.services(target, "-") for p in s.ports]


def _taken(port: int, setting: str, owners: set[int], mine: set[int]) -> str | None:
    if owners and owners <= mine:
        return None  # this stack's own service holds it
    pid = min(owners - mine) if owners - mine else 0
    who = f"pid {pid} ({procs.args_of(pid)[:60]})" if pid else "another process"
    return f"port {port} ({setting}) is taken by {who}"


def _ports(settings: StackSettings) -> list[str]:
    try:
        plan = planned_ports(settings)
    except UserError as exc:
        return [str(exc)]
    out = [f"{s}={n} is not a port (1-65535)" for s, n in plan if not 0 < n < 65536]
    plan = [(s, n) for s, n in plan if 0 < n < 65536]
    users: dict[int, list[str]] = {}
    for setting, number in plan:
        users.setdefault(number, []).append(setting)
    for number, settings_ in users.items():
        if len(settings_) > 1:
            out.append(f"port {number} is used by {' and '.join(dict.fromkeys(settings_))}")
    owners = procs.port_owners(set(users))
    mine = {p.pid for p in procs.stack_processes(Layout.of(settings).root)}
    for number, pids in sorted(owners.items()):
        problem = _taken(number, users[number][0], pids, mine)
        if problem:
            out.append(problem)
    return out


def problems(settings: StackSettings) -> list[str]:
    """Every problem of `settings` for `stack up` (empty: good to go)."""
    return bad_secrets(settings) + _names(settings) + _urls(settings) + _ports(settings)


def check(settings: StackSettings) -> None:
    """UserError naming every problem at once; nothing has been stopped or started."""
    found = problems(settings)
    if found:
        raise UserError(
            f"invalid stack settings, nothing was started or stopped: {'; '.join(found)}"
            " (fix them in .env or the environment, then run `flightdelay stack up` again)"
        )


def settings_error(exc: ValidationError) -> UserError:
    """A settings object that could not be built (POSTGRES_PORT=abc ...), as one line."""
    bad = []
    for err in exc.errors():
        name = "_".join(str(x) for x in err["loc"]).upper()
        value = mask_url(str(err.get("input", "")))[:60]
        bad.append(f"{name}={value!r}: {err['msg']}")
    return UserError(f"invalid settings: {'; '.join(bad)}")
