"""Where a new account goes, decided once: a name held on any homeserver is refused (unique
localparts across the deployment, while the directory is on), a new one is placed by the
routes (pools spread new users), and the placement is remembered so that every step of the
registration, and the account's first login, reach that same homeserver.

Used by the portal's own registration endpoints (redirect mode: the client is sent there by
``307``) and by the gateway (which proxies the registration).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Mapping
from typing import TypeVar

from synapse_base_cs_url.core import LoginContext, Selection
from synapse_base_cs_url.core.context import localpart_of
from synapse_base_cs_url.core.login_types import PASSWORD_TYPE
from synapse_base_cs_url.portal import errors
from synapse_base_cs_url.portal.config.homeservers import Homeserver
from synapse_base_cs_url.portal.config.portal_config import PortalConfig
from synapse_base_cs_url.portal.directory.directory import Directory
from synapse_base_cs_url.portal.directory.identifier import (
    EMAIL,
    LOCALPART,
    Identifier,
    address_of,
    identifier_of,
)
from synapse_base_cs_url.portal.login_routes import (
    DIRECTORY_RETRY_AFTER,
    LoginRoutes,
    user_login,
)
from synapse_base_cs_url.portal.state.redis import STATE_RETRY_AFTER, StateUnavailable
from synapse_base_cs_url.portal.state.store import Store

#: How long a placement is remembered: Synapse's user-interactive sessions last a day.
PLACEMENT_TTL = 24 * 3600.0
#: What chose the homeserver of a registration step the portal had placed before.
PLACED_ROUTE = "placed"
USER_IN_USE = "M_USER_IN_USE"
THREEPID_IN_USE = "M_THREEPID_IN_USE"
#: A registration's e-mail or phone verification (``requestToken``).
VERIFY_PATH = re.compile(
    rb"/_matrix/client/(?:r0|v3|unstable)/register/(email|msisdn)/requestToken"
)
#: How long a client's registration is followed by the verification steps that name no user.
RECENT_CLIENT_TTL = 600.0

T = TypeVar("T")


def _client(client_ip: str) -> Identifier:
    """The key of a client's most recent registration (by hash, as every key)."""
    return Identifier("client", client_ip)


async def guarded(work: Awaitable[T], what: str) -> T:
    """The state's answer; its being unavailable is a 503 for the client."""
    try:
        return await work
    except StateUnavailable:
        raise errors.unavailable(what, STATE_RETRY_AFTER) from None


