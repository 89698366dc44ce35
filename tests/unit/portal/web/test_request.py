"""The portal's request class on Twisted's dummy channel: the client's address, with and
without a trusted reverse proxy in front."""

from __future__ import annotations

from twisted.web.test.requesthelper import DummyChannel

from synapse_base_cs_url.portal.web.request import PortalRequest, client_address

PEER = "192.168.1.1"  # DummyChannel's peer address


def request(headers: dict[bytes, list[bytes]], secure: bool = False) -> PortalRequest:
    channel = DummyChannel()
    if secure:
        channel.transport = DummyChannel.SSL()
    req = PortalRequest(channel)
    for name, values in headers.items():
        req.requestHeaders.setRawHeaders(name, values)
    return req


def test_client_address_from_the_connection_ignores_forwarding_headers() -> None:
    forwarded = request({b"X-Forwarded-For": [b"203.0.113.7"], b"X-Forwarded-Proto": [b"https"]})
    assert client_address(forwarded, x_forwarded=False) == (PEER, "http")
    assert client_address(request({}, secure=True), x_forwarded=False) == (PEER, "https")


def test_client_address_behind_a_trusted_reverse_proxy() -> None:
    forwarded = request(
        {b"X-Forwarded-For": [b"198.51.100.7, 10.0.0.1"], b"X-Forwarded-Proto": [b"HTTPS"]}
    )
    assert client_address(forwarded, x_forwarded=True) == ("198.51.100.7", "https")
    assert client_address(request({}), x_forwarded=True) == (PEER, "http")
