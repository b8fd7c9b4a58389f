"""ModelHolder: resolves, loads, checks and swaps the served model.

Readers take `holder.current` (one attribute read) and keep that object for the whole request,
so a swap, which is one reference assignment after the new model was fully loaded and checked,
never mixes two models in one answer.
"""

from __future__ import annotations

import gc
import logging
import math
import os
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any

import orjson

from flightdelay.core.config import ServiceSettings
from flightdelay.core.errors import UserError
from flightdelay.serving.schemas import ModelInfo, ModelRef, RequestSchemas, build_request_schemas

if TYPE_CHECKING:
    from flightdelay.serving.scorer import Scorer

log = logging.getLogger(__name__)


class ModelUnavailable(Exception):
    """The requested model does not exist, cannot be reached, or failed its checks."""

    def __init__(self, message: str, status: int = 503) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class ServedModel:
    """Everything a request needs, immutable once built."""

    name: str
    version: int
    alias: str | None
    run_id: str
    scorer: Scorer
    fallback_reason: str | None
    threshold: float
    schemas: RequestSchemas
    info: ModelInfo
    example: dict[str, Any] | None = field(default=None)

    @property
    def kind(self) -> str:
        """Which scorer serves it: "linear" (compiled) or "sklearn" (the fallback)."""
        return self.scorer.kind

    @property
    def ref(self) -> ModelRef:
        return ModelRef(name=self.name, version=self.version, alias=self.alias)

    @cached_property
    def ref_dict(self) -> dict[str, Any]:
        """`ref` as a plain dict, built once (it goes into every response)."""
        return self.ref.model_dump()

    @cached_property
    def answer_head(self) -> bytes:
        """The constant start of a single-record /predict answer, up to its probability."""
        constant = {"model": self.ref_dict, "threshold": self.threshold, "predictions": None}
        return orjson.dumps(constant)[: -len(b"null}")] + b'[{"probability":'


def _iso(ms: int | None) -> str:
    return datetime.fromtimestamp((ms or 0) / 1000, UTC).isoformat(timespec="seconds")


