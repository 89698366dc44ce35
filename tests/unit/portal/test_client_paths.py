"""The one table of what the gateway must know of an endpoint (``client_paths.py``)."""

from __future__ import annotations

import pytest

from synapse_base_cs_url.portal.client_paths import Learns, gateway_endpoint, routed_by_body


@pytest.mark.parametrize(
    ("method", "path", "by_body", "learns"),
    [
        (b"POST", b"/_matrix/client/v3/register", True, Learns.REGISTRATION),
        (b"POST", b"/_matrix/client/r0/register/email/requestToken", True, Learns.NOTHING),
        (b"POST", b"/_matrix/client/v3/account/password", True, Learns.NOTHING),
        (b"POST", b"/_matrix/client/v3/account/password/msisdn/requestToken", True, Learns.NOTHING),
        (b"POST", b"/_matrix/client/v1/refresh", True, Learns.TOKENS),
        (b"POST", b"/_matrix/client/v3/logout/all", False, Learns.FORGETS),
        (b"POST", b"/_matrix/client/v3/account/deactivate", False, Learns.FORGETS),
    ],
)
def test_the_endpoints_the_gateway_treats_apart(
    method: bytes, path: bytes, by_body: bool, learns: Learns
) -> None:
    endpoint = gateway_endpoint(method, path)
    assert endpoint is not None
    assert (endpoint.by_body, endpoint.learns) == (by_body, learns)
    assert routed_by_body(method, path) is by_body


@pytest.mark.parametrize(
    ("method", "path"),
    [
        (b"GET", b"/_matrix/client/v3/register"),  # not a registration
        (b"POST", b"/_matrix/media/v3/upload"),  # streamed, routed by its token
        (b"GET", b"/_matrix/client/v3/sync"),
        (b"POST", b"/_matrix/client/v3/register/available"),
    ],
)
def test_everything_else_is_ordinary(method: bytes, path: bytes) -> None:
    assert gateway_endpoint(method, path) is None
    assert not routed_by_body(method, path)


def test_what_answers_are_read_whole() -> None:
    register = gateway_endpoint(b"POST", b"/_matrix/client/v3/register")
    refresh = gateway_endpoint(b"POST", b"/_matrix/client/v3/refresh")
    logout = gateway_endpoint(b"POST", b"/_matrix/client/v3/logout")
    assert register is not None and refresh is not None and logout is not None
    assert [register.reads_answer(s) for s in (200, 401, 403)] == [True, True, False]
    assert [refresh.reads_answer(s) for s in (200, 401)] == [True, False]
    assert not logout.reads_answer(200)  # streamed; its token forgotten after
