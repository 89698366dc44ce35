"""Every registration and password reset step through both transports, the real portal in
memory: without the gateway (a ``307``) and through it (proxied). The same step reaches the
same homeserver, or gets the same error, either way: one decision (``account_steps.py``),
two deliveries."""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

import pytest

from tests.harness.requests import FakeChannel, InMemoryPortal, json_answer, portal_config

HOLDERS: dict[str, Any] = {
    "bob": "hs2",
    "twice": ["hs1", "hs2"],
    "bob@example.org": "hs2",
    "shared@example.org": ["hs1", "hs2"],
}


def holders(
    localpart: str | None = None, medium: str | None = None, address: str | None = None
) -> Any:
    """The directory (``directory.function``): who holds which name or address."""
    return HOLDERS.get(localpart or address or "")


REGISTER = "/_matrix/client/v3/register"
AVAILABLE = "/_matrix/client/v3/register/available"
VERIFY = "/_matrix/client/v3/register/email/requestToken"
RESET_TOKEN = "/_matrix/client/v3/account/password/email/requestToken"
RESET = "/_matrix/client/v3/account/password"


def verify(address: str, secret: str) -> dict[str, Any]:
    return {"email": address, "client_secret": secret, "send_attempt": 1}


def finish_reset(secret: str) -> dict[str, Any]:
    creds = {"client_secret": secret, "sid": "s"}
    return {
        "new_password": "n",
        "auth": {"type": "m.login.email.identity", "threepid_creds": creds},
    }


USER_ID_QUERY = "?" + urllib.parse.urlencode({"username": "@x:two.example"})

#: (what, method, path, body): in order (a reset's last step follows its requestToken).
STEPS: list[tuple[str, bytes, str, dict[str, Any] | None]] = [
    ("a new name, by the default", b"POST", REGISTER, {"username": "newbie"}),
    ("a new name, by a route", b"POST", REGISTER, {"username": "zed"}),
    ("a user id naming hs2", b"POST", REGISTER, {"username": "@x:two.example"}),
    ("a name held elsewhere", b"POST", REGISTER, {"username": "Bob"}),
    ("a name held twice", b"POST", REGISTER, {"username": "twice"}),
    ("nothing named", b"POST", REGISTER, {"password": "pw"}),
    ("is zed free", b"GET", AVAILABLE + "?username=zed", None),
    ("is bob free", b"GET", AVAILABLE + "?username=bob", None),
    ("no username", b"GET", AVAILABLE, None),
    ("a user id's name", b"GET", AVAILABLE + USER_ID_QUERY, None),
    ("a bound address", b"POST", VERIFY, verify("bob@example.org", "v1")),
    ("a free address", b"POST", VERIFY, verify("new@example.org", "v2")),
    ("a reset of bob's", b"POST", RESET_TOKEN, verify("BOB@example.org", "r1")),
    ("its last step", b"POST", RESET, finish_reset("r1")),
    ("an address held twice", b"POST", RESET_TOKEN, verify("shared@example.org", "r2")),
    ("a secret nobody sent", b"POST", RESET, finish_reset("r9")),
]


def portal(client_api: str) -> InMemoryPortal:
    raw = portal_config(
        client_api=client_api,
        routes=[{"match": {"localpart": "zed"}, "homeserver": "hs2"}],
        directory={"sources": ["function"], "function": f"{__name__}:holders"},
    )
    built = InMemoryPortal(raw)
    for hs in built.homeservers:
        hs.handler = lambda request: json_answer(200, {})
    return built


def outcome(
    built: InMemoryPortal, channel: FakeChannel, client_api: str, before: dict[str, int]
) -> tuple[Any, ...]:
    """Where the step went (a homeserver's name), or the error it got (``before``: how many
    requests each homeserver had received)."""
    if channel.code >= 400:
        return ("error", channel.code, channel.json()["errcode"])
    if client_api == "refuse":
        assert channel.code == 307, channel.body
        location = (channel.header(b"Location") or b"").decode()
        return (
            "to",
            next(
                n for n, hs in built.config.homeservers.items() if location.startswith(hs.base_url)
            ),
        )
    reached = [hs.name for hs in built.homeservers if len(hs.requests) > before[hs.name]]
    assert len(reached) == 1, reached
    return ("to", reached[0])


def run_all(client_api: str) -> list[tuple[Any, ...]]:
    built = portal(client_api)
    results = []
    for _, method, path, body in STEPS:
        data = json.dumps(body).encode() if body is not None else None
        before = {hs.name: len(hs.requests) for hs in built.homeservers}
        channel = built.request(method, path.encode(), data)
        results.append(outcome(built, channel, client_api, before))
    return results


EXPECTED = [
    ("to", "hs1"),
    ("to", "hs2"),
    ("to", "hs2"),
    ("error", 400, "M_USER_IN_USE"),
    ("error", 400, "M_USER_IN_USE"),
    ("to", "hs2"),  # this client's latest registration (zed's)
    ("to", "hs2"),
    ("error", 400, "M_USER_IN_USE"),
    ("to", "hs1"),
    ("to", "hs2"),
    ("error", 400, "M_THREEPID_IN_USE"),
    ("to", "hs2"),  # follows this client's registration
    ("to", "hs2"),
    ("to", "hs2"),
    ("error", 400, "M_INVALID_PARAM"),
    ("to", "hs1"),
]


@pytest.mark.parametrize("client_api", ["refuse", "proxy"])
def test_each_step_goes_where_it_should(client_api: str) -> None:
    got = run_all(client_api)
    names = [step[0] for step in STEPS]
    assert dict(zip(names, got, strict=True)) == dict(zip(names, EXPECTED, strict=True))


def test_both_transports_decide_every_step_alike() -> None:
    assert run_all("refuse") == run_all("proxy")
