"""The stack as data: a PURE function from settings to the services that make it up.

`services(target, model_name)` returns, in start order, each service's command, environment,
ports, health check, dependencies and the files it reads. No installs, no initdb, no network:
the backends (:mod:`~flightdelay.stack.backends.supervisor`, native processes;
:mod:`~flightdelay.stack.backends.compose`, docker-compose.yaml) render or run this one
description. What differs between them is the target (:mod:`flightdelay.stack.targets`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from flightdelay.core.config import StackSettings
from flightdelay.serving.cli import MLFLOW_CLIENT_ENV
from flightdelay.stack import bootstrap, prometheus, render, scripts
from flightdelay.stack.targets import API_HTTP_PROTOCOL, NGINX_KINDS, Native, Target, port_setting


@dataclass(frozen=True)
class File:
    """A file a service reads: where it sees it, the text, the mode."""

    path: str
    content: str
    mode: int = 0o644


@dataclass(frozen=True)
class Health:
    """Up when a GET of `path` on `port` answers one of `ok` (`path` None: a Postgres login;
    `port` 0: no probe, running is enough), with MLflow's credentials when `auth`."""

    port: int
    path: str | None = "/health"
    ok: tuple[int, ...] = (200,)
    auth: bool = False


@dataclass(frozen=True)
class Port:
    """A port a service listens on, the setting that chooses it, and whether users reach it."""

    setting: str
    number: int
    public: bool = False


@dataclass(frozen=True)
class Service:
    name: str
    command: tuple[str, ...]
    health: Health
    env: dict[str, str] = field(default_factory=dict)
    ports: tuple[Port, ...] = ()
    depends_on: tuple[str, ...] = ()
    files: tuple[File, ...] = ()
    replicas: int = 1
    user: str | None = None  # native: run as this user (Postgres refuses root)
    stopsignal: str = "TERM"
    in_project: bool = False  # native: runs in the project folder (reads its .env)
    cwd: str | None = None  # native: runs in this folder


# a REST call that needs MLflow's backend store (Postgres)
MLFLOW_PROBE = "/api/2.0/mlflow/experiments/search?max_results=1"
WATCHDOG_SECONDS = 10  # a replica whose /health has not answered this long is restarted


def _postgres(t: Target) -> Service:
    _, port = t.addr("postgres")
    service = Service(
        "postgres",
        ("postgres",),  # compose: the image's own start (initdb, then the init script)
        Health(port, None),
        ports=(Port("POSTGRES_PORT", port),),
        stopsignal="INT",
    )
    if isinstance(t, Native):
        from flightdelay.stack.pgcluster import server_command

        command = tuple(server_command(t.layout.pg_data, port, t.layout.dir("pg")))
        return replace(service, command=command, user="postgres" if t.as_root else None)
    init = File(scripts.POSTGRES_INIT, scripts.postgres_init(), 0o755)
    return replace(service, env=scripts.postgres_env(t), files=(init,))


def _seaweed(t: Native) -> Service:
    """SeaweedFS `weed mini`: every port and socket set (its defaults collide and sit in /tmp)."""
    base, (_, port) = t.settings.seaweed_base_port, t.addr("s3")
    names = ["master", "master.port.grpc", "volume", "volume.port.grpc", "filer"]
    names += ["filer.port.grpc", "s3.port.grpc", "admin", "admin.port.grpc"]
    d = t.path("s3", "")
    command = [t.exe("seaweedfs"), f"-logdir={d}/logs", "mini", f"-dir={d}/data"]
    command += ["-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-master.telemetry=false"]
    command += [f"-{n if '.' in n else n + '.port'}={base + i}" for i, n in enumerate(names)]
    command += [f"-filer.localSocket={d}/filer.sock", f"-s3.port={port}"]
    command += [f"-s3.localSocket={d}/s3.sock", f"-s3.config={d}/s3.json"]
    command += ["-s3.port.iceberg=0", "-s3.port.lance=0", "-webdav=false", "-admin.ui=false"]
    keys = t.value("aws_access_key_id"), t.value("aws_secret_access_key")
    ports = [Port("S3_PORT", port)]
    ports += [Port("SEAWEED_BASE_PORT", base + i) for i in range(len(names))]
    files = (
        File(f"{d}/s3.json", render.s3_identities(*keys), 0o600),
        # weed reads security.toml from its working folder: JWTs on the volume and filer ports
        File(f"{d}/security.toml", render.seaweed_security(keys[1]), 0o600),
    )
    service = Service("s3", tuple(command), _s3_health(port), ports=tuple(ports), files=files)
    return replace(service, cwd=d)


