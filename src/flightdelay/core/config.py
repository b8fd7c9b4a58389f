"""Configuration: where things live (environment / .env) and experiment knobs (params.yaml).

Nothing here is built at import time: call :func:`get_settings` and :func:`load_params`.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    StrictBool,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from flightdelay.core.errors import UserError

# The registry aliases (see core/registry.py for the rules that move them). The service follows
# MODEL_ALIAS, `serving` by default: what the fleet serves (`champion` unless pinned).
CHAMPION_ALIAS = "champion"
CHALLENGER_ALIAS = "challenger"
SERVING_ALIAS = "serving"

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class _EnvSettings(BaseSettings):
    """Read from the environment and `.env`; variable names are the upper-case field names
    (MLflow, boto3 and DVC read the same ones)."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", env_file_encoding="utf-8")


class TrackingSettings(_EnvSettings):
    """Where MLflow lives and how to sign in (pipeline stages and the service)."""

    mlflow_tracking_uri: str = "sqlite:///mlflow.db"
    # Artifact root for experiments created on a local store; ignored when the server decides.
    mlflow_artifact_root: str = "mlruns"
    mlflow_tracking_username: str = "mlflow"
    mlflow_tracking_password: SecretStr = SecretStr("change-me-mlflow")


class PipelineSettings(TrackingSettings):
    """What the DVC stages need: the feature DB, MLflow and where params.yaml is."""

    database_url: str = "sqlite:///data/interim/flights.db"
    params_path: Path = Path("params.yaml")

    def masked_database_url(self) -> str:
        """DATABASE_URL with any password replaced by ***."""
        return mask_url(self.database_url)


class ServiceSettings(TrackingSettings):
    """What the model service needs. MODEL_NAME comes from the environment only: the launchers
    (`flightdelay serve`, the stack, compose) fill it from params.yaml `register.model_name`."""

    model_name: str = ""
    model_alias: str = SERVING_ALIAS
    api_token: SecretStr = SecretStr("change-me-api-token")
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    api_workers: int = 1
    api_max_batch: int = 10_000
    api_max_body_bytes: int = Field(default=32 * 1024 * 1024, gt=0)  # /predict: 413 beyond
    api_retry_min_seconds: float = 1.0
    api_retry_max_seconds: float = 30.0
    api_instance: str = ""  # x-served-by header; default host:pid
    api_poll_seconds: float = 30.0  # follow the alias: swap when it moves (0 = never)


class StackSettings(PipelineSettings, ServiceSettings):
    """The whole stack (native processes or docker compose): every service's settings."""

    stack_dir: Path = Path(".stack")
    stack_tools_dir: Path | None = None  # pgAdmin and SeaweedFS venvs; default STACK_DIR/tools
    postgres_user: str = "postgres"
    postgres_password: SecretStr = SecretStr("change-me-postgres")
    postgres_port: int = 55432
    postgres_mlflow_db: str = "mlflow"
    postgres_features_db: str = "features"
    postgres_readonly_user: str = "reader"
    postgres_readonly_password: SecretStr = SecretStr("change-me-reader")
    aws_access_key_id: str = "flightdelay"
    aws_secret_access_key: SecretStr = SecretStr("change-me-s3-secret")
    s3_port: int = 58333
    s3_bucket_mlflow: str = "mlflow"
    s3_bucket_dvc: str = "dvc"
    mlflow_port: int = 55000
    pgadmin_port: int = 55050
    seaweed_base_port: int = 58900  # SeaweedFS's internal master/volume/filer ports start here
    pgadmin_email: str = "admin@example.com"
    pgadmin_password: SecretStr = SecretStr("change-me-pgadmin")
    api_replica_ports: str = "8001,8002"
    nginx_http_port: int = 8080  # the API (both replicas, load balanced)
    nginx_https_port: int = 8443  # the API over TLS (self-signed certificate)
    nginx_mlflow_port: int = 5080  # MLflow UI + REST, basic auth
    nginx_pgadmin_port: int = 5050  # pgAdmin
    nginx_s3_port: int = 9000  # the S3 API
    stack_start_timeout: float = 120.0


def mask_url(url: str) -> str:
    """Return `url` with the password part of its authority replaced by ***."""
    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", url)


@lru_cache(maxsize=1)
def get_pipeline_settings() -> PipelineSettings:
    """The pipeline stages' settings, built on first use."""
    return PipelineSettings()


@lru_cache(maxsize=1)
def get_service_settings() -> ServiceSettings:
    """The service's settings, built on first use."""
    return ServiceSettings()


@lru_cache(maxsize=1)
def get_stack_settings() -> StackSettings:
    """The stack's settings, built on first use."""
    return StackSettings()


def clear_settings_cache() -> None:
    """Forget the cached settings (tests that change the environment)."""
    for fn in (get_pipeline_settings, get_service_settings, get_stack_settings):
        fn.cache_clear()


