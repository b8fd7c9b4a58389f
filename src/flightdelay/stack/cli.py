"""CLI commands of flightdelay.stack (mounted by flightdelay.cli)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import typer


def register(app: typer.Typer, user_errors: Callable[[Any], Any]) -> None:
    """Add this package's commands to the main CLI; imports stay inside each command."""
    return None
