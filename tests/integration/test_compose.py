"""docker-compose.yaml and Docker/, generated from the stack spec: validated offline (no engine
here), held to the native stack's shape, and `flightdelay stack compose --check` on drift."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from flightdelay.core.config import StackSettings, load_params
from flightdelay.stack import spec as stack_spec
from flightdelay.stack.layout import Layout, Tools
from flightdelay.stack.targets import COMPOSE_NGINX_PORTS, COMPOSE_PORTS, Native
from tests.conftest import ROOT, venv_env

COMPOSE = ROOT / "docker-compose.yaml"
ENV_EXAMPLE = ROOT / ".env.example"
NGINX_CONF = ROOT / "Docker/nginx/nginx.conf"


def native_target(tmp_path: Path) -> Native:
    settings = StackSettings(_env_file=None, stack_dir=tmp_path)  # type: ignore[call-arg]
    layout = Layout.of(settings)
    return Native(settings, layout, Tools.expected(layout))


def native_services(tmp_path: Path) -> list[stack_spec.Service]:
    """The native stack's services, from the pure spec (no installs, no initdb)."""
    name = load_params(ROOT / "params.yaml").registry.model_name
    return stack_spec.services(native_target(tmp_path), name)


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


def test_same_services_as_the_native_stack(spec: dict, tmp_path: Path) -> None:  # type: ignore[type-arg]
    # the watchdog is native only (compose: the engine's healthcheck and restart policy)
    native = [s for s in native_services(tmp_path) if s.name != "watchdog"]
    apis = [s for s in native if s.name.startswith("api")]
    as_compose = {s.name: ("api" if s in apis else s.name) for s in native}
    jobs = {"createbuckets", "pgadmin-volume"}  # what the native manager does in-process
    # `dvc repro` in the pipeline image (natively: the user's own shell), only under its profile
    assert set(as_compose.values()) | jobs | {"pipeline"} == set(spec["services"])
    assert spec["services"]["pipeline"]["profiles"] == ["pipeline"]
    assert spec["services"]["api"]["deploy"]["replicas"] == len(apis) == 2
    assert "Docker/api.Dockerfile" in spec["services"]["api"]["build"]["dockerfile"]
    assert spec["services"]["s3"]["image"].startswith("quay.io/minio/minio:RELEASE.")
    for s in native:  # the same dependencies
        deps = set(spec["services"][as_compose[s.name]].get("depends_on", {})) - jobs
        assert deps == {as_compose[d] for d in s.depends_on}, s.name
    # the same settings: every environment variable a native service gets, compose sets too
    for s in native:
        compose_env = spec["services"][as_compose[s.name]].get("environment", {})
        native_only = {"API_INSTANCE", "CONFIG_DISTRO_FILE_PATH"}
        assert set(s.env) - native_only <= set(compose_env), s.name
    api_env = spec["services"]["api"]["environment"]
    assert api_env["MODEL_NAME"] == load_params(ROOT / "params.yaml").registry.model_name
    assert api_env["MLFLOW_TRACKING_URI"] == f"http://nginx:{COMPOSE_NGINX_PORTS['mlflow']}"


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
    from flightdelay.stack.render import nginx_conf

    t = native_target(tmp_path)
    settings = t.settings
    kinds = ("http", "https", "mlflow", "pgadmin", "s3")
    native = _servers(
        nginx_conf(t),
        {str(getattr(settings, f"nginx_{k}_port")): k for k in kinds},
        {
            "http://api": "api",
            f"http://127.0.0.1:{settings.mlflow_port}": "mlflow",
            f"http://127.0.0.1:{settings.pgadmin_port}": "pgadmin",
            f"http://127.0.0.1:{settings.s3_port}": "s3",
            f"127.0.0.1:{settings.postgres_port}": "postgres",
        },
    )
    compose = _servers(
        NGINX_CONF.read_text(),
        {str(COMPOSE_NGINX_PORTS[k]): k for k in (*kinds, "postgres")},
        {
            "http://api": "api",
            f"http://mlflow:{COMPOSE_PORTS['mlflow']}": "mlflow",
            f"http://pgadmin:{COMPOSE_PORTS['pgadmin']}": "pgadmin",
            f"http://s3:{COMPOSE_PORTS['s3']}": "s3",
            f"postgres:{COMPOSE_PORTS['postgres']}": "postgres",
        },
    )
    assert set(native) == set(kinds)
    assert compose.pop("postgres") == ("postgres", False, {"proxy_connect_timeout 5s"})
    assert compose == native


