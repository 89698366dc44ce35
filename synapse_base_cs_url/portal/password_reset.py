"""A password forgotten, at the portal's address: the reset reaches the homeserver that holds
the address, and its last step the homeserver that sent the e-mail.

- ``POST /account/password/email/requestToken`` (and its msisdn twin, by the number's
  msisdn) goes where a login by that address would (:mod:`homes`: the homeserver where the
  directory finds the address, else the routes); the
  request's ``client_secret`` is remembered with that homeserver.
- ``POST /account/password`` without an access token carries that ``client_secret`` in its
  ``auth.threepid_creds``: it goes to the same homeserver. (One without it goes to the
  default homeserver.)
"""

from __future__ import annotations

from collections.abc import Mapping

from synapse_base_cs_url.core import Selection
from synapse_base_cs_url.portal.config.homeservers import Homeserver
from synapse_base_cs_url.portal.config.portal_config import PortalConfig
from synapse_base_cs_url.portal.directory.identifier import address_of
from synapse_base_cs_url.portal.homes import Homes
from synapse_base_cs_url.portal.records import RecordLimiter
from synapse_base_cs_url.portal.state.keys import record_key
from synapse_base_cs_url.portal.state.shared import guarded
from synapse_base_cs_url.portal.state.store import Store

#: What a remembered client secret is kept under (by hash, as every secret).
CLIENT_SECRET = "client_secret"
RESET_ROUTE = "password-reset"
#: How long a reset's client secret is followed (Synapse's validation sessions last a day).
RESET_TTL = 24 * 3600.0
#: What a reset is called in its errors (``503``: "... is not possible right now").
RESET = "This password reset"


class PasswordReset:
    def __init__(
        self,
        config: PortalConfig,
        homes: Homes,
        secrets: Store,
        limiter: RecordLimiter,
    ) -> None:
        """``secrets``: client secret -> homeserver, a store of its own; ``limiter``: no
        secret is kept for a client past its limit."""
        self._limiter = limiter
        self._config = config
        self._homeservers = config.homeservers
        self._homes = homes
        self._secrets = secrets

    async def for_request_token(
        self, medium: str, body: Mapping[str, object], client_ip: str
    ) -> Selection[Homeserver]:
        identifier = address_of(medium, body)
        if identifier is not None:
            selection = await self._homes.of_identifier(identifier, client_ip, what=RESET)
        else:
            selection = self._homes.routes.for_address(None, client_ip)
        secret = body.get("client_secret")
        if isinstance(secret, str) and secret:
            self._limiter.allow(client_ip)
            key = record_key(CLIENT_SECRET, secret)
            await guarded(self._secrets.put(key, selection.target.name, RESET_TTL), RESET)
        return selection

    async def for_password(self, body: Mapping[str, object]) -> Selection[Homeserver]:
        secret = _client_secret(body)
        if secret is not None:
            key = record_key(CLIENT_SECRET, secret)
            name = await guarded(self._secrets.get(key), RESET)
            if name is not None and name in self._homeservers:
                return Selection(self._homeservers[name], RESET_ROUTE)
        return self._homes.routes.default()


def _client_secret(body: Mapping[str, object]) -> str | None:
    auth = body.get("auth")
    if not isinstance(auth, Mapping):
        return None
    creds = auth.get("threepid_creds") or auth.get("threepidCreds")
    secret = creds.get("client_secret") if isinstance(creds, Mapping) else None
    return secret if isinstance(secret, str) and secret else None
