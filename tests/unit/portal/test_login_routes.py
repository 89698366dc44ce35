"""The login routes' first step: a full Matrix ID naming a configured homeserver's
``server_name`` goes there before any route (its account can live nowhere else)."""

from __future__ import annotations

from typing import Any

import pytest

from synapse_base_cs_url.portal.config.portal_config import PortalConfig
from synapse_base_cs_url.portal.login_routes import SERVER_NAME_ROUTE, LoginRoutes

HOMESERVERS: dict[str, Any] = {
    "hs1": {"base_url": "https://hs1.example.com", "server_name": "hs1.example.com"},
    "hs2": {"base_url": "https://hs2.example.com", "server_name": "hs2.example.com"},
    # Two ingress points of one homeserver: one server name.
    "big-a": {"base_url": "https://a.big.example.com", "server_name": "big.example.com"},
    "big-b": {"base_url": "https://b.big.example.com", "server_name": "big.example.com"},
}


def routes_for(routes: list[dict[str, Any]], **extra: Any) -> LoginRoutes:
    raw = {
        "public_baseurl": "https://matrix.example.com",
        "homeservers": HOMESERVERS,
        "routes": routes,
        "default_homeserver": "hs1",
        **extra,
    }
    return LoginRoutes(PortalConfig.from_config(raw))


def decide(routes: LoginRoutes, user: str) -> tuple[str, str]:
    body = {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": user}}
    chosen = routes.decide(body, "m.login.password", "192.0.2.1")
    return chosen.target.name, chosen.rule_name


EVERYONE_TO_HS1 = [{"name": "everyone", "match": {"localpart": ".*"}, "homeserver": "hs1"}]


def test_a_user_id_naming_a_server_name_goes_there_before_any_route() -> None:
    routes = routes_for(EVERYONE_TO_HS1)
    assert decide(routes, "@bob:hs2.example.com") == ("hs2", SERVER_NAME_ROUTE)
    # Server names are DNS names: case does not matter.
    assert decide(routes, "@bob:HS2.Example.com") == ("hs2", SERVER_NAME_ROUTE)
    # A server name nobody has: the routes, as before.
    assert decide(routes, "@bob:elsewhere.example.org") == ("hs1", "everyone")
    # A bare localpart names no server (without the portal's server_name).
    assert decide(routes, "bob") == ("hs1", "everyone")


def test_without_routes_a_declared_server_name_still_routes() -> None:
    assert decide(routes_for([]), "@bob:hs2.example.com") == ("hs2", SERVER_NAME_ROUTE)
    assert decide(routes_for([]), "@bob:hs3.example.com") == ("hs1", "default")


def test_a_bare_localpart_qualified_with_the_portals_server_name_goes_to_that_homeserver() -> None:
    routes = routes_for([], server_name="hs2.example.com")
    assert decide(routes, "bob") == ("hs2", SERVER_NAME_ROUTE)


def test_among_homeservers_sharing_a_server_name_the_routes_choose() -> None:
    pool = [{"name": "big", "pool": ["big-a", "big-b"], "strategy": "hash"}]
    routes = routes_for(pool)
    chosen = {decide(routes, f"@user{i}:big.example.com") for i in range(40)}
    assert {name for name, _ in chosen} == {"big-a", "big-b"}
    assert {rule for _, rule in chosen} == {"big"}
    # A route that picks a homeserver without that server name does not count: the first
    # homeserver with it.
    assert decide(routes_for(EVERYONE_TO_HS1), "@x:big.example.com") == (
        "big-a",
        SERVER_NAME_ROUTE,
    )


def test_an_account_the_directory_finds_on_one_of_several_ingress_points() -> None:
    from synapse_base_cs_url.portal.directory.directory import Location
    from synapse_base_cs_url.portal.directory.identifier import LOCALPART, Identifier

    pool = [{"name": "big", "pool": ["big-a", "big-b"], "strategy": "hash"}]
    routes = routes_for(pool, server_name="portal.example.com")
    chosen = set()
    for i in range(40):
        body = {"identifier": {"type": "m.id.user", "user": f"user{i}"}}
        where = routes.holder(
            Location(frozenset({"big-a"}), True, "homeservers"),
            Identifier(LOCALPART, f"user{i}"),
            "192.0.2.1",
            what="This login",
            ctx=routes.plan(body, "m.login.password", "192.0.2.1").ctx,
        )
        assert where is not None
        chosen.add(where.target.name)
    assert chosen == {"big-a", "big-b"}  # the routes choose among them, as for a user id


def test_one_reading_of_a_directory_answer() -> None:
    """A login, a reset and a refresh read an answer the same way: one holder, nobody,
    several (never guessed), or a directory that could not say (never guessed either)."""
    from synapse_base_cs_url.portal import errors
    from synapse_base_cs_url.portal.directory.directory import Location
    from synapse_base_cs_url.portal.directory.identifier import EMAIL, LOCALPART, Identifier
    from synapse_base_cs_url.portal.login_routes import held

    routes = routes_for([], server_name="portal.example.com")
    bob = Identifier(LOCALPART, "bob")
    found = routes.holder(Location(frozenset({"hs2"}), False, "h"), bob, "ip", what="x")
    assert found is not None and found.target.name == "hs2"  # found counts, even incomplete
    assert routes.holder(Location(frozenset(), True, "h"), bob, "ip", what="x") is None
    with pytest.raises(errors.MatrixError) as several:
        routes.holder(Location(frozenset({"hs1", "hs2"}), True, "h"), bob, "ip", what="x")
    assert several.value.status == 400
    assert "@bob:hs1.example.com" in several.value.message
    with pytest.raises(errors.MatrixError) as silent:
        routes.holder(Location(frozenset(), False, "h"), bob, "ip", what="This password reset")
    assert silent.value.status == 503 and "This password reset" in silent.value.message
    mail = Identifier(EMAIL, "bob@example.org")
    assert held(Location(frozenset({"big-a"}), False, "h"), "x")
    assert not held(Location(frozenset(), True, "h"), "x")
    with pytest.raises(errors.MatrixError) as unknown:
        held(Location(frozenset(), False, "h"), "This registration")
    assert unknown.value.status == 503 and mail.address not in unknown.value.message
