"""Access tokens (where a request carries one, Synapse's checksum) and the token map."""

from __future__ import annotations

import base64
import binascii

import pytest
from twisted.internet import task

from synapse_base_cs_url.portal.gateway.access_tokens import (
    synapse_refresh_localpart,
    synapse_token_malformed,
)
from synapse_base_cs_url.portal.gateway.token_map import TokenMap
from synapse_base_cs_url.portal.state.keys import token_key, token_tag
from synapse_base_cs_url.portal.state.shared import StateUnavailable
from synapse_base_cs_url.portal.web.request import access_token
from tests.harness.deferreds import settle

BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def synapse_token(localpart_b64: str, random: str, kind: str = "syt") -> str:
    """As Synapse's AuthHandler.generate_access_token (``syt``) and
    generate_refresh_token (``syr``) make one."""
    base = f"{kind}_{localpart_b64}_{random}"
    num, digits = binascii.crc32(base.encode("ascii")), ""
    while num:
        num, rem = divmod(num, 62)
        digits = BASE62[rem] + digits
    return f"{base}_{digits.rjust(6, '0')}"


@pytest.mark.parametrize(
    ("authorization", "query", "token"),
    [
        (b"Bearer syt_abc", b"", "syt_abc"),
        (b"bearer  syt_abc ", b"", "syt_abc"),
        (None, b"access_token=syt_q&x=1", "syt_q"),
        (b"Basic dXNlcg==", b"access_token=syt_q", "syt_q"),
        (b"Bearer syt_h", b"access_token=syt_q", "syt_h"),
        (None, b"x=1", None),
        (b"Bearer ", b"", None),
    ],
)
def test_where_the_token_is(authorization: bytes | None, query: bytes, token: str | None) -> None:
    assert access_token(authorization, query) == token


def test_synapse_checksums() -> None:
    good = synapse_token("YWxpY2U", "abcdefghijABCDEFGHIJ")
    assert not synapse_token_malformed(good)
    assert synapse_token_malformed(good[:-1] + ("0" if good[-1] != "0" else "1"))
    assert synapse_token_malformed("syt_only_three")
    assert synapse_token_malformed("syt_a_b_c_d")
    assert synapse_token_malformed("syt_\u00e9_x_000000")
    # Other shapes are not judged: older Synapse tokens, other servers.
    assert not synapse_token_malformed("MDAxOGxvY2F0aW9uIGhz")
    assert not synapse_token_malformed("made-up")


def test_keys_and_tags_never_contain_the_token() -> None:
    token = "syt_secret_value_000000"
    assert token not in token_key(token)
    assert token_tag(token) == token_key(token)[:12]


def test_the_memory_map_slides_and_is_bounded() -> None:
    clock = task.Clock()
    tokens = TokenMap.build(2, clock)
    settle(tokens.remember("a", "hs1", 10))
    clock.advance(8)
    assert settle(tokens.lookup("a", 10)) == "hs1"  # used: good for 10 more seconds
    clock.advance(8)
    assert settle(tokens.lookup("a", 10)) == "hs1"
    clock.advance(11)
    assert settle(tokens.lookup("a", 10)) is None
    for key in ("b", "c", "d"):
        settle(tokens.remember(key, "hs2", 10))
    assert len(tokens) == 2
    assert settle(tokens.lookup("b", 10)) is None  # the least recently used went first
    settle(tokens.forget("d"))
    assert settle(tokens.lookup("d", 10)) is None
    assert settle(tokens.lookup("c", 10)) == "hs2"


@pytest.mark.parametrize("localpart", ["alice", "h2_bob", "é.ü-x", "a"])
def test_a_synapse_refresh_token_names_its_user(localpart: str) -> None:
    encoded = base64.b64encode(localpart.encode()).decode().rstrip("=")  # unpaddedbase64
    token = synapse_token(encoded, "abcdefghijABCDEFGHIJ", kind="syr")
    assert synapse_refresh_localpart(token) == localpart


def test_only_well_formed_refresh_tokens_name_a_user() -> None:
    good = synapse_token("YWxpY2U", "abcdefghijABCDEFGHIJ", kind="syr")
    assert synapse_refresh_localpart(good[:-1] + ("0" if good[-1] != "0" else "1")) is None
    assert synapse_refresh_localpart(synapse_token("YWxpY2U", "x")) is None  # an access token
    assert synapse_refresh_localpart(synapse_token("!!!!", "x", kind="syr")) is None
    assert synapse_refresh_localpart(synapse_token("", "x", kind="syr")) is None
    assert synapse_refresh_localpart("syr_only_three") is None
    assert synapse_refresh_localpart("opaque-refresh-token") is None


class SwitchableShared:
    """A shared state that answers from a dict, or (``down``) raises as Redis down does."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}
        self.down = False

    def _check(self) -> None:
        if self.down:
            raise StateUnavailable("Redis at 127.0.0.1:6379 did not answer within 2s")

    async def put(self, key: str, value: str, ttl_seconds: int) -> None:
        self._check()
        self.values[key] = value

    async def get_extending(self, key: str, ttl_seconds: int) -> str | None:
        self._check()
        return self.values.get(key)

    async def delete(self, key: str) -> None:
        self._check()
        self.values.pop(key, None)


def test_with_the_shared_state_down_tokens_are_kept_in_this_process() -> None:
    """The shared map is a cache: its outage is a miss (the token is then resolved by
    asking the homeservers), what is learnt meanwhile is kept here, never a 503."""
    clock = task.Clock()
    shared = SwitchableShared()
    tokens = TokenMap.build(10, clock, shared)  # type: ignore[arg-type]
    settle(tokens.remember("known", "hs1", 60))
    assert shared.values == {"known": "hs1"}
    shared.down = True
    assert settle(tokens.lookup("known", 60)) is None  # not here: resolved again
    settle(tokens.remember("new", "hs2", 60))
    assert settle(tokens.lookup("new", 60)) == "hs2"
    settle(tokens.forget("new"))  # a logout while Redis is down
    assert settle(tokens.lookup("new", 60)) is None
    shared.down = False
    assert settle(tokens.lookup("known", 60)) == "hs1"  # the shared map again
    assert settle(tokens.lookup("new", 60)) is None


def test_a_memory_token_map_has_no_fallback_to_hide_behind() -> None:
    tokens = TokenMap.build(10, task.Clock())
    assert tokens.fallback is None
