"""Where a new account goes, decided once: a name held on any homeserver is refused (unique
localparts across the deployment, while the directory is on), a new one is placed by the
routes (pools spread new users), and the placement is remembered so that every step of the
registration, and the account's first login, reach that same homeserver.

Used by the portal's own registration endpoints (redirect mode: the client is sent there by
``307``) and by the gateway (which proxies the registration).
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Mapping
from typing import TypeVar

import attr

from synapse_base_cs_url.core import LoginContext, Selection
from synapse_base_cs_url.core.context import localpart_of
from synapse_base_cs_url.core.login_types import PASSWORD_TYPE
from synapse_base_cs_url.portal import errors
from synapse_base_cs_url.portal.config.homeservers import Homeserver, canonical_names
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
    held,
    user_login,
)
from synapse_base_cs_url.portal.records import RecordLimiter
from synapse_base_cs_url.portal.state.keys import record_key
from synapse_base_cs_url.portal.state.shared import guarded
from synapse_base_cs_url.portal.state.store import Store

#: What a registration step is called in its errors (``503``: "... is not possible now").
REGISTRATION = "This registration"
#: What a homeserver's ask is called in its errors.
CREATION = "Creating this account or address"
#: What a homeserver's ask gives the directory for a client address (its ``creating_on``
#: is what exempts it from the per-client limits).
ASKED_BY_HOMESERVER = "homeserver"
#: How long a placement is remembered: Synapse's user-interactive sessions last a day.
PLACEMENT_TTL = 24 * 3600.0
#: What chose the homeserver of a registration step the portal had placed before.
PLACED_ROUTE = "placed"
#: How long a client's registration is followed by the verification steps that name no user.
RECENT_CLIENT_TTL = 600.0
#: What chose the homeserver of a step of a registration session the portal saw started.
SESSION_ROUTE = "registration-session"
#: Between a session record's homeserver and the key of the name it was placed for.
SESSION_SEPARATOR = "\n"

T = TypeVar("T")


@attr.s(auto_attribs=True, frozen=True, slots=True)
class PlacementRecords:
    """The three kinds of record a registration leaves, each in a store of its own (one
    kind flooded cannot push out another)."""

    names: Store
    """A new name -> the homeserver it was placed on."""
    clients: Store
    """A client -> the homeserver of its latest registration."""
    sessions: Store
    """A user-interactive session -> its homeserver, and the name it was placed for."""


@attr.s(auto_attribs=True, frozen=True, slots=True)
class Verdict:
    """A homeserver's ask, answered."""

    refusal: str | None = None
    """The Matrix errcode of a refusal; ``None``: it may."""
    reserved: bool = False
    """This ask reserved the name or address (a change worth a line in the log; an ask
    about what is already reserved for the asker, or known to be held by it, changes
    nothing)."""


#: It may, and nothing changed (already the asker's, or nothing to check).
MAY = Verdict()


def _session_key(session: str) -> str:
    return record_key("session", session)


def _client_key(client_ip: str) -> str:
    """The key of a client's most recent registration."""
    return record_key("client", client_ip)


