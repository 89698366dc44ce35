"""Which homeserver a client-server API request goes to.

1. With an access token: the homeserver the token map names (learnt when a login,
   registration or token refresh passed through the portal), else the one that knows it when
   asked (``resolve``); nobody: ``401 M_UNKNOWN_TOKEN``.
2. Without one: a registration or password reset step as :mod:`account_steps` decides it
   (the same decision as without the gateway); ``POST /refresh`` by its refresh token
   (learnt, else the user a Synapse refresh token names, where the directory finds that
   user, else the login routes); media downloads and thumbnails by the server name in their
   path (``homeservers.<name>.server_name``); a path naming a user id by that user, with
   the login routes; anything else: ``default_homeserver``.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Awaitable, Mapping
from typing import TypeVar

import attr

from synapse_base_cs_url.core.context import localpart_of
from synapse_base_cs_url.core.json_dict import json_object
from synapse_base_cs_url.portal import errors
from synapse_base_cs_url.portal.account_steps import (
    AccountSteps,
    StepRequest,
    gateway_reason,
    step_for,
)
from synapse_base_cs_url.portal.client_paths import (
    MEDIA_PATH,
    REFRESH_PATH,
)
from synapse_base_cs_url.portal.config.homeservers import Homeserver
from synapse_base_cs_url.portal.config.portal_config import PortalConfig
from synapse_base_cs_url.portal.directory.identifier import LOCALPART, Identifier
from synapse_base_cs_url.portal.gateway.access_tokens import synapse_refresh_localpart
from synapse_base_cs_url.portal.gateway.resolver import Resolver
from synapse_base_cs_url.portal.gateway.token_map import TokenMap
from synapse_base_cs_url.portal.homes import Homes
from synapse_base_cs_url.portal.placement import Placement
from synapse_base_cs_url.portal.state.keys import (
    REFRESH_PREFIX,
    TOKEN_PREFIX,
    token_key,
)
from synapse_base_cs_url.portal.state.shared import guarded
from synapse_base_cs_url.portal.web.request import access_token

#: A path segment that is a user id (percent-encoded or not).
USER_ID_SEGMENT = re.compile(r"/(@[^/:]+:[^/]+)")

T = TypeVar("T")
#: What a request through the gateway is called in its errors (``503``: "... right now").
REQUEST = "This request"


@attr.s(auto_attribs=True, frozen=True, slots=True)
class Destination:
    """Where a request goes and why (for the log line)."""

    homeserver: Homeserver
    route: str
    """What chose it (the metrics' ``route`` label): ``token``, ``resolved``, ``register``,
    ``registration-session``, ``password-reset``, ``refresh-token``, ``refresh-user``,
    ``media``, ``user-id`` or ``default``."""
    key: str | None = None
    """The hash of the request's access token, if it had one."""


class Destinations:
    def __init__(
        self,
        config: PortalConfig,
        tokens: TokenMap,
        resolver: Resolver,
        *,
        placement: Placement,
        steps: AccountSteps,
        homes: Homes,
    ) -> None:
        """``steps``: where each registration and password reset step goes (decided as
        without the gateway); ``placement``: what a registration's answer teaches;
        ``homes``: where a login by a user goes (a refresh token's user, a path's user id)."""
        self._config = config
        self._placement = placement
        self._steps = steps
        self._homeservers = config.homeservers
        self._tokens = tokens
        self.resolver = resolver
        self._homes = homes
        self._by_server_name = {
            hs.server_name: hs for hs in config.homeservers.values() if hs.server_name
        }

    async def route(
        self,
        method: bytes,
        path: bytes,
        query: bytes,
        *,
        authorization: bytes | None,
        client_ip: str,
        body: bytes | None = None,
    ) -> Destination:
        if has_dot_segment(path):
            raise errors.MatrixError(
                400, errors.UNRECOGNIZED, "Paths with '.' or '..' segments are not passed on"
            )
        token = access_token(authorization, query)
        if token is not None:
            return await self._by_token(token, client_ip)
        account_step = step_for(method, path)
        if account_step is not None:
            step, match = account_step
            request = StepRequest(match, query, _json_object(body or b""), client_ip)
            selection = await self._steps.decide(step, request)
            return Destination(selection.target, gateway_reason(step, request, selection))
        if method == b"POST" and REFRESH_PATH.fullmatch(path):
            refreshed = await self._refresh(body or b"", client_ip)
            if refreshed is not None:
                return refreshed
        media = MEDIA_PATH.fullmatch(path)
        if media is not None:
            server = urllib.parse.unquote(media.group(1).decode("utf-8", "replace"))
            hs = self._by_server_name.get(server)
            if hs is not None:
                return Destination(hs, "media")
        user_id = _user_id_in(path)
        if user_id is not None:
            return Destination(self._by_user(user_id, client_ip), "user-id")
        return self._default()

    async def learn_answer(self, answer: Mapping[str, object], homeserver: str) -> None:
        """Remember the tokens of a successful login, registration or refresh answer: its
        access token, and its refresh token (by which the next refresh is routed)."""
        for prefix, field in ((TOKEN_PREFIX, "access_token"), (REFRESH_PREFIX, "refresh_token")):
            secret = answer.get(field)
            if isinstance(secret, str) and secret:
                key = prefix + token_key(secret)
                ttl = self._config.gateway.token_ttl
                await _guarded(self._tokens.remember(key, homeserver, ttl))

    async def forget(self, key: str) -> None:
        """Forget a token (by its hash): it logged out, or its account was deactivated."""
        await _guarded(self._tokens.forget(TOKEN_PREFIX + key))

    async def follow_registration(
        self, session: str, homeserver: str, username: str | None, client_ip: str
    ) -> None:
        """A registration step was answered with its user-interactive ``session``: the
        session's later steps go to ``homeserver``, for the name this step asked for."""
        await self._placement.follow_session(session, homeserver, username, client_ip)

    async def _by_token(self, token: str, client_ip: str) -> Destination:
        key = token_key(token)
        ttl = self._config.gateway.token_ttl
        name = await _guarded(self._tokens.lookup(TOKEN_PREFIX + key, ttl))
        if name is not None and name in self._homeservers:
            return Destination(self._homeservers[name], "token", key)
        name = await self.resolver.resolve(token, key, client_ip)
        if name is None:
            raise errors.unknown_token()
        await _guarded(self._tokens.remember(TOKEN_PREFIX + key, name, ttl))
        return Destination(self._homeservers[name], "resolved", key)

    async def registered(self, answer: Mapping[str, object], homeserver: str) -> None:
        """A registration succeeded: its account is found at once by the directory."""
        user_id = answer.get("user_id")
        if isinstance(user_id, str):
            await self._placement.registered(user_id, homeserver)

    async def _refresh(self, body: bytes, client_ip: str) -> Destination | None:
        token = _json_object(body).get("refresh_token")
        if not isinstance(token, str) or not token:
            return None
        name = await _guarded(
            self._tokens.lookup(REFRESH_PREFIX + token_key(token), self._config.gateway.token_ttl)
        )
        if name is not None and name in self._homeservers:
            return Destination(self._homeservers[name], "refresh-token")
        # Not seen (the login was redirected, or the state expired): a Synapse refresh token
        # names its user, who goes where their login would.
        localpart = synapse_refresh_localpart(token)
        if localpart is None:
            return None
        user = Identifier(LOCALPART, localpart.lower())
        home = await self._homes.of_identifier(user, client_ip, what=REQUEST)
        return Destination(home.target, "refresh-user")

    def _by_user(self, user: str, client_ip: str) -> Homeserver:
        """Where a login by ``user`` (a user id or a localpart) would go."""
        return self._homes.routes.for_user(user, client_ip)

    def _default(self) -> Destination:
        return Destination(self._homeservers[self._config.default_homeserver], "default")


async def _guarded(work: Awaitable[T]) -> T:
    """The token map's answer (a 503 when the shared state cannot say)."""
    return await guarded(work, REQUEST)


def _json_object(body: bytes) -> Mapping[str, object]:
    """A request body's JSON object; empty if it is anything else (left to the homeserver
    to refuse)."""
    return json_object(body) or {}


def has_dot_segment(path: bytes) -> bool:
    """Whether ``path`` has a ``.`` or ``..`` segment, as sent or percent-encoded (``%2e``,
    ``..%2f``): a proxy or a homeserver that normalises paths would take the request
    somewhere else than the portal routed it (``/_matrix/client/../../_synapse/admin``)."""
    if b"." not in path and b"%" not in path:
        return False
    decoded = urllib.parse.unquote_to_bytes(path).replace(b"\\", b"/")
    return any(segment in (b".", b"..") for segment in decoded.split(b"/"))


def _user_id_in(path: bytes) -> str | None:
    text = urllib.parse.unquote(path.decode("utf-8", "replace"))
    match = USER_ID_SEGMENT.search(text)
    if match is None or localpart_of(match.group(1)) is None:
        return None
    return match.group(1)
