"""Running Twisted code in synchronous tests, as Twisted's own test tools do."""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any, TypeVar

from twisted.internet import defer
from twisted.python.failure import Failure

T = TypeVar("T")


def settle(work: defer.Deferred[T] | Coroutine[Any, Any, T]) -> T:
    """The result of ``work``, which must already have finished (nothing in it may wait on
    a reactor); its failure is raised as the exception it carries."""
    d = defer.ensureDeferred(work) if not isinstance(work, defer.Deferred) else work
    results: list[T | Failure] = []
    d.addBoth(results.append)
    assert results, f"{work!r} has not finished: it waits on something the test did not fire"
    result = results[0]
    if isinstance(result, Failure):
        result.raiseException()
    return result  # type: ignore[return-value]
