"""``compute`` functions for the module's config, used by unit and integration tests.

``by_localpart_prefix`` is what the integration Synapse runs: the user's localpart prefix
says what the function does, so one homeserver covers every outcome.
"""

from __future__ import annotations

from typing import Any

#: Every call made to ``record_calls``: its keyword arguments.
CALLS: list[dict[str, Any]] = []

COMPUTED_URL = "https://computed.example.com"


def _localpart(user_id: str | None) -> str:
    return (user_id or "@:").partition(":")[0][1:]


async def by_localpart_prefix(
    *, user_id: str | None, login_type: str | None, client_ip: str | None, device_id: str | None
) -> object:
    """``computed_*``: a URL; ``raise_*``: an error; ``garbage_*``: not a URL; else None."""
    localpart = _localpart(user_id)
    if localpart.startswith("computed_"):
        return f"{COMPUTED_URL}/{localpart}/"  # trailing slash: the module normalises it
    if localpart.startswith("raise_"):
        raise RuntimeError(f"compute exploded for {user_id}")
    if localpart.startswith("garbage_int"):
        return 42
    if localpart.startswith("garbage_"):
        return "ftp://not-a-base-url.example.com"
    return None


def sync_url(*, user_id: Any, login_type: Any, client_ip: Any, device_id: Any) -> str:
    return COMPUTED_URL


def record_calls(**kwargs: Any) -> None:
    CALLS.append(kwargs)


def returns_awaitable(*, user_id: Any, login_type: Any, client_ip: Any, device_id: Any) -> Any:
    """Not a coroutine function, but returns an awaitable (as a Deferred-returning one would)."""

    class Ready:
        def __await__(self) -> Any:
            return COMPUTED_URL
            yield  # makes this a generator

    return Ready()


class Chooser:
    """A callable object is accepted as well as a function."""

    def __call__(self, *, user_id: Any, login_type: Any, client_ip: Any, device_id: Any) -> str:
        return COMPUTED_URL


chooser = Chooser()


class Namespace:
    @staticmethod
    def nested(*, user_id: Any, login_type: Any, client_ip: Any, device_id: Any) -> str:
        return COMPUTED_URL


NOT_CALLABLE = "https://not-a-function.example.com"


def wrong_signature(user: str) -> str:
    return COMPUTED_URL
