"""Configuration: where things live (environment / .env), three settings objects over one `.env`.

Nothing here is built at import time: call :func:`get_pipeline_settings` (or the service / stack
one). The experiment knobs (params.yaml) live in :mod:`flightdelay.core.params`, re-exported here.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from flightdelay.core.params import (
    ColumnSplit,
    FeaturesParams,
    FileSpec,
    GetDataParams,
    GroupSplit,
    LoadParams,
    MlflowParams,
    Params,
    RandomSplit,
    RegisterParams,
    Scalar,
    ScoreEngine,
    ScoreParams,
    SplitParams,
    TableSpec,
    TimeSplit,
    TrainParams,
    VariantParams,
    load_params,
    parse_params,
)

# params.yaml's models and loaders are re-exported from flightdelay.core.params.
__all__ = [
    "CHALLENGER_ALIAS",
    "CHAMPION_ALIAS",
    "SERVING_ALIAS",
    "ColumnSplit",
    "FeaturesParams",
    "FileSpec",
    "GetDataParams",
    "GroupSplit",
    "LoadParams",
    "MlflowParams",
    "Params",
    "PipelineSettings",
    "RandomSplit",
    "RegisterParams",
    "Scalar",
    "ScoreEngine",
    "ScoreParams",
    "ServiceSettings",
    "SplitParams",
    "StackSettings",
    "TableSpec",
    "TimeSplit",
    "TrackingSettings",
    "TrainParams",
    "VariantParams",
    "clear_settings_cache",
    "get_pipeline_settings",
    "get_service_settings",
    "get_stack_settings",
    "load_params",
    "mask_url",
    "parse_params",
]

# The registry aliases (see core/registry.py for the rules that move them). The service follows
# MODEL_ALIAS, `serving` by default: what the fleet serves (`champion` unless pinned).
CHAMPION_ALIAS = "champion"
CHALLENGER_ALIAS = "challenger"
SERVING_ALIAS = "serving"


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
    api_max_header_bytes: int = Field(default=64 * 1024, gt=0)  # request line + headers: 431
    api_header_timeout_seconds: float = Field(default=10.0, gt=0)  # to the end of the head: 408
    api_body_timeout_seconds: float = Field(default=30.0, gt=0)  # head to end of body: 408
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
    postgres_port: int = 20432
    postgres_mlflow_db: str = "mlflow"
    postgres_features_db: str = "features"
    postgres_mlflow_auth_db: str = "mlflow_auth"  # MLflow's users and permissions (basic-auth)
    postgres_readonly_user: str = "reader"
    postgres_readonly_password: SecretStr = SecretStr("change-me-reader")
    aws_access_key_id: str = "flightdelay"
    aws_secret_access_key: SecretStr = SecretStr("change-me-s3-secret")
    s3_port: int = 20333
    s3_bucket_mlflow: str = "mlflow"
    s3_bucket_dvc: str = "dvc"
    mlflow_port: int = 20000
    # MLflow's basic-auth app signs its sessions and CSRF tokens with this (stable across restarts)
    mlflow_flask_server_secret_key: SecretStr = SecretStr("change-me-flask-secret")
    pgadmin_port: int = 20050
    prometheus_port: int = 20090  # Prometheus (UI and API behind nginx at /prometheus/)
    seaweed_base_port: int = 20900  # SeaweedFS's internal master/volume/filer ports start here
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
