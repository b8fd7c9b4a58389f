"""Prometheus of the stack, both backends: its scrape config (every API replica its own target,
MLflow signed in, Prometheus itself), the rules of deploy/prometheus/rules, and the file holding
MLflow's login for the scrape. Pure: text from a target (and the rule files of the checkout).

Prometheus serves under ROUTE (/prometheus/): nginx publishes it there, with basic auth, on the
MLflow port. It scrapes MLflow's /metrics with basic auth, the password read from PASSWORD_FILE
(0600) next to the config. In compose the container's start writes that file from the
environment and the config with the user name (COMPOSE_USER_SLOT) into its data volume.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from flightdelay.core.errors import UserError
from flightdelay.stack.targets import Native, Target

ROUTE = "/prometheus/"
RULES_DIR = Path(__file__).resolve().parents[3] / "deploy" / "prometheus" / "rules"
RULE_FILES = ("recording.yml", "alerts.yml")
PASSWORD_FILE = "mlflow.password"
COMPOSE_CONFIG_DIR = "/prometheus/config"  # in the data volume (writable), rules linked in
COMPOSE_SOURCE = "/etc/prometheus/prometheus.compose.yml"  # deploy/prometheus, mounted
RETENTION = ("7d", "1GB")
HEADERS = {
    "native": (
        "# Prometheus for the NATIVE stack (`make stack-up`), the default ports of .env.example.\n"
        "# The stack renders this same file from its settings into STACK_DIR/prometheus/.\n"
    ),
    "compose": (
        "# Prometheus for the COMPOSE stack (docker-compose.yaml): services by name, the\n"
        "# containers' own ports; mounted read-only with this folder at /etc/prometheus.\n"
    ),
}
GENERATED = (
    "# Rendered by `flightdelay stack compose` from the stack spec (src/flightdelay/stack/): do\n"
    "# not edit; checked by scripts/prometheus-check.sh (promtool check config).\n"
)


def rules() -> dict[str, str]:
    """The rule files Prometheus loads (name -> text), read from deploy/prometheus/rules."""
    try:
        return {name: (RULES_DIR / name).read_text() for name in RULE_FILES}
    except OSError as exc:
        raise UserError(
            f"Prometheus rules missing ({exc.filename}): run the stack from a checkout of the repo"
        ) from None


def _api_job(t: Target) -> dict[str, object]:
    job: dict[str, object] = {"job_name": "api", "metrics_path": "/metrics"}
    if isinstance(t, Native):  # each replica its own process, target and `replica` label
        job["static_configs"] = [
            {"targets": [f"{t.api_host}:{port}"], "labels": {"replica": f"api{i}"}}
            for i, port in enumerate(t.api_ports(), start=1)
        ]
    else:  # compose: Docker's DNS answers one A record per replica container
        [port] = t.api_ports()
        dns = {"names": [t.api_host], "type": "A", "port": port, "refresh_interval": "10s"}
        job["dns_sd_configs"] = [dns]
    return job


def config(t: Target) -> str:
    """prometheus.yml: scrape every 5 s, evaluate every 5 s, the rules next to it."""
    host, port = t.addr("mlflow")
    own = "127.0.0.1" if isinstance(t, Native) else "localhost"
    login = {"username": t.value("mlflow_tracking_username"), "password_file": PASSWORD_FILE}
    jobs = [
        _api_job(t),
        {
            "job_name": "mlflow",
            "metrics_path": "/metrics",  # MLflow's basic-auth app guards it too
            "basic_auth": login,
            "static_configs": [{"targets": [f"{host}:{port}"]}],
        },
        {
            "job_name": "prometheus",
            "metrics_path": ROUTE + "metrics",
            "static_configs": [{"targets": [f"{own}:{t.addr('prometheus')[1]}"]}],
        },
    ]
    doc = {
        "global": {
            "scrape_interval": "5s",
            "scrape_timeout": "4s",
            "evaluation_interval": "5s",
            "external_labels": {"stack": t.kind},
        },
        "rule_files": [f"rules/{name}" for name in RULE_FILES],  # relative to this file
        "scrape_configs": jobs,
    }
    return HEADERS[t.kind] + GENERATED + yaml.safe_dump(doc, sort_keys=False)


def arguments(t: Target, conf: str, data: str) -> tuple[str, ...]:
    """Prometheus's flags: storage, retention, loopback natively, served under ROUTE behind
    nginx's MLflow port (so the UI's links and the alerts' URLs point there)."""
    _, port = t.addr("prometheus")
    public = f"http://127.0.0.1:{t.value('nginx_mlflow_port')}{ROUTE}"
    return (
        f"--config.file={conf}",
        f"--storage.tsdb.path={data}",
        f"--storage.tsdb.retention.time={RETENTION[0]}",
        f"--storage.tsdb.retention.size={RETENTION[1]}",
        f"--web.listen-address={t.bind()}:{port}",
        f"--web.external-url={public}",
        f"--web.route-prefix={ROUTE}",
    )


def compose_entrypoint(t: Target) -> str:
    """The compose container's start: the password file (0600) and the config with the user
    name, both from the environment, into COMPOSE_CONFIG_DIR next to a link to the mounted
    rules; then Prometheus with the spec's flags."""
    slot = t.value("mlflow_tracking_username")  # ${MLFLOW_TRACKING_USERNAME} in the config
    d = COMPOSE_CONFIG_DIR
    return (
        "#!/bin/sh\n"
        "# Rendered by `flightdelay stack compose` from flightdelay.stack: do not edit.\n"
        "set -eu\numask 077\n"
        f"mkdir -p {d}\n"
        f"printf '%s' \"{t.value('mlflow_tracking_password')}\" > {d}/{PASSWORD_FILE}\n"
        f"user=\"$(printf '%s' \"{slot}\" | sed 's/[\\\\&|]/\\\\&/g')\"\n"
        f'sed "s|[$]{slot[1:]}|$user|" {COMPOSE_SOURCE} > {d}/prometheus.yml\n'
        f"ln -sfn /etc/prometheus/rules {d}/rules\n"
        'exec /bin/prometheus "$@"\n'
    )
