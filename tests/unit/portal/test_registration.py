"""Registration and password reset without the gateway (``registration.py``): what the
redirect handlers send where, through the real portal in memory."""

from __future__ import annotations

import pytest

from tests.harness.requests import InMemoryPortal, portal_config

PASSWORD = b"/_matrix/client/v3/account/password"


@pytest.mark.parametrize(
    ("query", "headers"),
    [
        (b"?access_token=syt_YWxpY2U_abcdefghijklmnopqrst_0abcde", ()),
        (b"", ((b"Authorization", b"Bearer syt_YWxpY2U_abcdefghijklmnopqrst_0abcde"),)),
    ],
)
def test_a_signed_in_password_change_is_not_sent_to_another_homeserver(
    query: bytes, headers: tuple[tuple[bytes, bytes], ...]
) -> None:
    """A query-string token was routed as if there were none: ``307`` to the default
    homeserver, where the client re-sent its token and current password."""
    portal = InMemoryPortal(portal_config())
    body = b'{"new_password": "n", "auth": {"type": "m.login.password", "password": "old"}}'
    channel = portal.request(b"POST", PASSWORD + query, body, headers=headers)
    assert channel.code == 404, channel.body
    assert channel.json()["errcode"] == "M_UNRECOGNIZED"
    assert channel.header(b"Location") is None
