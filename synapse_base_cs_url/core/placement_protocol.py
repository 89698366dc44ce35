"""What the module on each homeserver and the portal say to each other (pure: both sides
import it, so the two cannot drift apart).

- **Ask** (module -> portal, ``POST`` :data:`ASK_PATH`): before Synapse creates an account or
  binds an address, may it? Answered ``200 {"allowed": true}`` (the name or address is now
  reserved for the asking homeserver) or ``200 {"allowed": false, "errcode": ..., "error":
  ...}`` (held, or reserved, on another homeserver of the deployment; with
  ``"follow_routes": true`` in the ask, also when the routes place it on another one).
- **Holds** (portal -> module, ``POST`` :data:`HOLDS_PATH`): does this homeserver hold the
  account or the address? Answered ``200 {"holds": true|false}``.

Both carry the identifier in a JSON body, never in the URL (no access log holds it), and are
authenticated with the homeserver's placement secret: ``Authorization: Bearer <secret>``.
"""

from __future__ import annotations

from collections.abc import Mapping

#: The portal's endpoint for a homeserver's ask.
ASK_PATH = "/_synapse_base_cs_url/v1/placement/ask"
#: The module's endpoint for the portal's lookups (a module resource on the homeserver).
HOLDS_PATH = "/_synapse/client/synapse_base_cs_url/v1/holds"

LOCALPART = "localpart"
#: In an ask: the name or address may only be created where the portal's routes place it.
FOLLOW_ROUTES = "follow_routes"
MEDIUMS = ("email", "msisdn")
#: The longest name or address either side accepts (Synapse's user ids are at most 255).
MAX_IDENTIFIER = 512


def name_body(localpart: str) -> dict[str, str]:
    return {LOCALPART: localpart}


def address_body(medium: str, address: str) -> dict[str, str]:
    return {"medium": medium, "address": address}


def identifier_body(medium: str, address: str) -> dict[str, str]:
    """The body naming a name (``medium`` ``localpart``) or an address: what
    :func:`read_identifier` reads."""
    return name_body(address) if medium == LOCALPART else address_body(medium, address)


def read_identifier(body: Mapping[str, object]) -> tuple[str, str]:
    """``(medium, address)`` from an ask or a holds body, ``medium`` being ``localpart`` for
    a name; ``ValueError`` naming what is wrong."""
    localpart = body.get(LOCALPART)
    if localpart is not None:
        if not isinstance(localpart, str) or not localpart or len(localpart) > MAX_IDENTIFIER:
            raise ValueError("'localpart' must be a non-empty string")
        return LOCALPART, localpart
    medium, address = body.get("medium"), body.get("address")
    if medium not in MEDIUMS:
        raise ValueError("give a 'localpart', or a 'medium' (email or msisdn) and an 'address'")
    if not isinstance(address, str) or not address or len(address) > MAX_IDENTIFIER:
        raise ValueError("'address' must be a non-empty string")
    return str(medium), address


def bearer(secret: str) -> bytes:
    return b"Bearer " + secret.encode("ascii")
