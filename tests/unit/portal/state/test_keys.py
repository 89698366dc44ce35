"""Secrets become keys one way; the shared state is one protocol that Redis provides."""

from __future__ import annotations

import hashlib

from synapse_base_cs_url.portal.state import keys
from synapse_base_cs_url.portal.state.redis import RedisState
from synapse_base_cs_url.portal.state.shared import SharedState


def test_token_key_and_tag() -> None:
    token = "syt_YWxpY2U_secret_abc"
    assert keys.token_key(token) == hashlib.sha256(token.encode()).hexdigest()
    assert token not in keys.token_key(token)
    assert keys.token_tag(token) == keys.token_key(token)[:12]
    # A lone surrogate (from a badly decoded header) still has a key.
    assert len(keys.token_key("\udcff")) == 64


def test_every_prefix_is_distinct() -> None:
    prefixes = [getattr(keys, n) for n in dir(keys) if n.endswith("_PREFIX")]
    assert len(prefixes) == 8
    assert len(set(prefixes)) == len(prefixes)
    assert not any(a != b and b.startswith(a) for a in prefixes for b in prefixes)


def test_redis_provides_the_shared_state() -> None:
    # (The package's type check holds RedisState to SharedState where wiring.py hands one
    # over; this says the same at run time.)
    provided: type[SharedState] = RedisState
    assert all(
        hasattr(provided, name)
        for name in ("put", "put_new", "get", "get_extending", "take", "delete")
    )
