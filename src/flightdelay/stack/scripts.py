"""The start-up scripts of the compose containers, rendered from the same lists the native stack
runs (:mod:`flightdelay.stack.bootstrap`). They read every setting from the container's
environment at start, so the committed files hold no value of .env."""

from __future__ import annotations

import re

from flightdelay.stack import bootstrap
from flightdelay.stack.render import PGADMIN_CONFIG, TLS_DAYS, TLS_NAMES
from flightdelay.stack.targets import Target

POSTGRES_INIT = "/docker-entrypoint-initdb.d/10-flightdelay.sh"
PGADMIN_ENTRYPOINT = "/flightdelay-entrypoint.sh"
NGINX_CONF = "/etc/nginx/nginx.conf"
NGINX_SECRETS = "/docker-entrypoint.d/40-secrets.sh"
PROMETHEUS_ENTRYPOINT = "/flightdelay-prometheus.sh"
_HEAD = (
    "#!/bin/sh\n# Rendered by `flightdelay stack compose` from flightdelay.stack: do not edit.\n"
)


def _psql_template(template: str) -> str:
    """A bootstrap statement with psql variables, which psql quotes itself."""
    out = re.sub(r"\{(\w+)\}", lambda m: f':"{m.group(1)}"', template)
    for slot in bootstrap.LITERALS:
        out = out.replace(f':"{slot}"', f":'{slot}'")
    return out + ";"


def _psql(db: str, lines: list[str]) -> str:
    """One psql call on database `db` (a shell word): every slot read from the environment
    first, then `lines` (bootstrap templates, or psql meta-commands starting with a backslash)."""
    getenv = [f"\\getenv {k} {f.upper()}" for k, f in bootstrap.IDENTIFIERS.items()]
    getenv += [f"\\getenv {k} {f.upper()}" for k, f in bootstrap.LITERALS.items()]
    body = [ln if ln.startswith("\\") else _psql_template(ln) for ln in lines]
    cmd = f'psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "{db}"'
    return f"{cmd} <<'SQL'\n" + "\n".join([*getenv, *body]) + "\nSQL\n"


def postgres_init() -> str:
    """First start of the postgres container: bootstrap's databases, role and grants."""
    create = []
    for field in bootstrap.DATABASES:
        create += [f"\\getenv db {field.upper()}", bootstrap.CREATE_DATABASE]
    no_temp = []
    for field in bootstrap.DATABASES:
        no_temp += [f"\\getenv db {field.upper()}", *bootstrap.NO_TEMP]
    for name in bootstrap.CLUSTER_DATABASES:
        no_temp += [f"\\set db {name}", *bootstrap.NO_TEMP]
    blocks = [_psql("postgres", [*create, bootstrap.CREATE_ROLE, *no_temp])]
    for field in bootstrap.DATABASES:
        grants = [f"\\getenv db {field.upper()}", *bootstrap.GRANTS[field]]
        blocks.append(_psql(f"${field.upper()}", grants))
    note = "# The databases, the read-only role and its grants (the list the native stack runs).\n"
    return _HEAD + note + "set -eu\n" + "".join(blocks)


def postgres_env(t: Target) -> dict[str, str]:
    """The postgres container's environment: the image's owner, and what the init script reads."""
    fields = ["postgres_user", "postgres_password", *bootstrap.IDENTIFIERS.values()]
    fields += [*bootstrap.LITERALS.values(), *bootstrap.DATABASES]
    return {f.upper(): t.value(f) for f in dict.fromkeys(fields)}


def pgadmin_entrypoint(t: Target, servers: str, passfile: str) -> str:
    """pgAdmin container start: servers.json and the read-only role's passfile, so pgAdmin opens
    already connected; then the image's own entrypoint."""
    data = t.path("pgadmin", "")
    escaped = re.sub(r"\$\{(\w+)\}", r'$(esc "${\1}")', passfile)  # the passfile's escaping
    return (
        _HEAD
        + "set -eu\n"
        + "esc() { printf '%s' \"$1\" | sed 's/[\\\\:]/\\\\&/g'; }\n"
        + f"storage=\"{data}/storage/$(printf '%s' \"$PGADMIN_DEFAULT_EMAIL\" | tr '@' '_')\"\n"
        + 'mkdir -p "$storage"\numask 077\n'
        + f'cat > "$storage/pgpass" <<EOF\n{escaped}EOF\n'
        + f"cat > {data}/servers.json <<EOF\n{servers}EOF\n"
        + f"export PGADMIN_SERVER_JSON_FILE={data}/servers.json\n"
        + 'exec /entrypoint.sh "$@"\n'
    )


def pgadmin_env(t: Target) -> dict[str, str]:
    """The pgAdmin image's variables: its admin user and PGADMIN_CONFIG (as natively)."""
    env = {
        "PGADMIN_DEFAULT_EMAIL": t.value("pgadmin_email"),
        "PGADMIN_DEFAULT_PASSWORD": t.value("pgadmin_password"),
    }
    return env | {f"PGADMIN_CONFIG_{k}": v for k, v in PGADMIN_CONFIG.items()}


def nginx_secrets(t: Target) -> str:
    """nginx container start: MLflow's htpasswd in SHA-512 crypt (the native scheme) and a
    self-signed TLS certificate for TLS_NAMES (once)."""
    htpasswd, crt, key = (t.path("nginx", n) for n in ("htpasswd", "tls.crt", "tls.key"))
    san = ",".join(("IP:" if n[0].isdigit() else "DNS:") + n for n in TLS_NAMES)
    return (
        _HEAD
        + "set -eu\n"
        + f"mkdir -p {htpasswd.rsplit('/', 1)[0]}\n"
        + f'hash="$(printf \'%s\' "{t.value("mlflow_tracking_password")}"'
        + ' | openssl passwd -6 -stdin)"\n'
        + f'printf \'%s:%s\\n\' "{t.value("mlflow_tracking_username")}" "$hash"'
        + f" > {htpasswd}.tmp\n"
        + (
            f"chown root:{t.nginx_user} {htpasswd}.tmp && chmod 640"
            if t.nginx_user
            else "chmod 600"
        )
        + f" {htpasswd}.tmp\n"
        + f"mv {htpasswd}.tmp {htpasswd}\n"
        + f"if [ ! -f {crt} ]; then\n"
        + f"  openssl req -x509 -newkey rsa:2048 -nodes -days {TLS_DAYS} -subj /CN={TLS_NAMES[0]}"
        + f' -addext "subjectAltName={san}" \\\n'
        + f"    -keyout {key} -out {crt} 2>/dev/null\n"
        + f"  chmod 600 {key}\nfi\n"
    )
