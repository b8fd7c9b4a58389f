"""The stack spec: a pure description of every service, the same facts for both backends."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from flightdelay.core.config import StackSettings
from flightdelay.stack import bootstrap, scripts, spec
from flightdelay.stack.layout import Layout, Tools
from flightdelay.stack.targets import Compose, Native, Target

SECRETS = {
    "postgres_password": "pg-s3cr3t",
    "postgres_readonly_password": "reader:s3cr3t",
    "aws_secret_access_key": "aws-s3cr3t",
    "mlflow_tracking_password": "mlflow-s3cr3t",
    "pgadmin_password": "pgadmin-s3cr3t",
    "api_token": "api-s3cr3t",
    "mlflow_flask_server_secret_key": "flask-s3cr3t",
}


def native(tmp_path: Path, **extra: object) -> Native:
    values = SECRETS | {"stack_dir": tmp_path / "stack"} | extra
    settings = StackSettings(_env_file=None, **values)  # type: ignore[call-arg, arg-type]
    layout = Layout.of(settings)
    return Native(settings, layout, Tools.expected(layout))


def by_name(t: Target) -> dict[str, spec.Service]:
    return {s.name: s for s in spec.services(t, "flightdelay")}


def test_pure_nothing_written_nothing_installed(tmp_path: Path) -> None:
    services = spec.services(native(tmp_path), "flightdelay")
    assert [s.name for s in services] == [
        "postgres", "s3", "mlflow", "pgadmin", "api1", "api2", "prometheus", "nginx", "watchdog"
    ]  # fmt: skip
    assert not (tmp_path / "stack").exists()
    assert spec.services(native(tmp_path), "flightdelay") == services  # deterministic


def test_start_order_follows_dependencies(tmp_path: Path) -> None:
    for t in (native(tmp_path), Compose()):
        seen: set[str] = set()
        for s in spec.services(t, "flightdelay"):
            assert set(s.depends_on) <= seen, (s.name, s.depends_on)
            seen.add(s.name)


def test_ports_come_from_the_settings(tmp_path: Path) -> None:
    t = native(tmp_path, api_replica_ports="18001,18002,18003", mlflow_port=56000)
    services = by_name(t)
    assert [n for n in services if n.startswith("api")] == ["api1", "api2", "api3"]
    assert services["api3"].health.port == 18003
    assert services["mlflow"].ports[0].number == 56000
    assert "--port" in services["mlflow"].command and "56000" in services["mlflow"].command
    public = {p.setting for s in services.values() for p in s.ports if p.public}
    assert public == {f"NGINX_{k}_PORT" for k in ("HTTP", "HTTPS", "MLFLOW", "PGADMIN", "S3")}


def test_api_gets_model_name_and_reaches_mlflow_through_nginx(tmp_path: Path) -> None:
    api = by_name(native(tmp_path))["api1"]
    assert api.env["MODEL_NAME"] == "flightdelay"
    assert api.env["MLFLOW_TRACKING_URI"] == "http://127.0.0.1:5080"
    assert api.env["MLFLOW_TRACKING_PASSWORD"] == SECRETS["mlflow_tracking_password"]
    compose_api = by_name(Compose())["api"]
    assert compose_api.env["MODEL_NAME"] == "flightdelay"
    assert compose_api.env["MLFLOW_TRACKING_URI"] == "http://nginx:5080"
    assert compose_api.replicas == 2


def test_no_secret_on_a_command_line_and_secret_files_private(tmp_path: Path) -> None:
    services = spec.services(native(tmp_path), "flightdelay")
    for s in services:
        line = " ".join(s.command)
        for secret in SECRETS.values():
            assert secret not in line, (s.name, secret)
    modes = {Path(f.path).name: f.mode for s in services for f in s.files}
    assert modes["s3.json"] == 0o600 and modes["pgpass"] == 0o600
    mlflow = next(s for s in services if s.name == "mlflow")
    # the owner password is URL-quoted inside the backend store URI
    assert "pg-s3cr3t@127.0.0.1:20432/mlflow" in mlflow.env["MLFLOW_BACKEND_STORE_URI"]


def test_compose_holds_references_never_values() -> None:
    services = spec.services(Compose(), "flightdelay")
    text = repr(services)
    assert "change-me" not in text
    defaults = StackSettings.model_construct()
    for field in SECRETS:
        assert str(getattr(defaults, field).get_secret_value()) not in text
    for s in services:
        for key, value in s.env.items():
            if key.startswith(("AWS_SECRET", "MLFLOW_TRACKING_PASSWORD", "API_TOKEN")):
                assert re.fullmatch(r"\$\{[A-Z_]+\}", value), (s.name, key, value)


def test_pgpass_escapes_colons_and_backslashes(tmp_path: Path) -> None:
    line = bootstrap.pgpass(native(tmp_path, postgres_readonly_password="a:b\\c"))
    assert line == "127.0.0.1:20432:*:reader:a\\:b\\\\c\n"
    assert bootstrap.pgpass(Compose()) == (
        "postgres:5432:*:${POSTGRES_READONLY_USER}:${POSTGRES_READONLY_PASSWORD}\n"
    )


def test_compose_init_script_runs_the_native_grants() -> None:
    script = scripts.postgres_init()
    for field, grants in bootstrap.GRANTS.items():
        for grant in grants:
            psql = re.sub(r"\{(\w+)\}", r':"\1"', grant) + ";"
            assert psql in script, (field, grant)
    for statement in bootstrap.NO_TEMP:  # every database: ours and the cluster's
        psql = re.sub(r"\{(\w+)\}", r':"\1"', statement) + ";"
        assert script.count(psql) == len(bootstrap.DATABASES) + 2, statement
    assert "\\set db template1" in script
    assert 'GRANT SELECT ON ALL TABLES IN SCHEMA public TO :"reader";' in script
    assert "CREATE ROLE :\"reader\" LOGIN PASSWORD :'reader_password';" in script
    assert "${" not in script and "'$" not in script  # psql quotes every value itself


def test_pgadmin_settings_are_the_same_in_both(tmp_path: Path) -> None:
    from flightdelay.stack.render import PGADMIN_CONFIG

    distro = next(
        f.content for f in by_name(native(tmp_path))["pgadmin"].files if f.path.endswith(".py")
    )
    env = by_name(Compose())["pgadmin"].env
    for key, value in PGADMIN_CONFIG.items():
        assert f"{key} = {value}\n" in distro
        assert env[f"PGADMIN_CONFIG_{key}"] == value


def test_minio_on_path_replaces_seaweedfs(tmp_path: Path) -> None:
    settings = StackSettings(_env_file=None, stack_dir=tmp_path)  # type: ignore[call-arg]
    layout = Layout.of(settings)
    t = Native(settings, layout, Tools.expected(layout, Path("/opt/minio")))
    s3 = by_name(t)["s3"]
    assert s3.command[:2] == ("/opt/minio", "server")
    assert s3.env["MINIO_ROOT_USER"] == settings.aws_access_key_id


@pytest.mark.parametrize("bad", ["", "80x", "0", "70000"])
def test_bad_replica_ports_are_one_clear_error(tmp_path: Path, bad: str) -> None:
    from flightdelay.core.errors import UserError

    with pytest.raises(UserError, match="API_REPLICA_PORTS"):
        spec.services(native(tmp_path, api_replica_ports=bad), "flightdelay")


def test_mlflow_checks_credentials_itself_with_no_secret_in_a_file_or_argument(
    tmp_path: Path,
) -> None:
    """MLflow's basic-auth app (both backends): the ini names Postgres through libpq's variables
    and holds no secret; the admin, the Flask key and the Postgres password come through the
    environment; the health check is a signed call that needs the backend store."""
    from flightdelay.stack.render import nginx_conf

    for t in (native(tmp_path), Compose()):
        mlflow = by_name(t)["mlflow"]
        at = mlflow.command.index("--app-name")
        assert mlflow.command[at + 1] == "basic-auth"
        [ini] = mlflow.files
        assert ini.mode == 0o600 and mlflow.env["MLFLOW_AUTH_CONFIG_PATH"] == ini.path
        assert "database_uri = postgresql+psycopg2://\n" in ini.content
        assert "default_permission = READ\n" in ini.content and "${" not in ini.content
        assert mlflow.env["PGDATABASE"] == t.value("postgres_mlflow_auth_db")
        assert mlflow.env["MLFLOW_AUTH_ADMIN_USERNAME"] == t.value("mlflow_tracking_username")
        assert mlflow.health == spec.Health(mlflow.health.port, spec.MLFLOW_PROBE, auth=True)
        mlflow_server = nginx_conf(t).split("# MLflow", 1)[1].split("# pgAdmin", 1)[0]
        assert "auth_basic " not in mlflow_server.split("location /prometheus/")[0]
    env = by_name(native(tmp_path))["mlflow"].env
    assert env["MLFLOW_FLASK_SERVER_SECRET_KEY"] == SECRETS["mlflow_flask_server_secret_key"]
    assert env["PGPASSWORD"] == SECRETS["postgres_password"]
    for secret in SECRETS.values():
        assert secret not in by_name(native(tmp_path))["mlflow"].files[0].content


def test_the_auth_database_is_created_and_closed_to_the_reader() -> None:
    assert "postgres_mlflow_auth_db" in bootstrap.DATABASES
    grants = bootstrap.GRANTS["postgres_mlflow_auth_db"]
    assert "REVOKE ALL ON DATABASE {db} FROM PUBLIC" in grants
    assert not any("GRANT " in g for g in grants)


def test_prometheus_scrapes_every_replica_and_mlflow_signed_in(tmp_path: Path) -> None:
    import yaml

    t = native(tmp_path, api_replica_ports="18001,18002,18003", prometheus_port=23090)
    services = by_name(t)
    prom = services["prometheus"]
    assert set(prom.depends_on) == {"mlflow", "api1", "api2", "api3"}
    assert list(services).index("prometheus") < list(services).index("nginx")
    assert prom.health == spec.Health(23090, "/prometheus/-/ready")
    assert "--web.listen-address=127.0.0.1:23090" in prom.command
    assert "--web.route-prefix=/prometheus/" in prom.command
    assert "--web.external-url=http://127.0.0.1:5080/prometheus/" in prom.command
    files = {Path(f.path).name: f for f in prom.files}
    assert set(files) == {"prometheus.yml", "recording.yml", "alerts.yml", "mlflow.password"}
    password = files["mlflow.password"]
    assert password.mode == 0o600 and password.content == SECRETS["mlflow_tracking_password"]
    assert Path(password.path).parent == Path(files["prometheus.yml"].path).parent
    config = yaml.safe_load(files["prometheus.yml"].content)
    jobs = {j["job_name"]: j for j in config["scrape_configs"]}
    replicas = [g["labels"]["replica"] for g in jobs["api"]["static_configs"]]
    assert replicas == ["api1", "api2", "api3"]
    assert jobs["api"]["static_configs"][2]["targets"] == ["127.0.0.1:18003"]
    assert jobs["prometheus"]["static_configs"][0]["targets"] == ["127.0.0.1:23090"]
    assert jobs["mlflow"]["basic_auth"] == {
        "username": "mlflow",
        "password_file": "mlflow.password",
    }
    line = " ".join(prom.command)
    for secret in SECRETS.values():
        assert secret not in files["prometheus.yml"].content and secret not in line
    mlflow = services["mlflow"]
    at = mlflow.command.index("--expose-prometheus")
    assert mlflow.command[at + 1] == str(tmp_path / "stack/mlflow/metrics")
    compose = by_name(Compose())["prometheus"]
    assert compose.depends_on == ("mlflow", "api")
    assert compose.command[:2] == ("/bin/sh", scripts.PROMETHEUS_ENTRYPOINT)
    assert "--web.external-url=http://127.0.0.1:${NGINX_MLFLOW_PORT}/prometheus/" in compose.command


def test_default_ports_sit_below_the_ephemeral_range_and_apart_from_the_test_stack(
    tmp_path: Path,
) -> None:
    """Linux hands out 32768-60999 to client sockets: a default there could be taken by any
    outgoing connection when the stack starts. The test stack's own ports are others again."""
    from flightdelay.stack.validate import planned_ports
    from tests.stack.conftest import stack_settings

    defaults = {n for _, n in planned_ports(StackSettings(_env_file=None, stack_dir=tmp_path))}  # type: ignore[call-arg]
    assert len(defaults) >= 20 and max(defaults) < 32768, sorted(defaults)
    assert not defaults & {n for _, n in planned_ports(stack_settings())}


