"""Settings checked before anything starts, fresh secrets for a new .env, finding the stack's own
processes without supervisord, the watchdog's clock: with real sockets and processes, no mocks."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flightdelay.core.config import StackSettings
from flightdelay.core.errors import UserError
from flightdelay.stack import envfile, procs, validate
from flightdelay.stack.watchdog import Watch, parse_targets
from tests.conftest import ROOT

GOOD = {
    "postgres_password": "pg-s3cr3t",
    "postgres_readonly_password": "reader-s3cr3t",
    "aws_secret_access_key": "aws-s3cr3t",
    "mlflow_tracking_password": "mlflow-s3cr3t",
    "pgadmin_password": "pgadmin-s3cr3t",
    "api_token": "api-s3cr3t",
    "mlflow_flask_server_secret_key": "flask-s3cr3t",
}
# ports no other test uses
PORTS = {"postgres_port": 21432, "s3_port": 21333, "seaweed_base_port": 21900}
PORTS |= {"mlflow_port": 21000, "pgadmin_port": 21050, "api_replica_ports": "21001,21002"}
PORTS |= {"nginx_http_port": 21080, "nginx_https_port": 21443, "nginx_mlflow_port": 21580}
PORTS |= {"nginx_pgadmin_port": 21550, "nginx_s3_port": 21090, "prometheus_port": 21190}


def settings(tmp_path: Path, **extra: object) -> StackSettings:
    values = GOOD | PORTS | {"stack_dir": tmp_path / "stack"} | extra
    return StackSettings(_env_file=None, **values)  # type: ignore[call-arg, arg-type]


def test_good_settings_have_no_problem(tmp_path: Path) -> None:
    assert validate.problems(settings(tmp_path)) == []


def test_every_problem_in_one_line(tmp_path: Path) -> None:
    bad = settings(
        tmp_path,
        postgres_password="",
        api_token="change-me-api-token",
        nginx_http_port=21001,  # = an API replica
        database_url="postgresql+psycopg2://postgres:hunter22@127.0.0.1:abc/features",
    )
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 21050))
        taken.listen()
        with pytest.raises(UserError) as err:
            validate.check(bad)
    line = str(err.value)
    assert "\n" not in line and "nothing was started or stopped" in line
    for part in (
        "POSTGRES_PASSWORD is empty",
        "API_TOKEN is a placeholder",
        "port 21001 is used by API_REPLICA_PORTS and NGINX_HTTP_PORT",
        f"port 21050 (PGADMIN_PORT) is taken by pid {os.getpid()}",
        "DATABASE_URL=postgresql+psycopg2://postgres:***@127.0.0.1:abc/features",
    ):
        assert part in line, (part, line)
    assert "hunter22" not in line


def test_settings_that_cannot_be_read_name_the_variable() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError) as err:
        StackSettings(_env_file=None, postgres_port="abc")  # type: ignore[call-arg, arg-type]
    line = str(validate.settings_error(err.value))
    assert line.startswith("invalid settings: POSTGRES_PORT='abc'") and "\n" not in line


def test_fresh_env_replaces_every_secret(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    names = envfile.ensure_env(env, ROOT / ".env.example")
    assert {n.lower() for n in names} == set(validate.SECRETS)
    assert env.stat().st_mode & 0o777 == 0o600
    text = env.read_text()
    assert "=change-me" not in text and ":change-me" not in text
    values = dict(ln.split("=", 1) for ln in text.splitlines() if ln and ln[0].isupper())
    pw = values["POSTGRES_PASSWORD"]
    assert len(pw) >= 24 and f"postgres:{pw}@" in text  # the commented DATABASE_URL follows
    assert envfile.ensure_env(env, ROOT / ".env.example") == []  # an existing .env stays


def test_stack_processes_found_by_mark_and_stopped(tmp_path: Path) -> None:
    root = tmp_path / "stack"
    root.mkdir()
    env = dict(os.environ, **{procs.MARK: str(root.resolve()), procs.SERVICE: "api1"})
    sleeper = "import time; time.sleep(60)"
    spawn = f"subprocess.Popen([sys.executable, '-c', {sleeper!r}])"
    code = f"import subprocess, sys; {spawn}; {sleeper}"
    child = subprocess.Popen([sys.executable, "-c", code], env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 5
        while len(found := procs.stack_processes(root)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert {p.service for p in found} == {"api1"} and len(found) == 2
        assert procs.describe(found) == f"api1 (pid {child.pid})"
        assert procs.stop(found, {"api1": "TERM"}, grace=5) == []
        assert procs.stack_processes(root) == []
    finally:
        child.kill()
        child.wait()


def test_port_owners_names_the_listener() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert procs.port_owners({port}) == {port: {os.getpid()}}


def test_watchdog_kills_only_after_the_limit() -> None:
    assert parse_targets("api1=18001,api2=18002") == {"api1": 18001, "api2": 18002}
    watch = Watch(10)
    assert not watch.hung("api1", 5, False, 100.0)
    assert not watch.hung("api1", 5, False, 109.0)
    assert watch.hung("api1", 5, False, 110.0)
    assert not watch.hung("api1", 6, False, 110.0)  # restarted: a new pid starts a new clock
    assert not watch.hung("api1", 6, True, 125.0) and not watch.hung("api1", 6, False, 126.0)
