"""The reactor as the portal uses it, typed.

Twisted's reactor interfaces are zope ``Interface`` classes, which mypy cannot check calls
against without a plugin; this ``Protocol`` names exactly what the portal calls, so the
portal's code is checked strictly and holds no ``Any`` for its reactor. The real reactor and
``twisted.internet.task.Clock`` (in tests) both satisfy the parts they are used for.

It is also the portal's one clock: ``seconds()`` is the wall clock for the real reactor and
the test clock under ``Clock``, so timeouts, TTLs and SSO expiry all move together in tests.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol


class DelayedCall(Protocol):
    """A timer ``callLater`` returned."""

    def active(self) -> bool: ...

    def cancel(self) -> None: ...


class Clock(Protocol):
    """Time and timers: all that caches, stores and timeouts need."""

    def seconds(self) -> float: ...

    def callLater(
        self, delay: float, callable: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> DelayedCall: ...


class PortalReactor(Clock, Protocol):
    """What ``portal.app`` needs to listen, connect and run."""

    running: bool

    def listenTCP(
        self, port: int, factory: Any, backlog: int = ..., interface: str = ...
    ) -> Any: ...

    def connectTCP(
        self, host: str, port: int, factory: Any, timeout: float = ..., bindAddress: Any = ...
    ) -> Any: ...

    def addSystemEventTrigger(
        self, phase: str, eventType: str, callable: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> Any: ...

    def callWhenRunning(self, callable: Callable[..., Any], *args: Any, **kwargs: Any) -> Any: ...

    def run(self) -> None: ...

    def stop(self) -> None: ...
