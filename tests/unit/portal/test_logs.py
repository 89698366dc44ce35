"""The portal's log lines: the lines written on every request skip the ``LogRecord`` but not
a single character of the line, and go the ordinary way wherever anything else listens."""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Iterator

import pytest
from twisted.internet.testing import MemoryReactorClock

from synapse_base_cs_url.portal.logs import IterationFlushedHandler, info_line

TIME = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} ")
NAME = "synapse_base_cs_url.portal.test_logs"


@pytest.fixture
def root_handlers() -> Iterator[list[logging.Handler]]:
    """The root logger's handlers and level, put back after the test."""
    root = logging.getLogger()
    saved, level = root.handlers[:], root.level
    yield root.handlers
    root.handlers[:] = saved
    root.setLevel(level)


def portal_handler(worker: int | None = None) -> tuple[IterationFlushedHandler, io.StringIO]:
    stream = io.StringIO()
    handler = IterationFlushedHandler(stream, MemoryReactorClock(), worker)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    return handler, stream


def lines(stream: io.StringIO) -> list[str]:
    """The lines written, each without its timestamp (checked)."""
    written = stream.getvalue().splitlines()
    assert all(TIME.match(line) for line in written), written
    return [TIME.sub("", line) for line in written]


@pytest.mark.parametrize("worker", [None, 3])
def test_the_same_line_as_the_logging_module_writes(
    root_handlers: list[logging.Handler], worker: int | None
) -> None:
    _, stream = portal_handler(worker)
    logger = logging.getLogger(NAME)
    args = ("default", "hs1", "redirect", 307, 0.25)
    logger.info("login route=%s homeserver=%s mode=%s status=%d duration=%.1fms", *args)
    info_line(logger, "login route=%s homeserver=%s mode=%s status=%d duration=%.1fms", *args)
    info_line(logger, "100% of the line, no arguments")
    ordinary, fast, plain = lines(stream)
    assert fast == ordinary
    prefix = f"worker {worker}: " if worker else ""
    assert fast == f"INFO {NAME}: {prefix}login route=default homeserver=hs1 mode=redirect " + (
        "status=307 duration=0.2ms"
    )
    assert plain == f"INFO {NAME}: {prefix}100% of the line, no arguments"


def test_a_secret_is_redacted_on_the_fast_way_too(root_handlers: list[logging.Handler]) -> None:
    _, stream = portal_handler()
    info_line(logging.getLogger(NAME), "odd: %s", "GET /x?access_token=syt_secret_secret")
    assert "syt_secret" not in stream.getvalue()


def test_a_level_above_info_writes_nothing(root_handlers: list[logging.Handler]) -> None:
    _, stream = portal_handler()
    logger = logging.getLogger(NAME + ".quiet")
    logger.setLevel(logging.WARNING)
    try:
        info_line(logger, "not written")
    finally:
        logger.setLevel(logging.NOTSET)
    assert stream.getvalue() == ""


def test_anything_else_listening_gets_an_ordinary_record(
    root_handlers: list[logging.Handler], caplog: pytest.LogCaptureFixture
) -> None:
    """A test's capture (or an operator's handler on the way up) sees the record."""
    _, stream = portal_handler()
    parent = logging.getLogger(NAME)
    caught = io.StringIO()
    extra = logging.StreamHandler(caught)
    parent.addHandler(extra)
    try:
        info_line(logging.getLogger(NAME + ".child"), "seen by %s", "both")
    finally:
        parent.removeHandler(extra)
    assert caught.getvalue() == "seen by both\n"
    assert lines(stream) == [f"INFO {NAME}.child: seen by both"]
    logging.getLogger().addHandler(caplog.handler)  # beside the portal's, on the root
    info_line(logging.getLogger(NAME), "captured")
    assert [r.getMessage() for r in caplog.records] == ["captured"]
    assert lines(stream)[-1] == f"INFO {NAME}: captured"


class Broken(io.StringIO):
    def write(self, text: str) -> int:
        raise OSError("the log's disk is gone")


def test_a_log_that_cannot_be_written_never_fails_the_request(
    root_handlers: list[logging.Handler], capsys: pytest.CaptureFixture[str]
) -> None:
    handler, _ = portal_handler()
    handler.stream = Broken()
    info_line(logging.getLogger(NAME), "lost")  # does not raise
    assert "the log's disk is gone" in capsys.readouterr().err  # as logging reports it


def test_the_handler_s_own_level_filter_and_formatter_are_honoured(
    root_handlers: list[logging.Handler],
) -> None:
    handler, stream = portal_handler()
    logger = logging.getLogger(NAME)
    handler.setLevel(logging.WARNING)
    info_line(logger, "below the handler's level")
    handler.setLevel(logging.NOTSET)
    handler.addFilter(lambda record: False)
    info_line(logger, "filtered out")
    handler.filters.clear()
    handler.setFormatter(logging.Formatter("%(levelname)s|%(message)s"))
    info_line(logger, "an operator's format")
    assert stream.getvalue() == "INFO|an operator's format\n"


def test_arguments_as_the_logging_module_takes_them(
    root_handlers: list[logging.Handler], capsys: pytest.CaptureFixture[str]
) -> None:
    _, stream = portal_handler()
    logger = logging.getLogger(NAME)
    info_line(logger, "%(who)s from %(where)s", {"who": "bob", "where": "hs1"})
    info_line(logger, "status=%d", None)  # does not format: reported, not raised
    assert lines(stream) == [f"INFO {NAME}: bob from hs1"]
    assert "Logging error" in capsys.readouterr().err
