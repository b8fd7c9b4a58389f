"""Config files of the services, as text, from a :class:`~flightdelay.stack.targets.Target`.

Pure functions: the same function renders a file for both backends; only the target's addresses,
ports and paths differ.
"""

from __future__ import annotations

import json

from flightdelay.stack.targets import Target

# The API behind nginx. A replica that does not answer within 1.5 s (hung: SIGSTOP, a stuck
# loop) counts as failed (max_fails) and the request goes to the next one, so clients see at most
# ~2 s; /predict has no side effect, so even its POST is retried (non_idempotent); the swap routes
# (POST /model, /model/reload) never are, and get the time a model download takes.
_PROXY = """
            proxy_pass http://api;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_connect_timeout 1s;
            proxy_send_timeout 10s;"""
_FAILOVER = """
            proxy_read_timeout 1500ms;
            proxy_next_upstream_tries 2;
            proxy_next_upstream_timeout 4s;"""


def _api_locations(t: Target) -> str:
    return f"""
        client_header_timeout 10s;
        client_body_timeout 10s;
        send_timeout 10s;
        client_header_buffer_size 4k;
        large_client_header_buffers 4 16k;
        limit_conn api_conn 256;
        limit_conn_status 429;
        client_max_body_size 64k;
        location = /predict {{{_PROXY}{_FAILOVER}
            proxy_next_upstream error timeout http_502 http_503 non_idempotent;
            client_max_body_size {t.max_body_bytes()};
        }}
        location /model {{
            error_page 418 = @swap;
            if ($request_method = POST) {{ return 418; }}{_PROXY}{_FAILOVER}
            proxy_next_upstream error timeout http_502 http_503;
        }}
        location @swap {{{_PROXY}
            proxy_read_timeout 60s;
            proxy_next_upstream off;
        }}
        location / {{{_PROXY}{_FAILOVER}
            proxy_next_upstream error timeout http_502 http_503;
        }}"""


def _listen(t: Target, kind: str, ssl: bool = False) -> str:
    where = f"{t.bind()}:" if t.kind == "native" else ""
    return f"listen {where}{t.nginx_port(kind)}{' ssl' if ssl else ''};"


def _http(host: str, port: int) -> str:
    return f"http://{host}:{port}"


def _api_servers(t: Target) -> str:
    upstream = "\n".join(
        f"        server {t.api_host}:{port} max_fails=1 fail_timeout=3s;" for port in t.api_ports()
    )
    return f"""    upstream api {{
{upstream}
        keepalive 32;
    }}
    limit_conn_zone $binary_remote_addr zone=api_conn:1m;

    # the API: every replica, with failover
    server {{
        {_listen(t, "http")}{_api_locations(t)}
    }}
    server {{
        {_listen(t, "https", ssl=True)}
        ssl_certificate {t.path("nginx", "tls.crt")};
        ssl_certificate_key {t.path("nginx", "tls.key")};{_api_locations(t)}
    }}
"""


def _tool_servers(t: Target) -> str:
    return f"""
    # MLflow: UI and REST; its basic-auth app checks the credentials (nginx passes the
    # Authorization header through); artifacts are proxied by the server to S3
    server {{
        {_listen(t, "mlflow")}
        client_max_body_size 0;
        location / {{
            proxy_pass {_http(*t.addr("mlflow"))};
            proxy_set_header Host $http_host;
            proxy_read_timeout 300s;
            proxy_request_buffering off;
        }}
        # Prometheus's UI and API (served under /prometheus/), with the same login
        location /prometheus/ {{
            auth_basic "Prometheus";
            auth_basic_user_file {t.path("nginx", "htpasswd")};
            proxy_pass {_http(*t.addr("prometheus"))};
            proxy_set_header Host $http_host;
            proxy_set_header Authorization "";
        }}
    }}

    # pgAdmin
    server {{
        {_listen(t, "pgadmin")}
        location / {{
            proxy_pass {_http(*t.addr("pgadmin"))};
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        }}
    }}

    # S3: only Host $http_host keeps SigV4 signatures valid
    server {{
        {_listen(t, "s3")}
        client_max_body_size 0;
        proxy_buffering off;
        proxy_request_buffering off;
        ignore_invalid_headers off;
        location / {{
            proxy_pass {_http(*t.addr("s3"))};
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
        }}
    }}
"""


def _postgres_stream(t: Target) -> str:
    """Compose only: PostgreSQL over TCP, so nginx is the one container publishing ports."""
    if t.kind == "native":
        return ""
    host, port = t.addr("postgres")
    return f"""
# PostgreSQL through nginx (TCP): the host reaches it on POSTGRES_PORT, as natively
stream {{
    server {{
        {_listen(t, "postgres")}
        proxy_pass {host}:{port};
        proxy_connect_timeout 5s;
    }}
}}
"""


