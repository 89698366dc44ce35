"""The login routes: which homeserver a login goes to. A full Matrix ID whose server name is a
configured homeserver's ``server_name`` goes to that homeserver (where several entries share
one server name, as ingress points of one homeserver, the routes choose among them); anything
else by the ``routes`` of ``portal.yaml``, then ``default_homeserver``; ``m.login.token`` to
the homeserver that issued the token.

Used by the login handler, by the gateway (a registration, a refresh or a path naming a user
goes where that user's login would) and by the tools (``explain``, ``diff``), so it lives
outside the ``login/`` package."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attr

from synapse_base_cs_url.core import JsonDict, LoginContext, RuleSet, Selection
from synapse_base_cs_url.core.context import localpart_of
from synapse_base_cs_url.core.login_types import PASSWORD_TYPE, TOKEN_TYPE
from synapse_base_cs_url.portal import errors
from synapse_base_cs_url.portal.config.homeservers import Homeserver
from synapse_base_cs_url.portal.config.portal_config import PortalConfig
from synapse_base_cs_url.portal.directory.directory import Location
from synapse_base_cs_url.portal.directory.identifier import (
    LOCALPART,
    Identifier,
    identifier_of_body,
)

#: Names of what chose a homeserver when no route did: no route matched; for
#: ``m.login.token``, the portal saw which homeserver issued the token, or it did not.
DEFAULT_ROUTE = "default"
SSO_ROUTE = "sso"
SSO_DEFAULT_ROUTE = "sso-default"
#: What chose a homeserver for a user id naming its ``server_name``.
SERVER_NAME_ROUTE = "server-name"
#: What chose the homeserver that holds the account, by the account directory.
DIRECTORY_ROUTE = "directory"
#: Seconds a client is told to wait when the directory could not say.
DIRECTORY_RETRY_AFTER = 5.0


def server_names(homeservers: Mapping[str, Homeserver]) -> dict[str, tuple[str, ...]]:
    """Each configured ``server_name`` (lower-cased: a DNS name) and the homeservers that
    have it, in config order."""
    found: dict[str, tuple[str, ...]] = {}
    for hs in homeservers.values():
        if hs.server_name:
            key = hs.server_name.lower()
            found[key] = (*found.get(key, ()), hs.name)
    return found


def select_by_server_name(
    routes: RuleSet[str], ctx: LoginContext, names: Mapping[str, tuple[str, ...]]
) -> Selection[str] | None:
    """The homeserver whose ``server_name`` the login's user id names, before any route: its
    account can only live there. Among several with that name, the first route that picks one
    of them chooses; if none does, the first of them."""
    if not names or ctx.user_id is None or localpart_of(ctx.user_id) is None:
        return None
    candidates = names.get(ctx.user_id.partition(":")[2].lower())
    if not candidates:
        return None
    return choose_among(routes, ctx, candidates, SERVER_NAME_ROUTE)


def choose_among(
    routes: RuleSet[str], ctx: LoginContext, candidates: Sequence[str], route: str
) -> Selection[str]:
    """One of ``candidates`` (ingress points of one homeserver): the first route that picks
    one of them, else the first of them (chosen by ``route``)."""
    if len(candidates) > 1:
        chosen = routes.select(ctx)
        if chosen is not None and chosen.target in candidates:
            return chosen
    return Selection(candidates[0], route)


def user_login(user: str) -> JsonDict:
    """A password login body by ``user`` (a user id or a localpart), as routes see one."""
    return {"type": PASSWORD_TYPE, "identifier": {"type": "m.id.user", "user": user}}


def held(location: Location, what: str) -> bool:
    """Whether any homeserver holds the identifier (the other reading of a directory answer:
    may a new account or address take it?); the directory not able to say is ``503`` (the
    name might be taken: ``what`` is not possible now)."""
    if location.holders:
        return True
    if not location.complete:
        raise errors.directory_unavailable(what, DIRECTORY_RETRY_AFTER)
    return False


def login_by(identifier: Identifier) -> JsonDict:
    """A password login body by ``identifier``, as the routes see one."""
    if identifier.medium == LOCALPART:
        return user_login(identifier.address)
    return {
        "type": PASSWORD_TYPE,
        "identifier": {
            "type": "m.id.thirdparty",
            "medium": identifier.medium,
            "address": identifier.address,
        },
    }


@attr.s(auto_attribs=True, frozen=True, slots=True)
class LoginPlan:
    """One login's routing, worked out once (:meth:`LoginRoutes.plan`)."""

    ctx: LoginContext
    by_server_name: Selection[str] | None
    """The homeserver the login's user id names, before any route."""
    to_locate: Identifier | None
    """What the account directory must be asked first."""