def test_only_nginx_publishes_the_settings_ports(spec: dict) -> None:  # type: ignore[type-arg]
    published = {name for name, svc in spec["services"].items() if svc.get("ports")}
    assert published == {"nginx"}
    ports = spec["services"]["nginx"]["ports"]
    variables = {re.search(r"\$\{(\w+)", p).group(1) for p in ports}  # type: ignore[union-attr]
    # the native stack's user-facing ports: nginx's, and Postgres (nginx proxies it over TCP)
    fields = {f.upper() for f in StackSettings.model_fields if f.startswith("nginx_")}
    assert variables == fields | {"POSTGRES_PORT"}
    listens = set(re.findall(r"listen (\d+)", NGINX_CONF.read_text()))
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
    assert used == required  # every value is required (MODEL_NAME is written from params.yaml)


def test_healthchecks_and_ordering(spec: dict) -> None:  # type: ignore[type-arg]
    services = spec["services"]
    for name in ("postgres", "s3", "mlflow", "pgadmin", "api", "nginx"):
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


def _check(cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["flightdelay", "stack", "compose", "--check"],
        cwd=cwd,
        env=venv_env(),
        capture_output=True,
        text=True,
    )


def test_compose_check_passes_on_the_committed_files_and_fails_after_a_hand_edit(
    tmp_path: Path,
) -> None:
    proc = _check(ROOT)
    assert proc.returncode == 0, proc.stderr
    for rel in ("docker-compose.yaml", "params.yaml", "Docker", "deploy/prometheus"):
        (shutil.copytree if (ROOT / rel).is_dir() else shutil.copy2)(ROOT / rel, tmp_path / rel)
    assert _check(tmp_path).returncode == 0
    compose = tmp_path / "docker-compose.yaml"
    compose.write_text(compose.read_text().replace("retries: 30", "retries: 31"))
    (tmp_path / "Docker/nginx/old.conf").write_text("# a stale file\n")
    proc = _check(tmp_path)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "docker-compose.yaml" in lines[0] and "Docker/nginx/old.conf" in lines[0]
    # `stack compose` puts it right again
    subprocess.run(
        ["flightdelay", "stack", "compose"], cwd=tmp_path, env=venv_env(), check=True,
        capture_output=True,
    )  # fmt: skip
    assert _check(tmp_path).returncode == 0
    assert compose.read_text() == COMPOSE.read_text()


