"""portal.yaml's serving keys: workers, shutdown_grace, connections, state, SSO signing
keys; every mistake is one message naming the key."""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import pytest

from synapse_base_cs_url.portal.config.portal_config import PortalConfig
from synapse_base_cs_url.portal.config.state import Backend, RedisAddress

BASE: dict[str, Any] = {
    "public_baseurl": "https://portal.example.com",
    "homeservers": {"hs1": {"base_url": "https://hs1.example.com"}},
    "default_homeserver": "hs1",
}


def config(**overrides: Any) -> PortalConfig:
    raw = copy.deepcopy(BASE)
    raw.update(overrides)
    return PortalConfig.from_config(raw)


@pytest.fixture
def key(tmp_path: Path) -> str:
    path = tmp_path / "signing.key"
    path.write_bytes(os.urandom(32))
    return str(path)


def test_defaults_are_todays_single_process() -> None:
    c = config()
    assert (c.workers, c.shutdown_grace) == (1, 10.0)
    assert (c.connections.max, c.connections.header_timeout) == (1000, 10.0)
    assert (c.connections.body_timeout, c.connections.idle_timeout) == (30.0, 60.0)
    assert c.state.backend is Backend.MEMORY
    assert c.sso.signing_keys is None
    assert not c.shared


@pytest.mark.parametrize(
    ("url", "address"),
    [
        (
            "redis://127.0.0.1:6380/2",
            RedisAddress(scheme="redis", host="127.0.0.1", port=6380, db=2),
        ),
        ("redis://redis", RedisAddress(scheme="redis", host="redis", port=6379, db=0)),
        (
            "rediss://:s%40cret@redis.example.com/1",
            RedisAddress(scheme="rediss", host="redis.example.com", db=1, password="s@cret"),
        ),
        ("unix:///run/redis.sock?db=3", RedisAddress(scheme="unix", path="/run/redis.sock", db=3)),
    ],
)
def test_redis_urls(url: str, address: RedisAddress, key: str) -> None:
    c = config(state={"backend": "redis", "url": url})
    assert c.state.redis == address
    assert c.shared
    assert "s@cret" not in c.state.redis.shown()
    assert address.password is None or "s@cret" not in repr(c.state.redis)


def test_keys_are_read_and_rotation_keeps_the_old_ones(key: str, tmp_path: Path) -> None:
    old = tmp_path / "old.key"
    old.write_bytes(b"o" * 40)
    c = config(
        workers=2,
        state={"backend": "redis", "url": "redis://r/0"},
        sso={"signing_key_file": key, "previous_signing_key_files": [str(old)]},
    )
    assert c.sso.signing_keys is not None
    assert c.sso.signing_keys.current == Path(key).read_bytes()
    assert c.sso.signing_keys.previous == (b"o" * 40,)
    assert (c.workers, c.shared) == (2, True)


ERRORS = [
    ({"workers": 0}, "workers: must be a positive whole number, not 0"),
    ({"shutdown_grace": -1}, "shutdown_grace: must not be negative"),
    ({"connections": {"max": 0}}, "connections.max: must be a positive whole number"),
    ({"connections": {"header_timeout": 0}}, "connections.header_timeout: must be more than 0"),
    ({"connections": {"nope": 1}}, "connections: unknown key 'nope'"),
    ({"connections": 5}, "connections: must be a mapping"),
    (
        {"state": {"backend": "etcd"}},
        "state.backend: unknown backend 'etcd'; allowed: memory, redis",
    ),
    ({"state": {"backend": "redis"}}, "state.url: required with backend redis"),
    ({"state": {"url": "redis://r"}}, "state.url: only used with backend redis"),
    ({"state": {"backend": "redis", "url": "http://r"}}, "state.url: scheme 'http' is not one of"),
    (
        {"state": {"backend": "redis", "url": "redis://r/x"}},
        "state.url: the database must be a number",
    ),
    (
        {"state": {"backend": "redis", "url": "unix://"}},
        "state.url: a unix:// URL needs a socket path",
    ),
    (
        {"state": {"backend": "redis", "url": "redis://r", "command_timeout": float("inf")}},
        "state.command_timeout",
    ),
    (
        {"state": {"backend": "redis", "url": "redis://r"}, "sso": {}},
        "sso.signing_key_file: required when state.backend is redis",
    ),
    ({"workers": 2, "sso": {}}, "sso.signing_key_file: required when workers > 1"),
    (
        {"sso": {"previous_signing_key_files": ["/x"]}},
        "sso.previous_signing_key_files: only used with sso.signing_key_file",
    ),
    (
        {"sso": {"signing_key_file": "/no/such/file"}},
        "sso.signing_key_file: cannot read /no/such/file",
    ),
]


@pytest.mark.parametrize(("overrides", "message"), ERRORS)
def test_errors_name_the_key(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as raised:
        config(**overrides)
    assert message in str(raised.value)


def test_a_short_key_and_sso_with_workers_on_memory(key: str, tmp_path: Path) -> None:
    short = tmp_path / "short.key"
    short.write_bytes(b"x" * 16)
    with pytest.raises(ValueError, match="holds 16 bytes; a signing key needs at least 32"):
        config(sso={"signing_key_file": str(short)})
    with pytest.raises(ValueError, match=r"state\.backend: workers: 2 with single sign-on needs"):
        config(workers=2, sso={"signing_key_file": key})


def test_several_processes_without_an_sso_section_serve_no_sso() -> None:
    assert config().sso_served
    shared = config(workers=2)
    assert not shared.sso_served  # each process would sign and remember on its own


def test_a_redis_user_needs_a_password() -> None:
    with pytest.raises(ValueError, match="a user name without a password"):
        config(state={"backend": "redis", "url": "redis://portal@r/0"})
