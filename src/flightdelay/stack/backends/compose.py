"""The compose backend: docker-compose.yaml and the files under Docker/ that its containers
mount, rendered from the spec (`flightdelay stack compose`), and `--check` for drift.

Compose reaches every service by name on the images' usual ports, and every setting stays a
`${VAR}` reference that compose fills from .env (refusing to start when one is missing), so the
committed files hold no value of .env. The Dockerfiles are rendered too
(:mod:`flightdelay.stack.dockerfiles`: every image non-root), and so are deploy/prometheus's two
configs.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from flightdelay.core.config import StackSettings
from flightdelay.stack import bootstrap, dockerfiles, spec
from flightdelay.stack.targets import Compose, Native

COMPOSE_FILE = "docker-compose.yaml"
DOCKER_DIR = "Docker"
MINIO = "quay.io/minio/minio:RELEASE.2025-04-22T22-12-26Z"
MC = "quay.io/minio/mc:RELEASE.2025-04-16T18-13-26Z"
# the 2.x LTS line: the config and rule syntax of Debian's 2.42, which the native stack runs
PROMETHEUS = "prom/prometheus:v2.53.4"
PROMETHEUS_CONFIGS = {"native": "prometheus.yml", "compose": "prometheus.compose.yml"}


def _build(name: str) -> dict[str, Any]:
    return {"build": {"context": ".", "dockerfile": f"{DOCKER_DIR}/{name}.Dockerfile"}}


# how each spec service runs in compose: the image, its volumes, how the spec's command is used
# ("command", "entrypoint", or None: the image's own start), the health probe and its timing
IMAGES: dict[str, dict[str, Any]] = {
    "postgres": {"image": "postgres:15", "volumes": ["pgdata:/var/lib/postgresql/data"]},
    "s3": {"image": MINIO, "volumes": ["s3data:/data"], "run": "command"},
    "mlflow": _build("mlflow") | {"run": "command"},
    "pgadmin": {"image": "dpage/pgadmin4:9.18", "volumes": ["pgadmin:/var/lib/pgadmin"]},
    "api": _build("api") | {"run": "command"},
    "nginx": _build("nginx") | {"volumes": ["nginx-secrets:/etc/nginx/secrets"]},
    "prometheus": {
        "image": PROMETHEUS,
        "volumes": ["./deploy/prometheus:/etc/prometheus:ro", "promdata:/prometheus"],
        "run": "entrypoint",
    },
}
IMAGES["pgadmin"]["run"] = "entrypoint"
PROBES = {"postgres": "pg", "s3": "mc", "mlflow": "py", "pgadmin": "wget", "api": "py"}
TIMING = {"postgres": ("5s", 20), "s3": ("5s", 20), "mlflow": ("5s", 30)}
# one-shot jobs compose needs before a service (natively the manager does these in-process)
JOB_OF = {"mlflow": "createbuckets", "pgadmin": "pgadmin-volume"}
HEADER = """\
# Rendered by `flightdelay stack compose` from the stack spec (src/flightdelay/stack/spec.py):
# do not edit; `flightdelay stack compose --check` fails when this file drifts from the spec.
# The same services, ports and settings as the native stack (`make stack-up`); every value comes
# from .env (see .env.example). Only nginx publishes ports, all on 127.0.0.1 (PostgreSQL too,
# proxied over TCP).
"""


def _compose_str(value: str) -> str:
    """A string for docker-compose.yaml: `${VAR}` becomes a required interpolation, every other
    `$` stays literal for the container (`$$`)."""
    value = value.replace("$", "$$")
    return re.sub(r"\$\$\{([A-Z0-9_]+)\}", r"${\1:?set \1 in .env}", value)


# a GET signed with the admin credentials in the container's environment (no `$`: compose
# leaves the test alone, and no secret is on the command line)
_SIGNED = (
    "import base64, os, urllib.request as u; e = os.environ; "
    "t = base64.b64encode((e['MLFLOW_AUTH_ADMIN_USERNAME'] + ':' + "
    "e['MLFLOW_AUTH_ADMIN_PASSWORD']).encode()).decode(); "
    "u.urlopen(u.Request('{url}', headers={{'Authorization': 'Basic ' + t}}))"
)


def _healthcheck(s: spec.Service) -> dict[str, Any]:
    probe, (interval, retries) = PROBES.get(s.name, "wget"), TIMING.get(s.name, ("10s", 10))
    url = f"http://127.0.0.1:{s.health.port}{s.health.path}"
    py = f"import urllib.request as u; u.urlopen('{url}')"
    py = _SIGNED.format(url=url) if s.health.auth else py
    test: list[str] = {
        "pg": ["CMD-SHELL", "pg_isready -U $${POSTGRES_USER} -d $${POSTGRES_FEATURES_DB}"],
        "mc": ["CMD", "mc", "ready", "local"],
        "py": ["CMD", "python", "-c", py],
        "wget": ["CMD", "wget", "-q", "-O", "/dev/null", url],
    }[probe]
    return {"test": test, "interval": interval, "timeout": "3s", "retries": retries}


def _env(s: spec.Service) -> dict[str, str]:
    """The service's environment plus every setting its mounted scripts read."""
    env = {k: _compose_str(v) for k, v in s.env.items()}
    known = {f.upper() for f in StackSettings.model_fields}
    for f in s.files:
        for var in re.findall(r"\$\{([A-Z0-9_]+)\}", f.content):
            if var in known:
                env.setdefault(var, _compose_str("${" + var + "}"))
    return env


