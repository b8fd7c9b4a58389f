"""Stage register: put every trained variant in the registry and alias the best one.

The quality gate is checked before anything is written: when the best variant misses
`register.min_value`, the stage exits non-zero and the registry (versions and aliases) is
left exactly as it was.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flightdelay.core import tracking
from flightdelay.core.config import (
    CHALLENGER_ALIAS,
    CHAMPION_ALIAS,
    Params,
    RegisterParams,
    get_pipeline_settings,
    load_params,
)
from flightdelay.core.errors import UserError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Decision:
    """Variants ranked best first by the registry metric."""

    ranked: list[dict[str, Any]]
    metric: str

    @property
    def champion(self) -> dict[str, Any]:
        return self.ranked[0]


def decide(records: list[dict[str, Any]], rp: RegisterParams) -> Decision:
    """Rank the run records by `rp.metric` and apply the quality gate (UserError on failure)."""
    if not records:
        raise UserError("no trained variants found: run the train stages first")
    missing = [r["variant"] for r in records if rp.metric not in r["metrics"]]
    if missing:
        raise UserError(
            f"params.yaml register.metric {rp.metric!r} not logged for {', '.join(missing)}"
        )
    ranked = sorted(records, key=lambda r: r["metrics"][rp.metric], reverse=rp.greater_is_better)
    best = ranked[0]["metrics"][rp.metric]
    passes = best >= rp.min_value if rp.greater_is_better else best <= rp.min_value
    if not passes:
        op = ">=" if rp.greater_is_better else "<="
        raise UserError(
            f"quality gate failed: best variant {ranked[0]['variant']!r} has "
            f"{rp.metric}={best:.4f}, "
            f"register.min_value needs {op} {rp.min_value}; registry and aliases left unchanged"
        )
    return Decision(ranked, rp.metric)


def read_records(runs_dir: Path, variants: list[str]) -> list[dict[str, Any]]:
    """The run pointers the train stages wrote for `variants`."""
    records = []
    for variant in variants:
        path = runs_dir / f"{variant}.json"
        if not path.is_file():
            raise UserError(f"{path} missing: run `dvc repro train@{variant}` first")
        records.append(json.loads(path.read_text()))
    return records


def register(records: list[dict[str, Any]], params: Params) -> dict[str, Any]:
    """Register every record, set champion/challenger aliases; returns the decision report."""
    rp = params.registry
    decision = decide(records, rp)
    settings = get_pipeline_settings()
    client = tracking.require_client(settings)
    sha = tracking.git_sha()
    versions: dict[str, int] = {}
    for rank, rec in enumerate(decision.ranked):
        role = CHAMPION_ALIAS if rank == 0 else CHALLENGER_ALIAS if rank == 1 else "candidate"
        tags = {
            "variant": rec["variant"],
            "role": role,
            "git_sha": sha,
            "decision.metric": rp.metric,
            f"metric.{rp.metric}": f"{rec['metrics'][rp.metric]:.6f}",
            **{k: v for k, v in rec.get("tags", {}).items() if k.startswith("data.")},
        }
        versions[rec["variant"]] = tracking.register_run(rec["run_id"], rp.model_name, tags)
    champion = decision.ranked[0]["variant"]
    client.set_registered_model_alias(rp.model_name, CHAMPION_ALIAS, versions[champion])
    if len(decision.ranked) > 1:
        client.set_registered_model_alias(
            rp.model_name, CHALLENGER_ALIAS, versions[decision.ranked[1]["variant"]]
        )
    report = {
        "model_name": rp.model_name,
        "metric": rp.metric,
        "greater_is_better": rp.greater_is_better,
        "min_value": rp.min_value,
        "git_sha": sha,
        "decided_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "aliases": {CHAMPION_ALIAS: versions[champion]}
        | (
            {CHALLENGER_ALIAS: versions[decision.ranked[1]["variant"]]}
            if len(decision.ranked) > 1
            else {}
        ),
        "versions": [
            {
                "variant": rec["variant"],
                "version": versions[rec["variant"]],
                "run_id": rec["run_id"],
                rp.metric: rec["metrics"][rp.metric],
            }
            for rec in decision.ranked
        ],
    }
    log.info("registered %s: champion v%s (%s)", rp.model_name, versions[champion], champion)
    return report


def main(runs_dir: str, out: str) -> None:
    """Run the stage with params.yaml; write the decision to `out`."""
    params = load_params()
    records = read_records(Path(runs_dir), list(params.train.variants))
    report = register(records, params)
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
