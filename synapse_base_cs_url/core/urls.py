"""Validation of the base URLs this package hands to clients.

Pure and free of Synapse imports: shared by the module's config, its ``compute`` hook, and the
portal. Clients append ``/_matrix/client/...`` to the URL, so it must be absolute http(s), with
no query, no fragment and no trailing slash.
"""

from __future__ import annotations

from urllib.parse import urlsplit

ALLOWED_SCHEMES = ("http", "https")


def validate_base_url(value: object) -> str:
    """Return ``value`` as a normalised base URL, or raise ``ValueError`` saying what is wrong.

    Normalisation only strips trailing slashes and lower-cases scheme and host, so that
    ``https://Example.com/`` and ``https://example.com`` compare equal.
    """
    if not isinstance(value, str):
        raise ValueError(f"must be a string, not {type(value).__name__}")
    if value.strip() != value or not value:
        raise ValueError(f"{_shown(value)} is not a URL (empty or surrounded by whitespace)")
    try:
        parts = urlsplit(value)
        port = parts.port  # raises ValueError for a malformed port
    except ValueError as e:
        raise ValueError(f"{_shown(value)} is not a valid URL: {e}") from None
    if not parts.scheme:
        raise ValueError(f"{_shown(value)} is a relative URL; give an absolute http(s) URL")
    if parts.scheme.lower() not in ALLOWED_SCHEMES:
        raise ValueError(
            f"{_shown(value)} has scheme {parts.scheme!r}; only http and https are allowed"
        )
    if not parts.hostname:
        raise ValueError(f"{_shown(value)} has no host")
    if parts.username is not None or parts.password is not None:
        raise ValueError(f"{_shown(value)} must not contain credentials")
    if parts.query or value.rstrip("/").endswith("?"):
        raise ValueError(f"{_shown(value)} has a query string; a base URL cannot have one")
    if parts.fragment or "#" in value:
        raise ValueError(f"{_shown(value)} has a fragment; a base URL cannot have one")
    netloc = parts.hostname.lower() if ":" not in parts.hostname else f"[{parts.hostname.lower()}]"
    if port is not None:
        netloc = f"{netloc}:{port}"
    return f"{parts.scheme.lower()}://{netloc}{parts.path.rstrip('/')}"


def _shown(value: str) -> str:
    """``value`` quoted for an error message, any ``user:password@`` shown as ``***@``.

    The messages end up in Synapse's startup output and in its log (a ``compute`` function's
    invalid return): a password in a URL must not go with them.
    """
    start = value.find("//")
    if start < 0:
        return repr(value)
    start += 2
    end = min((i for i in (value.find(c, start) for c in "/?#") if i >= 0), default=len(value))
    at = value.rfind("@", start, end)
    return repr(value if at < 0 else f"{value[:start]}***{value[at:]}")
