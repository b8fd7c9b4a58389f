"""The registry's aliases and the rules that move them (one place for register, promote,
rollback and the service's `POST /model`).

- `@champion` is what was decided: moved by `register` (when a candidate beats it), `promote`
  and `rollback`, each with an audit trail in version tags.
- `@serving` is what the fleet serves: it follows `@champion` unless a pin is set (a
  registered-model tag written by `POST /model`); `POST /model/reload`, `promote` and
  `rollback` clear the pin.
Aliases move before the tags that describe the move, so a crash in between leaves no version
tagged as champion without the alias; re-running completes the tags.
"""

from __future__ import annotations

import getpass
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from flightdelay.core.config import CHALLENGER_ALIAS, CHAMPION_ALIAS, SERVING_ALIAS
from flightdelay.core.errors import UserError

PIN_TAG = "serving.pin"


def now() -> str:
    """The current UTC time, ISO 8601 to the second."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def alias_version(client: Any, name: str, alias: str) -> str | None:
    """The version `alias` points at, or None (no such alias or model)."""
    from mlflow.exceptions import MlflowException

    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None


def get_version(client: Any, name: str, version: str) -> Any:
    """The model version, or a UserError naming it."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version(name, version)
    except MlflowException:
        raise UserError(f"model {name!r} has no version {version}") from None


def get_pin(client: Any, name: str) -> dict[str, Any] | None:
    """The serving pin (version, reason, at) or None."""
    tags = client.get_registered_model(name).tags or {}
    raw = tags.get(PIN_TAG)
    if not raw:
        return None
    try:
        pin = json.loads(raw)
    except ValueError:
        return None
    return pin if isinstance(pin, dict) else None


def tag_version(client: Any, name: str, version: str, tags: Mapping[str, str]) -> None:
    """Set each tag on the version."""
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, str(value))


def set_champion(client: Any, name: str, version: str, audit: Mapping[str, str]) -> str | None:
    """Move `@champion` to `version` (and `@serving` unless pinned), then write the audit tags
    (with the previous champion). Returns the previous champion version."""
    previous = alias_version(client, name, CHAMPION_ALIAS)
    client.set_registered_model_alias(name, CHAMPION_ALIAS, version)
    if get_pin(client, name) is None:
        client.set_registered_model_alias(name, SERVING_ALIAS, version)
    tags = {**audit, "champion.at": now(), "role": "champion"}
    if previous != version:  # re-setting the same champion keeps its recorded predecessor
        tags["champion.previous"] = previous or ""
    tag_version(client, name, version, tags)
    if previous and previous != version:
        tag_version(client, name, previous, {"role": "former-champion"})
    return previous


def set_challenger(client: Any, name: str, version: str) -> None:
    """Point `@challenger` at `version`."""
    client.set_registered_model_alias(name, CHALLENGER_ALIAS, version)


def pin_serving(client: Any, name: str, version: str, reason: str) -> dict[str, Any]:
    """Serve `version` fleet-wide (`@serving` + a pin that survives restarts); returns the pin."""
    get_version(client, name, version)
    pin = {"version": version, "reason": reason, "at": now(), "by": _user()}
    client.set_registered_model_alias(name, SERVING_ALIAS, version)
    client.set_registered_model_tag(name, PIN_TAG, json.dumps(pin, sort_keys=True))
    return pin


def clear_pin(client: Any, name: str) -> str | None:
    """Drop the pin and point `@serving` back at `@champion`; returns the serving version."""
    champion = alias_version(client, name, CHAMPION_ALIAS)
    if get_pin(client, name) is not None:
        client.delete_registered_model_tag(name, PIN_TAG)
    if champion:
        client.set_registered_model_alias(name, SERVING_ALIAS, champion)
    return champion


def schema_of(version: Any) -> str:
    """The input-schema hash a version was registered with ('' when unknown)."""
    return str((version.tags or {}).get("schema.inputs", ""))


def promote(
    client: Any, name: str, version: str, reason: str, allow_schema_change: bool = False
) -> str | None:
    """Make `version` the champion by hand (audited), clear any pin; returns the previous one.
    Refuses a version whose inputs differ from the served one unless `allow_schema_change`."""
    if not reason.strip():
        raise UserError("--reason is required: say why this version should serve")
    target = get_version(client, name, version)
    served = alias_version(client, name, SERVING_ALIAS) or alias_version(
        client, name, CHAMPION_ALIAS
    )
    if served and served != version and not allow_schema_change:
        current = get_version(client, name, served)
        if not schema_of(target) or schema_of(target) != schema_of(current):
            raise UserError(
                f"version {version} takes other inputs than the served version {served}: it would "
                "change /predict for every client; pass --allow-schema-change to promote it"
            )
    if get_pin(client, name) is not None:
        client.delete_registered_model_tag(name, PIN_TAG)
    audit = {"champion.reason": reason, "champion.by": _user(), "champion.how": "promote"}
    return set_champion(client, name, version, audit)


def rollback(client: Any, name: str, reason: str = "rollback") -> tuple[str, str]:
    """Move `@champion` back to the version it replaced; returns (from, to)."""
    current = alias_version(client, name, CHAMPION_ALIAS)
    if current is None:
        raise UserError(f"model {name!r} has no @{CHAMPION_ALIAS} to roll back")
    previous = str((get_version(client, name, current).tags or {}).get("champion.previous", ""))
    if not previous:
        raise UserError(f"v{current} has no previous champion recorded: use `flightdelay promote`")
    if get_pin(client, name) is not None:
        client.delete_registered_model_tag(name, PIN_TAG)
    # The restored version keeps its own predecessor, so a second rollback goes further back
    # instead of forward to the version just rolled back.
    before = str((get_version(client, name, previous).tags or {}).get("champion.previous", ""))
    audit = {"champion.reason": reason, "champion.by": _user(), "champion.how": "rollback"}
    set_champion(client, name, previous, audit)
    tag_version(
        client, name, previous, {"champion.previous": before, "champion.rolled_back_from": current}
    )
    return current, previous


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
