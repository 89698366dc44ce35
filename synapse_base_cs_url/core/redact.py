"""What a log line must never carry, taken out of any text that might reach one: an
exception's message can quote a URI (and its ``access_token``), a traceback can hold both.
The portal's own lines name no secret; this is the guard for the text it did not write."""

from __future__ import annotations

import re

#: What a log line must never carry, should an exception's text or a URI reach one: a query
#: string (``access_token=``, ``loginToken=``, ``client_secret=``...), a Synapse token, or
#: an ``Authorization`` value.
_SECRETS = re.compile(
    r"(?P<query>(?<=\?)[^\s'\"<>]+)"
    r"|(?P<token>\bsy[a-z]_[A-Za-z0-9_]{8,})"
    r"|(?P<bearer>(?<=Bearer )[^\s'\"]+)"
)
REDACTED = "<redacted>"
#: Where a Synapse token could start (a superset: no ``\b``, which would make the search
#: slow): most lines have none of the three, and this search with two substring tests costs
#: a fortieth of :data:`_SECRETS`' substitution, which tries its lookbehinds at every
#: position (measured on a login's line: 0.5 us instead of 21 us, against the 100 us of
#: CPU a redirect costs the portal).
_TOKEN_START = re.compile(r"sy[a-z]_")


def redact(text: str) -> str:
    """``text`` with every query string, Synapse token and bearer token replaced."""
    if "?" not in text and "Bearer " not in text and _TOKEN_START.search(text) is None:
        return text
    return _SECRETS.sub(REDACTED, text)
