"""The native stack: Postgres, S3 (SeaweedFS, or MinIO when on PATH), MLflow, pgAdmin, the API
replicas and nginx, as local processes under supervisord, with state and logs in STACK_DIR.

`up` is idempotent: it provisions what is missing, writes every file of the spec, starts the
services in order and returns once each passes its health check (bounded wait; on a timeout it
raises with the failing service's log tail). `down` stops them all; the data stays.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable

from flightdelay.core.config import StackSettings, load_params
from flightdelay.core.errors import UserError
from flightdelay.stack import bootstrap, provision, recovery, spec, validate
from flightdelay.stack.backends import supervisor
from flightdelay.stack.layout import Layout
from flightdelay.stack.targets import Native

log = logging.getLogger(__name__)
# set-up done once a service answers (each idempotent)
AFTER_START: dict[str, Callable[[StackSettings], None]] = {
    "postgres": bootstrap.ensure_postgres,
    "s3": bootstrap.ensure_buckets,
}


def model_name(settings: StackSettings) -> str:
    """The registered model the API replicas serve: MODEL_NAME, else params.yaml's
    register.model_name (the one place it is declared)."""
    return settings.model_name or load_params(settings.params_path).registry.model_name


def prepare(settings: StackSettings) -> tuple[Layout, list[spec.Service]]:
    """Provision, write every file and supervisord.conf; returns the services in start order."""
    layout = Layout.of(settings)
    provision.ensure_state(settings, layout)
    tools = provision.ensure_tools(layout)
    as_root = os.geteuid() == 0
    services = spec.services(Native(settings, layout, tools, as_root), model_name(settings))
    log.info("S3 server: %s", tools.s3_kind)
    provision.write_files([f for s in services for f in s.files])
    nginx = layout.dir("nginx")
    password = settings.mlflow_tracking_password.get_secret_value()
    provision.htpasswd(nginx / "htpasswd", settings.mlflow_tracking_username, password)
    provision.tls_certificate(nginx / "tls.crt", nginx / "tls.key")
    bootstrap.ensure_pgadmin(settings, layout)
    conf = supervisor.supervisor_conf(layout, services, as_root)
    provision.write_files([spec.File(str(layout.supervisor_conf), conf, 0o600)])
    return layout, services


def _after_start(service: spec.Service, settings: StackSettings) -> None:
    step = AFTER_START.get(service.name)
    if step is None:
        return
    try:
        step(settings)
    except UserError:
        raise
    except Exception as exc:  # a driver's error: one readable line, not a traceback
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        raise UserError(
            f"setting up {service.name} failed: {type(exc).__name__}: {first}"
        ) from None


def _wait(
    service: spec.Service,
    layout: Layout,
    settings: StackSettings,
    by_name: dict[str, spec.Service],
) -> None:
    """Wait for `service`; when it fails and a service it depends on is not healthy either,
    the error names that one first (MLflow fails when Postgres does)."""
    try:
        supervisor.wait_for(service, layout, settings)
    except UserError as exc:
        deps = [by_name[d] for d in service.depends_on if d in by_name]
        down = [d.name for d in deps if not supervisor.healthy(d.health, settings)]
        if down:
            raise UserError(f"{', '.join(down)} not healthy, so {exc}") from None
        raise


def up(settings: StackSettings, configure_dvc: bool = True) -> dict[str, float]:
    """Start (or confirm) every service; returns seconds to healthy per service.

    With `configure_dvc`, a DVC repo in the working directory gets the stack as its remote.
    Settings are checked completely first (nothing is stopped or started when they are bad);
    processes a crashed supervisord left behind are stopped and started again under a new one.
    """
    validate.check(settings)
    recovery.take_over(Layout.of(settings))
    layout, services = prepare(settings)
    supervisor.launch(layout)
    if configure_dvc:
        bootstrap.configure_dvc_remote(settings)
    timings: dict[str, float] = {}
    by_name = {s.name: s for s in services}
    for service in services:
        t0 = time.monotonic()
        supervisor.start(service, layout)
        _wait(service, layout, settings, by_name)
        timings[service.name] = round(time.monotonic() - t0, 2)
        _after_start(service, settings)
    return timings


def down(settings: StackSettings) -> list[str]:
    """Stop every service and supervisord, then any other process of this stack (a crashed
    supervisord's orphans); the data under STACK_DIR stays. Returns the services stopped
    without supervisord."""
    layout = Layout.of(settings)
    try:
        supervisor.shutdown(layout)
    except UserError as exc:
        log.warning("%s; stopping its processes directly", exc)
    return list(dict.fromkeys(p.service for p in recovery.stop_everything(layout)))


def status(settings: StackSettings) -> dict[str, str]:
    """Each service's supervisor state, and ORPHANED for a process of this stack that no live
    supervisord runs (empty when nothing of the stack runs)."""
    layout = Layout.of(settings)
    states = {name: state for name, (state, _) in supervisor.states(layout).items()}
    for p in recovery.orphans(layout):
        if states.get(p.service) != "RUNNING":
            states[p.service] = "ORPHANED"
    return states


def control(settings: StackSettings, action: str, name: str) -> None:
    """`supervisorctl stop|start|restart <name>` on this running stack (one service)."""
    layout = Layout.of(settings)
    if not supervisor.running(layout):
        raise UserError(f"the stack in {layout.root} is not running: `flightdelay stack up`")
    supervisor.ctl(layout, action, name)


def service_pids(settings: StackSettings) -> dict[str, int]:
    """PID of each running service (for memory measurements)."""
    states = supervisor.states(Layout.of(settings))
    return {name: pid for name, (state, pid) in states.items() if state == "RUNNING" and pid}