class Placement:
    def __init__(
        self,
        config: PortalConfig,
        login_routes: LoginRoutes,
        directory: Directory | None,
        records: PlacementRecords,
        limiter: RecordLimiter,
    ) -> None:
        """``records``: new names, clients and registration sessions -> the homeserver the
        portal placed them on; ``limiter``: nothing is written for a client past its limit."""
        self._config = config
        self._homeservers = config.homeservers
        self._canonical = canonical_names(config.homeservers)
        self._login_routes = login_routes
        self._directory = directory
        self._placements = records.names
        self._clients = records.clients
        self._sessions = records.sessions
        self._limiter = limiter

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

    async def for_registration(
        self, username: str | None, client_ip: str, session: str | None = None
    ) -> Selection[Homeserver]:
        """The homeserver a registration step goes to; ``400 M_USER_IN_USE`` if the name is
        held on any homeserver (with the directory on and unique localparts), ``503`` when
        that cannot be told.

        A step of a user-interactive session the portal saw started (``session``) goes
        where that session lives, and only for the name it was placed for: a different
        ``username`` is ``400 M_INVALID_PARAM``, and a session started without a name takes
        one only if it is free (else an attacker's session would register a name held on
        another homeserver, on this one)."""
        if session:
            followed = await self._in_session(session, username, client_ip)
            if followed is not None:
                return followed
        if not username:
            # A later step that left the name out goes where this client's registration was
            # placed; else the homeserver will make up a name, placed by what else is known.
            recent = await self._placed_at(self._clients, _client_key(client_ip))
            return recent or self._login_routes.for_address(None, client_ip)
        identifier = self.name_of(username)
        if identifier is None:
            return self._login_routes.decide(user_login(username), PASSWORD_TYPE, client_ip)
        placed = await self._placed_at(self._placements, identifier.key)
        if placed is not None:
            return placed
        selection = await self.where_new(identifier, client_ip)
        name = selection.target.name
        earlier = await self._place(identifier, name, client_ip)
        if earlier is not None:
            return earlier
        # Its e-mail or phone verification names no user (below): remember the client too.
        await self._guarded(self._clients.put(_client_key(client_ip), name, RECENT_CLIENT_TTL))
        return selection

    async def _in_session(
        self, session: str, username: str | None, client_ip: str
    ) -> Selection[Homeserver] | None:
        """Where a step of a known registration session goes (``None``: not known)."""
        record = await self._guarded(self._sessions.get(_session_key(session)))
        if record is None:
            return None
        name, _, bound = record.partition(SESSION_SEPARATOR)
        if name not in self._homeservers:
            return None
        homeserver = self._homeservers[name]
        identifier = self.name_of(username) if username else None
        if identifier is None:
            # No name (the homeserver keeps the one it has), or a full user id on a server
            # that is not the portal's, which the homeserver refuses itself.
            return Selection(homeserver, SESSION_ROUTE)
        if bound:
            if identifier.key != bound:
                raise errors.MatrixError(
                    400,
                    errors.INVALID_PARAM,
                    "This registration session was started for another username: start a "
                    "new registration for this one",
                )
            return Selection(homeserver, SESSION_ROUTE)
        # A session started without a name, naming one now: it must be free everywhere, and
        # not placed on another homeserver.
        placed = await self._placed_at(self._placements, identifier.key)
        if placed is None:
            await self.check_free(identifier, client_ip)
            placed = await self._place(identifier, name, client_ip)
        if placed is not None and placed.target.name != name:
            raise errors.MatrixError(400, errors.USER_IN_USE, "User ID already taken.")
        return Selection(homeserver, SESSION_ROUTE)

    async def follow_session(
        self, session: str, homeserver: str, username: str | None, client_ip: str
    ) -> None:
        """A registration step's answer named its user-interactive ``session``: its later
        steps go to ``homeserver``, for the name this step asked for (if any). The first
        name a session is bound to stays its name."""
        identifier = self.name_of(username) if username else None
        bound = identifier.key if identifier is not None else ""
        key = _session_key(session)
        record = await self._guarded(self._sessions.get(key))
        if record is not None:
            name, _, was_bound = record.partition(SESSION_SEPARATOR)
            # A session lives on one homeserver (never moved by an answer), and keeps the
            # first name it was bound to; only an unbound one learns its name.
            if name != homeserver or was_bound or not bound:
                return
        else:
            self._limiter.allow(client_ip)
        value = f"{homeserver}{SESSION_SEPARATOR}{bound}" if bound else homeserver
        await self._guarded(self._sessions.put(key, value, PLACEMENT_TTL))

    async def for_verification(
        self, medium: str, body: Mapping[str, object], client_ip: str
    ) -> Selection[Homeserver]:
        """``POST /register/{email,msisdn}/requestToken``: an address held on any homeserver
        is ``400 M_THREEPID_IN_USE`` (with the directory on; with
        ``request_token_inhibit_3pid_errors``, a made-up ``sid`` as Synapse answers then);
        otherwise it goes where this client's registration was placed in the last minutes
        (the step names neither the user nor the registration), else where a login by the
        address would."""
        # (A phone number's verification is not looked up: it follows the registration.)
        identifier = address_of(medium, body) if medium == EMAIL else None
        if identifier is not None and self._directory is not None:
            location = await self._directory.locate(identifier, client_ip)
            if held(location, REGISTRATION) and self._config.directory.unique_localparts:
                if self._config.request_token_inhibit_3pid_errors:
                    # As Synapse answers with that option: as if the e-mail were sent.
                    raise errors.Answered(200, {"sid": secrets.token_urlsafe(12)})
                raise errors.MatrixError(400, errors.THREEPID_IN_USE, "Email is already in use")
        placed = await self._placed_at(self._clients, _client_key(client_ip))
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
        if held(location, REGISTRATION):
            raise errors.MatrixError(400, errors.USER_IN_USE, "User ID already taken.")

    async def reserve(
        self, identifier: Identifier, homeserver: str, *, follow_routes: bool = False
    ) -> Verdict:
        """A homeserver (its module) asks before it creates an account or binds an address:
        it may (the name or address is now reserved for it, for
        ``directory.reservation_ttl``), or it is refused with a Matrix errcode (held on
        another homeserver, or reserved for one). ``503`` when the directory cannot say.

        Of several homeservers asking for the same new name at once, exactly one is told
        yes: the reservation is one set-if-absent step in the state (memory, or Redis shared
        by every replica). A name the portal placed for a registration is already reserved
        for its homeserver.

        ``follow_routes``: also refused (``M_FORBIDDEN``) when the routes would place the name
        or address on another homeserver (one that is not an ingress point of the asker's
        server name)."""
        refusal = errors.USER_IN_USE if identifier.medium == LOCALPART else errors.THREEPID_IN_USE
        # Ingress points of one server name are one homeserver: compare by the first of them.
        asker = self._canonical[homeserver]
        unique = identifier.medium != LOCALPART or self._config.directory.unique_localparts
        if unique and self._directory is not None:
            location = await self._directory.locate(
                identifier, ASKED_BY_HOMESERVER, creating_on=asker
            )
            holders = {self._canonical.get(name, name) for name in location.holders}
            if holders - {asker}:
                return Verdict(refusal)
            if asker in holders:
                return MAY  # its own: the homeserver refuses a duplicate itself
            if not location.complete:
                raise errors.directory_unavailable(CREATION, DIRECTORY_RETRY_AFTER)
        reserved = await guarded(self._placements.get(identifier.key), CREATION)
        if reserved is not None and self._canonical.get(reserved, reserved) == asker:
            return MAY  # its own (an earlier step), or placed here by the portal
        if not unique:
            return Verdict(self._routed_elsewhere(identifier, asker, follow_routes))
        if reserved is not None:
            return Verdict(refusal)
        elsewhere = self._routed_elsewhere(identifier, asker, follow_routes)
        if elsewhere is not None:
            return Verdict(elsewhere)  # (nothing reserved)
        ttl = self._config.directory.reservation_ttl
        for _ in range(2):  # once more if the reservation found expired in between
            if await guarded(self._placements.put_new(identifier.key, homeserver, ttl), CREATION):
                return Verdict(reserved=True)
            reserved = await guarded(self._placements.get(identifier.key), CREATION)
            if reserved is not None and self._canonical.get(reserved, reserved) == asker:
                return MAY
            if reserved is not None:
                break
        return Verdict(refusal)

    def _routed_elsewhere(
        self, identifier: Identifier, asker: str, follow_routes: bool
    ) -> str | None:
        """With ``follow_routes``: ``M_FORBIDDEN`` when the routes place a new
        ``identifier`` on another homeserver than ``asker``. (The routes see no client
        address here, and a round-robin pool's turn moves with each ask: follow_routes suits
        routes by name or address, as the docs say.)"""
        if not follow_routes:
            return None
        placed = self._login_routes.for_address(identifier, "").target
        return None if self._canonical[placed.name] == asker else errors.FORBIDDEN

    async def for_sign_in(
        self, identifier: Identifier, new: Selection[Homeserver], client_ip: str
    ) -> Selection[Homeserver]:
        """A single sign-on by a name or address nobody holds: where the portal placed it
        before, else on ``new`` (the routes' choice), reserved there for the account the
        homeserver's single sign-on is about to make (its module's ask then finds it
        reserved for it, as for a registration through the portal)."""
        placed = await self._placed_at(self._placements, identifier.key)
        if placed is not None:
            return placed
        # For directory.reservation_ttl only (the time a module's ask reserves a name):
        # typing a name on a page proves nothing, so it holds a name no longer than that.
        ttl = self._config.directory.reservation_ttl
        earlier = await self._place(identifier, new.target.name, client_ip, ttl)
        return earlier or Selection(new.target, PLACED_ROUTE)

    async def placed(self, identifier: Identifier) -> Homeserver | None:
        """Where the portal placed a new name (its first login finds it there, even before
        the directory has seen the account)."""
        placed = await self._placed_at(self._placements, identifier.key)
        return placed.target if placed is not None else None

    async def _place(
        self, identifier: Identifier, homeserver: str, client_ip: str, ttl: float = PLACEMENT_TTL
    ) -> Selection[Homeserver] | None:
        """Remember ``identifier`` placed on ``homeserver`` (a record: within the client's
        limit); ``None`` once done, or the placement another step of the same registration
        made meanwhile, which wins."""
        self._limiter.allow(client_ip)
        if await self._guarded(self._placements.put_new(identifier.key, homeserver, ttl)):
            return None
        return await self._placed_at(self._placements, identifier.key)

    async def _placed_at(self, store: Store, key: str) -> Selection[Homeserver] | None:
        """Where the name or client under ``key`` was placed, if still configured."""
        name = await self._guarded(store.get(key))
        if name is None or name not in self._homeservers:
            return None
        return Selection(self._homeservers[name], PLACED_ROUTE)

    async def registered(self, user_id: str, homeserver: str) -> None:
        """A registration through the portal succeeded: the directory knows at once. The
        account is *added* to what the directory knows of its name, never put in place of
        it: whatever else holds the name still does."""
        localpart = localpart_of(user_id)
        if self._directory is not None and localpart is not None:
            await self._guarded(
                self._directory.remember(Identifier(LOCALPART, localpart.lower()), homeserver)
            )

    @staticmethod
    async def _guarded(work: Awaitable[T]) -> T:
        return await guarded(work, REGISTRATION)
