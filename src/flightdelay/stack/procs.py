"""This stack's own processes, found without supervisord: after supervisord dies its programs run
on, orphaned, and `stack up` / `down` / `status` must still see and stop them.

A process belongs to the stack of STACK_DIR `root` when its environment carries
`FLIGHTDELAY_STACK_DIR=<root>` (every program gets it from supervisord.conf, and children inherit
it), or, for processes started before that mark existed, when its command line is one of the
stack's servers with its state under `root` (supervisord -c, postgres -D, weed/minio, nginx -p).
The pid files (supervisord.pid, postmaster.pid, nginx.pid) name the same processes.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

MARK = "FLIGHTDELAY_STACK_DIR"
SERVICE = "FLIGHTDELAY_STACK_SERVICE"


@dataclass(frozen=True)
class Proc:
    pid: int
    ppid: int
    pgid: int
    service: str
    args: str


def _stat(pid: int) -> tuple[str, int, int] | None:
    """(state, ppid, pgid) of `pid`, None when it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw.rsplit(")", 1)[1].split()
    return fields[0], int(fields[1]), int(fields[2])


def alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie does not count)."""
    st = _stat(pid)
    return st is not None and st[0] not in ("Z", "X")


def _environ(pid: int) -> dict[str, str]:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    pairs = (kv.split("=", 1) for kv in raw.decode(errors="replace").split("\0") if "=" in kv)
    return dict(pairs)


def args_of(pid: int) -> str:
    """The command line of `pid` ("" when gone)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


def _by_command_line(args: str, root: Path) -> str:
    """The service a command line of one of the stack's servers is, "" when none."""
    r = str(root)
    patterns = (
        ("supervisord", f"supervisord -c {r}/supervisord.conf"),
        ("postgres", f"-D {r}/pg/data"),
        ("s3", f"-dir={r}/s3/"),
        ("s3", f" {r}/s3/minio"),
        ("nginx", f"-p {r}/nginx "),  # nginx writes its title over its environment
    )
    return next((name for name, mark in patterns if mark in args), "")


def _ancestors() -> set[int]:
    out, pid = set(), os.getpid()
    while pid > 1 and (st := _stat(pid)) is not None:
        out.add(pid)
        pid = st[1]
    return out


def _scan(root: Path, skip: set[int]) -> tuple[list[Proc], list[Proc]]:
    """(processes of the stack, every other live process)."""
    mine: list[Proc] = []
    other: list[Proc] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in skip:
            continue
        pid = int(entry.name)
        st, env, args = _stat(pid), _environ(pid), args_of(pid)
        if st is None or st[0] in ("Z", "X") or not args:
            continue
        service = env.get(SERVICE, "?") if env.get(MARK) == str(root) else ""
        service = service or _by_command_line(args, root)
        (mine if service else other).append(Proc(pid, st[1], st[2], service, args))
    return mine, other


def stack_processes(root: Path) -> list[Proc]:
    """Every live process of the stack under `root`, children included (nginx's workers keep
    neither its environment nor its command line); never this process or its parents."""
    mine, other = _scan(root.resolve(), _ancestors())
    service = {p.pid: p.service for p in mine}
    grew = True
    while grew:
        children = [p for p in other if p.ppid in service and p.pid not in service]
        service |= {p.pid: service[p.ppid] for p in children}
        mine += [Proc(p.pid, p.ppid, p.pgid, service[p.ppid], p.args) for p in children]
        grew = bool(children)
    return sorted(mine, key=lambda p: p.pid)


def descendants(procs: list[Proc], parent: int) -> set[int]:
    """The pids among `procs` that descend from `parent` (through any process)."""
    pids, out = {p.pid for p in procs}, set()
    for p in procs:
        pid, seen = p.ppid, 0
        while pid > 1 and seen < 64:
            if pid == parent:
                out.add(p.pid)
                break
            st = _stat(pid)
            pid, seen = (st[1] if st else 0), seen + 1
    return out & pids


def describe(procs: list[Proc]) -> str:
    """`postgres (pid 12), s3 (pid 40), ...`: one entry per service, its first process."""
    first: dict[str, int] = {}
    for p in procs:
        first.setdefault(p.service, p.pid)
    return ", ".join(f"{name} (pid {pid})" for name, pid in first.items())


def _signal(p: Proc, sig: int) -> None:
    try:
        if p.pid == p.pgid:  # a program's group (supervisord starts each one in its own)
            os.killpg(p.pgid, sig)
        else:
            os.kill(p.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _wait(procs: list[Proc], seconds: float) -> list[Proc]:
    end = time.monotonic() + seconds
    left = [p for p in procs if alive(p.pid)]
    while left and time.monotonic() < end:
        time.sleep(0.1)
        left = [p for p in left if alive(p.pid)]
    return left


def stop(procs: list[Proc], signals: dict[str, str], grace: float = 20) -> list[Proc]:
    """Stop `procs` as supervisord would: each program's stop signal to its group, then SIGKILL
    after `grace` seconds. Returns those still alive (none, unless not ours to kill)."""
    pids = {p.pid for p in procs}
    leaders = [p for p in procs if p.ppid not in pids]
    for p in leaders:
        _signal(p, getattr(signal, "SIG" + signals.get(p.service, "TERM")))
    left = _wait(procs, grace)
    for p in left:
        _signal(p, signal.SIGKILL)
    return _wait(left, 5)


def stop_signals(conf: Path) -> dict[str, str]:
    """Each program's `stopsignal` from supervisord.conf (empty when there is none)."""
    out: dict[str, str] = {}
    name = ""
    try:
        lines = conf.read_text().splitlines()
    except OSError:
        return out
    for line in lines:
        if line.startswith("[program:"):
            name = line[len("[program:") : -1]
        elif line.startswith("stopsignal=") and name:
            out[name] = line.split("=", 1)[1].strip()
    return out


def _listening_inodes() -> dict[str, int]:
    """socket inode -> port of every TCP socket in LISTEN state."""
    out: dict[str, int] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            cols = row.split()
            if len(cols) > 9 and cols[3] == "0A":
                out[cols[9]] = int(cols[1].rsplit(":", 1)[1], 16)
    return out


def port_owners(ports: set[int]) -> dict[int, set[int]]:
    """pid(s) listening on each of `ports` that has a listener (empty set: not visible to us)."""
    inodes = {i: p for i, p in _listening_inodes().items() if p in ports}
    out: dict[int, set[int]] = {p: set() for p in inodes.values()}
    if not inodes:
        return out
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fds = list((entry / "fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                link = os.readlink(fd)
            except OSError:
                continue
            if link.startswith("socket:[") and (inode := link[8:-1]) in inodes:
                out[inodes[inode]].add(int(entry.name))
    return out