def load_served_model(
    settings: ServiceSettings, name: str, alias: str | None, version: int | None
) -> ServedModel:
    """Resolve `alias` (or take `version`) in the registry, load it, compile and check it."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    # The holder retries with its own bounded backoff: fail fast instead of MLflow's long retries.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    import mlflow.sklearn
    from mlflow.exceptions import MlflowException
    from mlflow.models import Model
    from mlflow.tracking import MlflowClient

    from flightdelay.core.tracking import export_credentials
    from flightdelay.serving.scorer import build_scorer

    export_credentials(settings)
    uri = settings.mlflow_tracking_uri
    client = MlflowClient(uri, uri)
    try:
        if version is not None:
            mv = client.get_model_version(name, str(version))
        else:
            mv = client.get_model_version_by_alias(name, alias or settings.model_alias)
    except MlflowException as exc:
        code = getattr(exc, "error_code", "")
        missing = code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND")
        what = f"version {version}" if version is not None else f"alias {alias!r}"
        msg = (
            f"model {name!r} {what} not found in the registry at {uri}"
            if missing
            else (f"registry at {uri} unreachable or failing: {str(exc).splitlines()[0][:200]}")
        )
        raise ModelUnavailable(msg, 404 if missing else 503) from None
    except Exception as exc:  # network errors surface as requests/urllib3 exceptions
        raise ModelUnavailable(
            f"registry at {uri} unreachable: {type(exc).__name__}: {exc}"[:300]
        ) from None

    try:
        with tempfile.TemporaryDirectory(prefix="fd-model-") as tmp:
            local = mlflow.artifacts.download_artifacts(
                artifact_uri=f"models:/{name}/{mv.version}", dst_path=tmp, tracking_uri=uri
            )
            pipeline = mlflow.sklearn.load_model(local)
            meta = Model.load(local)
            example_df: Any = meta.load_input_example(local)
        run = client.get_run(str(mv.run_id))
    except Exception as exc:
        raise ModelUnavailable(
            f"model {name!r} version {mv.version} could not be loaded: {type(exc).__name__}: {exc}"[
                :400
            ],
            422,
        ) from None
    if meta.signature is None:
        raise ModelUnavailable(f"model {name!r} version {mv.version} has no signature", 422)
    inputs = [
        (c.name, str(c.type.name if hasattr(c.type, "name") else c.type))
        for c in meta.signature.inputs.inputs
    ]
    categorical = [n for n, t in inputs if t == "string"]
    numeric = [n for n, t in inputs if t != "string"]
    try:
        scorer, reason = build_scorer(pipeline, example_df, categorical, numeric)
        nullable = _nullable_categoricals(pipeline, categorical)
        example = _first_record(example_df)
        schemas = build_request_schemas(inputs, nullable, settings.api_max_batch, example)
        if set(scorer.categorical) != set(categorical) or set(scorer.numeric) != set(numeric):
            raise ValueError("the pipeline's columns differ from the signature's")
        check = (
            scorer.score_columns({k: [v] for k, v in (example or {}).items()}, 1)
            if example
            else None
        )
        if check is not None and not (0.0 <= float(check[0]) <= 1.0):  # False for NaN too
            raise ValueError(f"test prediction out of range: {check}")
    except Exception as exc:
        raise ModelUnavailable(
            f"model {name!r} version {mv.version} failed its checks: {type(exc).__name__}: {exc}"[
                :400
            ],
            422,
        ) from None

    params = dict(run.data.params)
    tags = dict(run.data.tags)
    threshold = float(params.get("decision_threshold", 0.5))
    served_alias = None if version is not None else (alias or settings.model_alias)
    info = ModelInfo(
        name=name,
        version=int(mv.version),
        alias=served_alias,
        run_id=str(mv.run_id),
        scorer=scorer.kind,
        scorer_fallback_reason=reason,
        decision_threshold=threshold,
        created_at=_iso(mv.creation_timestamp),
        loaded_at=datetime.now(UTC).isoformat(timespec="seconds"),
        git_sha=(mv.tags or {}).get("git_sha") or tags.get("git_sha"),
        data_hashes={k: v for k, v in {**tags, **(mv.tags or {})}.items() if k.startswith("data.")},
        metrics={k: float(v) for k, v in run.data.metrics.items()},
        params=params,
        inputs=dict(inputs),
    )
    return ServedModel(
        name,
        int(mv.version),
        served_alias,
        str(mv.run_id),
        scorer,
        reason,
        threshold,
        schemas,
        info,
        example,
    )


def _nullable_categoricals(pipeline: Any, categorical: list[str]) -> set[str]:
    """Categoricals whose encoder learned a missing category (so null is meaningful)."""
    try:
        pre = pipeline.named_steps["preprocess"]
        enc, cols = next((e, c) for n, e, c in pre.transformers_ if n == "cat")
        return {
            col
            for col, cats in zip(cols, enc.categories_, strict=True)
            if any(c is None or (isinstance(c, float) and math.isnan(c)) for c in cats)
        }
    except Exception:
        return set(categorical)


def _first_record(frame: Any) -> dict[str, Any] | None:
    if frame is None or len(frame) == 0:
        return None
    row = frame.iloc[0].to_dict()
    return {
        k: (None if v is None or (isinstance(v, float) and math.isnan(v)) else v)
        for k, v in row.items()
    }


class ModelHolder:
    """Owns the served model: initial load with background retry, swaps, optional alias polling."""

    def __init__(self, settings: ServiceSettings) -> None:
        self.settings = settings
        if not settings.model_name:
            raise UserError("MODEL_NAME is not set: name the registered model the service serves")
        self.name = settings.model_name
        self.current: ServedModel | None = None
        self.last_error: str | None = "model not loaded yet"
        self.target_alias: str | None = settings.model_alias  # None when a version is pinned
        self._swap_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.listeners: list[Any] = []  # callables(event: str, ok: bool) for metrics

    # -- loading and swapping --------------------------------------------------------------
    def _emit(self, event: str, ok: bool) -> None:
        for listener in self.listeners:
            listener(event, ok)

    def swap(self, alias: str | None = None, version: int | None = None) -> ServedModel:
        """Load `alias` or `version`, check it, then make it current in one assignment.

        On failure the current model keeps serving and ModelUnavailable says why.
        """
        with self._swap_lock:
            return self._commit(self._load(alias, version))

    def _load(self, alias: str | None, version: int | None) -> ServedModel:
        try:
            new = load_served_model(self.settings, self.name, alias, version)
        except ModelUnavailable as exc:
            self._emit("load", False)
            if self.current is not None:
                self._emit("swap", False)
            log.warning("model load failed: %s", exc)
            raise
        self._emit("load", True)
        return new

    def _commit(self, new: ServedModel) -> ServedModel:
        had_model = self.current is not None
        self.current = new  # the atomic swap
        self.target_alias = new.alias
        self.last_error = None
        if had_model:
            self._emit("swap", True)
        log.info("serving %s v%s (alias %s, scorer %s)", new.name, new.version, new.alias, new.kind)
        return new

    def reload(self) -> ServedModel:
        """Re-resolve the configured alias (MODEL_ALIAS) and serve it."""
        return self.swap(alias=self.settings.model_alias)

    # -- background work ---------------------------------------------------------------------
    def start(self) -> None:
        """Load in the background: retry with bounded backoff until a model is served, then
        (when API_POLL_SECONDS > 0) follow the alias: a new version behind it is swapped in."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="model-loader", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        delay = self.settings.api_retry_min_seconds
        first = True
        while not self._stop.is_set() and self.current is None:
            try:
                with self._swap_lock:
                    with _gc_paused(first):
                        new = self._load(self.target_alias, None)
                    self._commit(new)
            except ModelUnavailable as exc:
                self.last_error = str(exc)
                if self._stop.wait(delay):
                    return
                delay = min(delay * 2, self.settings.api_retry_max_seconds)
            except Exception as exc:  # never let the loader thread die silently
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("unexpected error while loading the model")
                if self._stop.wait(delay):
                    return
            first = False
        poll = self.settings.api_poll_seconds
        while poll > 0 and not self._stop.wait(poll):
            self._follow_alias()

    def _follow_alias(self) -> None:
        current, alias = self.current, self.target_alias
        if current is None or alias is None:
            return
        try:
            from mlflow.tracking import MlflowClient

            uri = self.settings.mlflow_tracking_uri
            mv = MlflowClient(uri, uri).get_model_version_by_alias(self.name, alias)
            if int(mv.version) != current.version:
                self.swap(alias=alias)
        except Exception as exc:
            log.warning("alias poll failed (still serving v%s): %s", current.version, exc)


@contextmanager
def _gc_paused(active: bool) -> Iterator[None]:
    """Run the first load without the cyclic garbage collector, then freeze what it built.

    The first load imports MLflow, SQLAlchemy, pandas and sklearn: about half a million objects
    that live as long as the process. With the collector on, their creation triggers collections
    that rescan them again and again (a third of the start-up time), and every later full
    collection rescans them too (a latency spike under load). `gc.freeze()` moves them out of the
    collector's sight. It skips a final collection: the few thousand unreachable objects the load
    left (well under 1 MB) are not worth a 0.3 s pause.
    """
    enabled = active and gc.isenabled()
    if enabled:
        gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.freeze()
            gc.enable()


def wait_ready(holder: ModelHolder, timeout: float) -> bool:
    """Block until a model is served or `timeout` seconds passed; returns readiness."""
    end = time.monotonic() + timeout
    while holder.current is None and time.monotonic() < end:
        time.sleep(0.05)
    return holder.current is not None
