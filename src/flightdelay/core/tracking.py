"""MLflow through one explicit client per store: no global tracking URI, no environment writes.

:class:`Tracking` is built from settings; every call goes through its `MlflowClient`, so two
stores can be used side by side in one process (the tests do) and nothing leaks between them.
For a tracking server MLflow takes the basic-auth credentials from the environment: the
`flightdelay` commands start with them there (:func:`client_env`), never in a URI.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from flightdelay.core import model_code
from flightdelay.core.config import TrackingSettings, mask_url
from flightdelay.core.errors import UserError

log = logging.getLogger(__name__)

MODEL_ARTIFACT = "model"
PIPELINE_FILE = "pipeline.skops"

# MLflow's client reads its HTTP knobs from the process environment only. The pipeline's
# commands start with these (see `flightdelay.cli.mlflow_client_env`), so a dead server, S3 or
# Postgres behind it fails the stage within a minute (timeout x (retries + 1) + backoff)
# instead of retrying for minutes. Values already in the environment win.
STAGE_CLIENT_ENV = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "15",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
}


def client_env(settings: TrackingSettings, environ: Mapping[str, str]) -> dict[str, str]:
    """What a process talking to MLflow needs in its environment and `environ` lacks:
    :data:`STAGE_CLIENT_ENV`, and for an http(s) server the basic-auth credentials from the
    settings (.env). MLflow reads credentials only from the environment; they never go into a
    URI (MLflow prints its tracking URI in "View run" lines)."""
    wanted = dict(STAGE_CLIENT_ENV)
    if settings.mlflow_tracking_uri.startswith(("http://", "https://")):
        wanted["MLFLOW_TRACKING_USERNAME"] = settings.mlflow_tracking_username
        wanted["MLFLOW_TRACKING_PASSWORD"] = settings.mlflow_tracking_password.get_secret_value()
    return {k: v for k, v in wanted.items() if k not in environ}


def is_local_store(uri: str) -> bool:
    """True for a file / SQLite store (artifacts on this machine)."""
    return uri.startswith(("sqlite:", "file:", "/", ".")) or "://" not in uri


@dataclass(frozen=True)
class DatasetRef:
    """A dataset a run used: logged with the run's inputs (name, digest = DVC md5, source)."""

    name: str
    digest: str
    source: str
    context: str  # "training" / "evaluation"


@dataclass(frozen=True)
class LoggedModel:
    """What a model run stores: the fitted pipeline, its raw training frame (for the signature),
    and the model config the pyfunc needs (feature lists, target, positive class, threshold)."""

    pipeline: Any
    x_train: pd.DataFrame
    config: Mapping[str, Any]


