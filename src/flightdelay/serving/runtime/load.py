"""One model load as named steps: resolve -> download -> verify -> :class:`ServedModel`.

Every failure is a :class:`ModelUnavailable` with the status the API answers with: 404 for an
unknown model, version or alias, 503 when the registry cannot be reached, 422 for a model that
cannot be loaded or fails its checks. Imported only when a load starts (it brings in MLflow,
pandas and sklearn).
"""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flightdelay.core.config import ServiceSettings
from flightdelay.serving.runtime.download import ModelArtifacts, download, read_artifacts
from flightdelay.serving.runtime.resolve import registry_client, resolve
from flightdelay.serving.runtime.served import ModelUnavailable, ServedModel
from flightdelay.serving.runtime.verify import Verified, signature_inputs, verify
from flightdelay.serving.schemas import ModelInfo


def iso(ms: int | None) -> str:
    """A registry timestamp (milliseconds since the epoch) as ISO 8601 UTC, to the second."""
    return datetime.fromtimestamp((ms or 0) / 1000, UTC).isoformat(timespec="seconds")


def model_info(mv: Any, run: Any, alias: str | None, verified: Verified) -> ModelInfo:
    """What GET /model reports, from the version record, its run and the verified model."""
    params = dict(run.data.params)
    tags = dict(run.data.tags)
    mv_tags = dict(mv.tags or {})
    return ModelInfo(
        name=mv.name,
        version=int(mv.version),
        alias=alias,
        run_id=str(mv.run_id),
        scorer=verified.scorer.kind,
        scorer_fallback_reason=verified.fallback_reason,
        decision_threshold=float(params.get("decision_threshold", 0.5)),
        created_at=iso(mv.creation_timestamp),
        loaded_at=datetime.now(UTC).isoformat(timespec="seconds"),
        git_sha=mv_tags.get("git.sha") or tags.get("git.sha") or tags.get("git_sha"),
        data_hashes={k: v for k, v in {**tags, **mv_tags}.items() if k.startswith("data.")},
        metrics={k: float(v) for k, v in run.data.metrics.items()},
        params=params,
        inputs=dict(verified.inputs),
        lineage={
            k: v
            for k, v in {**tags, **mv_tags}.items()
            if k == "fingerprint" or k.startswith(("git.", "dvc."))
        },
        decision={k: v for k, v in mv_tags.items() if k.startswith(("decision.", "champion."))},
        description=str(getattr(mv, "description", "") or ""),
    )


def fetch(client: Any, name: str, mv: Any, uri: str) -> tuple[ModelArtifacts, Any]:
    """Download and read version `mv`'s artifacts (in a temporary directory) and get its run.

    Raises ModelUnavailable (422) when either fails."""
    try:
        with tempfile.TemporaryDirectory(prefix="fd-model-") as tmp:
            artifacts = read_artifacts(download(client, name, int(mv.version), Path(tmp), uri))
        run = client.get_run(str(mv.run_id))
    except Exception as exc:
        message = f"model {name!r} version {mv.version} could not be loaded"
        raise ModelUnavailable(f"{message}: {type(exc).__name__}: {exc}"[:400], 422) from None
    return artifacts, run


def check(name: str, version: int, artifacts: ModelArtifacts, max_batch: int) -> Verified:
    """`verify` the artifacts; raises ModelUnavailable (422) naming what failed."""
    if artifacts.signature is None:
        raise ModelUnavailable(f"model {name!r} version {version} has no signature", 422)
    inputs = signature_inputs(artifacts.signature)
    try:
        config = artifacts.config
        return verify(artifacts.pipeline, inputs, artifacts.example, max_batch, config, name)
    except Exception as exc:
        message = f"model {name!r} version {version} failed its checks"
        raise ModelUnavailable(f"{message}: {type(exc).__name__}: {exc}"[:400], 422) from None


def load_served_model(
    settings: ServiceSettings,
    name: str,
    alias: str | None,
    version: int | None,
    client: Any = None,
) -> ServedModel:
    """Resolve `version` (or `alias`, default MODEL_ALIAS) in the registry at
    MLFLOW_TRACKING_URI (through `client`, default a new one), download it, verify it; returns
    the model ready to serve."""
    uri = settings.mlflow_tracking_uri
    client = client or registry_client(uri)
    served_alias = None if version is not None else (alias or settings.model_alias)
    mv = resolve(client, name, served_alias, version, uri)
    artifacts, run = fetch(client, name, mv, uri)
    verified = check(name, int(mv.version), artifacts, settings.api_max_batch)
    info = model_info(mv, run, served_alias, verified)
    return ServedModel(
        name=name,
        version=int(mv.version),
        alias=served_alias,
        run_id=str(mv.run_id),
        scorer=verified.scorer,
        fallback_reason=verified.fallback_reason,
        threshold=info.decision_threshold,
        schemas=verified.schemas,
        info=info,
        example=verified.example,
    )
