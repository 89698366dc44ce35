"""Every key the portal keeps in its state (under ``state.key_prefix`` in Redis), and how a
secret becomes a key.

Secrets (access, refresh and login tokens) and personal data (e-mail addresses, phone
numbers) are never kept as such: entries are keyed by their SHA-256, so neither a memory
dump nor a shared store reveals a usable token or whom the portal was asked about.
"""

from __future__ import annotations

import hashlib

#: SSO login token -> the homeserver that issued it.
SSO_PREFIX = "sso:"
#: Access token -> its homeserver (the gateway's token map).
TOKEN_PREFIX = "gw:token:"
#: A registration's user-interactive session -> the homeserver it is on, and the name it
#: was placed for.
SESSION_PREFIX = "gw:uia:"
#: Refresh token -> its homeserver (``POST /refresh`` carries no access token).
REFRESH_PREFIX = "gw:refresh:"
#: Account identifier -> the homeservers that hold it (the account directory).
DIRECTORY_PREFIX = "dir:"
#: A new name -> the homeserver the portal placed its registration on.
PLACEMENT_PREFIX = "reg:"
#: A client address -> the homeserver of its most recent registration (its e-mail
#: verification names no user).
RECENT_CLIENT_PREFIX = "reg-client:"
#: A password reset's client secret -> the homeserver that sent its e-mail.
RESET_PREFIX = "reset:"


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
