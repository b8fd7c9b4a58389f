"""What the stack sets up inside its running services: the databases, the read-only role and its
grants, the buckets, pgAdmin's servers and passfile, the DVC remote.

Each is ONE list here. The native backend executes it (:func:`ensure_databases`, ...); the compose
backend renders the same list into the containers' init scripts
(:mod:`flightdelay.stack.backends.compose_files`).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
from pathlib import Path
from typing import Any

from flightdelay.core.config import StackSettings
from flightdelay.core.errors import UserError
from flightdelay.stack.clients import pg_connect, s3_client
from flightdelay.stack.layout import Layout
from flightdelay.stack.targets import Target

log = logging.getLogger(__name__)

# Statement templates: {owner}, {reader}, {db} are identifiers, {reader_password} a literal.
IDENTIFIERS = {"owner": "postgres_user", "reader": "postgres_readonly_user"}
LITERALS = {"reader_password": "postgres_readonly_password"}
DATABASES = ("postgres_mlflow_db", "postgres_features_db", "postgres_mlflow_auth_db")
CREATE_DATABASE = "CREATE DATABASE {db}"
CREATE_ROLE = "CREATE ROLE {reader} LOGIN PASSWORD {reader_password}"
ALTER_ROLE = "ALTER ROLE {reader} LOGIN PASSWORD {reader_password}"
# run in the features database: the read-only role reads what is there and what comes later
READER_GRANTS = (
    "GRANT CONNECT ON DATABASE {db} TO {reader}",
    "GRANT USAGE ON SCHEMA public TO {reader}",
    "GRANT SELECT ON ALL TABLES IN SCHEMA public TO {reader}",
    "ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA public GRANT SELECT ON TABLES TO {reader}",
)
# run in MLflow's database: pgAdmin's "mlflow backend" entry connects and shows the schema, but
# the role reads no row (MLflow keeps secrets, webhooks and gateway keys there; the UI shows runs)
MLFLOW_READER_GRANTS = (
    "GRANT CONNECT ON DATABASE {db} TO {reader}",
    "GRANT USAGE ON SCHEMA public TO {reader}",
    "REVOKE SELECT ON ALL TABLES IN SCHEMA public FROM {reader}",
    "ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA public"
    " REVOKE SELECT ON TABLES FROM {reader}",
)
# run in MLflow's auth database (its users' password hashes and permissions): only the owner
# connects; the read-only role, like every other role, cannot even open it
AUTH_READER_GRANTS = (
    "REVOKE ALL ON DATABASE {db} FROM PUBLIC",
    "REVOKE ALL ON DATABASE {db} FROM {reader}",
)
GRANTS = {
    "postgres_features_db": READER_GRANTS,
    "postgres_mlflow_db": MLFLOW_READER_GRANTS,
    "postgres_mlflow_auth_db": AUTH_READER_GRANTS,
}
# run for every database (ours and the cluster's own): no temporary tables but the owner's
NO_TEMP = (
    "REVOKE TEMPORARY ON DATABASE {db} FROM PUBLIC",
    "REVOKE TEMPORARY ON DATABASE {db} FROM {reader}",
)
CLUSTER_DATABASES = ("postgres", "template1")
BUCKETS = ("s3_bucket_mlflow", "s3_bucket_dvc")
# pgAdmin's pre-registered servers: (name, the setting naming its maintenance DB)
PGADMIN_SERVERS = (
    ("flightdelay features", "postgres_features_db"),
    ("mlflow backend", "postgres_mlflow_db"),
)


def pgadmin_servers(t: Target) -> str:
    """servers.json: every PGADMIN_SERVERS entry, as the read-only role, through the passfile."""
    host, port = t.addr("postgres")
    servers = {
        str(i): {
            "Name": name,
            "Group": "flightdelay",
            "Host": host,
            "Port": port,
            "MaintenanceDB": t.value(db),
            "Username": t.value("postgres_readonly_user"),
            "SSLMode": "prefer",
            "PassFile": "/pgpass",
        }
        for i, (name, db) in enumerate(PGADMIN_SERVERS, start=1)
    }
    return json.dumps({"Servers": servers}, indent=2) + "\n"


def _pgpass_field(value: str) -> str:
    return value.replace("\\", "\\\\").replace(":", "\\:")  # the passfile's own escaping


def pgpass(t: Target) -> str:
    """The passfile pgAdmin reads (host:port:db:user:password)."""
    host, port = t.addr("postgres")
    user = _pgpass_field(t.value("postgres_readonly_user"))
    return f"{host}:{port}:*:{user}:{_pgpass_field(t.value('postgres_readonly_password'))}\n"


def pgadmin_storage(email: str) -> str:
    """pgAdmin's storage folder name of a user (where its "/pgpass" resolves)."""
    return email.replace("@", "_")


# --------------------------------------------------------------------------------------------
# native: run the lists
# --------------------------------------------------------------------------------------------


def _statement(template: str, settings: StackSettings, db: str | None = None) -> Any:
    from psycopg2 import sql

    def value(field: str) -> str:
        v = getattr(settings, field)
        return str(v.get_secret_value() if hasattr(v, "get_secret_value") else v)

    slots: dict[str, Any] = {k: sql.Identifier(value(f)) for k, f in IDENTIFIERS.items()}
    slots |= {k: sql.Literal(value(f)) for k, f in LITERALS.items()}
    if db is not None:
        slots["db"] = sql.Identifier(db)
    return sql.SQL(template).format(**slots)


