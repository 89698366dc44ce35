"""How upstream failures become Matrix errors, and where the client's address comes from."""

from __future__ import annotations

from typing import Any

import pytest
from twisted.internet import defer, error
from twisted.internet.address import IPv4Address
from twisted.web.http_headers import Headers

from synapse_base_cs_url.portal.config import Homeserver
from synapse_base_cs_url.portal.errors import MatrixError
from synapse_base_cs_url.portal.web.request import client_address
from synapse_base_cs_url.portal.http1_client import UpstreamClosed, UpstreamProtocolError
from synapse_base_cs_url.portal.upstream import _as_matrix_error

HS = Homeserver(name="hs2", base_url="https://hs2.example.com", proxy_url="http://10.1.0.2:8008")


@pytest.mark.parametrize(
    ("exc", "status", "words"),
    [
        (error.ConnectionRefusedError(), 502, "is unreachable: ConnectionRefusedError"),
        (error.DNSLookupError("no such host"), 502, "is unreachable: DNSLookupError"),
        (error.TimeoutError(), 504, "did not accept a connection within 5s"),
        (UpstreamClosed("connection closed before answering", got_bytes=False), 502, "closed"),
        (UpstreamProtocolError("bad status line"), 502, "sent an invalid answer: bad status"),
        (RuntimeError("surprise"), 502, "is unreachable: RuntimeError: surprise"),
    ],
)
def test_upstream_failures(exc: Exception, status: int, words: str) -> None:
    mapped = _as_matrix_error(HS, exc, connect_timeout=5.0)
    assert isinstance(mapped, MatrixError)
    assert (mapped.status, mapped.errcode) == (status, "M_UNKNOWN")
    assert "Homeserver 'hs2'" in mapped.message
    assert words in mapped.message


def test_cancellation_is_not_an_error_for_the_client() -> None:
    cancelled = defer.CancelledError()
    assert _as_matrix_error(HS, cancelled, connect_timeout=5.0) is cancelled


class FakeRequest:
    def __init__(self, headers: dict[bytes, list[bytes]], secure: bool = False) -> None:
        self.requestHeaders = Headers(headers)
        self._secure = secure

    def getClientAddress(self) -> Any:
        return IPv4Address("TCP", "10.0.0.5", 40000)

    def isSecure(self) -> bool:
        return self._secure

    def getHeader(self, name: bytes) -> bytes | None:
        values = self.requestHeaders.getRawHeaders(name)
        return values[-1] if values else None


def test_client_address_from_the_connection_ignores_forwarding_headers() -> None:
    request = FakeRequest({b"X-Forwarded-For": [b"203.0.113.7"], b"X-Forwarded-Proto": [b"https"]})
    assert client_address(request, x_forwarded=False) == ("10.0.0.5", "http")
    assert client_address(FakeRequest({}, secure=True), x_forwarded=False) == ("10.0.0.5", "https")


def test_client_address_behind_a_trusted_reverse_proxy() -> None:
    request = FakeRequest(
        {b"X-Forwarded-For": [b"198.51.100.7, 10.0.0.1"], b"X-Forwarded-Proto": [b"HTTPS"]}
    )
    assert client_address(request, x_forwarded=True) == ("198.51.100.7", "https")
    assert client_address(FakeRequest({}), x_forwarded=True) == ("10.0.0.5", "http")
