"""Matrix-style JSON errors (``{"errcode": ..., "error": ...}``) the portal answers with."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

import attr

# Error codes from the Matrix spec (and Synapse's own spelling of them).
NOT_JSON = "M_NOT_JSON"
BAD_JSON = "M_BAD_JSON"
TOO_LARGE = "M_TOO_LARGE"
UNRECOGNIZED = "M_UNRECOGNIZED"
NOT_FOUND = "M_NOT_FOUND"
UNKNOWN = "M_UNKNOWN"
UNAVAILABLE = "M_UNAVAILABLE"
LIMIT_EXCEEDED = "M_LIMIT_EXCEEDED"
UNKNOWN_TOKEN = "M_UNKNOWN_TOKEN"
INVALID_PARAM = "M_INVALID_PARAM"
MISSING_PARAM = "M_MISSING_PARAM"
FORBIDDEN = "M_FORBIDDEN"
USER_IN_USE = "M_USER_IN_USE"
THREEPID_IN_USE = "M_THREEPID_IN_USE"

#: Logged and counted (as nginx does) when the client closed the connection before its answer:
#: never the homeserver's failure.
CLIENT_CLOSED = 499
# The spec has no code for gateway failures: M_UNKNOWN, with the HTTP status (502 / 504) and
# a message naming the homeserver.
HOMESERVER_UNREACHABLE = UNKNOWN
HOMESERVER_TIMEOUT = UNKNOWN


@attr.s(auto_attribs=True, frozen=True, slots=True)
class MatrixError(Exception):
    """An error response; raise it anywhere in request handling."""

    status: int
    errcode: str
    message: str
    retry_after: float | None = None
    """Seconds after which trying again makes sense (``Retry-After``, ``retry_after_ms``)."""

    def body(self) -> bytes:
        fields: dict[str, object] = {"errcode": self.errcode, "error": self.message}
        if self.retry_after is not None:
            fields["retry_after_ms"] = int(self.retry_after * 1000)
        if self.errcode == UNKNOWN_TOKEN:
            fields["soft_logout"] = False
        return json.dumps(fields).encode()

    def __str__(self) -> str:
        return f"{self.status} {self.errcode}: {self.message}"


@attr.s(auto_attribs=True, frozen=True, slots=True)
class Answered(Exception):
    """Not an error: an answer the portal gives itself instead of sending the client on
    (raised from a decision, so that each transport delivers it as it delivers a refusal)."""

    status: int
    payload: Mapping[str, object]

    def body(self) -> bytes:
        return json.dumps(self.payload).encode()


def not_json(detail: str = "Content not JSON.") -> MatrixError:
    return MatrixError(400, NOT_JSON, detail)


def bad_json(detail: str) -> MatrixError:
    return MatrixError(400, BAD_JSON, detail)


def too_large(limit: int) -> MatrixError:
    return MatrixError(413, TOO_LARGE, f"Request body is larger than this portal's {limit} bytes")


def unreachable(homeserver: str, detail: str) -> MatrixError:
    return MatrixError(
        502, HOMESERVER_UNREACHABLE, f"Homeserver {homeserver!r} is unreachable: {detail}"
    )


def timed_out(homeserver: str, seconds: float) -> MatrixError:
    return MatrixError(
        504, HOMESERVER_TIMEOUT, f"Homeserver {homeserver!r} did not answer within {seconds:g}s"
    )


def connect_timed_out(homeserver: str, seconds: float) -> MatrixError:
    return MatrixError(
        504,
        HOMESERVER_TIMEOUT,
        f"Homeserver {homeserver!r} did not accept a connection within {seconds:g}s",
    )


def bad_gateway(homeserver: str, detail: str) -> MatrixError:
    return MatrixError(
        502, HOMESERVER_UNREACHABLE, f"Homeserver {homeserver!r} sent an invalid answer: {detail}"
    )


def not_here(path: str) -> MatrixError:
    return MatrixError(
        404,
        UNRECOGNIZED,
        f"{path} is not served by this login portal: it only routes logins. After logging "
        "in, use the homeserver given in the login response (well_known.m.homeserver.base_url "
        "or base_cs_url).",
    )


def unavailable(what: str, retry_after: float) -> MatrixError:
    """The portal's shared state cannot answer: the client may try again shortly."""
    return MatrixError(
        503,
        UNAVAILABLE,
        f"{what} is not possible right now (the portal's shared state is unavailable); "
        "try again shortly",
        retry_after,
    )


def homeserver_down(homeserver: str, retry_after: float) -> MatrixError:
    """A homeserver marked down (it failed several times in a row): not waited for."""
    return MatrixError(
        503,
        UNAVAILABLE,
        f"Homeserver '{homeserver}' is not answering right now; try again shortly",
        retry_after,
    )


@attr.s(auto_attribs=True, frozen=True, slots=True)
class AmbiguousIdentifier(MatrixError):
    """Several homeservers hold an account by the name the user typed (the portal's SSO page
    asks for the full Matrix ID, naming ``full_ids`` as this error's message does)."""

    full_ids: tuple[str, ...] = ()


def ambiguous_identifier(full_ids: list[str]) -> AmbiguousIdentifier:
    """Several homeservers hold an account by the name the user typed: never guess."""
    how = f" ({', '.join(full_ids)})" if full_ids else ""
    return AmbiguousIdentifier(
        400,
        INVALID_PARAM,
        "Accounts by this name exist on more than one homeserver: log in with your full "
        f"Matrix ID{how}",
        full_ids=tuple(full_ids),
    )


def directory_unavailable(what: str, retry_after: float) -> MatrixError:
    """The directory could not say where an account lives: sending the client anywhere
    might send it to the wrong homeserver."""
    return MatrixError(
        503,
        UNAVAILABLE,
        f"{what} is not possible right now (the portal cannot tell which homeserver holds "
        "this account); try again shortly",
        retry_after,
    )


def limit_exceeded(retry_after: float) -> MatrixError:
    """Too many requests from one client (or for the portal as a whole), as Synapse says it."""
    return MatrixError(429, LIMIT_EXCEEDED, "Too Many Requests", retry_after)


def unknown_token() -> MatrixError:
    """An access token no homeserver behind the portal knows: what Synapse answers."""
    return MatrixError(401, UNKNOWN_TOKEN, "Invalid access token passed.")


def token_home_unanswered(homeservers: Sequence[str], retry_after: float) -> MatrixError:
    """No homeserver said it knows an access token, and some could not say at all: the
    token may well be valid (its homeserver down for a moment). Never ``401``, which makes
    clients drop the session (and the encryption keys not backed up)."""
    return MatrixError(
        503,
        UNAVAILABLE,
        f"Cannot tell now which homeserver this access token belongs to "
        f"({', '.join(homeservers)} did not answer); try again shortly",
        retry_after,
    )


def internal_error() -> MatrixError:
    """A bug in the portal: logged with its traceback; the client learns nothing more."""
    return MatrixError(500, UNKNOWN, "Internal error")


def method_not_allowed(method: str, path: str) -> MatrixError:
    return MatrixError(405, UNRECOGNIZED, f"{method} is not supported on {path}")