def _s3_health(port: int) -> Health:
    return Health(port, "/", (200, 403))


def _s3(t: Target) -> Service:
    """The S3 server: SeaweedFS natively, MinIO in compose (or natively when on PATH)."""
    if isinstance(t, Native) and t.s3_kind == "seaweedfs":
        return _seaweed(t)
    _, port = t.addr("s3")
    where = f"{t.bind()}:" if isinstance(t, Native) else ":"
    console = t.settings.seaweed_base_port if isinstance(t, Native) else port + 1
    data = t.path("s3", "minio") if isinstance(t, Native) else t.path("s3", "")
    command: tuple[str, ...] = (t.exe("minio"), "server", data, "--address", f"{where}{port}")
    command += ("--console-address", f"{where}{console}")
    env = {
        "MINIO_ROOT_USER": t.value("aws_access_key_id"),
        "MINIO_ROOT_PASSWORD": t.value("aws_secret_access_key"),
    }
    return Service("s3", command, _s3_health(port), env, (Port("S3_PORT", port),))


def _mlflow(t: Target) -> Service:
    """MLflow with its basic-auth app: MLflow itself checks every REST, UI and artifact request
    (its own port answers 401 without credentials; /health stays open). Its admin is
    MLFLOW_TRACKING_USERNAME/PASSWORD; users and permissions live in their own database."""
    (pg_host, pg_port), (s3_host, s3_port) = t.addr("postgres"), t.addr("s3")
    _, port = t.addr("mlflow")
    owner = f"{t.value('postgres_user')}:{t.url_part('postgres_password')}"
    hosts = ["localhost", "localhost:*", "127.0.0.1", "127.0.0.1:*"]
    # compose: nginx and Prometheus (its scrape says Host: mlflow:5000) reach it by name
    hosts += [] if isinstance(t, Native) else [f"{t.nginx_host}:*", f"{t.addr('mlflow')[0]}:*"]
    metrics = t.path("mlflow", "metrics")
    # the workers' metric files: emptied at every start (a dead worker's would count on)
    command = ["/bin/sh", "-c", 'rm -rf "$0" && mkdir -p "$0" && exec "$@"', metrics]
    command += [t.exe("mlflow"), "server", "--app-name", "basic-auth", "--serve-artifacts"]
    command += ["--expose-prometheus", metrics]
    command += ["--artifacts-destination", f"s3://{t.value('s3_bucket_mlflow')}/artifacts"]
    command += ["--host", t.bind(), "--port", str(port), "--workers", "2"]
    command += ["--allowed-hosts", ",".join(hosts)]
    db = t.value("postgres_mlflow_db")
    ini = File(t.path("mlflow", "basic_auth.ini"), render.mlflow_auth_ini(), 0o600)
    env = {
        # through the environment: a password in --backend-store-uri shows in `ps`
        "MLFLOW_BACKEND_STORE_URI": f"postgresql+psycopg2://{owner}@{pg_host}:{pg_port}/{db}",
        "MLFLOW_S3_ENDPOINT_URL": f"http://{s3_host}:{s3_port}",
        "AWS_ACCESS_KEY_ID": t.value("aws_access_key_id"),
        "AWS_SECRET_ACCESS_KEY": t.value("aws_secret_access_key"),
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",  # huey: 1-2 GB in 8 processes
        # S3 down: answer the client within seconds, not after boto3's default retries (5-16 s
        # per request, most of a stage's time to its one-line error)
        "AWS_MAX_ATTEMPTS": "2",
        "AWS_RETRY_MODE": "standard",
        "MLFLOW_AUTH_CONFIG_PATH": ini.path,
        "MLFLOW_FLASK_SERVER_SECRET_KEY": t.value("mlflow_flask_server_secret_key"),
        # the admin MLflow creates on its first start (later: bootstrap.ensure_mlflow_admin)
        "MLFLOW_AUTH_ADMIN_USERNAME": t.value("mlflow_tracking_username"),
        "MLFLOW_AUTH_ADMIN_PASSWORD": t.value("mlflow_tracking_password"),
        # the auth database, through libpq's variables (the ini's URI names none of them)
        "PGHOST": pg_host,
        "PGPORT": str(pg_port),
        "PGUSER": t.value("postgres_user"),
        "PGPASSWORD": t.value("postgres_password"),
        "PGDATABASE": t.value("postgres_mlflow_auth_db"),
    }
    ports = (Port("MLFLOW_PORT", port),)
    # /health says 200 even with Postgres down: a REST call that needs the store, signed in
    health = Health(port, MLFLOW_PROBE, auth=True)
    service = Service("mlflow", tuple(command), health, env, ports, ("postgres", "s3"))
    return replace(service, files=(ini,))


