"""Stage register: register each trained run once, and promote only what beats the champion.

1. The quality gate (`register.min_value`) is checked before anything is written.
2. Each variant's MLflow run is found by its fingerprint; a run already registered keeps its
   version (a re-run after a crash completes the same decision without duplicates).
3. The best variant of this run is the candidate. It becomes `@champion` only if it beats the
   current champion *evaluated on the same test data* by `register.min_improvement`; else it
   becomes `@challenger`. Under `dvc exp run` nothing moves: experiments are candidates only.
4. The decision is written as version tags and to the untracked `reports/registry.json`.
"""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from flightdelay.core import lineage, model_card, registry
from flightdelay.core.config import (
    CHAMPION_ALIAS,
    Params,
    RegisterParams,
    get_pipeline_settings,
    load_params,
)
from flightdelay.core.errors import UserError
from flightdelay.core.evaluation import evaluate, round_sig
from flightdelay.core.labels import to_binary
from flightdelay.core.records import RunRecord
from flightdelay.core.tracking import Tracking

log = logging.getLogger(__name__)


def rank(records: list[RunRecord], rp: RegisterParams) -> list[RunRecord]:
    """The records best first by `rp.metric`; UserError when the best misses the gate."""
    if not records:
        raise UserError("no trained variants found: run the train stages first")
    missing = [r.variant for r in records if rp.metric not in r.metrics]
    if missing:
        raise UserError(
            f"params.yaml register.metric {rp.metric!r} not logged for {', '.join(missing)}"
        )
    ranked = sorted(
        records, key=lambda r: (r.metrics[rp.metric], r.variant), reverse=rp.greater_is_better
    )
    best = ranked[0].metrics[rp.metric]
    if not (best >= rp.min_value if rp.greater_is_better else best <= rp.min_value):
        op = ">=" if rp.greater_is_better else "<="
        raise UserError(
            f"quality gate failed: best variant {ranked[0].variant!r} has {rp.metric}={best:.4f}, "
            f"register.min_value needs {op} {rp.min_value}; registry and aliases left unchanged"
        )
    return ranked


@dataclass(frozen=True)
class Decision:
    """What happens to the candidate, and why."""

    action: str  # "promote" | "challenger" | "keep" | "candidate"
    reason: str
    candidate_score: float
    champion_score: float | None = None
    margin: float | None = None


def decide(
    candidate: float,
    champion: float | None,
    rp: RegisterParams,
    *,
    comparable: bool = True,
    experiment: bool = False,
    is_champion: bool = False,
    decided: bool = True,
) -> Decision:
    """The promotion rule (pure): see the module docstring. `decided` is False when the
    candidate holds @champion but carries no decision (a register interrupted after the move)."""
    if is_champion:
        if not decided:
            return Decision("promote", "completed an interrupted register", candidate, champion)
        return Decision("keep", "the candidate is already @champion", candidate, champion)
    if experiment:
        return Decision(
            "candidate", "dvc exp run: experiments never move @champion", candidate, champion
        )
    if champion is None and comparable:
        return Decision("promote", "no current champion; quality gate passed", candidate)
    if champion is None or not comparable:
        why = (
            "the candidate's inputs differ from @champion's (or the champion cannot score the "
            "current test data): review it, then `flightdelay promote <version> --reason ... "
            "--allow-schema-change`"
        )
        return Decision("challenger", why, candidate, champion)
    margin = candidate - champion if rp.greater_is_better else champion - candidate
    margin = round_sig(margin)
    if margin >= rp.min_improvement and margin > 0:
        why = f"beats @champion by {margin} >= register.min_improvement {rp.min_improvement}"
        return Decision("promote", why, candidate, champion, margin)
    why = f"margin {margin} < register.min_improvement {rp.min_improvement}"
    return Decision("challenger", why, candidate, champion, margin)


def read_records(runs_dir: Path, variants: list[str]) -> list[RunRecord]:
    """The run records the train stages wrote for `variants`."""
    return [RunRecord.read(runs_dir / f"{variant}.json") for variant in variants]


def version_for(
    tracking: Tracking, params: Params, record: RunRecord, card: str
) -> tuple[str, str]:
    """(run id, version) of a record: its run found by fingerprint, registered once."""
    client, name = tracking.client, params.registry.model_name
    experiment = client.get_experiment_by_name(params.mlflow.experiment)
    run_id = None
    if experiment is not None:
        run_id = tracking.find_run(str(experiment.experiment_id), record.fingerprint)
    if run_id is None:
        raise UserError(
            f"no MLflow run with fingerprint {record.fingerprint} ({record.variant}) in "
            f"{tracking.masked_uri}: run `dvc repro -f train@{record.variant}`"
        )
    for mv in client.search_model_versions(f"name = '{name}' and run_id = '{run_id}'"):
        return run_id, str(mv.version)
    run = client.get_run(run_id)
    tags = {
        "variant": record.variant,
        "fingerprint": record.fingerprint,
        "schema.inputs": tracking.input_schema_hash(run_id),
        **{f"data.{k}_md5": v for k, v in record.data.items()},
        **{k: v for k, v in run.data.tags.items() if k.startswith(("git.", "dvc."))},
        **{f"metric.{k}": str(v) for k, v in record.metrics.items()},
    }
    version = tracking.create_version(
        name, run_id, tags, card, model_description=model_card.model_description(name)
    )
    return run_id, version


