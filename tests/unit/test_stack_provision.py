"""Provisioning steps that need no service: the TLS certificate, htpasswd, spec files on disk."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from cryptography import x509

from flightdelay.stack import provision
from flightdelay.stack.sha512crypt import verify
from flightdelay.stack.spec import File


def test_tls_certificate_names_localhost_and_is_made_once(tmp_path: Path) -> None:
    crt, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    provision.tls_certificate(crt, key)
    cert = x509.load_pem_x509_certificate(crt.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    assert (cert.not_valid_after_utc - cert.not_valid_before_utc).days >= 825
    assert key.stat().st_mode & 0o777 == 0o600
    before = crt.read_bytes()
    provision.tls_certificate(crt, key)
    assert crt.read_bytes() == before


def test_htpasswd_is_kept_while_it_matches_and_rewritten_when_not(tmp_path: Path) -> None:
    path = tmp_path / "htpasswd"
    provision.htpasswd(path, "mlflow", "one")
    first = path.read_text()
    provision.htpasswd(path, "mlflow", "one")
    assert path.read_text() == first  # stable: nothing to reload
    provision.htpasswd(path, "mlflow", "two")
    user, hashed = path.read_text().strip().split(":", 1)
    assert user == "mlflow" and verify("two", hashed) and not verify("one", hashed)


def test_write_files_sets_modes_and_leaves_unchanged_files_alone(tmp_path: Path) -> None:
    secret = tmp_path / "a/secret.json"
    provision.write_files([File(str(secret), "{}", 0o600)])
    assert secret.read_text() == "{}" and secret.stat().st_mode & 0o777 == 0o600
    inode = secret.stat().st_ino
    provision.write_files([File(str(secret), "{}", 0o600)])
    assert secret.stat().st_ino == inode
    provision.write_files([File(str(secret), '{"a": 1}', 0o600)])
    assert secret.read_text() == '{"a": 1}' and not list(tmp_path.glob("a/*.tmp"))