class Placement:
    def __init__(
        self,
        config: PortalConfig,
        login_routes: LoginRoutes,
        directory: Directory | None,
        placements: Store,
    ) -> None:
        """``placements``: new names (and clients) -> the homeserver the portal placed
        them on."""
        self._config = config
        self._homeservers = config.homeservers
        self._login_routes = login_routes
        self._directory = directory
        self._placements = placements

    def name_of(self, username: str) -> Identifier | None:
        """The localpart a registration asks for (``None``: a full user id on a server
        that is not the portal's, which its homeserver judges)."""
        ctx = LoginContext.from_login_body(
            user_login(username), server_name=self._config.server_name
        )
        found = identifier_of(ctx, self._config.server_name)
        if found is None and localpart_of(username) is None and username:
            return Identifier(LOCALPART, username.lower())
        return found

    async def for_registration(self, username: str | None, client_ip: str) -> Selection[Homeserver]:
        """The homeserver a registration of ``username`` goes to; ``400 M_USER_IN_USE`` if
        the name is held on any homeserver (with the directory on and unique localparts),
        ``503`` when that cannot be told."""
        if not username:
            # A later step that left the name out goes where this client's registration was
            # placed; else the homeserver will make up a name, placed by what else is known.
            recent = await self._placed_at(_client(client_ip))
            return recent or self._login_routes.for_address(None, client_ip)
        identifier = self.name_of(username)
        if identifier is None:
            return self._login_routes.decide(user_login(username), PASSWORD_TYPE, client_ip)
        placed = await self._placed_at(identifier)
        if placed is not None:
            return placed
        selection = await self.where_new(identifier, client_ip)
        name = selection.target.name
        if not await self._guarded(self._placements.put_new(identifier.key, name, PLACEMENT_TTL)):
            # Another step of this registration was placed meanwhile: that placement wins.
            placed = await self._placed_at(identifier)
            if placed is not None:
                return placed
        # Its e-mail or phone verification names no user (below): remember the client too.
        await self._guarded(self._placements.put(_client(client_ip).key, name, RECENT_CLIENT_TTL))
        return selection

    async def for_verification(
        self, medium: str, body: Mapping[str, object], client_ip: str
    ) -> Selection[Homeserver]:
        """``POST /register/{email,msisdn}/requestToken``: an address held on any homeserver
        is ``400 M_THREEPID_IN_USE`` (with the directory on); otherwise it goes where this
        client's registration was placed in the last minutes (the step names neither the
        user nor the registration), else where a login by the address would."""
        # (A phone number's verification is not looked up: it follows the registration.)
        identifier = address_of(medium, body) if medium == EMAIL else None
        if identifier is not None and self._directory is not None:
            location = await self._directory.locate(identifier, client_ip)
            if location.holders and self._config.directory.unique_localparts:
                raise errors.MatrixError(400, THREEPID_IN_USE, "Email is already in use")
            if not location.holders and not location.complete:
                raise errors.directory_unavailable("This registration", DIRECTORY_RETRY_AFTER)
        placed = await self._placed_at(_client(client_ip))
        return placed or self._login_routes.for_address(identifier, client_ip)

    async def where_new(self, identifier: Identifier, client_ip: str) -> Selection[Homeserver]:
        """Where a new account by this name would go, once the directory found it nowhere
        (nothing is remembered: a client asking whether a name is free places nothing)."""
        await self.check_free(identifier, client_ip)
        return self._login_routes.decide(user_login(identifier.address), PASSWORD_TYPE, client_ip)

    async def check_free(self, identifier: Identifier, client_ip: str) -> None:
        """``400 M_USER_IN_USE`` when a homeserver holds ``identifier`` already."""
        directory = self._directory
        if directory is None or not self._config.directory.unique_localparts:
            return
        location = await directory.locate(identifier, client_ip)
        if location.holders:
            raise errors.MatrixError(400, USER_IN_USE, "User ID already taken.")
        if not location.complete:
            raise errors.directory_unavailable("This registration", DIRECTORY_RETRY_AFTER)

    async def where_lives(self, localpart: str, client_ip: str) -> Homeserver | None:
        """The one homeserver the directory finds ``localpart`` on (``None``: no directory,
        nobody, or several)."""
        if self._directory is None:
            return None
        location = await self._directory.locate(Identifier(LOCALPART, localpart.lower()), client_ip)
        holders = sorted(location.holders)
        return self._homeservers[holders[0]] if len(holders) == 1 else None

    async def placed(self, identifier: Identifier) -> Homeserver | None:
        """Where the portal placed a new name (its first login finds it there, even before
        the directory has seen the account)."""
        placed = await self._placed_at(identifier)
        return placed.target if placed is not None else None

    async def _placed_at(self, identifier: Identifier) -> Selection[Homeserver] | None:
        """Where ``identifier`` (a name, or a client) was placed, if it still is configured."""
        name = await self._guarded(self._placements.get(identifier.key))
        if name is None or name not in self._homeservers:
            return None
        return Selection(self._homeservers[name], PLACED_ROUTE)

    async def registered(self, user_id: str, homeserver: str) -> None:
        """A registration through the portal succeeded: the directory knows at once."""
        localpart = localpart_of(user_id)
        if self._directory is not None and localpart is not None:
            await self._guarded(
                self._directory.remember(Identifier(LOCALPART, localpart), homeserver)
            )

    @staticmethod
    async def _guarded(work: Awaitable[T]) -> T:
        return await guarded(work, "This registration")
