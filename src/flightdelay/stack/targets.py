"""What differs between the two backends, and nothing else: how a setting is written (its value
natively, a `${VAR}` reference in compose), where each service listens and is reached, and the
paths and binaries a service sees. :mod:`flightdelay.stack.spec` writes every service once
against this interface."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from urllib.parse import quote

from pydantic import SecretStr

from flightdelay.core.config import StackSettings
from flightdelay.core.errors import UserError
from flightdelay.stack.layout import Layout, Tools

# nginx's public ports, by what they serve, and the setting naming each one
NGINX_KINDS = ("http", "https", "mlflow", "pgadmin", "s3")
# services behind nginx, and the setting holding the native port of each
INTERNAL_PORTS = {
    "postgres": "postgres_port",
    "s3": "s3_port",
    "mlflow": "mlflow_port",
    "pgadmin": "pgadmin_port",
    "prometheus": "prometheus_port",
}
# container ports in compose (the images' usual ones)
# The service's uvicorn protocol class (serving/protocol.py: head size limit, head and body
# deadlines): every launcher passes it with `--http`.
API_HTTP_PROTOCOL = "flightdelay.serving.protocol:LimitedHttpToolsProtocol"
COMPOSE_PORTS = {
    "postgres": 5432,
    "s3": 9000,
    "mlflow": 5000,
    "pgadmin": 80,
    "api": 8000,
    "prometheus": 9090,
}
COMPOSE_NGINX_PORTS = {
    "http": 8080,
    "https": 8443,
    "mlflow": 5080,
    "pgadmin": 5050,
    "s3": 9000,
    "postgres": 5432,
}
COMPOSE_NGINX_FILES = {
    "tls.crt": "/etc/nginx/secrets/tls.crt",
    "tls.key": "/etc/nginx/secrets/tls.key",
    "htpasswd": "/etc/nginx/secrets/htpasswd",
    "nginx.pid": "/tmp/nginx.pid",  # nginx runs as its own user (a non-root image)
    "error.log": "/var/log/nginx/error.log",
}


def port_setting(kind: str) -> str:
    """The setting (environment variable) of one of nginx's public ports."""
    return "POSTGRES_PORT" if kind == "postgres" else f"NGINX_{kind.upper()}_PORT"


def parse_ports(raw: str) -> list[int]:
    """API_REPLICA_PORTS (comma-separated) as ports; UserError when it is not."""
    try:
        ports = [int(p) for p in raw.split(",") if p.strip()]
    except ValueError:
        ports = []
    if not ports or not all(0 < p < 65536 for p in ports):
        raise UserError(f"API_REPLICA_PORTS={raw!r}: expected ports like 8001,8002")
    return ports


class Target(ABC):
    """One backend's view of the settings and the network."""

    kind: str
    s3_kind: str
    nginx_host: str  # how services reach nginx
    api_host: str  # the host of every API replica
    nginx_user: str | None  # the user nginx's workers run as

    @abstractmethod
    def value(self, field: str) -> str:
        """A setting as it goes into an environment, command or file."""

    @abstractmethod
    def url_part(self, field: str) -> str:
        """A setting as it goes into a URL."""

    @abstractmethod
    def addr(self, service: str) -> tuple[str, int]:
        """Where other services reach `service`."""

    @abstractmethod
    def bind(self) -> str:
        """The address servers listen on."""

    @abstractmethod
    def nginx_port(self, kind: str) -> int:
        """The port nginx listens on for `kind` (see NGINX_KINDS; "postgres" in compose)."""

    @abstractmethod
    def api_ports(self) -> list[int]:
        """The port each API replica listens on (one entry per replica process)."""

    def replicas(self) -> int:
        """How many copies of each API service run (natively each replica is its own service)."""
        return 1

    def max_body_bytes(self) -> int:
        """The largest /predict body nginx lets through (API_MAX_BODY_BYTES; compose's static
        nginx.conf: the default)."""
        return int(StackSettings.model_fields["api_max_body_bytes"].default)

    @abstractmethod
    def exe(self, name: str) -> str:
        """The command that runs a program."""

    @abstractmethod
    def path(self, service: str, name: str) -> str:
        """A file or folder of `service` as the service sees it."""


class Native(Target):
    """Local processes on 127.0.0.1, state under STACK_DIR, real values."""

    kind = "native"
    nginx_host = "127.0.0.1"
    api_host = "127.0.0.1"
    nginx_user = None

    def __init__(
        self, settings: StackSettings, layout: Layout, tools: Tools, as_root: bool = False
    ) -> None:
        self.settings, self.layout, self.tools = settings, layout, tools
        self.s3_kind = tools.s3_kind
        self.as_root = as_root  # then Postgres runs as the `postgres` user

    def value(self, field: str) -> str:
        v = getattr(self.settings, field)
        return v.get_secret_value() if isinstance(v, SecretStr) else str(v)

    def url_part(self, field: str) -> str:
        return quote(self.value(field), safe="")

    def addr(self, service: str) -> tuple[str, int]:
        return "127.0.0.1", int(getattr(self.settings, INTERNAL_PORTS[service]))

    def bind(self) -> str:
        return "127.0.0.1"

    def nginx_port(self, kind: str) -> int:
        return int(getattr(self.settings, port_setting(kind).lower()))

    def api_ports(self) -> list[int]:
        return parse_ports(self.settings.api_replica_ports)

    def max_body_bytes(self) -> int:
        return self.settings.api_max_body_bytes

    def exe(self, name: str) -> str:
        found: dict[str, Path] = {
            "nginx": self.tools.nginx,
            "pgadmin4": self.tools.pgadmin,
            "prometheus": self.tools.prometheus,
            self.tools.s3_kind: self.tools.s3,
        }
        return str(found.get(name, self.tools.venv_bin / name))

    def path(self, service: str, name: str) -> str:
        return str(self.layout.dir(service) / name)


class Compose(Target):
    """Containers that reach each other by service name on the images' usual ports; every
    setting is a `${VAR}` reference that compose (or the container's shell) fills from .env."""

    kind = "compose"
    s3_kind = "minio"
    nginx_host = "nginx"
    api_host = "api"
    nginx_user = None  # the image runs nginx as its `nginx` user: no `user` directive

    def value(self, field: str) -> str:
        return "${" + field.upper() + "}"

    def url_part(self, field: str) -> str:
        return self.value(field)  # compose cannot URL-quote: such a value must be URL-safe

    def addr(self, service: str) -> tuple[str, int]:
        return service, COMPOSE_PORTS[service]

    def bind(self) -> str:
        return "0.0.0.0"

    def nginx_port(self, kind: str) -> int:
        return COMPOSE_NGINX_PORTS[kind]

    def api_ports(self) -> list[int]:
        return [COMPOSE_PORTS["api"]]  # one service; compose runs its replicas

    def replicas(self) -> int:
        """How many API replicas: as many as the native stack runs by default."""
        default = StackSettings.model_fields["api_replica_ports"].default
        return len(parse_ports(str(default)))

    def exe(self, name: str) -> str:
        return name

    def path(self, service: str, name: str) -> str:
        if service == "nginx" and name in COMPOSE_NGINX_FILES:
            return COMPOSE_NGINX_FILES[name]
        if service == "nginx" and name.startswith("tmp/"):
            return f"/var/cache/nginx/{name[4:]}_temp"
        if service == "mlflow" and name == "metrics":
            return "/tmp/mlflow-metrics"  # the container's own
        roots = {"s3": "/data", "pgadmin": "/var/lib/pgadmin", "mlflow": "/etc/mlflow"}
        return roots[service] + f"/{name}".rstrip("/")