def _prometheus(t: Target, after: tuple[str, ...]) -> Service:
    """Prometheus: scrapes every API replica and MLflow, evaluates deploy/prometheus's rules;
    served under /prometheus/ (nginx: basic auth on the MLflow port)."""
    _, port = t.addr("prometheus")
    health, ports = Health(port, prometheus.ROUTE + "-/ready"), (Port("PROMETHEUS_PORT", port),)
    service = Service("prometheus", (), health, ports=ports, depends_on=after)
    if not isinstance(t, Native):
        conf = f"{prometheus.COMPOSE_CONFIG_DIR}/prometheus.yml"
        args = prometheus.arguments(t, conf, "/prometheus")
        script = File(scripts.PROMETHEUS_ENTRYPOINT, prometheus.compose_entrypoint(t), 0o755)
        return replace(service, command=("/bin/sh", script.path, *args), files=(script,))
    d = t.path("prometheus", "")
    files = [File(f"{d}/prometheus.yml", prometheus.config(t))]
    files += [File(f"{d}/rules/{name}", text) for name, text in prometheus.rules().items()]
    password = t.value("mlflow_tracking_password")
    files += [File(f"{d}/{prometheus.PASSWORD_FILE}", password, 0o600)]
    args = prometheus.arguments(t, files[0].path, f"{d}/data")
    return replace(service, command=(t.exe("prometheus"), *args), files=tuple(files))


def _pgadmin(t: Target) -> Service:
    _, port = t.addr("pgadmin")
    servers, passfile = bootstrap.pgadmin_servers(t), bootstrap.pgpass(t)
    ports = (Port("PGADMIN_PORT", port),)
    files: tuple[File, ...]
    command: tuple[str, ...]
    if isinstance(t, Native):
        distro = t.path("pgadmin", "config_distro.py")
        storage = bootstrap.pgadmin_storage(t.settings.pgadmin_email)
        files = (
            File(distro, render.pgadmin_config_distro(t)),
            File(t.path("pgadmin", "servers.json"), servers),
            File(t.path("pgadmin", f"storage/{storage}/pgpass"), passfile, 0o600),
        )
        command, env = (t.exe("pgadmin4"),), {"CONFIG_DISTRO_FILE_PATH": distro}
    else:
        script = scripts.pgadmin_entrypoint(t, servers, passfile)
        files = (File(scripts.PGADMIN_ENTRYPOINT, script, 0o755),)
        command, env = ("/bin/sh", scripts.PGADMIN_ENTRYPOINT), scripts.pgadmin_env(t)
    health = Health(port, "/misc/ping")
    return Service("pgadmin", command, health, env, ports, ("postgres",), files)


def _apis(t: Target, model_name: str) -> list[Service]:
    env = {
        # MLflow's client knobs, as `flightdelay serve` sets them: an alias check during an
        # MLflow outage fails fast (the holder retries on its own) instead of retrying for minutes
        **MLFLOW_CLIENT_ENV,
        # through nginx with basic auth, as every other MLflow client
        "MLFLOW_TRACKING_URI": f"http://{t.nginx_host}:{t.nginx_port('mlflow')}",
        "MLFLOW_TRACKING_USERNAME": t.value("mlflow_tracking_username"),
        "MLFLOW_TRACKING_PASSWORD": t.value("mlflow_tracking_password"),
        "MODEL_NAME": model_name,  # from params.yaml register.model_name: declared once
        "MODEL_ALIAS": t.value("model_alias"),
        "API_TOKEN": t.value("api_token"),
        "API_MAX_BATCH": t.value("api_max_batch"),
        "API_POLL_SECONDS": t.value("api_poll_seconds"),
        "API_RETRY_MAX_SECONDS": "5",
    }
    many = isinstance(t, Native)  # natively one process per replica, in compose one service
    out = []
    for i, port in enumerate(t.api_ports(), start=1):
        command: tuple[str, ...] = (t.exe("uvicorn"), "flightdelay.serving.app:create_app")
        command += ("--factory", "--http", API_HTTP_PROTOCOL)
        command += ("--host", t.bind(), "--port", str(port))
        command += ("--workers", t.value("api_workers"), "--no-access-log")
        name = f"api{i}" if many else "api"
        extra = {"API_INSTANCE": name} if many else {}
        port_of = Port("API_REPLICA_PORTS", port)
        service = Service(name, command, Health(port), env | extra, (port_of,), ("mlflow",))
        out.append(replace(service, replicas=t.replicas(), in_project=True))
    return out