def champion_score(
    tracking: Tracking, name: str, version: str, test: pd.DataFrame, params: Params
) -> float | None:
    """The champion's `register.metric` on the current test split, or None when it cannot
    score these rows (its input signature differs: other features, another dataset)."""
    tp = params.train
    try:
        with tempfile.TemporaryDirectory() as tmp:
            model = tracking.load_pyfunc(name, version, Path(tmp))
            # every column but the label: the champion picks the inputs of its own signature
            proba = np.asarray(model.predict(test.drop(columns=[tp.target])), dtype=float)
    except Exception as exc:  # any failure to load or score means "cannot compare"
        log.warning("champion v%s cannot score the current test data: %s", version, str(exc)[:200])
        return None
    if proba.ndim == 2:
        proba = proba[:, -1]
    y = to_binary(test[tp.target], tp.positive, target=tp.target)
    return round_sig(evaluate(y, proba, tp.decision_threshold)[params.registry.metric])


def apply(
    tracking: Tracking, rp: RegisterParams, version: str, runner_up: str | None, d: Decision
) -> None:
    """Move aliases for the decision, then write its tags and card section on the candidate."""
    client, name = tracking.client, rp.model_name
    record = {**asdict(d), "at": registry.now()}
    tags = {f"decision.{k}": "" if v is None else str(v) for k, v in record.items()}
    if d.action == "promote":
        registry.set_champion(client, name, version, {"champion.how": "register"})
        if runner_up:
            registry.set_challenger(client, name, runner_up)
    elif d.action == "challenger":
        registry.set_challenger(client, name, version)
        tags["role"] = "challenger"
    elif d.action == "candidate":
        tags["role"] = "candidate"
    registry.tag_version(client, name, version, tags)
    if d.action != "keep":
        card = client.get_model_version(name, version).description or ""
        section = model_card.decision_section(record, rp.metric)
        client.update_model_version(name, version, description=card + section)


def same_inputs(tracking: Tracking, name: str, a: str, b: str) -> bool:
    """True when two versions take the same inputs (promoting one over the other keeps
    `/predict` unchanged for every client)."""
    va, vb = (registry.get_version(tracking.client, name, v) for v in (a, b))
    return bool(registry.schema_of(va)) and registry.schema_of(va) == registry.schema_of(vb)


def _has_decision(tracking: Tracking, name: str, version: str) -> bool:
    tags = tracking.client.get_model_version(name, version).tags or {}
    return "decision.action" in tags


def register(records: list[RunRecord], params: Params, test: pd.DataFrame) -> dict[str, Any]:
    """Register every record once, decide on the best; returns the decision report."""
    rp = params.registry
    ranked = rank(records, rp)
    tracking = Tracking(get_pipeline_settings()).check()
    versions: dict[str, str] = {}
    runs: dict[str, str] = {}
    for rec in ranked:
        card = model_card.version_card(rp.model_name, rec, params)
        runs[rec.variant], versions[rec.variant] = version_for(tracking, params, rec, card)
    candidate = versions[ranked[0].variant]
    current = registry.alias_version(tracking.client, rp.model_name, CHAMPION_ALIAS)
    score = None
    comparable = True
    if current and current != candidate:
        score = champion_score(tracking, rp.model_name, current, test, params)
        comparable = score is not None and same_inputs(tracking, rp.model_name, current, candidate)
    decision = decide(
        ranked[0].metrics[rp.metric],
        score,
        rp,
        comparable=comparable,
        experiment=lineage.in_dvc_experiment(),
        is_champion=current == candidate,
        decided=_has_decision(tracking, rp.model_name, candidate),
    )
    runner_up = versions[ranked[1].variant] if len(ranked) > 1 else None
    apply(tracking, rp, candidate, runner_up, decision)
    champion = registry.alias_version(tracking.client, rp.model_name, CHAMPION_ALIAS)
    log.info("%s v%s: %s (%s)", rp.model_name, candidate, decision.action, decision.reason)
    return {
        "model_name": rp.model_name,
        "metric": rp.metric,
        "candidate": {"variant": ranked[0].variant, "version": int(candidate)},
        "decision": asdict(decision),
        "champion": int(champion) if champion else None,
        "previous_champion": int(current) if current else None,
        "versions": [
            {
                "variant": r.variant,
                "version": int(versions[r.variant]),
                "run_id": runs[r.variant],
                rp.metric: r.metrics[rp.metric],
            }
            for r in ranked
        ],
        "decided_at": registry.now(),
    }


def main(runs_dir: str, test_path: str, out: str, marker: str) -> None:
    """Run the stage with params.yaml: register, decide, write the untracked report `out` and
    the deterministic `marker` (the model name and the fingerprints now registered)."""
    params = load_params(get_pipeline_settings().params_path)
    records = read_records(Path(runs_dir), list(params.train.variants))
    report = register(records, params, pd.read_parquet(test_path))
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    registered = {
        "model_name": params.registry.model_name,
        "fingerprints": sorted(r.fingerprint for r in records),
    }
    Path(marker).parent.mkdir(parents=True, exist_ok=True)
    Path(marker).write_text(json.dumps(registered, indent=2, sort_keys=True) + "\n")
