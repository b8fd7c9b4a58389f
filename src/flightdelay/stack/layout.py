"""Where the native stack keeps state, config, logs and its tools (all under STACK_DIR)."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from flightdelay.core.config import StackSettings

VENV_BIN = Path(sys.executable).parent


@dataclass(frozen=True)
class Layout:
    """Folders of the native stack: one per service under `root`, tools in their own venvs."""

    root: Path
    tools: Path

    @classmethod
    def of(cls, settings: StackSettings) -> Layout:
        root = settings.stack_dir.resolve()
        return cls(root, (settings.stack_tools_dir or root / "tools").resolve())

    def dir(self, service: str) -> Path:
        """The folder of one service (`pg`, `s3`, `nginx`, `pgadmin`, ...)."""
        return self.root / service

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def tmp(self) -> Path:
        return self.root / "tmp"

    @property
    def pg_data(self) -> Path:
        return self.root / "pg" / "data"

    @property
    def supervisor_conf(self) -> Path:
        return self.root / "supervisord.conf"


@dataclass(frozen=True)
class Tools:
    """The binaries the native services run. `expected` names them without installing anything;
    :func:`flightdelay.stack.provision.ensure_tools` installs what is missing."""

    venv_bin: Path
    nginx: Path
    pgadmin: Path
    s3_kind: str  # "seaweedfs" or "minio" (a `minio` binary found on PATH)
    s3: Path
    prometheus: Path = Path("/usr/bin/prometheus")  # Debian's package

    @classmethod
    def expected(cls, layout: Layout, minio: Path | None = None) -> Tools:
        return cls(
            venv_bin=VENV_BIN,
            nginx=Path("/usr/sbin/nginx"),
            pgadmin=layout.tools / "pgadmin" / "bin" / "pgadmin4",
            s3_kind="minio" if minio else "seaweedfs",
            s3=minio or layout.tools / "seaweedfs" / "bin" / "weed",
        )
