"""The admin tokens checked at startup and again at each reload (and by ``check``): at
startup a token its homeserver refuses (unknown, or not an admin's) stops the portal with one
line naming the homeserver; at a reload it is a warning (the portal keeps serving the other
homeservers, and that one's lookups answer ``503``), and the ``admin_token_ok`` gauge says
so either way. A homeserver that does not answer is only a warning, since one homeserver's
outage must never keep the portal from starting.

At startup the portal waits for the answers at most :data:`STARTUP_WAIT` seconds: a
homeserver that has not answered by then (hung, or slow) is asked again in the background,
every :data:`RETRY_DELAY` seconds at first (then less often, up to :data:`MAX_RETRY_DELAY`),
while the portal serves the others; a token it refuses then still stops the portal."""

from __future__ import annotations

import logging
import urllib.parse
from collections.abc import Callable, Sequence
from typing import Any

import attr
from twisted.internet import defer, task

from synapse_base_cs_url.core.admin_token_answers import after_admin_api, after_whoami
from synapse_base_cs_url.core.json_dict import json_object
from synapse_base_cs_url.portal import errors
from synapse_base_cs_url.portal.client_paths import WHOAMI_PATH
from synapse_base_cs_url.portal.config.homeservers import Homeserver
from synapse_base_cs_url.portal.directory.sources import USER_PATH, admin_request
from synapse_base_cs_url.portal.upstream.client import Upstream

logger = logging.getLogger("synapse_base_cs_url.portal.directory")


@attr.s(auto_attribs=True, frozen=True, slots=True)
class TokenCheck:
    homeserver: str
    ok: bool | None
    """``True``: an admin's token; ``False``: refused; ``None``: no answer."""
    detail: str
    """Whose token it is, or what is wrong (never the token)."""


async def check_token(upstream: Upstream, hs: Homeserver) -> TokenCheck:
    """The homeserver's answers, read as ``check`` reads them (``core.admin_token_answers``)."""
    try:
        whoami = await admin_request(upstream, hs, WHOAMI_PATH)
        user = json_object(whoami.body) if whoami.status == 200 else None
        user_id = user.get("user_id") if user is not None else None
        verdict = after_whoami(whoami.status, user_id)
        if isinstance(verdict, str):
            path = USER_PATH.format(user_id=urllib.parse.quote(verdict, safe="")).encode()
            admin = await admin_request(upstream, hs, path)
            verdict = after_admin_api(verdict, admin.status)
    except errors.MatrixError as e:
        return TokenCheck(hs.name, None, e.message)
    return TokenCheck(hs.name, verdict.ok, verdict.detail)


def _cancelled(failure: Any) -> None:
    failure.trap(defer.CancelledError)


class RefusedToken(Exception):
    """An admin token its homeserver refuses; the message is the one line printed."""


#: Seconds startup waits for the homeservers' answers before it serves.
STARTUP_WAIT = 1.0
#: Seconds before a homeserver that did not answer is asked again, at first and at most.
RETRY_DELAY = 5.0
MAX_RETRY_DELAY = 60.0


class StartupTokenCheck:
    """Every admin token checked at once; :meth:`settle` returns once each has answered or
    :data:`STARTUP_WAIT` has passed, and the rest go on in the background (``on_refused``
    gets the line that stops the portal)."""

    def __init__(
        self,
        upstream: Upstream,
        homeservers: Sequence[Homeserver],
        clock: Any,
        on_refused: Callable[[str], None],
        on_answer: Callable[[str, bool], None] = lambda homeserver, ok: None,
    ) -> None:
        """``on_answer(homeserver, ok)``: each homeserver's answer (accepted, or refused), as
        it comes."""
        self._upstream = upstream
        self._clock = clock
        self._on_refused = on_refused
        self._on_answer = on_answer
        self._checks = {
            hs.name: defer.ensureDeferred(self._until_answered(hs))
            for hs in homeservers
            if hs.admin_token is not None
        }
        self._settled = False

    async def settle(self, wait: float = STARTUP_WAIT) -> None:
        """``RefusedToken`` if a homeserver refused its token within ``wait`` seconds."""
        # (Not consumeErrors: a refusal raised after settling must reach _refused_later.)
        everything: defer.Deferred[Any] = defer.DeferredList(list(self._checks.values()))
        timer: defer.Deferred[Any] = task.deferLater(self._clock, wait, lambda: None)
        await defer.DeferredList([everything, timer], fireOnOneCallback=True)
        if not timer.called:
            timer.addErrback(_cancelled)
            timer.cancel()
        self._settled = True
        for name, d in self._checks.items():
            if d.called and isinstance(d.result, RefusedToken):
                raise d.result
            if not d.called:
                logger.warning(
                    "directory: %s has not answered the admin token check within %gs; the "
                    "portal serves the others, and asks it again in the background",
                    name,
                    wait,
                )
        for d in self._checks.values():
            d.addErrback(self._refused_later)

    def in_background(self) -> None:
        """Nothing waits: every refusal, whenever it comes, goes to ``on_refused`` (a
        reload's check, which must not hold the reload up)."""
        self._settled = True
        for d in self._checks.values():
            d.addCallback(self._refused_already)
            d.addErrback(self._refused_later)

    def _refused_already(self, result: RefusedToken | None) -> None:
        if result is not None:  # answered before in_background (an in-memory reactor)
            self._on_refused(str(result))

    def stop(self) -> None:
        for d in self._checks.values():
            d.cancel()

    def _refused_later(self, failure: Any) -> None:
        if failure.check(defer.CancelledError):
            return  # stopped (the process drains, or a reload replaced the config)
        if failure.check(RefusedToken):
            self._on_refused(str(failure.value))
            return
        logger.error("directory: the admin token check failed: %s", failure.getErrorMessage())

    async def _until_answered(self, hs: Homeserver) -> RefusedToken | None:
        """``None`` once the token is an admin's; the refusal (returned, so that
        :meth:`settle` can raise it) or, after settling, raised."""
        delay = RETRY_DELAY
        while True:
            check = await check_token(self._upstream, hs)
            if check.ok is not None:
                self._on_answer(check.homeserver, check.ok)
            if check.ok is True:
                logger.info("directory: %s admin token: %s", check.homeserver, check.detail)
                return None
            if check.ok is False:
                refused = RefusedToken(
                    f"homeservers.{check.homeserver}.admin_token_file: {check.detail}"
                )
                if self._settled:
                    raise refused
                return refused
            logger.warning(
                "directory: %s did not answer the admin token check (%s); asked again in "
                "%gs (its accounts are found once it answers)",
                check.homeserver,
                check.detail,
                delay,
            )
            await task.deferLater(self._clock, delay, lambda: None)
            delay = min(delay * 2, MAX_RETRY_DELAY)