# --------------------------------------------------------------------------------------------
# params.yaml
# --------------------------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TableSpec(_Strict):  # a table shipped in the package: rows and sha256 of its file
    rows: int = Field(gt=0)
    sha256: str


class FileSpec(_Strict):  # a user file under data/external/; sha256 and rows checked if given
    path: Path
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    rows: int | None = Field(default=None, ge=0)


class GetDataParams(_Strict):  # source: package (package + tables) or source: files (files)
    source: Literal["package", "files"] = "package"
    package: str | None = None
    tables: dict[str, TableSpec] | None = None
    files: dict[str, FileSpec] | None = None

    @model_validator(mode="after")
    def _one_source(self) -> GetDataParams:
        if self.source == "package" and (not self.package or not self.tables or self.files):
            raise ValueError("source: package needs `package` and `tables` (and no `files`)")
        if self.source == "files" and (not self.files or self.package or self.tables):
            raise ValueError("source: files needs `files` (and no `package`/`tables`)")
        return self


class LoadParams(_Strict):
    progress_min_rows: int = Field(ge=0)
    chunk_rows: int = Field(gt=0)


class ColumnSplit(_Strict):  # rows whose `column` is in `train` / `test` (others left out)
    strategy: Literal["column"]
    column: str
    train: list[int | str] = Field(min_length=1)
    test: list[int | str] = Field(min_length=1)


class TimeSplit(_Strict):  # rows with `column` before `cutoff` (a date/time or number) train
    strategy: Literal["time"]
    column: str
    cutoff: str | float


class RandomSplit(_Strict):  # random rows (stratified: the same fraction of each class) test
    strategy: Literal["random", "stratified"]
    test_fraction: float = Field(gt=0, lt=1)
    seed: int = 42


class GroupSplit(_Strict):  # whole groups of `column` go to one side
    strategy: Literal["group"]
    column: str
    test_fraction: float = Field(gt=0, lt=1)
    seed: int = 42


SplitParams = Annotated[
    ColumnSplit | TimeSplit | RandomSplit | GroupSplit, Field(discriminator="strategy")
]
Scalar = StrictBool | int | float | str


class FeaturesParams(_Strict):
    table: str
    key: list[str] = Field(default_factory=list)  # optional row key (orders the rows)
    sql_params: dict[str, Scalar | None] = Field(default_factory=dict)  # features.sql binds
    split: SplitParams

    @field_validator("table")
    @classmethod
    def _identifier(cls, value: str) -> str:
        if not _IDENT.match(value):
            raise ValueError("must be a plain SQL identifier")
        return value


class VariantParams(_Strict):
    penalty: Literal["l1", "l2", "elasticnet", None]
    C: float = Field(gt=0)
    solver: Literal["lbfgs", "liblinear", "newton-cg", "newton-cholesky", "sag", "saga"]
    max_iter: int = Field(gt=0)
    tol: float = Field(default=1e-4, gt=0)
    class_weight: Literal["balanced"] | None = None
    l1_ratio: float | None = None


class TrainParams(_Strict):
    target: str
    positive: Scalar | list[Scalar] | None = None  # the positive class value(s); None: 1 / true
    drop_null_target: bool = False
    categorical: list[str]
    numeric: list[str]
    decision_threshold: float = Field(gt=0, lt=1)
    sample_rows: int | None = Field(default=None, gt=0)
    random_state: int
    variants: dict[str, VariantParams] = Field(min_length=1)


class MlflowParams(_Strict):
    experiment: str


class RegisterParams(_Strict):
    model_name: str
    metric: str
    greater_is_better: bool
    min_value: float  # the quality gate: no version is registered when the best misses it
    # A candidate replaces @champion only when it beats it on the same test data by this much
    # (absolute, in the metric's units, in the direction of greater_is_better).
    min_improvement: float = Field(default=0.0, ge=0)


class Params(_Strict):
    get_data: GetDataParams
    load: LoadParams
    features: FeaturesParams
    train: TrainParams
    mlflow: MlflowParams
    # `register` would shadow ABCMeta.register on the model class.
    registry: RegisterParams = Field(alias="register")


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    key = ".".join(str(p) for p in err["loc"])
    return f"{key}: {err['msg']}"


def parse_params(raw: Any, source: str = "params.yaml") -> Params:
    """Validate a params mapping; a bad or missing key raises UserError naming the key."""
    try:
        return Params.model_validate(raw)
    except ValidationError as exc:
        raise UserError(f"{source}: invalid parameter {_first_error(exc)}") from None


def load_params(path: Path | str = "params.yaml") -> Params:
    """Read and validate params.yaml."""
    p = Path(path)
    try:
        raw = yaml.safe_load(p.read_text())
    except FileNotFoundError:
        raise UserError(f"{p}: file not found (run from the project root)") from None
    except yaml.YAMLError as exc:
        raise UserError(f"{p}: not valid YAML ({exc.__class__.__name__})") from None
    return parse_params(raw, str(p))
