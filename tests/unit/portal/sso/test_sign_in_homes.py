"""Where a single sign-on by what was typed on the portal's page goes
(``Homes.of_sign_in``), with the account directory over a fixed table of holders: the
holder, several holders, nobody (placed by the routes, and reserved), a directory that cannot
say, and homeservers that do not offer the provider."""

from __future__ import annotations

from typing import Any

import pytest
from twisted.internet import task

from synapse_base_cs_url.core.login_types import PASSWORD_TYPE
from synapse_base_cs_url.portal import errors
from synapse_base_cs_url.portal.config.portal_config import PortalConfig
from synapse_base_cs_url.portal.directory.identifier import EMAIL, LOCALPART, Identifier
from synapse_base_cs_url.portal.homes import SSO_OFFERED_ROUTE, Homes
from synapse_base_cs_url.portal.login_routes import DIRECTORY_ROUTE, login_by
from synapse_base_cs_url.portal.placement import PLACED_ROUTE, Placement
from tests.harness.deferreds import settle
from tests.harness.placement import directory_over, homes_for, placement_for

OFFERED = ("hs1", "hs2")
HOLDERS = {
    "dave": "hs2",
    "dave@corp.example": "hs2",
    "frank": "hs1,hs2",
    "olga": "hs3",
    "gina": "?",
}


def nobody(
    localpart: str | None = None, medium: str | None = None, address: str | None = None
) -> None:
    """A directory function for the config (the tests give the directory its own source)."""


def build(**directory: Any) -> tuple[Homes, Placement]:
    raw: dict[str, Any] = {
        "public_baseurl": "https://portal.example",
        "homeservers": {
            name: {"base_url": f"https://{name}.example", "server_name": f"{name}.example"}
            for name in ("hs1", "hs2", "hs3")
        },
        "routes": [
            {"name": "b-names", "match": {"localpart": "b.*"}, "homeserver": "hs2"},
            {"name": "c-names", "match": {"localpart": "c.*"}, "homeserver": "hs3"},
        ],
        "default_homeserver": "hs1",
        "directory": {"sources": ["function"], "function": f"{__name__}:nobody", **directory},
    }
    config = PortalConfig.from_config(raw)
    clock = task.Clock()
    directory = directory_over(config, clock, HOLDERS)
    placement = placement_for(config, clock, directory)
    return homes_for(config, clock, placement, directory), placement


def sign_in(homes: Homes, identifier: Identifier) -> Any:
    plan = homes.routes.plan(login_by(identifier), PASSWORD_TYPE, "10.0.0.1")
    return settle(homes.of_sign_in(plan, "10.0.0.1", OFFERED))


def name(localpart: str) -> Identifier:
    return Identifier(LOCALPART, localpart)


def test_an_account_goes_to_its_holder_by_name_or_address() -> None:
    homes, _ = build()
    for identifier in (name("dave"), Identifier(EMAIL, "dave@corp.example")):
        home = sign_in(homes, identifier)
        assert (home.target.name, home.rule_name) == ("hs2", DIRECTORY_ROUTE)


def test_a_new_name_is_placed_by_the_routes_among_the_offering_homeservers_and_reserved() -> None:
    homes, placement = build()
    bea = sign_in(homes, name("bea"))
    assert (bea.target.name, bea.rule_name) == ("hs2", PLACED_ROUTE)
    assert settle(placement.placed(name("bea"))).name == "hs2"
    # Reserved for hs2: another homeserver asking to create it is refused.
    assert settle(placement.reserve(name("bea"), "hs1")).refusal == errors.USER_IN_USE
    assert settle(placement.reserve(name("bea"), "hs2")).refusal is None
    # The routes would place carl on hs3, which does not offer the provider: the first that does.
    carl = sign_in(homes, name("carl"))
    assert carl.target.name == "hs1"
    assert settle(placement.placed(name("carl"))).name == "hs1"
    # Asked again, the same answer (its placement).
    assert sign_in(homes, name("carl")).target.name == "hs1"


def test_without_the_directory_the_routes_place_among_the_offering_homeservers() -> None:
    homes, _ = build()
    no_directory = Homes(homes.routes, homes._sso_tokens, None, None)
    carl = sign_in(no_directory, name("carl"))
    assert (carl.target.name, carl.rule_name) == ("hs1", SSO_OFFERED_ROUTE)
    assert sign_in(no_directory, name("bea")).rule_name == "b-names"


def test_several_holders_are_asked_for_the_full_id_never_guessed() -> None:
    homes, _ = build()
    with pytest.raises(errors.AmbiguousIdentifier) as raised:
        sign_in(homes, name("frank"))
    assert raised.value.full_ids == ("@frank:hs1.example", "@frank:hs2.example")


def test_a_directory_that_cannot_say_sends_nobody_anywhere() -> None:
    homes, placement = build()
    with pytest.raises(errors.MatrixError) as raised:
        sign_in(homes, name("gina"))
    assert raised.value.status == 503
    assert settle(placement.placed(name("gina"))) is None


def test_an_account_on_a_homeserver_without_the_provider_is_refused() -> None:
    homes, _ = build()
    with pytest.raises(errors.MatrixError) as raised:
        sign_in(homes, name("olga"))
    assert (raised.value.status, raised.value.errcode) == (403, errors.FORBIDDEN)


def test_the_directorys_per_client_limit_applies() -> None:
    homes, _ = build(burst=2)
    sign_in(homes, name("anna"))
    sign_in(homes, name("anton"))
    with pytest.raises(errors.MatrixError) as raised:
        sign_in(homes, name("arno"))
    assert raised.value.status == 429
