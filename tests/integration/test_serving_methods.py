"""A method a route does not take gets 405 in the one error shape, and its `Allow` names every
method the path takes (Starlette's own 405 named only the first route's: `OPTIONS /model`
said `Allow: GET` although `POST /model` exists)."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from flightdelay.serving.app import create_app
from tests.helpers.serving import settings_for


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("OPTIONS", "/model", "GET, POST"),
        ("DELETE", "/model", "GET, POST"),
        ("PUT", "/model/reload", "POST"),
        ("GET", "/predict", "POST"),
        ("POST", "/health", "GET"),
    ],
)
def test_405_allow_lists_every_method_of_the_path(
    tmp_path: Path, method: str, path: str, allow: str
) -> None:
    with TestClient(create_app(settings_for(tmp_path))) as client:
        r = client.request(method, path)
    assert r.status_code == 405, r.text
    assert r.headers["allow"] == allow
    assert r.json() == {"detail": "Method Not Allowed"}
