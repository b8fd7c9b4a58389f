"""The promotion rule table: which decision each situation gets (pure, no registry)."""

from __future__ import annotations

import pytest

from flightdelay.core.config import RegisterParams
from flightdelay.core.errors import UserError
from flightdelay.core.records import RunRecord
from flightdelay.pipeline.register import decide, rank

RP = RegisterParams(
    model_name="m", metric="roc_auc", greater_is_better=True, min_value=0.6, min_improvement=0.01
)


@pytest.mark.parametrize(
    ("candidate", "champion", "kwargs", "action"),
    [
        (0.80, 0.70, {}, "promote"),  # better by more than the margin
        (0.705, 0.70, {}, "challenger"),  # better, but within the margin
        (0.69, 0.70, {}, "challenger"),  # worse
        (0.70, 0.70, {}, "challenger"),  # equal
        (0.80, None, {}, "promote"),  # no champion: the gate alone decides
        (0.80, None, {"comparable": False}, "challenger"),  # champion cannot score the data
        (0.90, 0.70, {"comparable": False}, "challenger"),  # other inputs: never automatic
        (0.99, 0.70, {"experiment": True}, "candidate"),  # dvc exp run never promotes
        (0.80, 0.80, {"is_champion": True}, "keep"),
        (0.80, 0.80, {"is_champion": True, "decided": False}, "promote"),  # finish a crash
    ],
)
def test_rule_table(
    candidate: float, champion: float | None, kwargs: dict[str, bool], action: str
) -> None:
    decision = decide(candidate, champion, RP, **kwargs)
    assert decision.action == action, decision.reason


def test_lower_is_better_metric_promotes_the_smaller_value() -> None:
    rp = RP.model_copy(update={"metric": "log_loss", "greater_is_better": False, "min_value": 1.0})
    assert decide(0.40, 0.50, rp).action == "promote"
    assert decide(0.50, 0.40, rp).action == "challenger"
    assert decide(0.40, 0.50, rp).margin == pytest.approx(0.1)


def test_rank_orders_best_first_and_gates() -> None:
    recs = [RunRecord("a", "fa", {"roc_auc": 0.7}), RunRecord("b", "fb", {"roc_auc": 0.8})]
    assert [r.variant for r in rank(recs, RP)] == ["b", "a"]
    with pytest.raises(UserError, match=r"quality gate failed.*left unchanged"):
        rank(recs, RP.model_copy(update={"min_value": 0.9}))
    with pytest.raises(UserError, match=r"register\.metric 'pr_auc' not logged for a, b"):
        rank(recs, RP.model_copy(update={"metric": "pr_auc"}))
