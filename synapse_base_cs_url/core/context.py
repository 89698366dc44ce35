"""What a login tells us about who is logging in.

Both the Synapse module and the portal build a :class:`LoginContext` and hand it to the same
rules, so a user is routed the same way whichever side asks.
"""

from __future__ import annotations

from collections.abc import Mapping

import attr

USER_ID_TYPE = "m.id.user"
THIRDPARTY_ID_TYPE = "m.id.thirdparty"
PHONE_ID_TYPE = "m.id.phone"


def localpart_of(user_id: str) -> str | None:
    """Return ``local`` for ``@local:server``, or ``None`` if ``user_id`` is not of that shape."""
    if not user_id.startswith("@"):
        return None
    localpart, sep, server = user_id[1:].partition(":")
    if not sep or not localpart or not server:
        return None
    return localpart


def _opt_str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


@attr.s(auto_attribs=True, frozen=True, slots=True, kw_only=True)
class LoginContext:
    """Facts about one login; any of them may be unknown (``None``).

    A matcher whose fact is unknown does not match, so a rule never fires on a guess.
    """

    user_id: str | None = None
    """Fully qualified ``@local:server``, if known."""
    localpart: str | None = None
    login_type: str | None = None
    """The ``/login`` ``type``, e.g. ``m.login.password``."""
    client_ip: str | None = None
    device_id: str | None = None
    medium: str | None = None
    """Third-party id medium, e.g. ``email`` or ``msisdn``."""
    address: str | None = None
    """Third-party id address, e.g. ``alice@example.org``."""

    @property
    def effective_localpart(self) -> str | None:
        """``localpart``, else the one derived from ``user_id``."""
        if self.localpart is not None:
            return self.localpart
        return localpart_of(self.user_id) if self.user_id is not None else None

    @property
    def routing_key(self) -> str | None:
        """The key hash pools are sticky on: user id, else localpart, address, client IP.

        Lower-cased because Synapse matches user ids and e-mail addresses case-insensitively at
        login, so what a user typed into the portal and the canonical id the module sees land
        on the same pool member.
        """
        for key in (self.user_id, self.effective_localpart, self.address, self.client_ip):
            if key:
                return key.lower()
        return None

    @classmethod
    def from_login_body(
        cls,
        body: Mapping[str, object],
        *,
        client_ip: str | None = None,
        server_name: str | None = None,
        user_id: str | None = None,
        device_id: str | None = None,
    ) -> LoginContext:
        """Build a context from a client's ``POST /login`` body, as sent (untrusted).

        Understands ``identifier`` (``m.id.user``, ``m.id.thirdparty``, ``m.id.phone``) and the
        deprecated top-level ``user`` / ``medium`` / ``address``. A bare localpart becomes a
        full user id when ``server_name`` is given. Malformed fields are ignored, not errors:
        routing must never be the reason a login fails.

        ``user_id`` and ``device_id``, when given, are what the homeserver decided (the
        module knows them from the login response): they win over what the body says.
        """
        # Written for speed (the module runs this on every login): one lookup per field,
        # type checks inline.
        get = body.get
        user: object = None
        medium: object = get("medium")
        address: object = get("address")
        identifier = get("identifier")
        # dict first: what JSON gives, and far cheaper to check than the Mapping ABC.
        if type(identifier) is dict or isinstance(identifier, Mapping):
            id_type = identifier.get("type")
            if id_type == USER_ID_TYPE:
                user = identifier.get("user")
            elif id_type == THIRDPARTY_ID_TYPE:
                medium, address = identifier.get("medium"), identifier.get("address")
            elif id_type == PHONE_ID_TYPE:
                # Turning country + phone into an msisdn needs libphonenumber; leave it unknown.
                medium, address = "msisdn", None
        else:
            user = get("user")

        localpart: str | None = None
        if user_id:
            localpart = localpart_of(user_id)
        elif type(user) is str and user:
            if user.startswith("@"):
                user_id, localpart = user, localpart_of(user)
            else:
                localpart = user
                user_id = f"@{user}:{server_name}" if server_name else None
        if not device_id:
            device_id = _opt_str(get("device_id"))
        login_type = get("type")
        return cls(
            user_id=user_id or None,
            localpart=localpart,
            login_type=login_type if type(login_type) is str and login_type else None,
            client_ip=client_ip,
            device_id=device_id,
            medium=medium if type(medium) is str and medium else None,
            address=address if type(address) is str and address else None,
        )
