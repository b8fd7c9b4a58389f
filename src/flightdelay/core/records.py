"""Typed records passed between stages through DVC-tracked files.

A :class:`RunRecord` is what `train@<variant>` writes to `models/runs/<variant>.json` and
`register` reads: deterministic content only (no run ids, timings or hostnames), so a fresh
clone reproduces the file byte for byte and `dvc.lock` stays unchanged.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from flightdelay.core.errors import UserError


@dataclass(frozen=True)
class RunRecord:
    """One trained variant: its fingerprint (the MLflow run's `fingerprint` tag) and metrics."""

    variant: str
    fingerprint: str
    metrics: dict[str, float]
    data: dict[str, str] = field(default_factory=dict)  # name -> DVC md5 of the split file

    def write(self, path: Path) -> None:
        """Write the record as sorted, indented JSON."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self), indent=2, sort_keys=True) + "\n")

    @classmethod
    def read(cls, path: Path) -> RunRecord:
        """Read a record; a missing or foreign file is a UserError naming it."""
        try:
            raw = json.loads(path.read_text())
            return cls(
                variant=str(raw["variant"]),
                fingerprint=str(raw["fingerprint"]),
                metrics={str(k): float(v) for k, v in raw["metrics"].items()},
                data={str(k): str(v) for k, v in raw.get("data", {}).items()},
            )
        except FileNotFoundError:
            raise UserError(f"{path} missing: run `dvc repro` (the train stages) first") from None
        except (KeyError, TypeError, ValueError, AttributeError):
            raise UserError(f"{path}: not a run record; re-run the train stage") from None
