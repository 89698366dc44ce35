"""Every key the portal keeps in its state (under ``state.key_prefix`` in Redis); how a
secret becomes a key is :mod:`core.hashes` (shared with the module, whose logs tag names and
addresses as the portal's do).

Secrets (access, refresh and login tokens) and personal data (e-mail addresses, phone
numbers) are never kept as such: entries are keyed by their SHA-256, so neither a memory
dump nor a shared store reveals a usable token or whom the portal was asked about.
"""

from __future__ import annotations

from synapse_base_cs_url.core.hashes import record_key, token_key, token_tag

__all__ = ["record_key", "token_key", "token_tag"]

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