class Tracking:
    """One MLflow store (tracking + registry) behind an explicit client."""

    def __init__(self, settings: TrackingSettings) -> None:
        from mlflow.tracking import MlflowClient

        self.settings = settings
        self.uri = settings.mlflow_tracking_uri
        self.masked_uri = mask_url(self.uri)
        self.client = MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)

    def check(self) -> Tracking:
        """Fail with one line naming the store when it cannot be reached; returns self."""
        from mlflow.exceptions import MlflowException

        try:
            self.client.search_experiments(max_results=1)
        except (MlflowException, OSError) as exc:
            first = _first_line(exc)[:200]
            raise UserError(f"MLflow at {self.masked_uri} is not reachable: {first}") from None
        return self

    def experiment_id(self, name: str) -> str:
        """The id of experiment `name`, created if missing (local stores: absolute artifacts)."""
        exp = self.client.get_experiment_by_name(name)
        if exp is not None:
            return str(exp.experiment_id)
        location = None
        if is_local_store(self.uri):
            location = Path(self.settings.mlflow_artifact_root).resolve().as_uri()
        return str(self.client.create_experiment(name, artifact_location=location))

    def find_run(self, experiment_id: str, fingerprint: str) -> str | None:
        """The oldest finished run tagged with `fingerprint`, or None."""
        runs = self.client.search_runs(
            [experiment_id],
            filter_string=f"tags.fingerprint = '{fingerprint}' and attributes.status = 'FINISHED'",
            order_by=["attributes.start_time ASC"],
            max_results=1,
        )
        return str(runs[0].info.run_id) if runs else None

    def log_model_run(
        self,
        experiment_id: str,
        run_name: str,
        model: LoggedModel,
        params: Mapping[str, Any],
        metrics: Mapping[str, float],
        tags: Mapping[str, str],
        figures_dir: Path | None = None,
        inputs: Iterable[DatasetRef] = (),
    ) -> str:
        """Log one model run: params, metrics, tags, datasets, figures (under `plots/`) and
        the self-contained pyfunc model. The run is marked FAILED if anything fails."""
        from mlflow.entities import Metric, Param, RunTag

        run = self.client.create_run(experiment_id, run_name=run_name, tags=dict(tags))
        run_id = str(run.info.run_id)
        try:
            self.client.log_batch(
                run_id,
                metrics=[Metric(k, float(v), 0, 0) for k, v in metrics.items()],
                params=[Param(k, _param_value(v)) for k, v in params.items()],
                tags=[RunTag("mlflow.runName", run_name)],
            )
            self._log_inputs(run_id, inputs)
            if figures_dir is not None and figures_dir.is_dir():
                self._store_artifacts(run_id, figures_dir, "plots")
            with tempfile.TemporaryDirectory() as tmp:
                self._store_artifacts(run_id, save_model(model, Path(tmp)), MODEL_ARTIFACT)
        except BaseException:
            self.client.set_terminated(run_id, "FAILED")
            raise
        self.client.set_terminated(run_id, "FINISHED")
        return run_id

    def check_artifacts(self, experiment_id: str) -> Tracking:
        """Fail with one line when MLflow answers but its artifact store (S3, behind the
        server's proxy) does not: lists the experiment's artifact root. Returns self."""
        from mlflow.artifacts import list_artifacts
        from mlflow.exceptions import MlflowException

        location = self.client.get_experiment(experiment_id).artifact_location
        try:
            list_artifacts(artifact_uri=location, tracking_uri=self.uri)
        except (MlflowException, OSError) as exc:
            raise self._store_failed(exc, "could not list the experiment's artifacts") from None
        return self

    def _store_artifacts(self, run_id: str, local: Path, path: str) -> None:
        """Upload `local` under the run's `path` (a failure: one line, see `_store_failed`)."""
        from mlflow.exceptions import MlflowException

        try:
            self.client.log_artifacts(run_id, str(local), path)
        except (MlflowException, OSError) as exc:
            what = f"could not store run {run_id}'s {path} artifacts (the run is marked FAILED)"
            raise self._store_failed(exc, what) from None

    def _store_failed(self, exc: BaseException, what: str) -> UserError:
        """One line naming MLflow and, when its REST API still answers, the store behind it."""
        self.check()  # MLflow itself gone: says so
        store = "its artifact store" + ("" if is_local_store(self.uri) else " (S3)")
        return UserError(
            f"MLflow at {self.masked_uri} answers but {what}: {store} is down or refusing "
            f"(`flightdelay stack doctor` checks it): {_first_line(exc)[:160]}"
        )

    def _log_inputs(self, run_id: str, inputs: Iterable[DatasetRef]) -> None:
        from mlflow.entities import Dataset, DatasetInput, InputTag

        datasets = [
            DatasetInput(
                Dataset(d.name, d.digest, "local", d.source),
                [InputTag("mlflow.data.context", d.context)],
            )
            for d in inputs
        ]
        if datasets:
            self.client.log_inputs(run_id, datasets=datasets)

    def input_schema_hash(self, run_id: str) -> str:
        """A hash of the input signature of a run's model ('' when it has none)."""
        import yaml

        with tempfile.TemporaryDirectory() as tmp:
            path = self.client.download_artifacts(run_id, f"{MODEL_ARTIFACT}/MLmodel", tmp)
            meta = yaml.safe_load(Path(path).read_text()) or {}
        inputs = (meta.get("signature") or {}).get("inputs")
        if not inputs:
            return ""
        return hashlib.sha256(str(inputs).encode()).hexdigest()[:32]

    def download_version(self, name: str, version: str, dst: Path) -> Path:
        """The files of a registered version, downloaded under `dst`; returns the model dir."""
        from mlflow.artifacts import download_artifacts

        source = self.client.get_model_version(name, version).source
        local = download_artifacts(artifact_uri=source, dst_path=str(dst), tracking_uri=self.uri)
        return Path(local)

    def load_pyfunc(self, name: str, version: str, dst: Path) -> Any:
        """A registered version as a pyfunc model (downloaded under `dst`)."""
        import mlflow.pyfunc

        return mlflow.pyfunc.load_model(str(self.download_version(name, version, dst)))

    def create_version(
        self,
        name: str,
        run_id: str,
        tags: Mapping[str, str] | None = None,
        description: str = "",
        model_description: str = "",
    ) -> str:
        """Register the run's model as a new version of `name` (created if missing)."""
        from mlflow.exceptions import MlflowException

        try:
            self.client.get_registered_model(name)
        except MlflowException:
            self.client.create_registered_model(name, description=model_description)
        mv = self.client.create_model_version(
            name,
            self.model_source(run_id),
            run_id=run_id,
            tags=dict(tags or {}),
            description=description,
        )
        return str(mv.version)

    def model_source(self, run_id: str) -> str:
        """Where a run's model artifact lives (the registry's version source)."""
        return f"{self.client.get_run(run_id).info.artifact_uri}/{MODEL_ARTIFACT}"


