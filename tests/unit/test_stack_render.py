"""Rendering and quoting: supervisord's syntax, compose interpolation, SHA-512 crypt."""

from __future__ import annotations

import shutil
import subprocess
import warnings
from pathlib import Path

import pytest

from flightdelay.core.errors import UserError
from flightdelay.stack.backends import compose, supervisor
from flightdelay.stack.layout import Layout
from flightdelay.stack.sha512crypt import htpasswd_line, sha512_crypt, verify
from flightdelay.stack.spec import File, Health, Service


def test_sha512_crypt_known_answer() -> None:
    # test vector of the scheme's specification (Drepper, "Unix crypt using SHA-256 and SHA-512")
    assert sha512_crypt("Hello world!", "saltstring") == (
        "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJu"
        "esI68u4OTLiBFdcbYEdFCoEOfaS35inz1"
    )
    assert sha512_crypt("Hello world!", "saltstringsaltstring", rounds=10000) == (
        "$6$rounds=10000$saltstringsaltst$OW1/O6BYHV6BcXZu8QVeXbDWra3Oeqh0sb"
        "HbbMCVNSnCM/UrjmM0Dp8vOuZeHBy/YTBmSK6H9qs/y3RnOaw5v."
    )


@pytest.mark.parametrize("password", ["", "x", "pässwörd", "a" * 64, "b" * 100, "with space:colon"])
def test_sha512_crypt_matches_glibc(password: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        crypt = pytest.importorskip("crypt")
    for salt in ("abc", "0123456789abcdef", "./xyzXYZ"):
        assert sha512_crypt(password, salt) == crypt.crypt(password, f"$6${salt}")


def test_verify_accepts_openssls_hash_the_compose_scheme() -> None:
    if not shutil.which("openssl"):
        pytest.skip("openssl missing")
    out = subprocess.run(
        ["openssl", "passwd", "-6", "-stdin"], input="s3cr3t", capture_output=True, text=True
    ).stdout.strip()
    assert out.startswith("$6$") and verify("s3cr3t", out) and not verify("wrong", out)


def test_htpasswd_line_is_salted_and_checked() -> None:
    a, b = htpasswd_line("mlflow", "pw"), htpasswd_line("mlflow", "pw")
    assert a != b and a.startswith("mlflow:$6$") and a.endswith("\n")
    assert verify("pw", a.strip().split(":", 1)[1])
    with pytest.raises(ValueError):
        htpasswd_line("bad:user", "pw")


def test_supervisor_quoting() -> None:
    assert supervisor._env_value("50%") == '"50%%"'
    assert supervisor._env_value('say "hi"') == "'say \"hi\"'"
    with pytest.raises(UserError, match="quote"):
        supervisor._env_value("both ' and \"")
    assert supervisor._quote("daemon off;") == '"daemon off;"'
    assert supervisor._quote("plain") == "plain"


def test_supervisor_conf_restarts_a_service_when_its_files_change(tmp_path: Path) -> None:
    layout = Layout(tmp_path, tmp_path / "tools")

    def conf(content: str) -> str:
        s = Service("x", ("run",), Health(1), files=(File(str(tmp_path / "f"), content),))
        return supervisor.supervisor_conf(layout, [s], as_root=False)

    assert conf("a") != conf("b") and conf("a") == conf("a")
    assert "[program:x]" in conf("a") and "autostart=false" in conf("a")


def test_compose_strings_keep_references_and_escape_the_rest() -> None:
    assert compose._compose_str("${API_TOKEN}") == "${API_TOKEN:?set API_TOKEN in .env}"
    assert compose._compose_str("a $HOME b") == "a $$HOME b"
    assert compose._compose_str("$${X}") == "$$${X:?set X in .env}"
