"""Secure defaults: with no `.env`, `stack up` writes one from `.env.example` with a fresh random
value for every secret (mode 0600, never readable by others, not even while it is written)."""

from __future__ import annotations

import os
import re
import secrets
from pathlib import Path

from flightdelay.stack.validate import PLACEHOLDER, SECRETS

_ASSIGN = re.compile(r"^([A-Z][A-Z0-9_]*)=(.*)$")


def fresh_env(example: str) -> tuple[str, list[str]]:
    """`example` with each secret (a SECRETS variable, or any `change-me…` value) replaced by a
    random URL-safe token, also where the old value appears in a commented line (the example's
    DATABASE_URL). Returns the text and the names of the variables given new values."""
    wanted = {s.upper() for s in SECRETS}
    replaced: dict[str, str] = {}
    names: list[str] = []
    for line in example.splitlines():
        m = _ASSIGN.match(line.strip())
        if not m:
            continue
        name, value = m.group(1), m.group(2).strip()
        if name in wanted or value.lower().startswith(PLACEHOLDER):
            replaced[value or f"\0{name}"] = secrets.token_urlsafe(24)
            names.append(name)
    out = []
    for line in example.splitlines():
        m = _ASSIGN.match(line.strip())
        if m and m.group(1) in names:
            old = m.group(2).strip()
            line = f"{m.group(1)}={replaced[old or chr(0) + m.group(1)]}"
        else:
            for old, new in replaced.items():
                if old.lower().startswith(PLACEHOLDER):
                    line = line.replace(old, new)
        out.append(line)
    return "\n".join(out) + "\n", names


def ensure_env(env: Path = Path(".env"), example: Path = Path(".env.example")) -> list[str]:
    """Write `env` from `example` with fresh secrets when `env` does not exist (and `example`
    does); returns the variables given fresh values (empty: nothing written)."""
    if env.exists() or not example.is_file():
        return []
    text, names = fresh_env(example.read_text())
    try:
        fd = os.open(env, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return []  # someone else wrote it meanwhile: theirs stands
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(env, 0o600)
    return names
