"""Logging for the portal process: one line per routed login, cheap enough for every login.

A redirect costs the portal a few hundred microseconds of CPU, and a line written through
the logging module costs about a hundred more in the serving process (measured: a redirect
without its line is served at 1.2-1.3 times the rate), most of it in building a
``LogRecord`` (the caller's frame, thread, process) that the portal's format never shows.
So:

- lines go into a buffered stderr that is flushed once per reactor iteration (not once per
  line), and the timestamp text is built once per second;
- the lines written on every request (a login's, a homeserver's ask's) go through
  :func:`info_line`: the same text the logging module would write, straight into the
  portal's handler, when that handler is the one in place (anywhere else, e.g. under a
  test's log capture, it is an ordinary ``logger.info``).
"""

from __future__ import annotations

import io
import logging
import sys
import time
from collections.abc import Mapping
from typing import TextIO

from synapse_base_cs_url.core.redact import redact
from synapse_base_cs_url.portal.reactor import PortalReactor

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class CachedTimeFormatter(logging.Formatter):
    """``%(asctime)s`` as ``2026-01-31 12:34:56,789``, with ``strftime`` once per second;
    every line :func:`redact`-ed (a last guard: the portal's own lines carry no secret)."""

    _second = -1
    _text = ""

    def __init__(self, worker: int | None = None) -> None:
        """``worker``: a worker process's number, which its lines name."""
        self._prefix = f"worker {worker}: " if worker else ""
        super().__init__(FORMAT.replace("%(name)s: ", f"%(name)s: {self._prefix}"))

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return self._time(record.created, record.msecs)

    def line(self, name: str, level: str, message: str) -> str:
        """What :meth:`format` makes of a record of ``name`` at ``level`` with ``message``
        (no exception), made now without one."""
        created = time.time()
        msecs = (created - int(created)) * 1000
        return redact(f"{self._time(created, msecs)} {level} {name}: {self._prefix}{message}")

    def _time(self, created: float, msecs: float) -> str:
        second = int(created)
        if second != self._second:
            self._second = second
            self._text = time.strftime("%Y-%m-%d %H:%M:%S", self.converter(created))
        return f"{self._text},{int(msecs):03d}"


class IterationFlushedHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes records into a buffered stream; flushes it at the end of the reactor iteration
    (at once while the reactor is not running, e.g. during startup and shutdown)."""

    def __init__(self, stream: TextIO, reactor: PortalReactor, worker: int | None) -> None:
        super().__init__(stream)
        self._reactor = reactor
        self._scheduled = False
        self.own_formatter = CachedTimeFormatter(worker)
        self.setFormatter(self.own_formatter)

    def write_line(self, name: str, level: str, message: str, args: tuple[object, ...]) -> None:
        """One line, as :meth:`emit` would write a record of ``message % args``: a
        message that does not format is reported as the logging module reports it, and a
        log that cannot be written never fails the request."""
        values: object = args
        if len(args) == 1 and isinstance(args[0], Mapping) and args[0]:
            values = args[0]  # as LogRecord: "%(key)s" formatted from the one mapping
        text = ""
        try:
            with self.lock:  # type: ignore[union-attr]  # made by Handler.__init__
                text = self.own_formatter.line(name, level, message % values if args else message)
                self.stream.write(text + self.terminator)
                self.flush()
        except RecursionError:  # as Handler.emit: the one failure passed on
            raise
        except Exception:
            self.handleError(logging.makeLogRecord({"name": name, "msg": text or redact(message)}))

    def flush(self) -> None:
        if not self._reactor.running:
            super().flush()
        elif not self._scheduled:
            self._scheduled = True
            self._reactor.callLater(0, self._flush_now)

    def _flush_now(self) -> None:
        self._scheduled = False
        super().flush()


def info_line(logger: logging.Logger, message: str, *args: object) -> None:
    """``logger.info(message, *args)`` for the lines written on every request: the same
    line, without a ``LogRecord``, when the portal's handler (with its own formatter, no
    level above ``INFO`` and no filter) is the root's only one and the line would reach
    nothing else (no filter on ``logger``, no handler on the way up); otherwise (a test
    capturing the logs, say) an ordinary ``logger.info``."""
    root = logging.getLogger()
    handler = root.handlers[0] if len(root.handlers) == 1 else None
    if (
        not isinstance(handler, IterationFlushedHandler)
        or handler.formatter is not handler.own_formatter
        or handler.level > logging.INFO
        or handler.filters
        or logger.filters
    ):
        logger.info(message, *args)
        return
    node: logging.Logger | None = logger
    while node is not None and node is not root:
        if node.handlers or not node.propagate:
            logger.info(message, *args)
            return
        node = node.parent
    if logger.isEnabledFor(logging.INFO):
        handler.write_line(logger.name, "INFO", message, args)


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
    handler = IterationFlushedHandler(stream, reactor, worker)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    reactor.addSystemEventTrigger("after", "shutdown", handler._flush_now)