class LoginRoutes:
    """The routes of ``portal.yaml`` applied to login bodies."""

    def __init__(self, config: PortalConfig) -> None:
        self._config = config
        self._homeservers = config.homeservers
        self._server_names = server_names(config.homeservers)

    def decide(
        self,
        body: Mapping[str, Any],
        login_type: str,
        client_ip: str,
        token_issuer: str | None = None,
    ) -> Selection[Homeserver]:
        """Where this login goes, and the name of the route that chose it.

        ``m.login.token`` carries no user (the token is opaque), so it cannot be routed by
        user: it goes to ``token_issuer``, the homeserver the portal saw issuing the token
        (``sso_tokens``), else to the default SSO homeserver.
        """
        if login_type == TOKEN_TYPE:
            return self.token_login(token_issuer)
        return self.route(self.plan(body, login_type, client_ip))

    def token_login(self, token_issuer: str | None) -> Selection[Homeserver]:
        """Where an ``m.login.token`` login goes: its issuer, else the default SSO homeserver."""
        if token_issuer is not None and token_issuer in self._homeservers:
            return Selection(self._homeservers[token_issuer], SSO_ROUTE)
        return Selection(self._homeservers[self._config.sso.default], SSO_DEFAULT_ROUTE)

    def plan(self, body: Mapping[str, Any], login_type: str, client_ip: str) -> LoginPlan:
        """What routing this login needs, worked out once: its context, the homeserver its
        user id names (if any), else what the account directory must be asked first
        (``None``: no directory, or nothing it can look up)."""
        ctx = LoginContext.from_login_body(
            body, client_ip=client_ip, server_name=self._config.server_name
        )
        by_name = select_by_server_name(self._config.routes, ctx, self._server_names)
        to_locate = None
        if by_name is None and self._config.directory.enabled and login_type != TOKEN_TYPE:
            to_locate = identifier_of_body(ctx, body, self._config.server_name)
        return LoginPlan(ctx, by_name, to_locate)

    def route(self, plan: LoginPlan) -> Selection[Homeserver]:
        """Where a planned login goes without the directory: the homeserver its user id
        names, else the routes, else ``default_homeserver``."""
        selection = plan.by_server_name or self._config.routes.select(plan.ctx)
        if selection is None:
            return self.default()
        return Selection(self._homeservers[selection.target], selection.rule_name)

    def to_locate(self, body: Mapping[str, Any], login_type: str) -> Identifier | None:
        """What the account directory must be asked before this login is routed (for the
        tools: a login's handler reads it from its :meth:`plan`)."""
        return self.plan(body, login_type, "").to_locate

    def holder(
        self,
        location: Location,
        identifier: Identifier,
        client_ip: str,
        *,
        what: str,
        ctx: LoginContext | None = None,
    ) -> Selection[Homeserver] | None:
        """The one reading of a directory answer, for a login, a reset or a refresh alike:
        the homeserver that holds the account; ``None`` when nobody does (the routes place
        it); a :class:`MatrixError` when several do (never guess) or when the directory
        could not say (sending it anywhere might be wrong: ``what`` is not possible now).
        Where the holder is one of several ingress points with its ``server_name``, the
        routes choose among them, as for a user id naming it (by ``ctx``, the login's; a
        login by ``identifier`` unless given)."""
        holders = sorted(location.holders)
        if len(holders) == 1:
            holder = self._homeservers[holders[0]]
            ingress = self._server_names.get((holder.server_name or "").lower(), ())
            if len(ingress) <= 1:
                return Selection(holder, DIRECTORY_ROUTE)
            if ctx is None:
                ctx = LoginContext.from_login_body(
                    login_by(identifier),
                    client_ip=client_ip,
                    server_name=self._config.server_name,
                )
            chosen = choose_among(self._config.routes, ctx, ingress, DIRECTORY_ROUTE)
            return Selection(self._homeservers[chosen.target], chosen.rule_name)
        if holders:
            full_ids = (
                [
                    f"@{identifier.address}:{self._homeservers[name].server_name}"
                    for name in holders
                    if self._homeservers[name].server_name
                ]
                if identifier.medium == LOCALPART
                else []
            )
            raise errors.ambiguous_identifier(full_ids)
        if not location.complete:
            raise errors.directory_unavailable(what, DIRECTORY_RETRY_AFTER)
        return None

    def on_portal_server(self, user_id: str) -> bool:
        """Whether ``user_id`` is on the portal's own ``server_name`` (how it writes a bare
        name)."""
        server_name = self._config.server_name
        return server_name is not None and user_id.partition(":")[2].lower() == server_name.lower()

    def homeserver(self, name: str) -> Homeserver:
        """The configured homeserver called ``name``."""
        return self._homeservers[name]

    def default(self) -> Selection[Homeserver]:
        """``default_homeserver``, chosen by no route."""
        return Selection(self._homeservers[self._config.default_homeserver], DEFAULT_ROUTE)

    def for_address(self, identifier: Identifier | None, client_ip: str) -> Selection[Homeserver]:
        """Where a login by this name, e-mail address or phone number (``None``: by nothing
        the routes can see) would go."""
        login = login_by(identifier) if identifier is not None else {"type": PASSWORD_TYPE}
        return self.decide(login, PASSWORD_TYPE, client_ip)

    def for_user(self, user: str, client_ip: str) -> Homeserver:
        """Where a password login by ``user`` (a user id or a localpart) would go."""
        return self.decide(user_login(user), PASSWORD_TYPE, client_ip).target