def save_model(model: LoggedModel, tmp: Path) -> Path:
    """Write the pyfunc model (code + skops pipeline + signature) under `tmp`; returns its dir."""
    import mlflow.pyfunc
    import skops.io
    from mlflow.models import infer_signature

    pipeline_path = tmp / PIPELINE_FILE
    skops.io.dump(model.pipeline, pipeline_path)
    untrusted = set(skops.io.get_untrusted_types(file=pipeline_path))
    unknown = untrusted - set(model_code.TRUSTED_TYPES)
    if unknown:
        raise UserError(f"the model holds types not in model_code.TRUSTED_TYPES: {sorted(unknown)}")
    # The raw frame's own dtypes: MLflow refuses int64 -> float64 ("not safe"), so a column
    # is `long` where the data holds integers, `double` where it holds floats or nulls.
    x = model.x_train
    proba = model.pipeline.predict_proba(
        model_code.coerce_frame(x.head(50), model.config["categorical"], model.config["numeric"])
    )[:, 1]
    # From the whole training frame: a column is optional exactly when the data has nulls.
    signature = infer_signature(x, pd.DataFrame({"probability": proba}))
    out = tmp / MODEL_ARTIFACT
    mlflow.pyfunc.save_model(
        path=str(out),
        python_model=str(Path(model_code.__file__)),
        artifacts={model_code.PIPELINE_ARTIFACT: str(pipeline_path)},
        model_config=dict(model.config),
        signature=signature,
        input_example=x.head(5),
        # Explicit requirements: inferring them re-imports the model in a subprocess (~10 s).
        pip_requirements=_requirements(),
    )
    return out


def _requirements() -> list[str]:
    from importlib.metadata import version

    return [f"{p}=={version(p)}" for p in ("mlflow", "scikit-learn", "skops", "pandas", "numpy")]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return mask_url(text.splitlines()[0] if text else type(exc).__name__)


def _param_value(value: Any) -> str:
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value)
    return str(value)
