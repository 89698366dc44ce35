"""One name, one address, one homeserver, whichever door an account comes in by: before
Synapse creates an account or binds an address here, ask the portal (which knows every
homeserver of the deployment and reserves the name for this one); and answer the portal's
directory lookups for this homeserver, so that the portal needs no admin token.

- ``check_registration_for_spam`` (every account Synapse's registration handler creates:
  client ``/register``, a first SSO login, the admin and shared-secret registration APIs,
  JWT logins that create users; not application services' users, nor guests, which have no
  name): the name (and the registration's e-mail, if any) is asked about; a refusal is
  ``400 M_USER_IN_USE`` (``M_THREEPID_IN_USE`` for the e-mail) with a message saying it is
  taken on another homeserver of the deployment.
- ``is_3pid_allowed`` (``register/{email,msisdn}/requestToken`` and
  ``account/3pid/{email,msisdn}/requestToken``, before anything is sent): an address held
  or reserved elsewhere is refused; Synapse answers ``403 M_THREEPID_DENIED``.
- Logins never ask: a portal that is down only affects creating accounts and binding
  addresses. With ``when_portal_unreachable: refuse`` (the default) they are refused with
  ``503 M_UNAVAILABLE`` (a retriable error, never a duplicate); with ``allow`` they go on
  unchecked.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from typing import Any

from synapse.module_api import (
    DirectServeJsonResource,
    ModuleApi,
    make_deferred_yieldable,
    parse_json_object_from_request,
    run_in_background,
)
from synapse.module_api.errors import SynapseError
from synapse.spam_checker_api import RegistrationBehaviour
from twisted.internet import defer

from synapse_base_cs_url.core.hashes import identifier_tag
from synapse_base_cs_url.core.placement_protocol import (
    ASK_PATH,
    FOLLOW_ROUTES,
    HOLDS_PATH,
    LOCALPART,
    bearer,
    identifier_body,
    read_identifier,
)
from synapse_base_cs_url.core.secrets import same_secret
from synapse_base_cs_url.synapse_module import _synapse_internals as internals
from synapse_base_cs_url.synapse_module.placement_config import PlacementSettings, Unreachable

logger = logging.getLogger(__name__)

USER_IN_USE = "M_USER_IN_USE"
THREEPID_IN_USE = "M_THREEPID_IN_USE"
UNAVAILABLE = "M_UNAVAILABLE"
#: Seconds a client is told to wait before it tries again when the portal did not answer.
RETRY_AFTER_MS = 5000


class NoVerdict(Exception):
    """The portal gave no answer (down, slow, refused the secret, could not say)."""


class PlacementGuard:
    """Asks the portal before an account or an address is created here; answers its
    directory lookups (registered as Synapse module callbacks and a module resource)."""

    def __init__(self, settings: PlacementSettings, api: ModuleApi) -> None:
        internals.check_placement_compatibility(api)
        self._settings = settings
        self._api = api
        self._ask_url = settings.portal_url + ASK_PATH
        self._headers = {b"Authorization": [bearer(settings.secret)]}
        api.register_spam_checker_callbacks(
            check_registration_for_spam=self.check_registration_for_spam
        )
        api.register_password_auth_provider_callbacks(is_3pid_allowed=self.is_3pid_allowed)
        api.register_web_resource(HOLDS_PATH, HoldsResource(api, settings.secret))
        logger.info(
            "synapse-base-cs-url: registrations and addresses are asked of the portal at %s "
            "(when it does not answer: %s)",
            settings.portal_url,
            settings.when_portal_unreachable.value,
        )

    async def check_registration_for_spam(
        self,
        email_threepid: dict[str, Any] | None,
        username: str | None,
        request_info: Collection[tuple[str, str]],
        auth_provider_id: str | None = None,
    ) -> RegistrationBehaviour:
        """Raise the Matrix error the client must see (a ``DENY`` would be Synapse's
        generic ``429``); ``ALLOW`` otherwise."""
        asks = []
        if username:
            asks.append((LOCALPART, username, USER_IN_USE))
        if email_threepid and email_threepid.get("medium") and email_threepid.get("address"):
            medium, address = str(email_threepid["medium"]), str(email_threepid["address"])
            asks.append((medium, address, THREEPID_IN_USE))
        for medium, address, errcode in asks:
            try:
                refusal = await self._ask(medium, address)
            except NoVerdict as e:
                if self._settings.when_portal_unreachable is Unreachable.ALLOW:
                    logger.warning(
                        "placement: %s allowed unchecked: %s", identifier_tag(medium, address), e
                    )
                    continue
                logger.warning("placement: %s refused: %s", identifier_tag(medium, address), e)
                raise SynapseError(
                    503,
                    "Registration is not possible right now: this homeserver cannot check "
                    "that the name is free in the deployment. Try again in a moment.",
                    UNAVAILABLE,
                    {"retry_after_ms": RETRY_AFTER_MS},
                    # As the portal's own 503s: clients that retry read the header.
                    headers={"Retry-After": str(RETRY_AFTER_MS // 1000)},
                ) from None
            if refusal is not None:
                raise SynapseError(
                    400,
                    str(refusal.get("error", "Taken elsewhere.")),
                    str(refusal.get("errcode", errcode)),
                )
        return RegistrationBehaviour.ALLOW

    async def is_3pid_allowed(self, medium: str, address: str, registration: bool) -> bool:
        """``False`` for an address held or reserved on another homeserver (Synapse answers
        ``M_THREEPID_DENIED``); never raises (an exception would be a ``500``)."""
        try:
            return await self._ask(medium, address) is None
        except NoVerdict as e:
            allowed = self._settings.when_portal_unreachable is Unreachable.ALLOW
            logger.warning(
                "placement: %s %s: %s",
                identifier_tag(medium, address),
                "allowed unchecked" if allowed else "refused",
                e,
            )
            return allowed
        except Exception:
            logger.exception("placement: asking about %s failed", identifier_tag(medium, address))
            return self._settings.when_portal_unreachable is Unreachable.ALLOW

    async def _ask(self, medium: str, address: str) -> dict[str, Any] | None:
        """``None``: allowed (reserved for this homeserver); else the portal's refusal."""
        body: dict[str, object] = dict(identifier_body(medium, address))
        if self._settings.follow_routes:
            body[FOLLOW_ROUTES] = True
        d = run_in_background(
            self._api.http_client.post_json_get_json, self._ask_url, body, self._headers
        )
        d.addTimeout(self._settings.timeout, internals.reactor_of(self._api))
        try:
            answer = await make_deferred_yieldable(d)
        except defer.TimeoutError:
            raise NoVerdict(
                f"the portal did not answer within {self._settings.timeout:g}s"
            ) from None
        except Exception as e:  # refused, unreachable, an HTTP error, not JSON
            raise NoVerdict(f"the portal did not answer: {_described(e)}") from None
        if not isinstance(answer, dict) or not isinstance(answer.get("allowed"), bool):
            raise NoVerdict("the portal's answer is not an ask's answer")
        if answer["allowed"]:
            return None
        logger.info("placement: %s refused by the portal", identifier_tag(medium, address))
        refusal: dict[str, Any] = answer
        return refusal


