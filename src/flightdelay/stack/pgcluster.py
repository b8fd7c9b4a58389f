"""A private PostgreSQL cluster from the machine's binaries (tests, benchmarks, the stack).

The server refuses to run as root, so as root everything runs as the `postgres` user.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from flightdelay.core.errors import UserError

PG_BIN_CANDIDATES = (
    "/usr/lib/postgresql/15/bin",
    "/usr/lib/postgresql/16/bin",
    "/usr/lib/postgresql/17/bin",
)


def pg_bin() -> Path:
    """The folder holding initdb/pg_ctl (PG_BIN overrides)."""
    for cand in (os.environ.get("PG_BIN"), *PG_BIN_CANDIDATES):
        if cand and (Path(cand) / "pg_ctl").is_file():
            return Path(cand)
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).parent
    raise UserError("PostgreSQL server binaries not found: install postgresql-15 or set PG_BIN")


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_postgres(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


def _chown(path: Path) -> None:
    if os.geteuid() == 0:
        shutil.chown(path, "postgres", "postgres")


def init_cluster(data_dir: Path, password: str, user: str = "postgres") -> None:
    """initdb with scram auth; the password file lives outside the data dir and is removed."""
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    data_dir.mkdir(mode=0o700, exist_ok=True)
    _chown(data_dir)
    fd, pwfile = tempfile.mkstemp(dir=data_dir.parent, prefix=".pw")
    try:
        os.write(fd, password.encode())
        os.close(fd)
        _chown(Path(pwfile))
        subprocess.run(
            _as_postgres(
                [
                    str(pg_bin() / "initdb"),
                    "-D",
                    str(data_dir),
                    "-U",
                    user,
                    f"--pwfile={pwfile}",
                    "--auth=scram-sha-256",
                    "-E",
                    "UTF8",
                    "--locale=C.UTF-8",
                ]
            ),
            check=True,
            capture_output=True,
            text=True,
        )
    except subprocess.CalledProcessError as exc:
        raise UserError(f"initdb failed: {exc.stderr.strip().splitlines()[-1]}") from None
    finally:
        Path(pwfile).unlink(missing_ok=True)


def server_command(data_dir: Path, port: int, socket_dir: Path) -> list[str]:
    """The foreground `postgres` command on 127.0.0.1:`port` (run it as the postgres user)."""
    return [
        str(pg_bin() / "postgres"),
        "-D",
        str(data_dir),
        "-p",
        str(port),
        "-c",
        "listen_addresses=127.0.0.1",
        "-c",
        f"unix_socket_directories={socket_dir}",
    ]


def pg_ctl(data_dir: Path, action: str, port: int, log_file: Path) -> None:
    """`pg_ctl start|stop` and wait for it."""
    socket_dir = data_dir.parent
    cmd = [str(pg_bin() / "pg_ctl"), "-D", str(data_dir), "-w", "-t", "30"]
    if action == "start":
        cmd += [
            "-l",
            str(log_file),
            "-o",
            f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories={socket_dir}",
            "start",
        ]
    else:
        cmd += ["-m", "fast", "stop"]
    proc = subprocess.run(_as_postgres(cmd), capture_output=True, text=True)
    if proc.returncode != 0:
        raise UserError(f"pg_ctl {action} failed: {(proc.stderr or proc.stdout).strip()[-200:]}")


@contextmanager
def throwaway_postgres(databases: tuple[str, ...] = ("features",)) -> Iterator[dict[str, str]]:
    """A fresh cluster on a free port for the duration of the block.

    Yields `{"host", "port", "user", "password", "<db>": "postgresql+psycopg2://..."}`.
    """
    import psycopg2

    root = Path(tempfile.mkdtemp(prefix="fd-pg-"))
    os.chmod(root, 0o755)
    _chown(root)
    password = "throwaway"
    port = free_port()
    data_dir = root / "data"
    init_cluster(data_dir, password)
    pg_ctl(data_dir, "start", port, root / "postgres.log")
    try:
        conn = psycopg2.connect(
            host="127.0.0.1", port=port, user="postgres", password=password, dbname="postgres"
        )
        conn.autocommit = True
        with conn.cursor() as cur:
            for db in databases:
                cur.execute(f"CREATE DATABASE {db}")
        conn.close()
        info = {"host": "127.0.0.1", "port": str(port), "user": "postgres", "password": password}
        for db in databases:
            info[db] = f"postgresql+psycopg2://postgres:{password}@127.0.0.1:{port}/{db}"
        yield info
    finally:
        pg_ctl(data_dir, "stop", port, root / "postgres.log")
        shutil.rmtree(root, ignore_errors=True)
