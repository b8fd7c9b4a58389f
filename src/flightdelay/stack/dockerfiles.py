"""The Dockerfiles of the compose stack, rendered with docker-compose.yaml (`flightdelay stack
compose`; `--check` holds them to this module). Every image runs as a non-root USER; the ports
each EXPOSEs are the spec's container ports; the Python images install from poetry.lock (the
project's own extras) or pin the release the lock holds."""

from __future__ import annotations

from flightdelay.stack.targets import API_HTTP_PROTOCOL, COMPOSE_NGINX_PORTS, COMPOSE_PORTS

PYTHON = "python:3.11-slim"
NGINX = "nginx:1.27-alpine"
UID = 10001  # the images' own user (no clash with a host's first users)
MLFLOW = "mlflow[auth]==3.17.2"  # the release poetry.lock holds, with the basic-auth app
MLFLOW_EXTRAS = ("prometheus-flask-exporter==0.23.2", "psycopg2-binary>=2.9", "boto3==1.43.117")
_HEAD = "# Rendered by `flightdelay stack compose` (stack/dockerfiles.py): do not edit.\n"
_ENV = "ENV PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1"
_USER = f"RUN useradd --create-home --uid {UID} --user-group flightdelay\n"


def _poetry(extra: str) -> str:
    """The project with one extra from poetry.lock: dependencies first (a cached layer), then the
    source."""
    install = f"poetry install --only main --extras {extra} --no-interaction --compile"
    return (
        f"{_ENV} POETRY_VIRTUALENVS_CREATE=false\n"
        "WORKDIR /app\n"
        'RUN pip install --no-cache-dir "poetry>=2.1,<3"\n'
        "COPY pyproject.toml poetry.lock README.md ./\n"
        f"RUN {install.replace('--no-interaction', '--no-root --no-interaction')}\n"
        "COPY src ./src\n"
        f"RUN {install}\n"
    )


def api() -> str:
    return (
        _HEAD + "# The model service: only what serving needs (the `serving` extra).\n"
        "# docker-compose.yaml runs the spec's command (uvicorn + the app factory, as natively)\n"
        "# and sets MODEL_NAME from params.yaml register.model_name (the image holds none).\n"
        f"FROM {PYTHON}\n" + _poetry("serving") + _USER + f"USER {UID}\n"
        f"EXPOSE {COMPOSE_PORTS['api']}\n"
        'CMD ["sh", "-c", "exec uvicorn flightdelay.serving.app:create_app --factory'
        f" --http {API_HTTP_PROTOCOL} --host 0.0.0.0 --port {COMPOSE_PORTS['api']}"
        " --workers ${API_WORKERS:-1}"
        ' --no-access-log"]\n'
    )


def mlflow() -> str:
    extras = " ".join(f'"{p}"' for p in MLFLOW_EXTRAS)
    return (
        _HEAD
        + "# MLflow tracking server with its basic-auth app and --expose-prometheus, the Postgres\n"
        "# driver and boto3 for its S3 artifacts. The command and every setting come from\n"
        "# docker-compose.yaml, rendered from the stack spec (the command the native stack runs).\n"
        f"FROM {PYTHON}\n{_ENV} MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false\n"
        f'RUN pip install --no-cache-dir "{MLFLOW}" {extras}\n' + _USER + f"USER {UID}\n"
        f"WORKDIR /home/flightdelay\nEXPOSE {COMPOSE_PORTS['mlflow']}\n"
        f'CMD ["mlflow", "server", "--host", "0.0.0.0", "--port", "{COMPOSE_PORTS["mlflow"]}"]\n'
    )


def nginx() -> str:
    ports = " ".join(str(p) for p in COMPOSE_NGINX_PORTS.values())
    owned = "/etc/nginx/secrets /var/cache/nginx /var/log/nginx"
    return (
        _HEAD
        + "# nginx of the compose stack, as the image's `nginx` user (every port is above 1024;\n"
        "# its pid file is in /tmp): openssl (nginx:alpine drops it) for the start-up script that\n"
        "# writes the htpasswd (SHA-512 crypt, as natively) and a self-signed TLS certificate.\n"
        "# The config and that script are rendered from the stack spec and mounted.\n"
        f"FROM {NGINX}\n"
        "RUN apk add --no-cache openssl && mkdir -p /etc/nginx/secrets"
        f" && chown -R nginx:nginx {owned}\n"
        f"USER nginx\nEXPOSE {ports}\n"
    )


def pipeline() -> str:
    return (
        _HEAD + "# The DVC pipeline (`dvc repro`): the `pipeline` extra and git, on a checkout\n"
        "# mounted at /project (docker-compose.yaml's `pipeline` service, profile `pipeline`),\n"
        "# pointed at the stack's Postgres and MLflow by the environment.\n"
        f"FROM {PYTHON}\n"
        "RUN apt-get update && apt-get install -y --no-install-recommends git"
        " && rm -rf /var/lib/apt/lists/* && git config --system --add safe.directory /project\n"
        + _poetry("pipeline")
        + _USER
        + f"USER {UID}\nWORKDIR /project\n"
        'CMD ["dvc", "repro"]\n'
    )


def render() -> dict[str, str]:
    """Docker/<name>.Dockerfile -> text, for every image the compose stack builds."""
    images = {"api": api, "mlflow": mlflow, "nginx": nginx, "pipeline": pipeline}
    return {name: fn() for name, fn in images.items()}
