"""Registration and password reset at the portal's address: where each step goes, decided
once for both transports. Without the gateway the client is sent there (``registration.py``:
a ``307``); with it, the request is proxied there (``gateway/destination.py``). Both call
:meth:`AccountSteps.decide`, and differ only in how they deliver its answer.

- ``POST /register``: placed once (``placement.py``): a name held on any homeserver is
  ``400 M_USER_IN_USE``; every later step of the same registration (its session, its name)
  goes to the same homeserver.
- ``GET /register/available``: a name held anywhere is not available; otherwise the
  homeserver it would be placed on answers (its own rules: reserved names, appservices).
- ``POST /register/{email,msisdn}/requestToken``: an address held anywhere is refused;
  otherwise it follows this client's registration.
- ``POST /account/password/{email,msisdn}/requestToken``: to the homeserver holding the
  address (``password_reset.py``); ``POST /account/password``: where its client secret went.

A signed-in request (an access token) is not a step of these: the gateway routes it by its
token, and without the gateway it is not the portal's to answer.
"""

from __future__ import annotations

import logging
import re
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping

import attr

from synapse_base_cs_url.core import Selection
from synapse_base_cs_url.core.login_types import PASSWORD_TYPE
from synapse_base_cs_url.portal.client_paths import (
    AVAILABLE_PATH,
    PASSWORD_PATH,
    REGISTER_PATH,
    REGISTER_TOKEN_PATH,
    RESET_TOKEN_PATH,
)
from synapse_base_cs_url.portal.config.homeservers import Homeserver
from synapse_base_cs_url.portal.login_routes import DEFAULT_ROUTE, LoginRoutes, user_login
from synapse_base_cs_url.portal.metrics import PortalMetrics
from synapse_base_cs_url.portal.password_reset import PasswordReset
from synapse_base_cs_url.portal.placement import SESSION_ROUTE, Placement

#: The steps, by the name their metrics and log lines carry.
REGISTER = "register"
AVAILABLE = "available"
VERIFY = "verify"
RESET_TOKEN = "reset-token"
RESET = "reset"


@attr.s(auto_attribs=True, frozen=True, slots=True)
class Step:
    """One kind of account step: its name, the methods it is made with, its path."""

    name: str
    methods: tuple[bytes, ...]
    path: re.Pattern[bytes]


STEPS: tuple[Step, ...] = (
    Step(REGISTER, (b"POST",), REGISTER_PATH),
    Step(AVAILABLE, (b"GET", b"HEAD"), AVAILABLE_PATH),
    Step(VERIFY, (b"POST",), REGISTER_TOKEN_PATH),
    Step(RESET_TOKEN, (b"POST",), RESET_TOKEN_PATH),
    Step(RESET, (b"POST",), PASSWORD_PATH),
)


logger = logging.getLogger("synapse_base_cs_url.portal")


def report_step(
    metrics: PortalMetrics,
    step: str,
    route: str,
    homeserver: str,
    status: int,
    *,
    problem: str = "",
) -> None:
    """One step's count (``registrations_total``) and log line, as both transports report
    it: the ``307`` sending the client there, or the homeserver's answer the gateway passed
    on (``homeserver`` ``-`` and the ``problem``'s errcode when the portal refused it)."""
    metrics.registration(step, homeserver, status)
    logger.info(
        "%s route=%s homeserver=%s status=%d%s",
        step,
        route,
        homeserver,
        status,
        f" problem={problem}" if problem else "",
    )


def step_for(method: bytes, path: bytes) -> tuple[Step, re.Match[bytes]] | None:
    """The account step a request is, and its path's match (``None``: not one)."""
    for step in STEPS:
        if method in step.methods:
            match = step.path.fullmatch(path)
            if match is not None:
                return step, match
    return None


@attr.s(auto_attribs=True, frozen=True, slots=True)
class StepRequest:
    """What a step's decision reads of the request, whichever transport carries it."""

    match: re.Match[bytes]
    query: bytes
    body: Mapping[str, object]
    """The JSON body (empty if it is none: the homeserver judges it)."""
    client_ip: str

    def queried_username(self) -> str:
        """The ``username`` of the query string (``register/available``), or empty."""
        query = urllib.parse.parse_qs(self.query.decode("utf-8", "replace"))
        return (query.get("username") or [""])[0]


Decide = Callable[[StepRequest], Awaitable[Selection[Homeserver]]]


class AccountSteps:
    def __init__(
        self, login_routes: LoginRoutes, placement: Placement, reset: PasswordReset
    ) -> None:
        self._login_routes = login_routes
        self._placement = placement
        self._reset = reset
        self._decisions: dict[str, Decide] = {
            REGISTER: self._register,
            AVAILABLE: self._available,
            VERIFY: self._verify,
            RESET_TOKEN: self._reset_token,
            RESET: self._reset_password,
        }

    async def decide(self, step: Step, request: StepRequest) -> Selection[Homeserver]:
        """Where ``request``, a ``step``, goes; a Matrix error (``400``, ``429``, ``503``)
        or an answer of the portal's own (``Answered``) instead."""
        return await self._decisions[step.name](request)

    async def _register(self, request: StepRequest) -> Selection[Homeserver]:
        username = request.body.get("username")
        auth = request.body.get("auth")
        session = auth.get("session") if isinstance(auth, Mapping) else None
        return await self._placement.for_registration(
            username if isinstance(username, str) and username else None,
            request.client_ip,
            session if isinstance(session, str) and session else None,
        )

    async def _available(self, request: StepRequest) -> Selection[Homeserver]:
        username = request.queried_username()
        if not username:
            # Nothing to judge: the default homeserver answers.
            return self._login_routes.default()
        identifier = self._placement.name_of(username)
        if identifier is None:
            # A full user id on a server that is not the portal's: where it would register.
            return self._login_routes.decide(user_login(username), PASSWORD_TYPE, request.client_ip)
        return await self._placement.where_new(identifier, request.client_ip)

    async def _verify(self, request: StepRequest) -> Selection[Homeserver]:
        medium = request.match.group(1).decode("ascii")
        return await self._placement.for_verification(medium, request.body, request.client_ip)

    async def _reset_token(self, request: StepRequest) -> Selection[Homeserver]:
        medium = request.match.group(1).decode("ascii")
        return await self._reset.for_request_token(medium, request.body, request.client_ip)

    async def _reset_password(self, request: StepRequest) -> Selection[Homeserver]:
        return await self._reset.for_password(request.body)


def gateway_reason(step: Step, request: StepRequest, selection: Selection[Homeserver]) -> str:
    """How the gateway's metrics and log line name what chose a step's homeserver: its
    registration session; ``default`` for a step that named nothing to go by; else the kind
    of step (``register``, ``password-reset``)."""
    if selection.rule_name == SESSION_ROUTE:
        return "registration-session"
    if step.name == RESET_TOKEN:
        return "password-reset"
    if step.name == RESET:  # by its client secret, else (none known) the default
        return "default" if selection.rule_name == DEFAULT_ROUTE else "password-reset"
    if step.name == REGISTER and not request.body.get("username"):
        return "default" if selection.rule_name == DEFAULT_ROUTE else "register"
    if step.name == AVAILABLE and not request.queried_username():
        return "default"
    return "register"
