"""What one config builds (``wiring.py``, ``endpoints.py``), through the real process in
memory: which paths are served by whom in each setup, and what a reload keeps."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from synapse_base_cs_url.portal import errors
from synapse_base_cs_url.portal.wiring import Portal
from tests.harness.requests import InMemoryPortal, portal_config

REGISTER = b"/_matrix/client/v3/register"
SYNC = b"/_matrix/client/v3/sync"
RESET = b"/_matrix/client/v3/account/password"


def served_by(portal: Portal, method: bytes, path: bytes) -> str:
    """Which handler the URL map picks (its qualified name), or the error it answers."""
    if portal.endpoints.falls_back(method, path):
        return "gateway"
    try:
        handler, _ = portal.endpoints.find(method, path)
    except errors.MatrixError as e:
        return str(e.status)
    return handler.__qualname__.split(".")[0]


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (
            {},
            {
                (b"POST", REGISTER): "AccountRedirects",
                (b"POST", RESET): "AccountRedirects",
                (b"GET", REGISTER): "405",
                (b"GET", SYNC): "404",
                (b"GET", b"/metrics"): "404",
                (b"GET", b"/_synapse_base_cs_url/route"): "404",
            },
        ),
        (
            {"client_api": "proxy", "metrics": "public"},
            {
                (b"POST", REGISTER): "gateway",
                (b"POST", RESET): "gateway",
                (b"GET", SYNC): "gateway",
                (b"GET", b"/metrics"): "portal_endpoints",
                (b"GET", b"/_synapse_base_cs_url/route"): "portal_endpoints",
            },
        ),
    ],
)
def test_who_serves_what(
    overrides: dict[str, Any], expected: dict[tuple[bytes, bytes], str]
) -> None:
    portal = InMemoryPortal(portal_config(**overrides)).process.portal
    got = {request: served_by(portal, *request) for request in expected}
    assert got == expected


def test_a_reload_builds_anew_but_keeps_each_clients_limits(tmp_path: Path) -> None:
    """Limiters are built again (their settings may change), over the buckets the process
    keeps: a reload hands nobody a fresh burst."""
    raw = portal_config(clients={"records_burst": 1})
    built = InMemoryPortal(raw)
    body = b'{"client_secret": "s", "send_attempt": 1}'
    path = RESET + b"/email/requestToken"
    assert built.request(b"POST", path, body).code == 307
    assert built.request(b"POST", path, body).code == 429
    before = built.process.portal
    config_file = tmp_path / "portal.yaml"
    config_file.write_text(yaml.safe_dump(raw))
    assert built.process.reload(str(config_file))
    assert built.process.portal is not before
    assert built.request(b"POST", path, body).code == 429  # still spent
