"""Registration placement through the real portal (in memory): a user-interactive session
binds the name it was placed for, whichever transport carries it, and a registration's
success adds to what the directory knows of a name, never replaces it."""

from __future__ import annotations

import json
from typing import Any

import pytest
from twisted.internet import task

from synapse_base_cs_url.portal import errors
from synapse_base_cs_url.portal.config.portal_config import PortalConfig
from synapse_base_cs_url.portal.directory.identifier import LOCALPART, Identifier
from tests.harness.deferreds import settle
from tests.harness.placement import directory_over, placement_for
from tests.harness.requests import InMemoryPortal, json_answer, portal_config

REGISTER = b"/_matrix/client/v3/register"
UIA = {"session": "S-1", "flows": [{"stages": ["m.login.dummy"]}], "params": {}}


def register(portal: InMemoryPortal, body: dict[str, Any]) -> Any:
    return portal.request(b"POST", REGISTER, json.dumps(body).encode())


def gateway() -> InMemoryPortal:
    portal = InMemoryPortal(portal_config(client_api="proxy"))
    portal.hs("hs1").on(b"POST", REGISTER, json_answer(401, UIA))
    return portal


def test_a_session_started_for_one_name_cannot_register_another() -> None:
    """The review's attack: register ``zzz`` (session S on hs1), then re-post with
    ``username: bob`` and ``auth.session: S``. The gateway followed the session to hs1
    without asking whether ``bob`` was free."""
    portal = gateway()
    first = register(portal, {"username": "zzz", "password": "pw"})
    assert first.code == 401 and first.json()["session"] == "S-1"
    sent = len(portal.hs("hs1").requests)
    hijack = register(
        portal,
        {"username": "Bob", "password": "pw", "auth": {"type": "m.login.dummy", "session": "S-1"}},
    )
    assert hijack.code == 400, hijack.body
    assert hijack.json()["errcode"] == errors.INVALID_PARAM
    assert len(portal.hs("hs1").requests) == sent  # never reached the homeserver
    # The name it was started for still goes on (its name in any case).
    own = register(
        portal,
        {"username": "ZZZ", "password": "pw", "auth": {"type": "m.login.dummy", "session": "S-1"}},
    )
    assert own.code == 401 and len(portal.hs("hs1").requests) == sent + 1


def nobody(
    localpart: str | None = None, medium: str | None = None, address: str | None = None
) -> None:
    """A directory function for the config (the tests give the directory its own source)."""


CONFIG = PortalConfig.from_config(
    portal_config(
        client_api="proxy",
        directory={"sources": ["function"], "function": f"{__name__}:nobody"},
    )
)


def placement_with(holders: dict[str, str]) -> Any:
    clock = task.Clock()
    directory = directory_over(CONFIG, clock, holders)
    return placement_for(CONFIG, clock, directory), directory


def test_a_session_started_without_a_name_takes_only_a_free_one() -> None:
    placement, _ = placement_with({"bob": "hs2"})
    settle(placement.follow_session("S-2", "hs1", None, "192.0.2.1"))
    with pytest.raises(errors.MatrixError) as raised:
        settle(placement.for_registration("bob", "192.0.2.1", "S-2"))
    assert (raised.value.status, raised.value.errcode) == (400, "M_USER_IN_USE")
    free = settle(placement.for_registration("newname", "192.0.2.1", "S-2"))
    assert (free.target.name, free.rule_name) == ("hs1", "registration-session")
    # Now placed on the session's homeserver: another session cannot take it elsewhere.
    settle(placement.follow_session("S-3", "hs2", None, "192.0.2.1"))
    with pytest.raises(errors.MatrixError) as again:
        settle(placement.for_registration("newname", "192.0.2.1", "S-3"))
    assert again.value.errcode == "M_USER_IN_USE"


def test_a_session_keeps_its_homeserver_and_its_first_name() -> None:
    placement, _ = placement_with({})
    settle(placement.follow_session("S-4", "hs1", "first", "192.0.2.1"))
    settle(placement.follow_session("S-4", "hs2", "second", "192.0.2.1"))
    step = settle(placement.for_registration("first", "192.0.2.1", "S-4"))
    assert step.target.name == "hs1"
    with pytest.raises(errors.MatrixError):
        settle(placement.for_registration("second", "192.0.2.1", "S-4"))


def test_a_registration_adds_to_the_holders_it_never_replaces_them() -> None:
    """A registration's answer replaced the directory's cached holders of its name for a
    week: the real holder's logins went to the new account's homeserver."""
    placement, directory = placement_with({"bob": "hs2"})
    bob = Identifier(LOCALPART, "bob")
    assert settle(directory.locate(bob, "192.0.2.1")).holders == {"hs2"}
    settle(placement.registered("@bob:one.example", "hs1"))
    assert settle(directory.locate(bob, "192.0.2.1")).holders == {"hs1", "hs2"}
    settle(placement.registered("@new:one.example", "hs1"))
    new = Identifier(LOCALPART, "new")
    assert settle(directory.locate(new, "192.0.2.1")).holders == {"hs1"}


def test_with_inhibited_3pid_errors_a_bound_address_is_answered_as_if_sent() -> None:
    """``M_THREEPID_IN_USE`` for an address held anywhere is an oracle the homeservers may
    hide (``request_token_inhibit_3pid_errors``): the portal follows them."""
    raw = portal_config(
        directory={"sources": ["function"], "function": f"{__name__}:nobody"},
        request_token_inhibit_3pid_errors=True,
    )
    config = PortalConfig.from_config(raw)
    clock = task.Clock()
    directory = directory_over(config, clock, {"bob@example.org": "hs2"})
    placement = placement_for(config, clock, directory)
    body = {"email": "bob@example.org", "client_secret": "c", "send_attempt": 1}
    with pytest.raises(errors.Answered) as answered:
        settle(placement.for_verification("email", body, "192.0.2.1"))
    assert answered.value.status == 200 and isinstance(answered.value.payload["sid"], str)
    shown = PortalConfig.from_config({**raw, "request_token_inhibit_3pid_errors": False})
    shown_placement = placement_for(
        shown, clock, directory_over(shown, clock, {"bob@example.org": "hs2"})
    )
    with pytest.raises(errors.MatrixError) as refused:
        settle(shown_placement.for_verification("email", body, "192.0.2.1"))
    assert refused.value.errcode == "M_THREEPID_IN_USE"
