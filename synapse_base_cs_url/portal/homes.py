"""Where the account a login names lives: the one decision that a login, a token refresh and a
password reset share, in this order:

1. ``m.login.token``: the homeserver that issued the token (the SSO token store);
2. a user id naming a configured ``server_name``: that homeserver (:class:`LoginRoutes`);
3. with the account directory on, the homeserver that holds the name or address (several
   holders, or a directory that could not say, are an error: never a guess);
4. a new name the portal placed moments ago (:class:`Placement`): where it was placed;
5. the routes, else ``default_homeserver``.

A login answered from what this process has at hand (no directory, or the memory cache knows
the holder) is decided at once, with no coroutine (a redirect costs no more than without the
directory); otherwise the decision is a coroutine.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any

from synapse_base_cs_url.core import Selection
from synapse_base_cs_url.core.login_types import PASSWORD_TYPE
from synapse_base_cs_url.portal import errors
from synapse_base_cs_url.portal.config.homeservers import Homeserver
from synapse_base_cs_url.portal.directory.directory import Directory
from synapse_base_cs_url.portal.directory.identifier import LOCALPART, Identifier
from synapse_base_cs_url.portal.login_routes import LoginPlan, LoginRoutes, login_by
from synapse_base_cs_url.portal.placement import PLACED_ROUTE, Placement
from synapse_base_cs_url.portal.sso_tokens import SsoTokenStore
from synapse_base_cs_url.portal.state.shared import guarded

#: What a login is called in its errors (``503``: "... is not possible right now").
LOGIN = "This login"
#: What a token login is called in its errors.
TOKEN_LOGIN = "A token login"
#: What a single sign-on by a name typed on the portal's page is called in its errors.
SIGN_IN = "This sign-in"
#: What chose the homeserver of a new account signing in with a shared identity provider
#: when the routes placed it on a homeserver that does not offer that provider.
SSO_OFFERED_ROUTE = "sso-offered"

Home = Selection[Homeserver]
#: A decision made at once, or still to be awaited.
Decided = Home | Coroutine[Any, Any, Home]


class Homes:
    """Where each login's account lives (the homeserver, and what chose it)."""

    def __init__(
        self,
        routes: LoginRoutes,
        sso_tokens: SsoTokenStore,
        directory: Directory | None,
        placement: Placement | None,
    ) -> None:
        self.routes = routes
        self._sso_tokens = sso_tokens
        self._directory = directory
        self._placement = placement

    def of_plan(self, plan: LoginPlan, client_ip: str, *, what: str = LOGIN) -> Decided:
        """Where a planned login goes: at once when nothing must be asked (or the memory
        cache knows the holder), else a coroutine asking the directory."""
        identifier = plan.to_locate if self._directory is not None else None
        if identifier is None or self._directory is None:
            return self.routes.route(plan)
        known = self._directory.peek(identifier)
        if known is None:
            return self._located(plan, identifier, client_ip, what)
        holder = self.routes.holder(known, identifier, client_ip, what=what, ctx=plan.ctx)
        return holder or self.routes.route(plan)

    async def of_token(self, token: str) -> Home:
        """Where an ``m.login.token`` login goes (the token stays single use: it is taken)."""
        issuer = await guarded(self._sso_tokens.take(token), TOKEN_LOGIN)
        return self.routes.token_login(issuer)

    async def of_identifier(self, identifier: Identifier, client_ip: str, *, what: str) -> Home:
        """Where a login by ``identifier`` goes (a refresh token's user, a reset's address)."""
        plan = self.routes.plan(login_by(identifier), PASSWORD_TYPE, client_ip)
        decided = self.of_plan(plan, client_ip, what=what)
        return decided if isinstance(decided, Selection) else await decided

    async def of_sign_in(self, plan: LoginPlan, client_ip: str, offered: Sequence[str]) -> Home:
        """Where a single sign-on goes, by the name or address typed on the portal's page,
        among the homeservers that offer its identity provider (``offered``): the
        homeserver the user id names, else the one that holds the account (several, or a
        directory that could not say, are the errors of a login), else a new account
        placed by the routes (among ``offered``: the routes' choice if it is one of them,
        else the first) and reserved there as a registration's name is. An existing account
        on a homeserver that does not offer the provider is ``403``: never a second account
        elsewhere. A Matrix ID on a server that is not this deployment's is ``400``."""
        user_id = plan.ctx.user_id
        elsewhere = user_id is not None and not self.routes.on_portal_server(user_id)
        if elsewhere and plan.by_server_name is None:
            raise errors.MatrixError(
                400,
                errors.INVALID_PARAM,
                "That Matrix ID is not on a homeserver of this deployment",
            )
        identifier = plan.to_locate if self._directory is not None else None
        if identifier is None:
            routed = self.routes.route(plan)
            if plan.by_server_name is not None:
                return self._offering(routed, offered)
            return self._among(routed, offered)
        placement = self._placement

        async def new_account() -> Home:
            new = self._among(self.routes.route(plan), offered)
            if placement is None:
                return new
            return await placement.for_sign_in(identifier, new, client_ip)

        home = await self._located(plan, identifier, client_ip, SIGN_IN, new_account)
        return self._offering(home, offered)

    def _among(self, home: Home, offered: Sequence[str]) -> Home:
        """A new account's homeserver, among those offering the provider."""
        if home.target.name in offered:
            return home
        return Selection(self.routes.homeserver(offered[0]), SSO_OFFERED_ROUTE)

    @staticmethod
    def _offering(home: Home, offered: Sequence[str]) -> Home:
        """An existing account's homeserver, which must offer the provider."""
        if home.target.name not in offered:
            raise errors.MatrixError(
                403,
                errors.FORBIDDEN,
                "This account's homeserver does not offer sign-in with this identity provider",
            )
        return home

    async def _located(
        self,
        plan: LoginPlan,
        identifier: Identifier,
        client_ip: str,
        what: str,
        new_account: Callable[[], Awaitable[Home]] | None = None,
    ) -> Home:
        """The directory's holder of ``identifier``; nobody: ``new_account`` (a sign-in
        places it), else a name placed moments ago, else the routes."""
        assert self._directory is not None
        location = await self._directory.locate(identifier, client_ip)
        holder = self.routes.holder(location, identifier, client_ip, what=what, ctx=plan.ctx)
        if holder is not None:
            return holder
        if new_account is not None:
            return await new_account()
        if self._placement is not None and identifier.medium == LOCALPART:
            # Registered through the portal moments ago: where it was placed. (Redis down:
            # nothing placed can be seen; the routes, which placed it, decide.)
            try:
                placed = await self._placement.placed(identifier)
            except errors.MatrixError:
                placed = None
            if placed is not None:
                return Selection(placed, PLACED_ROUTE)
        return self.routes.route(plan)
