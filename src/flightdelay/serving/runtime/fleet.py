"""What the fleet serves lives in the registry: `@serving` and its pin (the rules are in
:mod:`flightdelay.core.registry`). `POST /model` pins a version there and `POST /model/reload`
clears the pin; every replica follows MODEL_ALIAS (default `serving`) within API_POLL_SECONDS
and reads the pin at each load and poll, so GET /model on any replica shows it.

Registry failures become :class:`ModelUnavailable` (503) with masked URLs.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from flightdelay.core.config import SERVING_ALIAS
from flightdelay.serving.runtime.served import ModelUnavailable, ServedModel
from flightdelay.serving.scrub import scrub

T = TypeVar("T")


def registry_call(what: str, call: Callable[[], T]) -> T:
    """`call()`, or ModelUnavailable (503) saying which registry step failed."""
    try:
        return call()
    except ModelUnavailable:
        raise
    except Exception as exc:
        message = scrub(
            f"registry unreachable or failing while {what}: {type(exc).__name__}: {exc}"
        )
        raise ModelUnavailable(message[:300], 503) from None


def pin(client: Any, name: str, version: int, reason: str) -> dict[str, Any]:
    """Point `@serving` at `version` with a pin (core.registry.pin_serving); returns the pin."""
    from flightdelay.core.registry import pin_serving

    return registry_call(
        "pinning @serving", lambda: pin_serving(client, name, str(version), reason)
    )


def unpin(client: Any, name: str) -> None:
    """Drop the pin; `@serving` follows `@champion` again (core.registry.clear_pin)."""
    from flightdelay.core.registry import clear_pin

    registry_call("clearing the pin", lambda: clear_pin(client, name))


def read_pin(client: Any, name: str) -> dict[str, Any] | None:
    """The current pin (core.registry.get_pin); None when there is none."""
    from flightdelay.core.registry import get_pin

    return registry_call("reading the pin", lambda: get_pin(client, name))


def relabel(served: ServedModel, alias: str) -> ServedModel:
    """`served` as reached through `alias` (what it reports, and what its holder follows)."""
    from dataclasses import replace

    return replace(served, alias=alias, info=served.info.model_copy(update={"alias": alias}))


def fleet_answer(model_alias: str, version: int, poll_seconds: float) -> dict[str, Any]:
    """When every replica is expected to serve `version` (they follow MODEL_ALIAS each poll)."""
    if model_alias != SERVING_ALIAS:
        return {
            "alias": SERVING_ALIAS,
            "version": version,
            "follow_seconds": None,
            "expected_by": None,
            "note": f"this replica follows @{model_alias}, not @{SERVING_ALIAS}: replicas that "
            f"follow @{SERVING_ALIAS} serve v{version} after their next poll or restart",
        }
    if poll_seconds <= 0:
        return {
            "alias": SERVING_ALIAS,
            "version": version,
            "follow_seconds": None,
            "expected_by": None,
            "note": "API_POLL_SECONDS is 0: other replicas follow at their next restart or reload",
        }
    by = datetime.now(UTC) + timedelta(seconds=poll_seconds)
    return {
        "alias": SERVING_ALIAS,
        "version": version,
        "follow_seconds": poll_seconds,
        "expected_by": by.isoformat(timespec="seconds"),
        "note": f"every replica following @{SERVING_ALIAS} serves v{version} within "
        f"{poll_seconds:g} s (API_POLL_SECONDS); this one already does",
    }
