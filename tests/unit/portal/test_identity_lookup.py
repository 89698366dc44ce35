"""The identity lookup Tchap's clients ask before login: which homeserver an address belongs
to (its holder, else where a login by it would go), limited, with CORS, errors as Matrix
JSON; its internal twin only for a homeserver's secret."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from synapse_base_cs_url.portal import errors
from tests.harness.requests import InMemoryPortal, portal_config

INFO = b"/_matrix/identity/api/v1/info"
INTERNAL = b"/_matrix/identity/api/v1/internal-info"
#: Who holds what, for the directory function below.
HOLDERS = {"held@example.org": "hs1"}
SECRET = "0123456789abcdef0123456789abcdef"


def where(
    localpart: str | None = None, medium: str | None = None, address: str | None = None
) -> str | None:
    return HOLDERS.get(address or "")


def portal(tmp_path: Path, **overrides: Any) -> InMemoryPortal:
    settings: dict[str, Any] = {
        "identity_info": True,
        "directory": {"sources": ["function"], "function": f"{__name__}:where", "burst": 3},
        "routes": [{"name": "two", "match": {"address": r".*@two\.example"}, "homeserver": "hs2"}],
    }
    raw = portal_config(**{**settings, **overrides})
    secret = tmp_path / "hs2.secret"
    secret.write_text(SECRET)
    raw["homeservers"]["hs2"]["placement_secret_file"] = str(secret)
    return InMemoryPortal(raw)


def info(portal: InMemoryPortal, path: bytes = INFO, **query: str) -> Any:
    return portal.request(b"GET", path + b"?" + urlencode(query).encode())


def test_the_holder_else_where_a_login_would_go(tmp_path: Path) -> None:
    p = portal(tmp_path)
    held = info(p, medium="email", address="Held@Example.org")
    assert held.code == 200 and held.json() == {"hs": "one.example"}
    placed = info(p, medium="email", address="new@two.example")
    assert placed.json() == {"hs": "two.example"}
    assert info(p, medium="msisdn", address="+33612345678").json() == {"hs": "one.example"}
    assert held.headers.getRawHeaders(b"access-control-allow-origin") == [b"*"]


@pytest.mark.parametrize(
    ("query", "errcode"),
    [
        ({}, errors.MISSING_PARAM),
        ({"medium": "email"}, errors.MISSING_PARAM),
        ({"medium": "carrier-pigeon", "address": "x"}, errors.INVALID_PARAM),
        ({"medium": "email", "address": "not-an-address"}, errors.INVALID_PARAM),
    ],
)
def test_bad_input_is_a_matrix_error(tmp_path: Path, query: dict[str, str], errcode: str) -> None:
    answer = info(portal(tmp_path), **query)
    assert answer.code == 400 and answer.json()["errcode"] == errcode


def test_lookups_count_against_the_clients_directory_limits(tmp_path: Path) -> None:
    p = portal(tmp_path)
    codes = [info(p, medium="email", address=f"u{i}@example.org").code for i in range(5)]
    assert codes[:3] == [200, 200, 200] and codes[3] == 429
    limited = info(p, medium="email", address="u9@example.org")
    assert limited.json()["errcode"] == errors.LIMIT_EXCEEDED
    assert limited.headers.getRawHeaders(b"retry-after")
    # An answer already known costs nothing.
    assert info(p, medium="email", address="u0@example.org").code == 200


def test_the_internal_lookup_is_only_for_a_homeserver(tmp_path: Path) -> None:
    p = portal(tmp_path)
    assert info(p, INTERNAL, medium="email", address="held@example.org").code == 401
    answer = p.request(
        b"GET",
        INTERNAL + b"?medium=email&address=held%40example.org",
        headers=[(b"Authorization", f"Bearer {SECRET}".encode())],
    )
    assert answer.json() == {"hs": "one.example", "requires_invite": False, "invited": False}


def test_off_unless_configured(tmp_path: Path) -> None:
    p = portal(tmp_path, identity_info=False)
    assert info(p, medium="email", address="held@example.org").code == 404
