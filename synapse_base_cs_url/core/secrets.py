"""Secrets read from files named in a config (an admin token, a homeserver's placement
secret): read once at startup (and on a portal's reload), their content never in an error,
and compared in constant time."""

from __future__ import annotations

import hmac
import logging
from pathlib import Path

logger = logging.getLogger(__name__)

#: The shortest placement secret accepted: a shared secret shorter than this is guessable.
MIN_SHARED_SECRET = 16


def read_secret_file(
    raw: object, path: str, *, what: str = "access token", min_length: int = 1
) -> str:
    """The one line a secret file holds; ``path`` is the config key named in errors."""
    if not isinstance(raw, str) or not raw:
        raise ValueError(f"{path}: must be a file path")
    try:
        text = Path(raw).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else type(e).__name__
        raise ValueError(f"{path}: cannot read {raw}: {reason}") from None
    _warn_if_shared(Path(raw), path)
    secret = text.strip()
    if not secret or any(c.isspace() for c in secret) or not secret.isprintable():
        raise ValueError(
            f"{path}: {raw} must hold one {what} on one line (it holds "
            f"{'nothing' if not secret else 'more than that'})"
        )
    if not secret.isascii():
        # It travels in an HTTP header: a non-ASCII one would fail at every use.
        raise ValueError(f"{path}: the {what} in {raw} must be ASCII")
    if len(secret) < min_length:
        raise ValueError(
            f"{path}: the {what} in {raw} is {len(secret)} characters long; use at least "
            f"{min_length} (e.g. the output of: openssl rand -hex 32)"
        )
    return secret


def same_secret(given: str, expected: str) -> bool:
    """Whether ``given`` is ``expected``, in a time that does not tell how much matched."""
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def _warn_if_shared(file: Path, path: str) -> None:
    """A warning (not a refusal: the operator may have reasons, e.g. a group the service
    runs in) when others than the file's owner may read the secret."""
    try:
        mode = file.stat().st_mode
    except OSError:
        return
    if mode & 0o077:
        logger.warning(
            "%s: %s can be read by others than its owner (mode %s); chmod 600 it",
            path,
            file,
            oct(mode & 0o777)[2:],
        )