def _described(e: Exception) -> str:
    """What went wrong, without the request (whose body names the user)."""
    code = getattr(e, "code", None)
    if isinstance(code, int):
        hint = " (is this homeserver's placement secret the portal's?)" if code == 401 else ""
        return f"HTTP {code}{hint}"
    return type(e).__name__


class HoldsResource(DirectServeJsonResource):
    """``POST {"localpart": ...}`` or ``{"medium": ..., "address": ...}`` with the placement
    secret: ``{"holds": true|false}``, nothing else (a deactivated account still holds its
    name)."""

    def __init__(self, api: ModuleApi, secret: str) -> None:
        super().__init__()
        self._api = api
        self._secret = secret

    async def _async_render_POST(self, request: Any) -> tuple[int, dict[str, bool]]:
        given = request.requestHeaders.getRawHeaders(b"Authorization") or [b""]
        scheme, _, value = given[0].decode("ascii", "replace").partition(" ")
        if scheme.lower() != "bearer" or not same_secret(value.strip(), self._secret):
            raise SynapseError(401, "Ask with this homeserver's placement secret", "M_FORBIDDEN")
        try:
            medium, address = read_identifier(parse_json_object_from_request(request))
        except ValueError as e:
            raise SynapseError(400, str(e), "M_BAD_JSON") from None
        if medium == LOCALPART:
            user_id = f"@{address}:{self._api.server_name}"
            holds = await internals.holds_user(self._api, user_id)
        else:
            holds = await internals.user_id_by_threepid(self._api, medium, address) is not None
        return 200, {"holds": holds}
