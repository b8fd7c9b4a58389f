"""Every file the stack's services need, rendered from StackSettings (never written by hand).

Pure functions: settings in, text out. :mod:`flightdelay.stack.manager` writes them under
STACK_DIR; docker-compose.yaml reads the same variables from .env.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from flightdelay.core.config import StackSettings
from flightdelay.core.errors import UserError


@dataclass(frozen=True)
class Layout:
    """Where each service keeps its state, config and logs under STACK_DIR."""

    root: Path
    tools: Path

    @classmethod
    def of(cls, settings: StackSettings) -> Layout:
        root = settings.stack_dir.resolve()
        return cls(root, (settings.stack_tools_dir or root / "tools").resolve())

    def __getattr__(self, name: str) -> Path:  # e.g. layout.pg, layout.nginx, layout.logs
        return self.root / name

    @property
    def pg_data(self) -> Path:
        return self.root / "pg" / "data"

    @property
    def supervisor_conf(self) -> Path:
        return self.root / "supervisord.conf"


def api_ports(settings: StackSettings) -> list[int]:
    """The API replicas' internal ports (API_REPLICA_PORTS, comma-separated)."""
    try:
        ports = [int(p) for p in settings.api_replica_ports.split(",") if p.strip()]
    except ValueError:
        ports = []
    if not ports or not all(0 < p < 65536 for p in ports):
        raise UserError(
            f"API_REPLICA_PORTS={settings.api_replica_ports!r}: expected ports like 8001,8002"
        )
    return ports


def seaweed_ports(settings: StackSettings) -> dict[str, int]:
    """Every SeaweedFS port, each set explicitly (its defaults collide and sit in /tmp)."""
    b = settings.seaweed_base_port
    names = [
        "master",
        "master_grpc",
        "volume",
        "volume_grpc",
        "filer",
        "filer_grpc",
        "s3_grpc",
        "admin",
        "admin_grpc",
    ]
    return {n: b + i for i, n in enumerate(names)}


def pg_url(settings: StackSettings, db: str, driver: str = "postgresql+psycopg2") -> str:
    """The SQLAlchemy URL of one stack database (as the owner role; the password URL-quoted)."""
    pw = quote(settings.postgres_password.get_secret_value(), safe="")
    return f"{driver}://{settings.postgres_user}:{pw}@127.0.0.1:{settings.postgres_port}/{db}"


def client_env(settings: StackSettings) -> dict[str, str]:
    """The settings that point `dvc repro`, the notebook and the API at the stack."""
    return {
        "DATABASE_URL": pg_url(settings, settings.postgres_features_db),
        "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{settings.nginx_mlflow_port}",
        "MLFLOW_TRACKING_USERNAME": settings.mlflow_tracking_username,
        "MLFLOW_TRACKING_PASSWORD": settings.mlflow_tracking_password.get_secret_value(),
    }


