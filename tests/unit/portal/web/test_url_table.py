"""The route table: the first route whose path and method match serves; 404 for a path no
route knows, 405 for a known path asked with another method."""

from __future__ import annotations

import re

import pytest

from synapse_base_cs_url.portal.errors import MatrixError
from synapse_base_cs_url.portal.web.request import PortalRequest
from synapse_base_cs_url.portal.web.url_table import READ, Endpoint, UrlTable

CALLS: list[str] = []


def handler(name: str):  # type: ignore[no-untyped-def]
    def handle(request: PortalRequest, match: re.Match[bytes]) -> None:
        CALLS.append(name)

    return handle


TABLE = UrlTable(
    [
        Endpoint.of(re.compile(rb"/login/(?P<v>v[0-9])"), [b"POST"], handler("post")),
        Endpoint.of(re.compile(rb"/login/(?P<v>v[0-9])"), READ, handler("read")),
        Endpoint.of(b"/health", READ, handler("health")),
        Endpoint.of(b"/a.b", [b"GET"], handler("literal")),
    ]
)


@pytest.mark.parametrize(
    ("method", "path", "expected", "group"),
    [
        (b"POST", b"/login/v3", "post", "v3"),
        (b"GET", b"/login/v3", "read", "v3"),
        (b"HEAD", b"/health", "health", None),
        (b"GET", b"/a.b", "literal", None),
    ],
)
def test_the_matching_route_serves(
    method: bytes, path: bytes, expected: str, group: str | None
) -> None:
    found, match = TABLE.find(method, path)
    CALLS.clear()
    found(None, match)  # type: ignore[arg-type]
    assert [expected] == CALLS
    if group is not None:
        assert match.group("v") == group.encode()


@pytest.mark.parametrize(
    ("method", "path", "status", "words"),
    [
        (b"DELETE", b"/login/v3", 405, "DELETE is not supported on /login/v3"),
        (b"POST", b"/health", 405, "POST is not supported on /health"),
        (b"GET", b"/login/v3/extra", 404, "/login/v3/extra is not served by this login portal"),
        (b"GET", b"/aXb", 404, "is not served"),  # a literal path is not a regex
        (b"GET", b"/", 404, "is not served"),
    ],
)
def test_404_and_405_come_from_the_table(
    method: bytes, path: bytes, status: int, words: str
) -> None:
    with pytest.raises(MatrixError) as raised:
        TABLE.find(method, path)
    assert raised.value.status == status
    assert raised.value.errcode == "M_UNRECOGNIZED"
    assert words in raised.value.message