def nginx_conf(t: Target) -> str:
    """nginx in front of the API replicas (+TLS), MLflow (basic auth), pgAdmin and S3."""
    temps = "\n".join(
        f"    {k}_temp_path {t.path('nginx', 'tmp/' + k)};"
        for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    user = f"user {t.nginx_user};\n" if t.nginx_user else ""
    return f"""# Rendered by flightdelay.stack (spec -> {t.kind}): do not edit.
{user}worker_processes 1;
pid {t.path("nginx", "nginx.pid")};
error_log {t.path("nginx", "error.log")} warn;
events {{ worker_connections 1024; }}

http {{
    access_log off;
{temps}
{_api_servers(t)}{_tool_servers(t)}}}
{_postgres_stream(t)}"""


def s3_identities(access_key: str, secret_key: str) -> str:
    """SeaweedFS s3.json: one identity (without one, any signature is accepted)."""
    identity = {
        "name": "admin",
        "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
    }
    return json.dumps({"identities": [identity]}, indent=2) + "\n"


def seaweed_security(secret: str) -> str:
    """SeaweedFS security.toml: signing keys (derived from the S3 secret, so they stay the same
    across restarts) that make the volume and filer HTTP ports refuse requests without a JWT; the
    S3 gateway signs its own."""
    import hashlib
    import hmac

    sections = ("jwt.signing", "jwt.signing.read", "jwt.filer_signing", "jwt.filer_signing.read")
    out = ["# Rendered by flightdelay.stack (spec -> native): do not edit."]
    for name in sections:
        key = hmac.new(secret.encode(), name.encode(), hashlib.sha256).hexdigest()
        out += [f"[{name}]", f'key = "{key}"', "expires_after_seconds = 10", ""]
    return "\n".join(out)


# MLflow's basic-auth app. `default_permission = READ`: a user an admin adds later sees every
# experiment and model but changes only what it creates or is granted (MLflow gives creators
# MANAGE); the stack's one user, MLFLOW_TRACKING_USERNAME, is an admin and may do everything.
MLFLOW_DEFAULT_PERMISSION = "READ"


def mlflow_auth_ini() -> str:
    """MLflow's basic_auth.ini (the same in both backends, no secret in it): the auth database
    is Postgres, reached through libpq's PGHOST/PGPORT/PGUSER/PGPASSWORD/PGDATABASE; the admin
    comes from MLFLOW_AUTH_ADMIN_USERNAME/PASSWORD."""
    return (
        "# Rendered by flightdelay.stack from the stack spec: do not edit.\n"
        "[mlflow]\n"
        f"default_permission = {MLFLOW_DEFAULT_PERMISSION}\n"
        "database_uri = postgresql+psycopg2://\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        "grant_default_workspace_access = false\n"
    )


# pgAdmin's own settings, the same in both backends (natively in config_distro.py, in compose
# as the image's PGADMIN_CONFIG_<NAME> variables)
PGADMIN_CONFIG = {
    "SERVER_MODE": "True",
    "MASTER_PASSWORD_REQUIRED": "False",
    "UPGRADE_CHECK_ENABLED": "False",
}


def pgadmin_config_distro(t: Target) -> str:
    """Native pgAdmin's config_distro.py: its port, data folder, and PGADMIN_CONFIG."""
    d = t.path("pgadmin", "")
    lines = [
        "# Rendered by flightdelay.stack (spec -> native): do not edit.",
        f"DEFAULT_SERVER = {t.bind()!r}",
        f"DEFAULT_SERVER_PORT = {t.addr('pgadmin')[1]}",
        f"DATA_DIR = {d!r}",
        *(
            f"{key} = {d + '/' + sub!r}"
            for key, sub in (
                ("LOG_FILE", "pgadmin4.log"),
                ("SQLITE_PATH", "pgadmin4.db"),
                ("SESSION_DB_PATH", "sessions"),
                ("STORAGE_DIR", "storage"),
                ("AZURE_CREDENTIAL_CACHE_DIR", "azure"),
                ("KERBEROS_CCACHE_DIR", "krb"),
            )
        ),
        *(f"{key} = {value}" for key, value in PGADMIN_CONFIG.items()),
    ]
    return "\n".join(lines) + "\n"


# The self-signed certificate nginx serves TLS with (both backends)
TLS_DAYS = 825
TLS_NAMES = ("localhost", "127.0.0.1")
