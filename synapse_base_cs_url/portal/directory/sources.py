"""Who the directory asks where an account lives. Each source answers with the homeservers
that hold the account, and names those it could not hear from: a homeserver down must never
look like "nobody holds it", or its users would be placed elsewhere."""

from __future__ import annotations

import json
import logging
import urllib.parse
from collections.abc import Mapping, Sequence
from typing import Protocol

import attr
from twisted.internet import defer

from synapse_base_cs_url.core import dotted_path
from synapse_base_cs_url.core.json_dict import json_object
from synapse_base_cs_url.core.placement_protocol import HOLDS_PATH, bearer, identifier_body
from synapse_base_cs_url.portal import errors
from synapse_base_cs_url.portal.config.directory import DirectoryFunction
from synapse_base_cs_url.portal.config.homeservers import Homeserver, canonical_names
from synapse_base_cs_url.portal.directory.identifier import LOCALPART, Identifier
from synapse_base_cs_url.portal.upstream.client import Upstream, UpstreamResponse

logger = logging.getLogger("synapse_base_cs_url.portal.directory")

USER_PATH = "/_synapse/admin/v2/users/{user_id}"
THREEPID_PATH = "/_synapse/admin/v1/threepid/{medium}/users/{address}"


@attr.s(auto_attribs=True, frozen=True, slots=True)
class SourceAnswer:
    holders: frozenset[str] = frozenset()
    """The homeservers (by name) that hold the account."""
    unanswered: tuple[str, ...] = ()
    """Who could not say (homeserver names, or the source's own name)."""


class Source(Protocol):
    name: str
    bounds_itself: bool
    """Whether the source answers within ``directory.timeout`` itself (else the directory
    bounds it)."""

    async def ask(self, identifier: Identifier, leave_out: str | None = None) -> SourceAnswer:
        """Who holds ``identifier``; a source that asks each homeserver need not ask
        ``leave_out`` (a homeserver that asks about itself), one that answers for all of
        them at once may ignore it."""
        ...


def _quote(text: str) -> str:
    return urllib.parse.quote(text, safe="")


class HomeserverSource:
    """Every homeserver, asked at once. One that runs the module with a placement secret is
    asked by the module (``POST`` the identifier in the body, with the secret: no access log
    holds the address, no admin token is needed); any other by Synapse's admin API: ``GET
    /_synapse/admin/v2/users/@localpart:server_name`` (a deactivated account still lives
    there) or ``GET /_synapse/admin/v1/threepid/<medium>/users/<address>``: ``200`` holds
    it, ``404`` does not. Anything else (or no answer) is no answer."""

    name = "homeservers"
    bounds_itself = True

    def __init__(
        self, upstream: Upstream, homeservers: Sequence[Homeserver], timeout: float | None = None
    ) -> None:
        """Entries sharing one ``server_name`` are ingress points of one homeserver: one of
        them is asked, for all. Each is given ``timeout`` seconds (``directory.timeout``),
        by the upstream client itself, so that a homeserver that does not answer counts
        against its health (a hung one is then not waited for)."""
        self._upstream = upstream
        self._timeout = timeout
        canonical = canonical_names({hs.name: hs for hs in homeservers})
        self._homeservers = tuple(hs for hs in homeservers if canonical[hs.name] == hs.name)

    async def ask(self, identifier: Identifier, leave_out: str | None = None) -> SourceAnswer:
        """``leave_out``: the homeserver asking before it creates an account or binds an
        address (by its first ingress point's name) is not asked: it refuses its own
        duplicates, and is busy with the request that asks."""
        asked = [hs for hs in self._homeservers if hs.name != leave_out]
        asks = [defer.ensureDeferred(self._ask_one(hs, identifier)) for hs in asked]
        results = await defer.DeferredList(asks, consumeErrors=True)
        holders: set[str] = set()
        unanswered: list[str] = []
        for hs, (ok, held) in zip(asked, results, strict=True):
            if not ok or held is None:
                unanswered.append(hs.name)
            elif held:
                holders.add(hs.name)
        return SourceAnswer(frozenset(holders), tuple(unanswered))

    def path_for(self, hs: Homeserver, identifier: Identifier) -> str:
        if identifier.medium == LOCALPART:
            return USER_PATH.format(user_id=_quote(f"@{identifier.address}:{hs.server_name}"))
        return THREEPID_PATH.format(
            medium=_quote(identifier.medium), address=_quote(identifier.address)
        )

    async def _ask_one(self, hs: Homeserver, identifier: Identifier) -> bool | None:
        """Whether ``hs`` holds it; ``None`` if it could not say."""
        if hs.placement_secret is not None:
            return await self._ask_module(hs, identifier)
        path = self.path_for(hs, identifier).encode()
        try:
            response = await admin_request(self._upstream, hs, path, timeout=self._timeout)
        except errors.MatrixError as e:
            logger.warning("directory: %s did not answer: %s", hs.name, e.message)
            return None
        if response.status == 200:
            return True
        if response.status == 404 and _errcode(response.body) == errors.NOT_FOUND:
            return False
        if response.status == 404:
            logger.warning(
                "directory: %s answered 404 to the admin API, not Synapse's M_NOT_FOUND: its "
                "proxy_url does not serve the admin API (a reverse proxy blocking "
                "/_synapse/admin?)",
                hs.name,
            )
            return None
        logger.warning(
            "directory: %s answered %d to the admin API (is its admin token still valid?)",
            hs.name,
            response.status,
        )
        return None

    async def _ask_module(self, hs: Homeserver, identifier: Identifier) -> bool | None:
        assert hs.placement_secret is not None
        body = identifier_body(identifier.medium, identifier.address)
        headers = [
            (b"Authorization", [bearer(hs.placement_secret)]),
            (b"Content-Type", [b"application/json"]),
        ]
        try:
            response = await self._upstream.request(
                hs,
                b"POST",
                HOLDS_PATH.encode(),
                headers,
                json.dumps(body).encode(),
                timeout=self._timeout,
            )
        except errors.MatrixError as e:
            logger.warning("directory: %s did not answer: %s", hs.name, e.message)
            return None
        answer = json_object(response.body) if response.status == 200 else None
        holds = answer.get("holds") if answer is not None else None
        if isinstance(holds, bool):
            return holds
        logger.warning(
            "directory: %s answered %d to the module's lookup (%s)",
            hs.name,
            response.status,
            "its placement secret was refused"
            if response.status in (401, 403)
            else "does its proxy_url serve /_synapse/client, and does it run the module with "
            "placement configured?"
            if response.status == 404
            else "not a lookup answer",
        )
        return None


