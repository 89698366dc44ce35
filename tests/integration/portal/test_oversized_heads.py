"""A real portal process, a raw socket: a request line over the portal's limit is answered
``414`` with a Matrix JSON body and ``Connection: close``, then closed (Twisted closed it
without a word), also when the client sends far more than the limit before it reads."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import pytest

from synapse_base_cs_url._dev.throwaway_portal import PortalProcess
from tests.harness.metrics import total

# The portal's own processes and connections, whatever answers behind it: the same with
# either Synapse, so run once (against the newest).
pytestmark = [pytest.mark.integration, pytest.mark.once]

CALLBACK = "/_synapse_base_cs_url/sso/return"
UNREADABLE = "synapse_base_cs_url_portal_unreadable_requests_total"


@pytest.fixture(scope="module")
def portal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PortalProcess]:
    """No homeserver needs to answer: the portal refuses these requests before routing."""
    config = {
        "public_baseurl": "https://portal.example.com",
        "homeservers": {"hs1": {"base_url": "http://127.0.0.1:9"}},
        "default_homeserver": "hs1",
    }
    process = PortalProcess(config, tmp_path_factory.mktemp("portal-heads")).start()
    yield process
    process.stop()


def exchange(portal: PortalProcess, request: bytes) -> bytes:
    """Send all of ``request``, then read until the portal closes."""
    with socket.create_connection((portal.host, portal.port), timeout=10) as sock:
        sock.sendall(request)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    return received


def parse(answer: bytes) -> tuple[int, dict[str, str], object]:
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v for k, v in (line.split(": ", 1) for line in lines)}
    assert int(headers["content-length"]) == len(body)
    return int(status_line.split(" ")[1]), headers, json.loads(body)


@pytest.mark.parametrize("length", [17_000, 1_000_000])
def test_a_request_line_over_the_limit_is_answered_414(portal: PortalProcess, length: int) -> None:
    before = total(portal.url, UNREADABLE, status="414")
    target = f"{CALLBACK}?hs=hs1&exp=1&sig=x&to=https%3A%2F%2Fapp.example%2F%3Fq%3D"
    target += "x" * (length - len(target))
    request = f"GET {target} HTTP/1.1\r\nHost: portal.example.com\r\n\r\n".encode()
    status, headers, body = parse(exchange(portal, request))
    assert status == 414
    assert headers["connection"] == "close"
    assert headers["content-type"] == "application/json"
    assert body == {
        "errcode": "M_TOO_LARGE",
        "error": "The request line is longer than 16384 bytes",
    }
    assert total(portal.url, UNREADABLE, status="414") == before + 1


def test_headers_over_the_limit_are_answered_431(portal: PortalProcess) -> None:
    request = b"GET /_matrix/client/versions HTTP/1.1\r\nCookie: " + b"c" * 20_000 + b"\r\n\r\n"
    status, headers, body = parse(exchange(portal, request))
    assert (status, headers["connection"]) == (431, "close")
    assert isinstance(body, dict) and body["errcode"] == "M_TOO_LARGE"