def _mount(s: spec.Service, f: spec.File) -> tuple[str, str]:
    """(path in the repo, volume entry) of one mounted file."""
    rel = f"{DOCKER_DIR}/{s.name}/{f.path.rsplit('/', 1)[1]}"
    return rel, f"./{rel}:{f.path}:ro"


def _service(s: spec.Service) -> dict[str, Any]:
    how = dict(IMAGES[s.name])
    run = how.pop("run", None)
    out: dict[str, Any] = {k: how[k] for k in ("image", "build") if k in how}
    if run:
        out[run] = [_compose_str(c) for c in s.command]
    if s.replicas > 1:
        out["deploy"] = {"replicas": s.replicas}
    if env := _env(s):
        out["environment"] = env
    volumes = how.get("volumes", []) + [_mount(s, f)[1] for f in s.files]
    if volumes:
        out["volumes"] = volumes
    published = [p for p in s.ports if p.public]
    if published:
        out["ports"] = [
            f"127.0.0.1:${{{p.setting}:?set {p.setting} in .env}}:{p.number}" for p in published
        ]
    deps = {d: {"condition": "service_healthy"} for d in s.depends_on}
    if s.name in JOB_OF:
        deps[JOB_OF[s.name]] = {"condition": "service_completed_successfully"}
    if deps:
        out["depends_on"] = deps
    out["healthcheck"] = _healthcheck(s)
    return out