def _errcode(body: bytes) -> object:
    """The Matrix errcode of an error answer (a proxy's HTML 404 has none)."""
    answer = json_object(body)
    return answer.get("errcode") if answer is not None else None


async def admin_request(
    upstream: Upstream, hs: Homeserver, path: bytes, *, timeout: float | None = None
) -> UpstreamResponse:
    """``GET path`` on ``hs`` with its admin token (which never reaches a log)."""
    assert hs.admin_token is not None
    headers = [(b"Authorization", [b"Bearer " + hs.admin_token.encode("ascii", "replace")])]
    return await upstream.request(hs, b"GET", path, headers, timeout=timeout)


def _holders_in(answer: object, known: Mapping[str, Homeserver], source: str) -> set[str] | None:
    """``"hs2"``, ``["hs1", "hs2"]``, ``None``/``[]`` (nobody) as homeserver names; ``None``
    (no answer) for anything else, or for a name the portal does not know."""
    names: list[object]
    if answer is None:
        names = []
    elif isinstance(answer, str):
        names = [answer]
    elif isinstance(answer, (list, tuple)):
        names = list(answer)
    else:
        logger.warning("directory: %s answered %s, not a homeserver name", source, type(answer))
        return None
    unknown = [n for n in names if not isinstance(n, str) or n not in known]
    if unknown:
        logger.warning("directory: %s named homeservers the portal does not have", source)
        return None
    return {n for n in names if isinstance(n, str)}


class HttpSource:
    """An operator's directory: ``GET <url>?localpart=bob`` or ``?medium=email&address=...``,
    answered ``200 {"homeserver": "hs2"}`` (or ``{"homeserver": null}``: nobody; a list of
    names: several)."""

    name = "http"
    bounds_itself = False

    def __init__(self, upstream: Upstream, url: str, homeservers: Mapping[str, Homeserver]):
        self._upstream = upstream
        self._homeservers = homeservers
        parts = urllib.parse.urlsplit(url)
        base = urllib.parse.urlunsplit((parts.scheme, parts.netloc, "", "", ""))
        self._server = Homeserver(name="directory", base_url=base, proxy_url=base)
        self._path = parts.path or "/"

    def query_for(self, identifier: Identifier) -> bytes:
        if identifier.medium == LOCALPART:
            params = {"localpart": identifier.address}
        else:
            params = {"medium": identifier.medium, "address": identifier.address}
        return f"{self._path}?{urllib.parse.urlencode(params)}".encode()

    async def ask(self, identifier: Identifier, leave_out: str | None = None) -> SourceAnswer:
        try:
            response = await self._upstream.request(
                self._server, b"GET", self.query_for(identifier)
            )
        except errors.MatrixError as e:
            logger.warning("directory: the http source did not answer: %s", e.message)
            return SourceAnswer(unanswered=(self.name,))
        answer = json_object(response.body) if response.status == 200 else None
        if answer is None or "homeserver" not in answer:
            logger.warning(
                "directory: the http source answered %d, not a directory answer", response.status
            )
            return SourceAnswer(unanswered=(self.name,))
        holders = _holders_in(answer["homeserver"], self._homeservers, self.name)
        if holders is None:
            return SourceAnswer(unanswered=(self.name,))
        return SourceAnswer(frozenset(holders))


class FunctionSource:
    """``directory.function(localpart=..., medium=..., address=...)``: a homeserver name, a
    list of them, or ``None``; sync or async. An exception is no answer."""

    name = "function"
    bounds_itself = False

    def __init__(self, function: DirectoryFunction, homeservers: Mapping[str, Homeserver]):
        self._function = function
        self._homeservers = homeservers

    async def ask(self, identifier: Identifier, leave_out: str | None = None) -> SourceAnswer:
        local = identifier.medium == LOCALPART
        try:
            answer = await dotted_path.call(
                self._function.function,
                localpart=identifier.address if local else None,
                medium=None if local else identifier.medium,
                address=None if local else identifier.address,
            )
        except Exception as e:  # the operator's code can raise anything
            logger.warning("directory: %s raised %s", self._function.path, type(e).__name__)
            return SourceAnswer(unanswered=(self.name,))
        holders = _holders_in(answer, self._homeservers, self._function.path)
        if holders is None:
            return SourceAnswer(unanswered=(self.name,))
        return SourceAnswer(frozenset(holders))
