"""Synapse's tokens as the gateway reads them: whether an access token is well formed, and
whose a refresh token is (where a request carries its access token is
``web.request.access_token``; the key a token is remembered under, ``state.keys.token_key``)."""

from __future__ import annotations

import base64
import binascii

_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def _base62(num: int, width: int) -> str:
    digits = ""
    while num:
        num, rem = divmod(num, 62)
        digits = _BASE62[rem] + digits
    return "0" * (width - len(digits)) + digits


#: A Synapse token, split on ``_``: ``syt`` (access) or ``syr`` (refresh), the unpadded
#: base64 of the localpart, 20 random letters, and the base62 CRC-32 of what precedes it.
SYNAPSE_TOKEN_PARTS = ("kind", "localpart", "random", "crc")


def _checksum_ok(parts: list[str]) -> bool:
    *signed, crc = parts
    try:
        expected = _base62(binascii.crc32("_".join(signed).encode("ascii")), 6)
    except UnicodeEncodeError:
        return False
    return crc == expected


def synapse_token_malformed(token: str) -> bool:
    """Whether ``token`` looks like a Synapse access token (``syt_<localpart>_<random>_<crc>``)
    whose checksum is wrong: no homeserver can know it, so nobody need be asked. Tokens of
    other shapes (older Synapse, other servers) are not judged."""
    if not token.startswith("syt_"):
        return False
    parts = token.split("_", 4)
    return len(parts) != len(SYNAPSE_TOKEN_PARTS) or not _checksum_ok(parts)


def synapse_refresh_localpart(token: str) -> str | None:
    """The localpart a well-formed Synapse refresh token (``syr_<base64 localpart>_<random>
    _<crc>``) was issued to, else ``None``. Synapse writes it there in the clear, so a refresh
    the portal has not seen can still be routed the way that user's login would be."""
    if not token.startswith("syr_"):
        return None
    parts = token.split("_", 4)
    if len(parts) != len(SYNAPSE_TOKEN_PARTS) or not _checksum_ok(parts):
        return None
    encoded = parts[SYNAPSE_TOKEN_PARTS.index("localpart")]
    try:
        localpart = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
        return localpart.decode("utf-8") or None
    except (binascii.Error, UnicodeDecodeError):
        return None
