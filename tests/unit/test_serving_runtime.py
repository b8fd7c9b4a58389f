"""The named steps of a model load, on tiny real pipelines (no registry needed)."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature
from mlflow.protos.databricks_pb2 import INTERNAL_ERROR, RESOURCE_DOES_NOT_EXIST

from flightdelay.core.config import VariantParams
from flightdelay.core.errors import UserError
from flightdelay.core.estimator import build_pipeline
from flightdelay.serving.runtime import ModelHolder, ModelUnavailable
from flightdelay.serving.runtime.download import ModelArtifacts
from flightdelay.serving.runtime.holder import gc_paused
from flightdelay.serving.runtime.load import check, iso, model_info
from flightdelay.serving.runtime.resolve import registry_error
from flightdelay.serving.runtime.verify import (
    first_record,
    nullable_categoricals,
    signature_inputs,
    verify,
)
from tests.helpers.serving import CATEGORICAL, NUMERIC, expected, records, settings_for, tiny_frame


@pytest.fixture(scope="module")
def fitted() -> tuple[object, pd.DataFrame, list[tuple[str, str]]]:
    """(pipeline, input example, signature inputs) of a tiny model, as training logs them."""
    x, y = tiny_frame()
    variant = VariantParams(penalty="l2", C=1.0, solver="lbfgs", max_iter=200)
    pipeline = build_pipeline(CATEGORICAL, NUMERIC, variant, 0).fit(x, y)
    example = x.head(5)
    signature = infer_signature(example, pipeline.predict_proba(example)[:, 1])
    return pipeline, example, signature_inputs(signature)


# -- resolve ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("exc", "status", "needle"),
    [
        (
            MlflowException("no such alias", error_code=RESOURCE_DOES_NOT_EXIST),
            404,
            "model 'm' alias 'champion' not found in the registry at U",
        ),
        (
            MlflowException("boom\nmore", error_code=INTERNAL_ERROR),
            503,
            "registry at U unreachable or failing: boom",
        ),
        (ConnectionError("refused"), 503, "registry at U unreachable: ConnectionError: refused"),
    ],
)
def test_registry_errors_say_missing_or_unreachable(
    exc: Exception, status: int, needle: str
) -> None:
    err = registry_error(exc, "m", "champion", None, "U")
    assert err.status == status and str(err) == needle


def test_registry_error_names_the_version() -> None:
    exc = MlflowException("x", error_code=RESOURCE_DOES_NOT_EXIST)
    assert "model 'm' version 7 not found" in str(registry_error(exc, "m", None, 7, "U"))


# -- verify -------------------------------------------------------------------------------------
def test_signature_inputs_keep_order_and_types(fitted) -> None:  # type: ignore[no-untyped-def]
    _, _, inputs = fitted
    assert inputs == [(c, "string") for c in CATEGORICAL] + [(c, "double") for c in NUMERIC]


def test_verify_compiles_and_builds_schemas(fitted) -> None:  # type: ignore[no-untyped-def]
    pipeline, example, inputs = fitted
    v = verify(pipeline, inputs, example, max_batch=10)
    assert v.scorer.kind == "linear" and v.fallback_reason is None
    assert v.schemas.categorical == tuple(CATEGORICAL) and v.schemas.numeric == tuple(NUMERIC)
    assert v.example == first_record(example)
    recs = records(20, seed=4)
    cols = {c: [r[c] for r in recs] for c in (*CATEGORICAL, *NUMERIC)}
    np.testing.assert_allclose(v.scorer.score_list(cols, 20), expected(pipeline, recs), atol=1e-9)
    # tiny_frame has missing carriers (None) but every origin is known
    assert nullable_categoricals(pipeline, CATEGORICAL) == {"carrier"}
    assert v.schemas.one.validate_python(recs[0] | {"carrier": None}) is not None


def test_verify_rejects_columns_unlike_the_signature(fitted) -> None:  # type: ignore[no-untyped-def]
    pipeline, example, inputs = fitted
    with pytest.raises(ValueError, match="columns differ from the signature"):
        verify(pipeline, [*inputs, ("extra", "double")], example.assign(extra=1.0), max_batch=10)


def test_first_record_turns_missing_into_none() -> None:
    frame = pd.DataFrame({"a": ["x", None], "b": [np.nan, 1.0]})
    assert first_record(frame) == {"a": "x", "b": None}
    assert first_record(frame.head(0)) is None and first_record(None) is None


def test_check_refuses_a_model_without_signature(fitted) -> None:  # type: ignore[no-untyped-def]
    pipeline, example, _ = fitted
    with pytest.raises(ModelUnavailable, match="has no signature") as err:
        check("m", 3, ModelArtifacts(pipeline, None, example), max_batch=10)
    assert err.value.status == 422


# -- ServedModel's record -----------------------------------------------------------------------
def test_model_info_merges_version_and_run(fitted) -> None:  # type: ignore[no-untyped-def]
    pipeline, example, inputs = fitted
    v = verify(pipeline, inputs, example, max_batch=10)
    mv = SimpleNamespace(
        name="m",
        version="4",
        run_id="r1",
        creation_timestamp=86_400_000,
        tags={"data.x": "1", "decision.action": "promote", "fingerprint": "f1"},
        description="card",
    )
    data = SimpleNamespace(
        params={"decision_threshold": "0.3", "C": "1"},
        tags={"git_sha": "abc", "data.y": "2", "other": "z", "git.changed": "params.yaml"},
        metrics={"roc_auc": 0.71},
    )
    info = model_info(mv, SimpleNamespace(data=data), "champion", v)
    assert (info.version, info.alias, info.run_id, info.scorer) == (4, "champion", "r1", "linear")
    assert info.decision_threshold == 0.3 and info.git_sha == "abc"
    assert info.data_hashes == {"data.x": "1", "data.y": "2"}
    assert info.created_at == "1970-01-02T00:00:00+00:00" == iso(86_400_000)
    assert info.inputs == dict(inputs)
    assert info.lineage == {"fingerprint": "f1", "git.changed": "params.yaml"}
    assert info.decision == {"decision.action": "promote"} and info.description == "card"


# -- holder -------------------------------------------------------------------------------------
def test_holder_needs_a_model_name(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(UserError, match="MODEL_NAME"):
        ModelHolder(settings_for(tmp_path, model_name=""))


@pytest.fixture
def gc_restored() -> Iterator[None]:
    was = gc.isenabled()
    yield
    gc.enable() if was else gc.disable()


def test_gc_paused_disables_then_freezes(gc_restored: None) -> None:
    gc.enable()
    gc.unfreeze()
    with gc_paused(True):
        assert not gc.isenabled()
        built = [[i] for i in range(1000)]
    assert gc.isenabled() and gc.get_freeze_count() >= len(built)


def test_gc_paused_inactive_or_already_off_changes_nothing(gc_restored: None) -> None:
    gc.enable()
    gc.unfreeze()
    with gc_paused(False):
        assert gc.isenabled()
    assert gc.get_freeze_count() == 0
    gc.disable()
    with gc_paused(True):
        assert not gc.isenabled()
    assert not gc.isenabled() and gc.get_freeze_count() == 0