def _jobs() -> dict[str, Any]:
    """createbuckets (bootstrap.BUCKETS with mc) and pgadmin-volume (pgAdmin runs as uid 5050)."""
    env = {f.upper(): _compose_str("${" + f.upper() + "}") for f in bootstrap.BUCKETS}
    env |= {v: _compose_str("${" + v + "}") for v in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    host, port = Compose().addr("s3")
    buckets = " ".join(f"stack/${f.upper()}" for f in bootstrap.BUCKETS)
    script = (
        f'mc alias set stack http://{host}:{port} "$AWS_ACCESS_KEY_ID" "$AWS_SECRET_ACCESS_KEY"'
        f" && mc mb --ignore-existing {buckets}"
    )
    return {
        "createbuckets": {
            "image": MC,
            "depends_on": {"s3": {"condition": "service_healthy"}},
            "environment": env,
            "entrypoint": ["/bin/sh", "-c", _compose_str(script)],
            "restart": "no",
        },
        "pgadmin-volume": {
            "image": "busybox:1.36",
            "command": ["chown", "-R", "5050:5050", "/var/lib/pgadmin"],
            "volumes": ["pgadmin:/var/lib/pgadmin"],
            "restart": "no",
        },
    }


def _pipeline() -> dict[str, Any]:
    """`docker compose --profile pipeline run pipeline`: `dvc repro` in the pipeline image on this
    checkout (mounted), against the stack's Postgres and MLflow."""
    env = {k: _compose_str(v) for k, v in spec.pipeline_env(Compose()).items()}
    return _build("pipeline") | {
        "profiles": ["pipeline"],
        "environment": env | {"DVC_SITE_CACHE_DIR": "/tmp/dvc-site"},
        "volumes": ["./:/project"],
        "depends_on": {"nginx": {"condition": "service_healthy"}},
        "restart": "no",
    }


def render(model_name: str) -> dict[str, tuple[str, int]]:
    """Every generated file: repo-relative path -> (text, mode)."""
    services = spec.services(Compose(), model_name)
    doc: dict[str, Any] = {"services": {}}
    files: dict[str, tuple[str, int]] = {}
    for s in services:
        doc["services"][s.name] = _service(s)
        files |= {_mount(s, f)[0]: (f.content, f.mode) for f in s.files}
    doc["services"] |= _jobs() | {"pipeline": _pipeline()}
    volumes = ("pgdata", "s3data", "pgadmin", "nginx-secrets", "promdata")
    doc["volumes"] = {name: None for name in volumes}
    text = yaml.safe_dump(doc, sort_keys=False, width=1000, default_flow_style=False)
    files |= _prometheus_configs()
    files |= {
        f"{DOCKER_DIR}/{n}.Dockerfile": (text, 0o644) for n, text in dockerfiles.render().items()
    }
    return {COMPOSE_FILE: (HEADER + text.replace(": null\n", ":\n"), 0o644)} | files


def _prometheus_configs() -> dict[str, tuple[str, int]]:
    """deploy/prometheus's two configs: compose's (mounted), and the native one at the default
    settings (the stack renders that same text from its own settings)."""
    from flightdelay.stack import prometheus
    from flightdelay.stack.layout import Layout, Tools

    defaults = StackSettings.model_construct()
    layout = Layout(Path("."), Path("."))
    native = Native(defaults, layout, Tools.expected(layout))
    return {
        f"deploy/prometheus/{name}": (prometheus.config(t), 0o644)
        for name, t in zip(PROMETHEUS_CONFIGS.values(), (native, Compose()), strict=True)
    }


def write(root: Path, model_name: str) -> list[str]:
    """Write every generated file under `root`; remove stale ones; returns what changed."""
    changed = drift(root, model_name)
    for rel, (text, mode) in render(model_name).items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        path.chmod(mode)
    for rel in _stale(root, render(model_name)):
        (root / rel).unlink()
    for d in sorted((root / DOCKER_DIR).rglob("*"), reverse=True):  # folders left empty
        if d.is_dir() and not any(d.iterdir()):
            d.rmdir()
    return changed


def _stale(root: Path, files: dict[str, tuple[str, int]]) -> list[str]:
    """Files under Docker/ that nothing renders."""
    docker = root / DOCKER_DIR
    found = [p for p in docker.rglob("*") if p.is_file()] if docker.is_dir() else []
    rels = (p.relative_to(root).as_posix() for p in found)
    return sorted(r for r in rels if r not in files)


def drift(root: Path, model_name: str) -> list[str]:
    """Paths whose committed text or executable bit differ from what `write` would produce,
    plus stale files; empty when everything matches."""
    files = render(model_name)
    out = []
    for rel, (text, mode) in files.items():
        path = root / rel
        if not path.is_file() or path.read_text() != text:
            out.append(rel)
        elif bool(path.stat().st_mode & 0o111) != bool(mode & 0o111):
            out.append(f"{rel} (mode)")
    return out + _stale(root, files)
