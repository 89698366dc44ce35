"""Where a login's account lives, decided once for a login, a refresh token's user and a reset's
address: the same homeserver and the same refusals whichever asks."""

from __future__ import annotations

from typing import Any

import pytest
from twisted.internet import task

from synapse_base_cs_url.core import Selection
from synapse_base_cs_url.core.login_types import PASSWORD_TYPE
from synapse_base_cs_url.portal import errors
from synapse_base_cs_url.portal.config.portal_config import PortalConfig
from synapse_base_cs_url.portal.directory.identifier import EMAIL, LOCALPART, Identifier
from synapse_base_cs_url.portal.homes import Homes
from synapse_base_cs_url.portal.login_routes import login_by
from tests.harness.deferreds import settle
from tests.harness.placement import directory_over, homes_for, placement_for
from tests.harness.requests import portal_config

CLIENT = "192.0.2.1"


def nobody(
    localpart: str | None = None, medium: str | None = None, address: str | None = None
) -> None:
    """A directory function for the config (the tests give the directory its own source)."""


CONFIG = PortalConfig.from_config(
    portal_config(
        directory={"sources": ["function"], "function": f"{__name__}:nobody"},
        routes=[{"name": "mail", "match": {"address": ".*@two\\.example"}, "homeserver": "hs2"}],
    )
)


def homes(holders: dict[str, str], config: PortalConfig = CONFIG) -> tuple[Homes, Any]:
    clock = task.Clock()
    directory = directory_over(config, clock, holders) if config.directory.enabled else None
    placement = placement_for(config, clock, directory)
    return homes_for(config, clock, placement, directory), placement


def login(found: Homes, identifier: Identifier) -> Any:
    """A password login by ``identifier``: decided at once, or its coroutine settled."""
    plan = found.routes.plan(login_by(identifier), PASSWORD_TYPE, CLIENT)
    decided = found.of_plan(plan, CLIENT)
    return decided if isinstance(decided, Selection) else settle(decided)


def refresh(found: Homes, identifier: Identifier) -> Any:
    return settle(found.of_identifier(identifier, CLIENT, what="This request"))


BOB = Identifier(LOCALPART, "bob")


def test_a_holder_is_found_by_a_login_and_a_refresh_alike() -> None:
    found, _ = homes({"bob": "hs2"})
    for ask in (login, refresh):
        home = ask(found, BOB)
        assert (home.target.name, home.rule_name) == ("hs2", "directory")


def test_a_known_holder_is_decided_at_once_without_a_coroutine() -> None:
    found, _ = homes({"bob": "hs2"})
    plan = found.routes.plan(login_by(BOB), PASSWORD_TYPE, CLIENT)
    first = found.of_plan(plan, CLIENT)
    assert not isinstance(first, Selection)  # asked the directory
    assert settle(first).target.name == "hs2"
    again = found.of_plan(plan, CLIENT)
    assert isinstance(again, Selection) and again.target.name == "hs2"


def test_a_name_placed_moments_ago_is_found_by_a_login_and_a_refresh_alike() -> None:
    """Before, a refresh token's user was looked up in the directory only: a name the portal
    had just placed went by the routes (which may have changed since) for its refresh, while
    its login went where it was placed."""
    found, placement = homes({})
    assert settle(placement.for_registration("dave", CLIENT)).target.name == "hs1"
    dave = Identifier(LOCALPART, "dave")
    for ask in (login, refresh):
        home = ask(found, dave)
        assert (home.target.name, home.rule_name) == ("hs1", "placed")


def test_nobody_holds_it_goes_by_the_routes() -> None:
    found, _ = homes({})
    mail = Identifier(EMAIL, "erin@two.example")
    for ask in (login, refresh):
        home = ask(found, mail)
        assert (home.target.name, home.rule_name) == ("hs2", "mail")


def test_several_holders_are_refused_whoever_asks() -> None:
    found, _ = homes({})
    settle(found._directory.remember(BOB, "hs1"))  # type: ignore[union-attr]
    settle(found._directory.remember(BOB, "hs2"))  # type: ignore[union-attr]
    for ask in (login, refresh):
        with pytest.raises(errors.MatrixError) as refused:
            ask(found, BOB)
        assert refused.value.status == 400


def test_without_the_directory_a_login_is_decided_at_once() -> None:
    config = PortalConfig.from_config(portal_config())
    found, _ = homes({}, config)
    plan = found.routes.plan(login_by(BOB), PASSWORD_TYPE, CLIENT)
    home = found.of_plan(plan, CLIENT)
    assert isinstance(home, Selection) and home.target.name == "hs1"
    assert refresh(found, BOB).target.name == "hs1"
