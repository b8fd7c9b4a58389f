"""The native backend: the spec as supervisord programs (supervisord.conf), started, watched and
stopped over supervisord's XML-RPC socket."""

from __future__ import annotations

import hashlib
import socket
import subprocess
import time
import xmlrpc.client
from pathlib import Path
from typing import Any

import httpx

from flightdelay.core.config import StackSettings
from flightdelay.core.errors import UserError
from flightdelay.stack import procs
from flightdelay.stack.layout import VENV_BIN, Layout
from flightdelay.stack.spec import Health, Service


def _env_value(value: str) -> str:
    """A value for supervisord's `environment=` (quoted; its parser knows no escapes)."""
    quote = "'" if '"' in value else '"'
    if quote in value:
        raise UserError("a stack setting holds both ' and \": use at most one kind of quote")
    return quote + value.replace("%", "%%") + quote


def _quote(arg: str) -> str:
    """One argument of supervisord's `command=` (split like a shell; % doubled)."""
    arg = arg.replace("%", "%%")
    return f'"{arg}"' if any(c in arg for c in " ;'\"") else arg


def program_env(layout: Layout, service: Service) -> dict[str, str]:
    """The service's environment plus TMPDIR/HOME in STACK_DIR and a digest of its files: when a
    file changes, its program entry changes too, and `supervisorctl update` restarts it."""
    digest = hashlib.sha256("".join(f.content for f in service.files).encode()).hexdigest()[:16]
    base = {"TMPDIR": str(layout.tmp), "HOME": str(layout.root), "STACK_CONFIG_SHA256": digest}
    # the marks `stack up/down/status` find the stack's processes by when supervisord is gone
    base |= {procs.MARK: str(layout.root), procs.SERVICE: service.name}
    return base | service.env


def _program(layout: Layout, s: Service) -> list[str]:
    env = ",".join(f"{k}={_env_value(v)}" for k, v in sorted(program_env(layout, s).items()))
    lines = ["", f"[program:{s.name}]", f"command={' '.join(_quote(c) for c in s.command)}"]
    lines += ["autostart=false", "autorestart=true", "startsecs=1", "startretries=5"]
    lines += [f"stopsignal={s.stopsignal}", "stopwaitsecs=20", "stopasgroup=true"]
    lines += ["killasgroup=true", f"stdout_logfile={layout.logs}/{s.name}.log"]
    lines += ["redirect_stderr=true", "stdout_logfile_maxbytes=10MB", f"environment={env}"]
    lines += [f"user={s.user}"] if s.user else []
    lines += [f"directory={Path.cwd()}"] if s.in_project else []
    lines += [f"directory={s.cwd}"] if s.cwd else []
    return lines


def supervisor_conf(layout: Layout, services: list[Service], as_root: bool) -> str:
    """supervisord.conf: every service as a program that starts only when asked."""
    root = layout.root
    lines = [
        "; Rendered by `flightdelay stack up` from the spec: do not edit.",
        "[supervisord]",
        f"logfile={layout.logs}/supervisord.log",
        f"pidfile={root}/supervisord.pid",
        f"childlogdir={layout.logs}",
        "nodaemon=false",
        "umask=077",  # logs and every file a service writes: private
        *(["user=root"] if as_root else []),
        "",
        "[unix_http_server]",
        f"file={root}/supervisor.sock",
        "chmod=0700",
        "",
        "[supervisorctl]",
        f"serverurl=unix://{root}/supervisor.sock",
        "",
        "[rpcinterface:supervisor]",
        "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
    ]
    for s in services:
        lines += _program(layout, s)
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------
# health
# --------------------------------------------------------------------------------------------


def healthy(health: Health, settings: StackSettings) -> bool:
    """Whether a service passes its spec health check right now (port 0: no probe)."""
    if health.port == 0:
        return True
    if health.path is None:
        import psycopg2

        from flightdelay.stack.clients import pg_connect

        try:
            pg_connect(settings, "postgres").close()
            return True
        except psycopg2.Error:
            return False
    kw: dict[str, Any] = {}
    if health.auth:
        password = settings.mlflow_tracking_password.get_secret_value()
        kw["auth"] = (settings.mlflow_tracking_username, password)
    try:
        url = f"http://127.0.0.1:{health.port}{health.path}"
        return httpx.get(url, timeout=2, **kw).status_code in health.ok
    except httpx.HTTPError:
        return False


# --------------------------------------------------------------------------------------------
# supervisord
# --------------------------------------------------------------------------------------------


