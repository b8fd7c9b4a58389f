"""The compiled linear scorer equals predict_proba, including edge cases."""

from __future__ import annotations

import numpy as np
import pytest

from flightdelay.core.config import VariantParams
from flightdelay.core.estimator import build_pipeline
from flightdelay.serving.runtime.compile import NotCompilable, compile_pipeline
from flightdelay.serving.runtime.scorer import LinearScorer
from flightdelay.serving.runtime.verify import build_scorer, probe_columns
from tests.helpers.serving import CATEGORICAL, NUMERIC, expected, records, tiny_frame


@pytest.fixture(scope="module", params=[("l2", "lbfgs", None), ("l1", "saga", "balanced")])
def pipeline(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    penalty, solver, cw = request.param
    x, y = tiny_frame(600)
    variant = VariantParams(penalty=penalty, C=0.5, solver=solver, max_iter=500, class_weight=cw)
    return build_pipeline(CATEGORICAL, NUMERIC, variant, 0).fit(x, y)


def score(scorer: LinearScorer, recs: list[dict[str, object]]) -> np.ndarray:
    cols = {c: [r[c] for r in recs] for c in (*CATEGORICAL, *NUMERIC)}
    return scorer.score_columns(cols, len(recs))


def test_random_records_match(pipeline) -> None:  # type: ignore[no-untyped-def]
    scorer = compile_pipeline(pipeline)
    recs = records(500, seed=3)
    np.testing.assert_allclose(score(scorer, recs), expected(pipeline, recs), atol=1e-12, rtol=0)


def test_edge_cases_match(pipeline) -> None:  # type: ignore[no-untyped-def]
    scorer = compile_pipeline(pipeline)
    edge = [
        {"carrier": None, "origin": None, "distance": None, "temp": None},  # everything missing
        {"carrier": "ZZ", "origin": "XXX", "distance": 1e6, "temp": -80.0},  # unseen + extreme
        {"carrier": "UA", "origin": "JFK", "distance": 0.0, "temp": None},
    ]
    np.testing.assert_allclose(score(scorer, edge), expected(pipeline, edge), atol=1e-12, rtol=0)
    cols = {c: [r[c] for r in edge] for c in (*CATEGORICAL, *NUMERIC)}
    # the plain-Python path used for small requests gives the same numbers
    np.testing.assert_allclose(scorer.score_list(cols, 3), expected(pipeline, edge), atol=1e-12)
    assert scorer.unknown_categories(cols) == {"carrier": ["ZZ"], "origin": ["XXX"]}


def test_nan_category_is_missing(pipeline) -> None:  # type: ignore[no-untyped-def]
    scorer = compile_pipeline(pipeline)
    base = {"carrier": None, "origin": "EWR", "distance": 100.0, "temp": 50.0}
    as_nan = dict(base, carrier=float("nan"))
    assert score(scorer, [as_nan])[0] == pytest.approx(score(scorer, [base])[0], abs=1e-15)


def test_build_scorer_verifies_and_probes(pipeline) -> None:  # type: ignore[no-untyped-def]
    x, _ = tiny_frame(5)
    scorer, reason = build_scorer(pipeline, x, CATEGORICAL, NUMERIC)
    assert scorer.kind == "linear" and reason is None
    cols = probe_columns(compile_pipeline(pipeline), x, rows=50)
    assert len(cols["carrier"]) == 55 and "__never_seen__" in cols["carrier"]


def test_single_record_path_matches(pipeline) -> None:  # type: ignore[no-untyped-def]
    """score_one (generated straight-line code, and its general fallback) equals predict_proba
    and names unknown categories, on random records and every kind of edge case."""
    scorer = compile_pipeline(pipeline)
    edge = [
        {"carrier": None, "origin": None, "distance": None, "temp": None},  # all missing
        {"carrier": "ZZ", "origin": "XXX", "distance": 1e6, "temp": -80.0},  # unseen + extreme
        {"carrier": "UA", "origin": "JFK", "distance": 0.0, "temp": float("nan")},  # NaN number
        {"carrier": "AA", "origin": "EWR", "distance": 3, "temp": 1e300},  # int, huge
    ]
    recs = records(200, seed=5) + edge
    got = [scorer.score_one(r)[0] for r in recs]
    np.testing.assert_allclose(got, expected(pipeline, recs), atol=1e-12, rtol=0)
    assert scorer.score_one(edge[1])[1] == {"carrier": ["ZZ"], "origin": ["XXX"]}
    assert scorer.score_one(edge[0])[1] == {} and scorer.score_one(edge[2])[1] == {}


def test_non_finite_weights_do_not_compile(pipeline) -> None:  # type: ignore[no-untyped-def]
    import copy

    broken = copy.deepcopy(pipeline)
    broken.named_steps["classifier"].coef_[0, 0] = np.inf
    with pytest.raises(NotCompilable, match="non-finite"):
        compile_pipeline(broken)
    x, _ = tiny_frame(5)
    scorer, reason = build_scorer(broken, x, CATEGORICAL, NUMERIC)
    assert scorer.kind == "sklearn" and reason == "non-finite weights"
