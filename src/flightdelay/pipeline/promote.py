"""`flightdelay promote` / `flightdelay rollback`: move @champion by hand, audited.

Not a DVC stage: these are the one way an experiment reaches production (see core/registry.py
for the alias rules they follow).
"""

from __future__ import annotations

import logging

from flightdelay.core import registry
from flightdelay.core.config import get_pipeline_settings, load_params
from flightdelay.core.tracking import Tracking

log = logging.getLogger(__name__)


def _target() -> tuple[Tracking, str]:
    settings = get_pipeline_settings()
    name = load_params(settings.params_path).registry.model_name
    return Tracking(settings).check(), name


def promote(version: str, reason: str, allow_schema_change: bool = False) -> None:
    """Make `version` @champion and @serving."""
    tracking, name = _target()
    previous = registry.promote(tracking.client, name, version, reason, allow_schema_change)
    log.info("%s: @champion v%s -> v%s (%s)", name, previous or "-", version, reason)


def rollback(reason: str) -> None:
    """Move @champion back to its predecessor."""
    tracking, name = _target()
    old, new = registry.rollback(tracking.client, name, reason)
    log.info("%s: @champion rolled back v%s -> v%s (%s)", name, old, new, reason)
