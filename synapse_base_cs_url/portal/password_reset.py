"""A password forgotten, at the portal's address: the reset reaches the homeserver that holds
the address, and its last step the homeserver that sent the e-mail.

- ``POST /account/password/email/requestToken`` (and its msisdn twin, by the number's
  msisdn) goes to the homeserver where the directory finds the address (without the
  directory, or when nobody holds it, where a login by that address would go); the
  request's ``client_secret`` is remembered with that homeserver.
- ``POST /account/password`` without an access token carries that ``client_secret`` in its
  ``auth.threepid_creds``: it goes to the same homeserver. (One without it goes to the
  default homeserver.)
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from synapse_base_cs_url.core import Selection
from synapse_base_cs_url.core.json_dict import JsonDict
from synapse_base_cs_url.core.login_types import PASSWORD_TYPE
from synapse_base_cs_url.portal import errors
from synapse_base_cs_url.portal.config.homeservers import Homeserver
from synapse_base_cs_url.portal.config.portal_config import PortalConfig
from synapse_base_cs_url.portal.directory.directory import Directory
from synapse_base_cs_url.portal.directory.identifier import (
    EMAIL,
    MSISDN,
    Identifier,
    canonicalise_email,
    phone_to_msisdn,
)
from synapse_base_cs_url.portal.login_routes import DIRECTORY_RETRY_AFTER, LoginRoutes
from synapse_base_cs_url.portal.placement import Placements, guarded

REQUEST_TOKEN_PATH = re.compile(
    rb"/_matrix/client/(?:r0|v3|unstable)/account/password/(email|msisdn)/requestToken"
)
PASSWORD_PATH = re.compile(rb"/_matrix/client/(?:r0|v3|unstable)/account/password")
#: What a remembered client secret is kept under (by hash, as every secret).
CLIENT_SECRET = "client_secret"
RESET_ROUTE = "password-reset"


class PasswordReset:
    def __init__(
        self,
        config: PortalConfig,
        login_routes: LoginRoutes,
        directory: Directory | None,
        secrets: Placements,
    ) -> None:
        self._config = config
        self._homeservers = config.homeservers
        self._login_routes = login_routes
        self._directory = directory
        self._secrets = secrets

    async def for_request_token(
        self, medium: str, body: Mapping[str, object], client_ip: str
    ) -> Selection[Homeserver]:
        identifier = _address_of(medium, body)
        selection = await self._holder(identifier, client_ip) if identifier else None
        if selection is None:
            login = {"type": PASSWORD_TYPE, **self._as_login(identifier)}
            selection = self._login_routes.decide(login, PASSWORD_TYPE, client_ip)
        secret = body.get("client_secret")
        if isinstance(secret, str) and secret:
            identifier = Identifier(CLIENT_SECRET, secret)
            await guarded(self._secrets.put(identifier, selection.target.name), "This reset")
        return selection

    async def for_password(self, body: Mapping[str, object]) -> Selection[Homeserver]:
        secret = _client_secret(body)
        if secret is not None:
            name = await guarded(self._secrets.get(Identifier(CLIENT_SECRET, secret)), "This reset")
            if name is not None and name in self._homeservers:
                return Selection(self._homeservers[name], RESET_ROUTE)
        return Selection(self._homeservers[self._config.default_homeserver], "default")

    async def _holder(self, identifier: Identifier, client_ip: str) -> Selection[Homeserver] | None:
        if self._directory is None:
            return None
        location = await self._directory.locate(identifier, client_ip)
        holders = sorted(location.holders)
        if len(holders) == 1:
            return Selection(self._homeservers[holders[0]], "directory")
        if holders:
            raise errors.ambiguous_identifier([])
        if not location.complete:
            raise errors.directory_unavailable("This password reset", DIRECTORY_RETRY_AFTER)
        return None

    @staticmethod
    def _as_login(identifier: Identifier | None) -> JsonDict:
        if identifier is None:
            return {}
        return {
            "identifier": {
                "type": "m.id.thirdparty",
                "medium": identifier.medium,
                "address": identifier.address,
            }
        }


def _address_of(medium: str, body: Mapping[str, object]) -> Identifier | None:
    """The address a reset names: an e-mail address, or a country and a phone number (its
    msisdn, as Synapse makes it)."""
    if medium == MSISDN:
        msisdn = phone_to_msisdn(body.get("country"), body.get("phone_number"))
        return Identifier(MSISDN, msisdn) if msisdn else None
    if medium != EMAIL:
        return None
    email = body.get("email")
    canonical = canonicalise_email(email) if isinstance(email, str) else None
    return Identifier(EMAIL, canonical) if canonical else None


def _client_secret(body: Mapping[str, object]) -> str | None:
    auth = body.get("auth")
    if not isinstance(auth, Mapping):
        return None
    creds = auth.get("threepid_creds") or auth.get("threepidCreds")
    secret = creds.get("client_secret") if isinstance(creds, Mapping) else None
    return secret if isinstance(secret, str) and secret else None