def test_the_postgres_init_script_runs_on_a_real_cluster(tmp_path: Path) -> None:
    """Docker/postgres's init script (rendered from bootstrap's list) on PostgreSQL 15: the role
    reads tables made before and after its grants, and writes none."""
    import psycopg2

    from flightdelay.stack.pgcluster import pg_bin, throwaway_postgres

    with throwaway_postgres(databases=()) as pg:
        env = venv_env(
            {
                "PATH": f"{pg_bin()}:{venv_env()['PATH']}",
                "PGHOST": pg["host"],
                "PGPORT": pg["port"],
                "PGPASSWORD": pg["password"],
                "POSTGRES_USER": pg["user"],
                "POSTGRES_READONLY_USER": "reader",
                "POSTGRES_READONLY_PASSWORD": "it's:a s3cr3t",
                "POSTGRES_MLFLOW_DB": "mlflow",
                "POSTGRES_FEATURES_DB": "features",
                "POSTGRES_MLFLOW_AUTH_DB": "mlflow_auth",
            }
        )
        script = ROOT / "Docker/postgres/10-flightdelay.sh"
        proc = subprocess.run(["sh", str(script)], env=env, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr

        def connect(user: str, password: str) -> psycopg2.extensions.connection:
            conn = psycopg2.connect(
                host=pg["host"], port=pg["port"], user=user, password=password, dbname="features"
            )
            conn.autocommit = True
            return conn

        owner = connect(pg["user"], pg["password"])
        with owner.cursor() as cur:
            cur.execute("CREATE TABLE later (x int); INSERT INTO later VALUES (1)")
        reader = connect("reader", "it's:a s3cr3t")
        with reader.cursor() as cur:
            cur.execute("SELECT x FROM later")
            assert cur.fetchall() == [(1,)]
            with pytest.raises(psycopg2.errors.InsufficientPrivilege):
                cur.execute("INSERT INTO later VALUES (2)")
        reader.close()
        owner.close()
        with pytest.raises(psycopg2.OperationalError, match="permission denied"):
            psycopg2.connect(
                host=pg["host"], port=pg["port"], user="reader", password="it's:a s3cr3t",
                dbname="mlflow_auth",
            )  # fmt: skip


def test_dockerfiles_match_the_spec_and_run_as_non_root(spec: dict) -> None:  # type: ignore[type-arg]
    """The generated Dockerfiles: the ports the spec uses, the locked MLflow release, a non-root
    USER in every image, and the pipeline image compose runs `dvc repro` with."""
    from importlib.metadata import version

    docker = ROOT / "Docker"
    texts = {p.name.split(".")[0]: p.read_text() for p in docker.glob("*.Dockerfile")}
    assert set(texts) == {"api", "mlflow", "nginx", "pipeline"}

    def exposed(name: str) -> set[int]:
        return {int(p) for p in re.search(r"(?m)^EXPOSE (.+)$", texts[name]).group(1).split()}  # type: ignore[union-attr]

    assert exposed("api") == {COMPOSE_PORTS["api"]}
    assert exposed("mlflow") == {COMPOSE_PORTS["mlflow"]}
    assert exposed("nginx") == set(COMPOSE_NGINX_PORTS.values())
    assert all(p > 1024 for p in exposed("nginx"))  # a non-root nginx can bind them
    assert f'"mlflow[auth]=={version("mlflow")}"' in texts["mlflow"]
    assert f'"prometheus-flask-exporter=={version("prometheus-flask-exporter")}"' in texts["mlflow"]
    for name, text in texts.items():
        users = re.findall(r"(?m)^USER (\S+)$", text)
        assert users and users[-1] not in ("root", "0"), name
    steps = [ln for ln in texts["api"].splitlines() if not ln.startswith("#")]
    assert "--extras serving" in texts["api"] and not any("params.yaml" in ln for ln in steps)
    assert "COPY src ./src" in steps
    assert "--extras pipeline" in texts["pipeline"]
    assert texts["pipeline"].rstrip().endswith('CMD ["dvc", "repro"]')
    pipeline = spec["services"]["pipeline"]
    assert pipeline["build"]["dockerfile"] == "Docker/pipeline.Dockerfile"
    assert pipeline["volumes"] == ["./:/project"]
    assert pipeline["environment"]["DATABASE_URL"].startswith("postgresql+psycopg2://")
    assert pipeline["environment"]["MLFLOW_TRACKING_URI"] == "http://nginx:5080"


def test_prometheus_start_script_writes_its_login_and_config(tmp_path: Path) -> None:
    """Docker/prometheus's start: the password file (0600) and the config with the user name
    from the environment (promtool accepts it, the rules found through the link)."""
    promtool = shutil.which("promtool")
    if not promtool:
        pytest.skip("promtool missing: `make system-deps`")
    env = {"PATH": "/usr/bin:/bin", "MLFLOW_TRACKING_USERNAME": "ml|fl&ow"}
    env["MLFLOW_TRACKING_PASSWORD"] = "it's a s3cr3t"
    replacements = {
        "/prometheus/config": str(tmp_path),
        "/etc/prometheus": str(ROOT / "deploy/prometheus"),
        "exec /bin/prometheus": "exec true",
    }
    _run_script("Docker/prometheus/flightdelay-prometheus.sh", replacements, env)
    config = yaml.safe_load((tmp_path / "prometheus.yml").read_text())
    mlflow = next(j for j in config["scrape_configs"] if j["job_name"] == "mlflow")
    assert mlflow["basic_auth"] == {"username": "ml|fl&ow", "password_file": "mlflow.password"}
    password = tmp_path / "mlflow.password"
    assert password.read_text() == "it's a s3cr3t" and password.stat().st_mode & 0o777 == 0o600
    proc = subprocess.run(
        [promtool, "check", "config", str(tmp_path / "prometheus.yml")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0 and "2 rule files found" in proc.stdout, proc.stdout + proc.stderr


def test_dockerignore_keeps_the_build_context_small() -> None:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    rules = [ln for ln in lines if ln and not ln.startswith("#")]
    assert rules[0] == "*"  # everything out; only what the images COPY back in
    assert {r[1:] for r in rules if r.startswith("!")} == {
        "pyproject.toml", "poetry.lock", "README.md", "src"
    }  # fmt: skip


def test_native_nginx_conf_is_valid_for_nginx(tmp_path: Path) -> None:
    """`nginx -t` on the native config (certificate and htpasswd made as `stack up` makes them)."""
    from flightdelay.stack import provision
    from flightdelay.stack.render import nginx_conf

    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists():
        pytest.skip("nginx missing: `make system-deps`")
    t = native_target(tmp_path)
    d = t.layout.dir("nginx")
    (d / "tmp").mkdir(parents=True)
    provision.tls_certificate(d / "tls.crt", d / "tls.key")
    provision.htpasswd(d / "htpasswd", "mlflow", "pw")
    (d / "nginx.conf").write_text(nginx_conf(t))
    proc = subprocess.run(
        [nginx, "-t", "-p", str(d), "-c", str(d / "nginx.conf")], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr


def test_compose_nginx_conf_is_valid_for_nginx(tmp_path: Path) -> None:
    """`nginx -t` on Docker/nginx/nginx.conf, with the container's names and paths mapped to
    this machine (Debian's nginx lacks the stream module: the TCP proxy block is left out)."""
    from flightdelay.stack import provision

    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists():
        pytest.skip("nginx missing: `make system-deps`")
    conf = NGINX_CONF.read_text()
    assert conf.count("\nstream {") == 1
    conf = conf[: conf.index("\n# PostgreSQL through nginx")] + "\n"
    conf = conf.replace("user nginx;\n", "")
    for host in ("api", "mlflow", "pgadmin", "s3", "prometheus"):
        conf = re.sub(rf"\b{host}:(\d+)", r"127.0.0.1:\1", conf)
    conf = re.sub(r"listen (\d+)", lambda m: f"listen 127.0.0.1:{int(m.group(1)) + 30000}", conf)
    conf = conf.replace("/tmp/nginx.pid", f"{tmp_path}/nginx.pid")
    for folder in ("/etc/nginx/secrets", "/var/log/nginx", "/var/cache/nginx"):
        conf = conf.replace(folder, str(tmp_path))
    provision.tls_certificate(tmp_path / "tls.crt", tmp_path / "tls.key")
    (tmp_path / "nginx.conf").write_text(conf)
    proc = subprocess.run(
        [nginx, "-t", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr


def _run_script(rel: str, replacements: dict[str, str], env: dict[str, str]) -> None:
    """Run one of Docker/'s start-up scripts here, its container paths mapped by `replacements`."""
    text = (ROOT / rel).read_text()
    for old, new in replacements.items():
        assert old in text, old
        text = text.replace(old, new)
    proc = subprocess.run(["sh", "-c", text, "sh"], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_pgadmin_start_script_writes_servers_and_passfile(tmp_path: Path) -> None:
    import json

    env = {
        "PATH": "/usr/bin:/bin",
        "PGADMIN_DEFAULT_EMAIL": "admin@example.com",
        "POSTGRES_READONLY_USER": "reader",
        "POSTGRES_READONLY_PASSWORD": "r3a:der\\",
        "POSTGRES_FEATURES_DB": "features",
        "POSTGRES_MLFLOW_DB": "mlflow",
    }
    script = "Docker/pgadmin/flightdelay-entrypoint.sh"
    _run_script(
        script, {"/var/lib/pgadmin": str(tmp_path), "exec /entrypoint.sh": "exec true"}, env
    )
    servers = json.loads((tmp_path / "servers.json").read_text())["Servers"]
    assert {s["MaintenanceDB"] for s in servers.values()} == {"features", "mlflow"}
    assert {(s["Host"], s["Port"], s["Username"]) for s in servers.values()} == {
        ("postgres", COMPOSE_PORTS["postgres"], "reader")
    }
    passfile = tmp_path / "storage/admin_example.com/pgpass"
    assert passfile.read_text() == "postgres:5432:*:reader:r3a\\:der\\\\\n"  # escaped
    assert passfile.stat().st_mode & 0o777 == 0o600


def test_nginx_start_script_writes_a_sha512_htpasswd_and_a_certificate(tmp_path: Path) -> None:
    from flightdelay.stack.sha512crypt import verify

    if not shutil.which("openssl"):
        pytest.skip("openssl missing")
    env = {"PATH": "/usr/bin:/bin", "MLFLOW_TRACKING_USERNAME": "mlflow"}
    env["MLFLOW_TRACKING_PASSWORD"] = "it's a s3cr3t"
    replacements = {"/etc/nginx/secrets": str(tmp_path)}
    _run_script("Docker/nginx/40-secrets.sh", replacements, env)
    user, hashed = (tmp_path / "htpasswd").read_text().strip().split(":", 1)
    assert user == "mlflow" and hashed.startswith("$6$") and verify("it's a s3cr3t", hashed)
    assert (tmp_path / "htpasswd").stat().st_mode & 0o777 == 0o600  # nginx's own user reads it
    assert (tmp_path / "tls.crt").read_text().startswith("-----BEGIN CERTIFICATE-----")
    assert (tmp_path / "tls.key").stat().st_mode & 0o777 == 0o600
