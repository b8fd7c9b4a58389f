"""Secure defaults from a fresh checkout: `stack up` with no .env writes one from .env.example
with fresh random secrets (0600) and says so; with a placeholder it refuses in one line. Both
stop at the settings check (a port is taken on purpose), so no stack starts here."""

from __future__ import annotations

import re
import shutil
import socket
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.stack.conftest import flightdelay

pytestmark = [pytest.mark.stack, pytest.mark.faults]
TAKEN = 28190


def _project(tmp_path: Path) -> Path:
    """A folder with params.yaml and .env.example (its API port one that is taken)."""
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    example = (ROOT / ".env.example").read_text()
    example = re.sub(r"^NGINX_HTTP_PORT=\d+$", f"NGINX_HTTP_PORT={TAKEN}", example, flags=re.M)
    example = re.sub(r"^STACK_DIR=.*$", f"STACK_DIR={tmp_path / 'stack'}", example, flags=re.M)
    (tmp_path / ".env.example").write_text(example)
    return tmp_path


def _up(cwd: Path) -> tuple[int, str, str]:
    env = {"STACK_TOOLS_DIR": str(ROOT / ".stack" / "tools")}  # every other value from .env
    proc = flightdelay("stack", "up", cwd=cwd, check=False, stack_env=env, timeout=120)
    return proc.returncode, proc.stdout, proc.stderr


def test_no_env_file_gets_fresh_secrets_0600(tmp_path: Path) -> None:
    project = _project(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", TAKEN))
        taken.listen()
        code, out, err = _up(project)
    env = project / ".env"
    assert "wrote .env (mode 0600) from .env.example with fresh random" in out, out
    assert "POSTGRES_PASSWORD" in out and "API_TOKEN" in out
    assert env.stat().st_mode & 0o777 == 0o600
    assert "=change-me" not in env.read_text()
    assert code == 1 and err.count("\n") == 1 and "placeholder" not in err, err
    assert f"port {TAKEN} (NGINX_HTTP_PORT) is taken by pid" in err
    assert not (project / "stack").exists()  # nothing was set up


def test_placeholder_in_env_file_is_refused(tmp_path: Path) -> None:
    project = _project(tmp_path)
    shutil.copy(project / ".env.example", project / ".env")
    code, _, err = _up(project)
    assert code == 1 and err.count("\n") == 1, err
    for name in ("POSTGRES_PASSWORD", "AWS_SECRET_ACCESS_KEY", "API_TOKEN", "PGADMIN_PASSWORD"):
        assert f"{name} is a placeholder" in err, err
