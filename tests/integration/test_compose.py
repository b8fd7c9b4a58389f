"""docker-compose.yaml, validated offline (no engine here) and held to the native stack's shape."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from flightdelay.config import Settings
from tests.conftest import ROOT

COMPOSE = ROOT / "docker-compose.yaml"
ENV_EXAMPLE = ROOT / ".env.example"


def compose_config(env_file: Path, compose: Path = COMPOSE) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("docker-compose")
    assert binary, (
        "docker-compose missing: `make system-deps` installs it (--no-install-recommends)"
    )
    return subprocess.run(
        [binary, "--env-file", str(env_file), "-f", str(compose), "config", "-q"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )


@pytest.fixture(scope="module")
def spec() -> dict:  # type: ignore[type-arg]
    return yaml.safe_load(COMPOSE.read_text())  # type: ignore[no-any-return]


def test_valid_with_env_example(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    shutil.copy(ENV_EXAMPLE, env)
    proc = compose_config(env)
    assert proc.returncode == 0, proc.stderr


def test_validator_catches_errors(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text(re.sub(r"(?m)^API_TOKEN=.*$", "", ENV_EXAMPLE.read_text()))
    proc = compose_config(env)
    assert proc.returncode != 0 and "API_TOKEN" in proc.stderr
    shutil.copy(ENV_EXAMPLE, env)
    broken = tmp_path / "compose.yaml"
    broken.write_text(COMPOSE.read_text().replace("depends_on:", "depends_onn:", 1))
    assert compose_config(env, broken).returncode != 0


def test_same_services_as_the_native_stack(spec: dict) -> None:  # type: ignore[type-arg]
    from flightdelay.stack import manager

    native = {"postgres", "s3", "mlflow", "pgadmin", "api1", "api2", "nginx"}
    as_compose = {"s3": "minio", "api1": "api", "api2": "api"}
    assert {as_compose.get(n, n) for n in native} <= set(spec["services"])
    assert spec["services"]["api"]["deploy"]["replicas"] == 2
    assert "Docker/api.Dockerfile" in spec["services"]["api"]["build"]["dockerfile"]
    assert spec["services"]["minio"]["image"].startswith("quay.io/minio/minio:RELEASE.")
    assert manager.up.__doc__  # the native stack exists with the same service list


def test_only_nginx_publishes_the_settings_ports(spec: dict) -> None:  # type: ignore[type-arg]
    published = {name for name, svc in spec["services"].items() if svc.get("ports")}
    assert published == {"nginx"}
    ports = spec["services"]["nginx"]["ports"]
    variables = {re.search(r"\$\{(\w+)", p).group(1) for p in ports}  # type: ignore[union-attr]
    fields = {f.upper() for f in Settings.model_fields if f.startswith("nginx_")}
    assert variables == fields
    template = (ROOT / "Docker/nginx/templates/default.conf.template").read_text()
    listens = set(re.findall(r"listen (\d+)", template))
    assert {p.rsplit(":", 1)[1] for p in ports} == listens
    assert all(p.startswith("127.0.0.1:") for p in ports)


def test_every_variable_is_a_documented_setting(spec: dict) -> None:  # type: ignore[type-arg]
    used = set(re.findall(r"\$\{(\w+)", COMPOSE.read_text()))
    known = {f.upper() for f in Settings.model_fields}
    assert used <= known, used - known
    documented = set(re.findall(r"(?m)^#?\s*([A-Z0-9_]+)=", ENV_EXAMPLE.read_text()))
    assert known <= documented | {"PARAMS_PATH", "API_INSTANCE"}, known - documented
    required = set(re.findall(r"\$\{(\w+):\?", COMPOSE.read_text()))
    assert used - required <= {"MODEL_NAME"}  # the one optional value (defaults to params.yaml's)


def test_healthchecks_and_ordering(spec: dict) -> None:  # type: ignore[type-arg]
    services = spec["services"]
    for name in ("postgres", "minio", "mlflow", "pgadmin", "api", "nginx"):
        assert "healthcheck" in services[name], name
    for name, svc in services.items():
        for dep, cond in (svc.get("depends_on") or {}).items():
            assert cond["condition"] in ("service_healthy", "service_completed_successfully"), (
                name,
                dep,
            )
    assert (
        services["mlflow"]["depends_on"]["createbuckets"]["condition"]
        == "service_completed_successfully"
    )
