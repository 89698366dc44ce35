"""What a failed exchange with a homeserver means for the client: 502 when it cannot be
reached, breaks the connection or answers nonsense, 504 when it is too slow, and nothing at
all when the client itself went away (its callers log and count that as 499). The messages
never quote what the homeserver sent.

An exchange cancelled while its connection was still being made fails with Twisted's
``ConnectingCancelledError``, not a ``CancelledError``: that is the client (or the resolver,
done with a slower homeserver) going away too, not a homeserver that cannot be reached. (A
cancellation by the portal's own timer is told apart by the caller, before it gets here.)"""

from __future__ import annotations

import logging

from twisted.internet import defer, error
from twisted.python.failure import Failure
from twisted.web.client import RequestTransmissionFailed, ResponseFailed, ResponseNeverReceived
from twisted.web.http import PotentialDataLoss

from synapse_base_cs_url.portal import errors
from synapse_base_cs_url.portal.config.homeservers import Homeserver
from synapse_base_cs_url.portal.upstream.bodies import BodyTooLarge

logger = logging.getLogger("synapse_base_cs_url.portal.upstream")

#: Failures that mean "the connection went away", as opposed to "the answer was not HTTP".
_CLOSED = (error.ConnectionDone, error.ConnectionLost, PotentialDataLoss)
#: Failures that mean "whoever waited for the answer gave up on it": nobody to answer.
_CANCELLED = (defer.CancelledError, error.ConnectingCancelledError)


def as_matrix_error(homeserver: Homeserver, e: Exception, connect_timeout: float) -> Exception:
    """The client's answer for a failed exchange with ``homeserver``: a
    :class:`~synapse_base_cs_url.portal.errors.MatrixError`, or a ``CancelledError`` when the
    exchange was given up (the client went away), which is nobody's answer."""
    if isinstance(e, defer.CancelledError):
        return e  # the client went away; nobody to answer
    if isinstance(e, error.ConnectingCancelledError):
        return defer.CancelledError()  # given up while still connecting
    if isinstance(e, error.TimeoutError):
        return errors.connect_timed_out(homeserver.name, connect_timeout)
    if isinstance(e, (error.ConnectError, error.DNSLookupError)):
        return errors.unreachable(homeserver.name, _describe(e))
    if isinstance(e, BodyTooLarge):
        return errors.bad_gateway(homeserver.name, "response body too large")
    if isinstance(e, (ResponseFailed, RequestTransmissionFailed)):
        reasons: list[Failure] = list(e.reasons)
        if any(isinstance(r.value, _CANCELLED) for r in reasons):
            return defer.CancelledError()
    if isinstance(e, ResponseFailed):  # also ResponseNeverReceived
        if any(isinstance(r.value, _CLOSED) for r in reasons):
            where = (
                "before answering"
                if isinstance(e, ResponseNeverReceived)
                else "in the middle of the answer"
            )
            return errors.unreachable(homeserver.name, f"connection closed {where}")
        return errors.bad_gateway(homeserver.name, "not a valid HTTP/1.1 answer")
    if isinstance(e, RequestTransmissionFailed):
        return errors.unreachable(homeserver.name, "connection closed before answering")
    logger.warning("unexpected error talking to %s: %s", homeserver.name, type(e).__name__)
    return errors.unreachable(homeserver.name, _describe(e))


def _describe(e: BaseException) -> str:
    """What a failure was, by its kind only: an exception's text can hold an internal
    address (a DNS name, a ``proxy_url``) or a URI with a token in its query, and goes to
    the client."""
    return type(e).__name__
