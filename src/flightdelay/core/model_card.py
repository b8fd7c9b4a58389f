"""Model cards: the description of the registered model and of each version (markdown, shown
in the MLflow UI and by `GET /model`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flightdelay.core.config import Params
from flightdelay.core.records import RunRecord


def model_description(name: str) -> str:
    """The registered model's description."""
    return (
        f"`{name}`: a logistic-regression classifier trained by the flightdelay DVC pipeline. "
        "`@champion` is what the registry decided; `@serving` is what the API fleet serves "
        "(`@champion` unless pinned by `POST /model`)."
    )


def version_card(name: str, record: RunRecord, params: Params) -> str:
    """A version's card: data, params, metrics, how to reproduce."""
    tp = params.train
    metrics = "\n".join(f"| {k} | {v} |" for k, v in sorted(record.metrics.items()))
    data = "\n".join(
        f"- `data/processed/{k}.parquet` md5 `{v}`" for k, v in sorted(record.data.items())
    )
    knobs = ", ".join(f"{k}={v}" for k, v in tp.variants[record.variant].model_dump().items())
    return f"""### {name}: variant `{record.variant}`

Target `{tp.target}`; decision threshold {tp.decision_threshold}.
Features: {len(tp.categorical)} categorical ({", ".join(tp.categorical) or "none"}),
{len(tp.numeric)} numeric ({", ".join(tp.numeric) or "none"}).
Params: {knobs}.

**Data**
{data}

**Metrics on the test split**

| metric | value |
|---|---|
{metrics}

**Reproduce**: check out the commit in the `git.sha` tag, then `dvc pull && dvc repro`
(the run's `fingerprint` tag is `{record.fingerprint}`).
"""


def decision_section(decision: Mapping[str, Any], metric: str) -> str:
    """The card's paragraph on the registry decision taken for this version."""
    champion = decision.get("champion_score")
    versus = "no champion" if champion is None else f"champion {metric} {champion}"
    return (
        f"\n**Decision** ({decision.get('at', '')}): {decision['action']} — "
        f"{decision['reason']} (candidate {metric} {decision['candidate_score']}, {versus}).\n"
    )