def test_every_api_launcher_uses_the_limited_protocol(tmp_path: Path) -> None:
    """Header size and slow-client limits live in the service's uvicorn protocol class: the
    native replicas, compose's service and image, and the Kubernetes Deployment all pass it."""
    from flightdelay.serving.protocol import IMPORT_PATH
    from flightdelay.stack.targets import API_HTTP_PROTOCOL
    from tests.conftest import ROOT

    assert API_HTTP_PROTOCOL == IMPORT_PATH
    for target in (native(tmp_path), Compose()):
        apis = [s for s in spec.services(target, "flightdelay") if s.name.startswith("api")]
        assert apis
        for service in apis:
            i = service.command.index("--http")
            assert service.command[i + 1] == IMPORT_PATH
    for launcher in ("Docker/api.Dockerfile", "deploy/k8s/base/api/deployment.yaml"):
        text = (ROOT / launcher).read_text()
        assert re.search(r"--http,? +\"?" + re.escape(IMPORT_PATH), text), launcher


def test_mlflow_clients_in_the_stack_fail_fast(tmp_path: Path) -> None:
    """The replicas get the MLflow client knobs `flightdelay serve` uses (an outage fails an
    alias check in seconds, the holder retries), MLflow bounds its own S3 retries."""
    from flightdelay.serving.cli import MLFLOW_CLIENT_ENV

    for target in (native(tmp_path), Compose()):
        services = by_name(target)
        for service in services.values():
            if service.name.startswith("api"):
                assert MLFLOW_CLIENT_ENV.items() <= service.env.items(), service.name
        assert services["mlflow"].env["AWS_MAX_ATTEMPTS"] == "2"
