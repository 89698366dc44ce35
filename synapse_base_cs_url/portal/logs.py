"""Logging for the portal process: one line per routed login, cheap enough for every login.

A redirect costs the portal well under 100 microseconds, so the log line must not dominate:
lines go into a buffered stderr that is flushed once per reactor iteration (not once per
line), and the timestamp text is built once per second.
"""

from __future__ import annotations

import io
import logging
import sys
import time
from typing import TextIO

from synapse_base_cs_url.core.redact import redact
from synapse_base_cs_url.portal.reactor import PortalReactor

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class CachedTimeFormatter(logging.Formatter):
    """``%(asctime)s`` as ``2026-01-31 12:34:56,789``, with ``strftime`` once per second;
    every line :func:`redact`-ed (a last guard: the portal's own lines carry no secret)."""

    _second = -1
    _text = ""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        second = int(record.created)
        if second != self._second:
            self._second = second
            self._text = time.strftime("%Y-%m-%d %H:%M:%S", self.converter(record.created))
        return f"{self._text},{int(record.msecs):03d}"


class IterationFlushedHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes records into a buffered stream; flushes it at the end of the reactor iteration
    (at once while the reactor is not running, e.g. during startup and shutdown)."""

    def __init__(self, stream: TextIO, reactor: PortalReactor) -> None:
        super().__init__(stream)
        self._reactor = reactor
        self._scheduled = False

    def flush(self) -> None:
        if not self._reactor.running:
            super().flush()
        elif not self._scheduled:
            self._scheduled = True
            self._reactor.callLater(0, self._flush_now)

    def _flush_now(self) -> None:
        self._scheduled = False
        super().flush()


def configure_logging(
    reactor: PortalReactor, level: int = logging.INFO, *, worker: int | None = None
) -> None:
    """Log to stderr (buffered, see the module docstring) in the portal's format; a
    worker's lines name it."""
    try:
        fd = sys.stderr.fileno()
        stream: TextIO = io.TextIOWrapper(
            io.BufferedWriter(io.FileIO(fd, "w", closefd=False), 1 << 16),
            encoding="utf-8",
            errors="backslashreplace",
        )
    except (AttributeError, OSError, ValueError):  # no real stderr (e.g. captured in tests)
        stream = sys.stderr
    handler = IterationFlushedHandler(stream, reactor)
    fmt = FORMAT.replace("%(name)s:", f"%(name)s: worker {worker}:") if worker else FORMAT
    handler.setFormatter(CachedTimeFormatter(fmt))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    reactor.addSystemEventTrigger("after", "shutdown", handler._flush_now)