def s3_identities(settings: StackSettings) -> str:
    """SeaweedFS s3.json: one identity (without one, any signature is accepted)."""
    return json.dumps(
        {
            "identities": [
                {
                    "name": "admin",
                    "credentials": [
                        {
                            "accessKey": settings.aws_access_key_id,
                            "secretKey": settings.aws_secret_access_key.get_secret_value(),
                        }
                    ],
                    "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                }
            ]
        },
        indent=2,
    )


def htpasswd(user: str, password: str, salt: bytes | None = None) -> str:
    """An nginx auth_basic line with a salted SHA-1 ({SSHA}) hash."""
    salt = salt if salt is not None else os.urandom(8)
    digest = hashlib.sha1(password.encode() + salt).digest()
    return f"{user}:{{SSHA}}{base64.b64encode(digest + salt).decode()}\n"


def nginx_conf(settings: StackSettings, layout: Layout) -> str:
    """nginx in front of the API replicas (+TLS), MLflow (basic auth), pgAdmin and S3."""
    n = layout.nginx
    upstream = "\n".join(
        f"        server 127.0.0.1:{p} max_fails=1 fail_timeout=3s;" for p in api_ports(settings)
    )
    api_location = """
        location / {
            proxy_pass http://api;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_next_upstream error timeout http_502 http_503 non_idempotent;
            proxy_connect_timeout 2s;
        }"""
    temps = "\n".join(
        f"    {k}_temp_path {n}/tmp/{k};"
        for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""# Rendered by `flightdelay stack up` from .env: do not edit.
worker_processes 1;
pid {n}/nginx.pid;
error_log {n}/error.log warn;
events {{ worker_connections 1024; }}

http {{
    access_log off;
{temps}
    upstream api {{
{upstream}
        keepalive 32;
    }}

    # the API: both replicas, with failover
    server {{
        listen 127.0.0.1:{settings.nginx_http_port};
        client_max_body_size 64m;{api_location}
    }}
    server {{
        listen 127.0.0.1:{settings.nginx_https_port} ssl;
        ssl_certificate {n}/tls.crt;
        ssl_certificate_key {n}/tls.key;
        client_max_body_size 64m;{api_location}
    }}

    # MLflow: UI and REST, basic auth; artifacts are proxied by the server to S3
    server {{
        listen 127.0.0.1:{settings.nginx_mlflow_port};
        client_max_body_size 0;
        auth_basic "MLflow";
        auth_basic_user_file {n}/htpasswd;
        location / {{
            proxy_pass http://127.0.0.1:{settings.mlflow_port};
            proxy_set_header Host $http_host;
            proxy_read_timeout 300s;
            proxy_request_buffering off;
        }}
    }}

    # pgAdmin
    server {{
        listen 127.0.0.1:{settings.nginx_pgadmin_port};
        location / {{
            proxy_pass http://127.0.0.1:{settings.pgadmin_port};
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        }}
    }}

    # S3: only Host $http_host keeps SigV4 signatures valid
    server {{
        listen 127.0.0.1:{settings.nginx_s3_port};
        client_max_body_size 0;
        proxy_buffering off;
        proxy_request_buffering off;
        ignore_invalid_headers off;
        location / {{
            proxy_pass http://127.0.0.1:{settings.s3_port};
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
        }}
    }}
}}
"""


def pgadmin_config(settings: StackSettings, layout: Layout) -> str:
    """pgAdmin's config_distro.py: server mode, its own port and data folder."""
    d = layout.pgadmin
    return f"""# Rendered by `flightdelay stack up`: do not edit.
SERVER_MODE = True
DEFAULT_SERVER = '127.0.0.1'
DEFAULT_SERVER_PORT = {settings.pgadmin_port}
DATA_DIR = '{d}'
LOG_FILE = '{d}/pgadmin4.log'
SQLITE_PATH = '{d}/pgadmin4.db'
SESSION_DB_PATH = '{d}/sessions'
STORAGE_DIR = '{d}/storage'
AZURE_CREDENTIAL_CACHE_DIR = '{d}/azure'
KERBEROS_CCACHE_DIR = '{d}/krb'
UPGRADE_CHECK_ENABLED = False
MASTER_PASSWORD_REQUIRED = False
"""


def pgadmin_servers(
    settings: StackSettings, host: str = "127.0.0.1", port: int | None = None
) -> str:
    """servers.json: the feature DB and the MLflow DB, as the read-only role, via the passfile."""
    servers = {}
    for i, (label, db) in enumerate(
        (
            ("flightdelay features", settings.postgres_features_db),
            ("mlflow backend", settings.postgres_mlflow_db),
        ),
        start=1,
    ):
        servers[str(i)] = {
            "Name": label,
            "Group": "flightdelay",
            "Host": host,
            "Port": port or settings.postgres_port,
            "MaintenanceDB": db,
            "Username": settings.postgres_readonly_user,
            "SSLMode": "prefer",
            "PassFile": "/pgpass",
        }
    return json.dumps({"Servers": servers}, indent=2)


def pgpass(settings: StackSettings, host: str = "127.0.0.1", port: int | None = None) -> str:
    """The passfile pgAdmin reads (host:port:db:user:password)."""
    pw = settings.postgres_readonly_password.get_secret_value()
    pw = pw.replace("\\", "\\\\").replace(":", "\\:")  # the passfile's own escaping
    return f"{host}:{port or settings.postgres_port}:*:{settings.postgres_readonly_user}:{pw}\n"


def pgadmin_user_dir(settings: StackSettings, layout: Layout) -> Path:
    """pgAdmin's storage folder of the admin user (where "/pgpass" resolves)."""
    return layout.pgadmin / "storage" / settings.pgadmin_email.replace("@", "_")