def ctl(layout: Layout, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run supervisorctl; UserError when it fails (status 3 only says a program is down)."""
    cmd = [str(VENV_BIN / "supervisorctl"), "-c", str(layout.supervisor_conf), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if check and proc.returncode not in (0, 3):
        out = (proc.stdout + proc.stderr).strip()[-300:]
        raise UserError(f"supervisorctl {' '.join(args)} failed: {out}")
    return proc


def supervisord_pid(layout: Layout) -> int:
    """The pid of supervisord of this STACK_DIR (its pid file, checked against the process's
    command line: a pid left by a crash may now be another program's); 0 when none runs."""
    try:
        pid = int((layout.root / "supervisord.pid").read_text().strip())
    except (OSError, ValueError):
        return 0
    args = procs.args_of(pid)
    mine = f"supervisord -c {layout.supervisor_conf}" in args
    return pid if mine and procs.alive(pid) else 0


def running(layout: Layout) -> bool:
    """Whether supervisord of this STACK_DIR runs."""
    return supervisord_pid(layout) != 0


def _rpc(layout: Layout) -> Any:
    """supervisord's XML-RPC interface over its unix socket (what supervisorctl talks to)."""
    from supervisor.xmlrpc import SupervisorTransport

    transport = SupervisorTransport(None, None, f"unix://{layout.root}/supervisor.sock")
    return xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport).supervisor


def process(layout: Layout, name: str) -> dict[str, Any]:
    """supervisord's view of one program: statename (RUNNING, BACKOFF, FATAL, ...), pid, ..."""
    try:
        return dict(_rpc(layout).getProcessInfo(name))
    except (OSError, xmlrpc.client.Error):
        return {"statename": "UNKNOWN", "pid": 0}


def launch(layout: Layout) -> None:
    """Start supervisord (no program yet), or make a running one re-read its config."""
    if running(layout):
        ctl(layout, "reread")
        ctl(layout, "update")
        return
    subprocess.run([str(VENV_BIN / "supervisord"), "-c", str(layout.supervisor_conf)], check=True)
    for _ in range(50):
        if ctl(layout, "pid", check=False).returncode == 0:
            return
        time.sleep(0.1)


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
    if process(layout, service.name)["statename"] in ("RUNNING", "STARTING", "BACKOFF"):
        return
    for port in service.ports:
        if not _port_free(port.number):
            raise UserError(
                f"{service.name}: port {port.number} ({port.setting}) is already in use by"
                f" another process; stop it or change {port.setting} in .env"
            )
    try:
        _rpc(layout).startProcess(service.name, False)
    except xmlrpc.client.Fault as fault:
        if "ALREADY_STARTED" not in fault.faultString:
            msg = f"supervisord could not start {service.name}: {fault.faultString}"
            raise UserError(msg) from None


def _tail(path: Path, lines: int = 25) -> str:
    if not path.exists():
        return "(no log)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _fail(layout: Layout, service: Service, why: str) -> UserError:
    return UserError(
        f"{service.name} {why}; last log lines:\n{_tail(layout.logs / f'{service.name}.log')}"
    )


def wait_for(
    service: Service, layout: Layout, settings: StackSettings, max_restarts: int = 3
) -> float:
    """Seconds until `service` passed its check and supervisord counts it as started (RUNNING:
    up for `startsecs`), so `stack status` right after `stack up` shows every service RUNNING.
    UserError with its log tail on timeout, or sooner when it keeps exiting (restarted more
    than `max_restarts` times, or given up on)."""
    t0 = next_look = time.monotonic()
    timeout = settings.stack_start_timeout
    pids: set[int] = set()
    while (now := time.monotonic()) - t0 < timeout:
        if (
            healthy(service.health, settings)
            and process(layout, service.name)["statename"] == "RUNNING"
        ):
            return time.monotonic() - t0
        if now >= next_look:  # a server that exits at start must not look like a slow start
            next_look = now + 1
            info = process(layout, service.name)
            pids.add(int(info.get("pid") or 0))
            restarts = max(len(pids - {0}) - 1, 0)
            if info["statename"] in ("FATAL", "STOPPED") or restarts > max_restarts:
                why = f"keeps exiting ({info['statename']}, restarted {restarts} times)"
                raise _fail(layout, service, why)
        time.sleep(0.2)
    raise _fail(layout, service, f"not healthy after {timeout:.0f}s")


def shutdown(layout: Layout) -> None:
    """Stop every program and supervisord (within 30 s)."""
    pid = supervisord_pid(layout)
    if not pid:
        return
    ctl(layout, "stop", "all", check=False)
    ctl(layout, "shutdown", check=False)
    for _ in range(150):  # until the process is gone (its pid file goes first)
        if not procs.alive(pid):
            return
        time.sleep(0.2)
    raise UserError(f"supervisord did not stop within 30 s; see {layout.logs}/supervisord.log")


def states(layout: Layout) -> dict[str, tuple[str, int]]:
    """(state, pid) of each program; empty when supervisord is not running."""
    if not running(layout):
        return {}
    out: dict[str, tuple[str, int]] = {}
    for line in ctl(layout, "status", check=False).stdout.splitlines():
        parts = line.split()
        if len(parts) >= 2:
            pid = int(parts[3].rstrip(",")) if len(parts) > 3 and parts[2] == "pid" else 0
            out[parts[0]] = (parts[1], pid)
    return out
