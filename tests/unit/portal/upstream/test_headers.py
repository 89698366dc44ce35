"""The headers the portal forwards: a client cannot name the address it is recorded under,
whichever of the common client-address headers the homeserver's own proxy believes."""

from __future__ import annotations

import pytest
from twisted.web.http_headers import Headers

from synapse_base_cs_url.portal.upstream.headers import CLIENT_ADDRESS_HEADERS, forward_headers

CLAIMS = [
    b"X-Real-IP",
    b"True-Client-IP",
    b"CF-Connecting-IP",
    b"X-Client-IP",
    b"X-Cluster-Client-IP",
    b"Client-IP",
    b"X-Originating-IP",
    b"Fastly-Client-IP",
    b"X-Forwarded",
    b"Forwarded-For",
    b"X-Forwarded-For",
    b"X-Forwarded-Host",
    b"Forwarded",
    b"X-ProxyUser-IP",
    b"X-Remote-IP",
    b"X-Remote-Addr",
    b"Remote-Addr",
]


def forwarded(incoming: Headers, **kwargs: bool) -> dict[bytes, list[bytes]]:
    out = forward_headers(incoming, client_ip="198.51.100.2", scheme="https", **kwargs)
    names = [name.lower() for name, _ in out]
    assert len(names) == len(set(names)), names  # each header once
    return {name.lower(): values for name, values in out}


@pytest.mark.parametrize("keep_encoding", [False, True])
@pytest.mark.parametrize("name", CLAIMS)
def test_a_client_address_claim_is_dropped(name: bytes, keep_encoding: bool) -> None:
    """Whatever the client sends under any casing; the portal's own address headers only."""
    for spelling in (name, name.lower(), name.upper()):
        out = forwarded(
            Headers({spelling: [b"6.6.6.6"], b"User-Agent": [b"Element/1.0"]}),
            keep_encoding=keep_encoding,
        )
        assert out == {
            b"user-agent": [b"Element/1.0"],
            b"x-forwarded-for": [b"198.51.100.2"],
            b"x-forwarded-proto": [b"https"],
            b"x-real-ip": [b"198.51.100.2"],
        }, spelling


def test_the_list_names_every_claim_tested() -> None:
    """Lower case, no duplicates: what ``forward_headers`` compares against."""
    assert all(name == name.lower() for name in CLIENT_ADDRESS_HEADERS)
    named = {n.lower() for n in CLAIMS} - {b"forwarded"}
    assert {n for n in named if not n.startswith(b"x-forwarded-")} <= CLIENT_ADDRESS_HEADERS


def test_headers_named_alike_are_kept() -> None:
    out = forwarded(Headers({b"X-Real-IP-Note": [b"1"], b"X-Client-Id": [b"app"]}))
    assert out[b"x-real-ip-note"] == [b"1"]
    assert out[b"x-client-id"] == [b"app"]
