"""docker-compose.yaml, validated offline (no engine here) and held to the native stack's shape."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from flightdelay.core.config import StackSettings
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
    native = {"postgres", "s3", "mlflow", "pgadmin", "api1", "api2", "nginx"}
    as_compose = {"s3": "minio", "api1": "api", "api2": "api"}
    assert {as_compose.get(n, n) for n in native} <= set(spec["services"])
    assert spec["services"]["api"]["deploy"]["replicas"] == 2
    assert "Docker/api.Dockerfile" in spec["services"]["api"]["build"]["dockerfile"]
    assert spec["services"]["minio"]["image"].startswith("quay.io/minio/minio:RELEASE.")


def _servers(conf: str, port_of: dict[str, str], target_of: dict[str, str]) -> dict[str, object]:
    """nginx `server` blocks keyed by their public port, each as (upstream, TLS?, directives)."""
    servers: dict[str, object] = {}
    for match in re.finditer(r"\bserver \{", conf):
        depth, i = 1, match.end()
        while depth:
            depth += {"{": 1, "}": -1}.get(conf[i], 0)
            i += 1
        lines = [ln.strip().rstrip(";") for ln in conf[match.end() : i - 1].splitlines()]
        listen = next(ln for ln in lines if ln.startswith("listen "))
        port = port_of[re.search(r"(\d+)(?: ssl)?$", listen).group(1)]  # type: ignore[union-attr]
        target = next(ln.split()[1] for ln in lines if ln.startswith("proxy_pass "))
        skip = ("listen ", "proxy_pass ", "ssl_certificate", "auth_basic_user_file", "location ")
        directives = {ln for ln in lines if ln and ln != "}" and not ln.startswith(skip)}
        servers[port] = (target_of[target], listen.endswith("ssl"), directives)
    return servers


def test_same_proxy_settings_as_the_native_stack(tmp_path: Path) -> None:
    """nginx in compose routes and configures each public port exactly as the native stack."""
    from flightdelay.stack.render import Layout, nginx_conf

    settings = StackSettings(stack_dir=tmp_path)
    kinds = ("http", "https", "mlflow", "pgadmin", "s3")
    native = _servers(
        nginx_conf(settings, Layout.of(settings)),
        {str(getattr(settings, f"nginx_{k}_port")): k for k in kinds},
        {
            "http://api": "api",
            f"http://127.0.0.1:{settings.mlflow_port}": "mlflow",
            f"http://127.0.0.1:{settings.pgadmin_port}": "pgadmin",
            f"http://127.0.0.1:{settings.s3_port}": "s3",
        },
    )
    compose = _servers(
        (ROOT / "Docker/nginx/templates/default.conf.template").read_text(),
        dict(zip(("8080", "8443", "5080", "5050", "9000"), kinds, strict=True)),
        {
            "http://api": "api",
            "http://mlflow:5000": "mlflow",
            "http://pgadmin:80": "pgadmin",
            "http://minio:9000": "s3",
        },
    )
    assert set(native) == set(kinds)
    assert compose == native


def test_only_nginx_publishes_the_settings_ports(spec: dict) -> None:  # type: ignore[type-arg]
    published = {name for name, svc in spec["services"].items() if svc.get("ports")}
    assert published == {"nginx"}
    ports = spec["services"]["nginx"]["ports"]
    variables = {re.search(r"\$\{(\w+)", p).group(1) for p in ports}  # type: ignore[union-attr]
    # the native stack's user-facing ports: nginx's, and Postgres (nginx proxies it over TCP)
    fields = {f.upper() for f in StackSettings.model_fields if f.startswith("nginx_")}
    assert variables == fields | {"POSTGRES_PORT"}
    nginx = ROOT / "Docker/nginx"
    template = (nginx / "templates/default.conf.template").read_text()
    template += (nginx / "postgres.stream.conf").read_text()
    listens = set(re.findall(r"listen (\d+)", template))
    assert {p.rsplit(":", 1)[1] for p in ports} == listens
    assert all(p.startswith("127.0.0.1:") for p in ports)
    # the nginx image renders htpasswd and the certificate with openssl (dropped by nginx:alpine)
    assert "apk add --no-cache openssl" in (ROOT / "Docker/nginx.Dockerfile").read_text()


def test_every_variable_is_a_documented_setting(spec: dict) -> None:  # type: ignore[type-arg]
    used = set(re.findall(r"\$\{(\w+)", COMPOSE.read_text()))
    known = {f.upper() for f in StackSettings.model_fields}
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