def ensure_databases(settings: StackSettings) -> None:
    """Create the databases and the read-only role when missing; grant in each database."""
    dbs = [str(getattr(settings, f)) for f in DATABASES]
    conn = pg_connect(settings, "postgres")
    with conn.cursor() as cur:
        for db in dbs:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (db,))
            if cur.fetchone() is None:
                cur.execute(_statement(CREATE_DATABASE, settings, db))
        cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (settings.postgres_readonly_user,))
        cur.execute(_statement(ALTER_ROLE if cur.fetchone() else CREATE_ROLE, settings))
        for db in (*dbs, *CLUSTER_DATABASES):
            for statement in NO_TEMP:
                cur.execute(_statement(statement, settings, db))
    conn.close()
    for field in DATABASES:
        db = str(getattr(settings, field))
        conn = pg_connect(settings, db)
        with conn.cursor() as cur:
            for grant in GRANTS[field]:
                cur.execute(_statement(grant, settings, db))
        conn.close()


def ensure_mlflow_admin(settings: StackSettings) -> bool:
    """Keep MLflow's admin (MLFLOW_TRACKING_USERNAME) on the password in .env: MLflow creates it
    on its first start and later ignores the configured password, so a changed
    MLFLOW_TRACKING_PASSWORD is written here (as MLflow hashes it, werkzeug's scrypt/pbkdf2) into
    its auth database. Returns True when it changed a password or admin flag."""
    from werkzeug.security import check_password_hash, generate_password_hash

    user = settings.mlflow_tracking_username
    password = settings.mlflow_tracking_password.get_secret_value()
    conn = pg_connect(settings, settings.postgres_mlflow_auth_db)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT to_regclass('public.users') IS NOT NULL")
            if not cur.fetchone()[0]:
                return False  # first start: MLflow creates the admin from its environment
            cur.execute("SELECT password_hash, is_admin FROM users WHERE username = %s", (user,))
            row = cur.fetchone()
            if row is None or (row[1] and check_password_hash(row[0], password)):
                return False  # a new admin name: MLflow creates it
            cur.execute(
                "UPDATE users SET password_hash = %s, is_admin = true WHERE username = %s",
                (generate_password_hash(password), user),
            )
            log.info("MLflow admin %s: password or admin flag updated from .env", user)
            return True
    finally:
        conn.close()


def ensure_postgres(settings: StackSettings) -> None:
    """Everything the stack sets up in Postgres: databases, roles, grants, MLflow's admin."""
    ensure_databases(settings)
    ensure_mlflow_admin(settings)


def ensure_buckets(settings: StackSettings) -> None:
    """Create every bucket of BUCKETS when missing (directly on the S3 server)."""
    client = s3_client(settings, endpoint=f"http://127.0.0.1:{settings.s3_port}")
    existing = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
    for bucket in (str(getattr(settings, f)) for f in BUCKETS):
        if bucket not in existing:
            client.create_bucket(Bucket=bucket)


def ensure_pgadmin(settings: StackSettings, layout: Layout) -> None:
    """pgAdmin's admin user and the servers of servers.json (once; its passfile is a spec file)."""
    marker = layout.dir("pgadmin") / ".servers-loaded"
    if marker.exists():
        return
    cli = layout.tools / "pgadmin" / "bin" / "pgadmin4-cli"
    env = dict(
        os.environ,
        CONFIG_DISTRO_FILE_PATH=str(layout.dir("pgadmin") / "config_distro.py"),
        PGADMIN_SETUP_EMAIL=settings.pgadmin_email,
        PGADMIN_SETUP_PASSWORD=settings.pgadmin_password.get_secret_value(),
    )
    servers = str(layout.dir("pgadmin") / "servers.json")
    for args in (["setup-db"], ["load-servers", servers, "--user", settings.pgadmin_email]):
        proc = subprocess.run([str(cli), *args], env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            out = (proc.stdout + proc.stderr).strip()[-300:]
            raise UserError(f"pgadmin4-cli {args[0]} failed: {out}")
    marker.write_text("ok\n")


def dvc_remote(settings: StackSettings) -> tuple[str, list[tuple[str, str]]]:
    """The DVC remote `stack`: its URL and options (the bucket S3_BUCKET_DVC through nginx)."""
    return f"s3://{settings.s3_bucket_dvc}/flightdelay", [
        ("endpointurl", f"http://127.0.0.1:{settings.nginx_s3_port}"),
        ("region", "us-east-1"),
        ("access_key_id", settings.aws_access_key_id),
        ("secret_access_key", settings.aws_secret_access_key.get_secret_value()),
    ]


def configure_dvc_remote(settings: StackSettings) -> bool:
    """Make `stack` DVC's default remote, entirely in the git-ignored .dvc/config.local
    (credentials included: written through DVC's config API, so no key is on a command line,
    into a file that is 0600 before it holds one). Returns False outside a DVC repo."""
    dvc_dir = Path(".dvc")
    if not dvc_dir.is_dir():
        return False
    from dvc.config import Config, ConfigError

    local = dvc_dir / "config.local"
    local.touch(mode=0o600)
    local.chmod(0o600)
    url, options = dvc_remote(settings)
    try:
        with Config(dvc_dir=str(dvc_dir)).edit("local") as conf:
            conf["core"]["remote"] = "stack"
            conf["remote"]["stack"] = {"url": url, **dict(options)}
    except ConfigError as exc:
        raise UserError(f"could not set the DVC remote in {local}: {exc}") from None
    return True
