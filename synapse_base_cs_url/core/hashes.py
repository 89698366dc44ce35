"""How a secret, or a value a client chose, becomes a key or a log tag: its SHA-256. Shared
by the portal (its state's keys, its logs) and the module (its logs), so that one name or
address carries the same tag in both."""

from __future__ import annotations

import hashlib


def token_key(secret: str) -> str:
    """What a secret is kept under: its SHA-256, hex."""
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def record_key(kind: str, value: str) -> str:
    """What a record about a value a client chose (an account identifier, a client address,
    a client secret, a registration session) is kept under: the hash of ``kind:value``, so
    that neither a memory dump nor Redis shows the value, and two kinds never share a key."""
    return token_key(f"{kind}:{value}")


def token_tag(secret: str) -> str:
    """For logs: a prefix of the hash, enough to follow one token, useless to use it."""
    return token_key(secret)[:12]


def identifier_tag(medium: str, address: str) -> str:
    """For logs: a name (``localpart``) or an address as ``medium:<12 hex>``, the same in
    the portal's and the module's logs: a pseudonym (unkeyed, so a list of likely names or
    addresses can be matched against it; it keeps them out of logs, not secret)."""
    return f"{medium}:{record_key(medium, address)[:12]}"
