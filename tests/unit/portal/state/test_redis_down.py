"""Redis failing is waited for once: after a command fails, commands fail at once (no second
``command_timeout``) until a probe answers; and the directory then asks the homeservers
itself, since its cache is an optimisation, not a dependency."""

from __future__ import annotations

from typing import Any

import pytest
from twisted.internet import defer, task

from synapse_base_cs_url.portal.config.state import parse_state
from synapse_base_cs_url.portal.state import redis as redis_state
from synapse_base_cs_url.portal.state.redis import RedisState
from synapse_base_cs_url.portal.state.shared import StateUnavailable

SETTINGS = parse_state(
    {"backend": "redis", "url": "redis://127.0.0.1:6379/0", "command_timeout": 2}
)


class Connection:
    """txredisapi's connection, played: each command waits until the test answers it."""

    def __init__(self) -> None:
        self.commands: list[tuple[tuple[Any, ...], defer.Deferred[Any]]] = []

    def execute_command(self, *command: Any) -> defer.Deferred[Any]:
        d: defer.Deferred[Any] = defer.Deferred()
        self.commands.append((command, d))
        return d


@pytest.fixture
def played(monkeypatch: pytest.MonkeyPatch) -> tuple[RedisState, Connection, task.Clock]:
    connection, clock = Connection(), task.Clock()
    monkeypatch.setattr(redis_state, "_connect", lambda address, timeout: connection)
    return RedisState(SETTINGS, clock), connection, clock


def outcome(d: defer.Deferred[Any]) -> Any:
    results: list[Any] = []
    d.addBoth(results.append)
    return results[0] if results else "pending"


def test_after_one_timeout_nothing_waits_for_redis(played: Any) -> None:
    state, connection, clock = played
    first = defer.ensureDeferred(state.get("k"))
    clock.advance(2)  # command_timeout
    assert isinstance(outcome(first).value, StateUnavailable)
    assert state.down
    second = defer.ensureDeferred(state.get("k"))
    assert isinstance(outcome(second).value, StateUnavailable)  # at once
    assert len(connection.commands) == 1  # not even sent


def test_a_probe_that_answers_brings_it_back(played: Any) -> None:
    state, connection, clock = played
    first = defer.ensureDeferred(state.get("k"))
    clock.advance(2)
    outcome(first)
    clock.advance(SETTINGS.probe_interval)  # the probe: PING
    ((command, answer),) = connection.commands[1:]
    assert command == ("PING",)
    answer.callback("PONG")
    assert not state.down
    again = defer.ensureDeferred(state.get("k"))
    connection.commands[-1][1].callback("v")
    assert outcome(again) == "v"


def test_each_change_is_told_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """What the ``state_up`` gauge shows: up at start, down at the first failure (not at
    each refused command), up when a probe answers."""
    connection, clock = Connection(), task.Clock()
    monkeypatch.setattr(redis_state, "_connect", lambda address, timeout: connection)
    told: list[bool] = []
    state = RedisState(SETTINGS, clock, on_change=told.append)
    assert told == [True]
    outcome(defer.ensureDeferred(state.get("k")))
    clock.advance(2)
    outcome(defer.ensureDeferred(state.get("k")))  # refused at once: no second change
    assert told == [True, False]
    clock.advance(SETTINGS.probe_interval)
    connection.commands[-1][1].callback("PONG")
    assert told == [True, False, True]


def test_a_probe_that_fails_probes_again(played: Any) -> None:
    state, connection, clock = played
    outcome(defer.ensureDeferred(state.get("k")))
    clock.advance(2)
    clock.advance(SETTINGS.probe_interval)
    connection.commands[-1][1].errback(ConnectionRefusedError())
    assert state.down
    clock.advance(SETTINGS.probe_interval)
    assert connection.commands[-1][0] == ("PING",) and len(connection.commands) == 3


def test_a_callers_cancellation_or_an_error_reply_is_not_redis_down(played: Any) -> None:
    state, connection, _ = played

    class ResponseError(Exception):  # txredisapi's, by name
        pass

    cancelled = defer.ensureDeferred(state.get("k"))
    cancelled.cancel()
    assert outcome(cancelled).check(defer.CancelledError)
    refused = defer.ensureDeferred(state.get("k"))
    connection.commands[-1][1].errback(ResponseError("NOPERM this user has no permissions"))
    assert isinstance(outcome(refused).value, StateUnavailable)
    assert not state.down