def _nginx(t: Target, after: tuple[str, ...]) -> Service:
    kinds = NGINX_KINDS if isinstance(t, Native) else (*NGINX_KINDS, "postgres")
    ports = tuple(Port(port_setting(k), t.nginx_port(k), public=True) for k in kinds)
    service = Service(
        "nginx",
        ("nginx", "-g", "daemon off;"),  # compose: the image's own start
        Health(t.nginx_port("http")),
        ports=ports,
        depends_on=after,
        stopsignal="QUIT",
    )
    if isinstance(t, Native):
        conf = t.path("nginx", "nginx.conf")
        command = (t.exe("nginx"), "-p", t.path("nginx", ""), "-c", conf, "-g", "daemon off;")
        return replace(service, command=command, files=(File(conf, render.nginx_conf(t)),))
    conf_file = File(scripts.NGINX_CONF, render.nginx_conf(t))
    secrets = File(scripts.NGINX_SECRETS, scripts.nginx_secrets(t), 0o755)
    return replace(service, files=(conf_file, secrets))


def _watchdog(t: Native, apis: list[Service]) -> Service:
    """Natively: restarts a replica whose /health stops answering (compose: the engine's
    healthcheck and restart policy)."""
    targets = ",".join(f"{s.name}={s.health.port}" for s in apis)
    env = {
        "WATCHDOG_TARGETS": targets,
        "WATCHDOG_SECONDS": str(WATCHDOG_SECONDS),
        "SUPERVISOR_SOCKET": str(t.layout.root / "supervisor.sock"),
    }
    command = (t.exe("python"), "-m", "flightdelay.stack.watchdog")
    return Service("watchdog", command, Health(0), env, depends_on=tuple(s.name for s in apis))


def services(t: Target, model_name: str) -> list[Service]:
    """Every service of the stack, in start order (each after what it depends on)."""
    apis = _apis(t, model_name)
    before = [_postgres(t), _s3(t), _mlflow(t), _pgadmin(t), *apis]
    before.append(_prometheus(t, ("mlflow", *(s.name for s in apis))))
    out = [*before, _nginx(t, tuple(s.name for s in before))]
    return out + ([_watchdog(t, apis)] if isinstance(t, Native) else [])


def pipeline_env(t: Target) -> dict[str, str]:
    """What `dvc repro` needs to run against the stack from inside it (compose's `pipeline`
    service): the features DB as the owner, MLflow through nginx with its login."""
    (host, port), owner = t.addr("postgres"), t.value("postgres_user")
    db = (
        f"{owner}:{t.url_part('postgres_password')}@{host}:{port}/{t.value('postgres_features_db')}"
    )
    return {
        "DATABASE_URL": f"postgresql+psycopg2://{db}",
        "MLFLOW_TRACKING_URI": f"http://{t.nginx_host}:{t.nginx_port('mlflow')}",
        "MLFLOW_TRACKING_USERNAME": t.value("mlflow_tracking_username"),
        "MLFLOW_TRACKING_PASSWORD": t.value("mlflow_tracking_password"),
    }


def client_env(settings: StackSettings) -> dict[str, str]:
    """The settings that point `dvc repro`, the notebook and MLflow clients at the stack."""
    from flightdelay.stack.clients import pg_url

    return {
        "DATABASE_URL": pg_url(settings, settings.postgres_features_db),
        "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{settings.nginx_mlflow_port}",
        "MLFLOW_TRACKING_USERNAME": settings.mlflow_tracking_username,
        "MLFLOW_TRACKING_PASSWORD": settings.mlflow_tracking_password.get_secret_value(),
    }
