"""``_synapse_internals`` logic that needs no Synapse process.

The class-level ``on_POST`` wrapper on a stand-in servlet: real Synapse runs the same wrapper
in the integration tests; here each branch of it is driven directly, including the ones a
real Synapse cannot easily be made to take. Also: reading the request back, and the version
parsing of the startup check.
"""

from __future__ import annotations

import io
import logging
from types import SimpleNamespace
from typing import Any

import pytest

from synapse_base_cs_url.synapse_module import _synapse_internals as internals
from tests.harness.deferreds import settle

RESPONSE = {"user_id": "@a:hs", "access_token": "secret-token", "device_id": "D"}


class Homeserver:
    pass


def make_servlet_class(result: Any) -> type:
    class Servlet:
        def __init__(self, hs: object) -> None:
            self.hs = hs

        async def on_POST(self, request: Any) -> Any:
            return result

    internals._install_wrapper(Servlet, internals.LOGIN)
    return Servlet


def register(hs: object, hook: internals.ResponseHook, on_failure: Any = lambda: None) -> None:
    internals._hooks[hs] = {internals.LOGIN: internals._Registration(hook, on_failure)}


async def add_field(facts: internals.RequestFacts, response: dict[str, Any]) -> dict[str, Any]:
    return {**response, "base_cs_url": "https://cs.example.com"}


def post(servlet: Any) -> Any:
    return settle(servlet.on_POST(object()))


def test_amends_a_successful_login_of_a_homeserver_with_the_hook() -> None:
    hs = Homeserver()
    register(hs, add_field)
    servlet = make_servlet_class((200, dict(RESPONSE)))(hs)
    assert post(servlet) == (200, {**RESPONSE, "base_cs_url": "https://cs.example.com"})


def test_homeserver_without_the_hook_is_untouched() -> None:
    register(Homeserver(), add_field)
    result = (200, dict(RESPONSE))
    assert post(make_servlet_class(result)(Homeserver())) is result


@pytest.mark.parametrize(
    "result",
    [
        (401, {"errcode": "M_FORBIDDEN"}),
        (200, {"user_id": "@a:hs"}),  # e.g. registration with inhibit_login
        (200, ["not", "a", "dict"]),
        "not a (code, body) pair",
    ],
)
def test_responses_without_a_login_are_untouched(result: Any) -> None:
    hs = Homeserver()
    register(hs, add_field)
    assert post(make_servlet_class(result)(hs)) is result


@pytest.mark.parametrize(
    "hs",
    [
        pytest.param(None, id="servlet without hs"),
        pytest.param({}, id="hs that cannot be weakly referenced"),
    ],
)
def test_a_servlet_whose_homeserver_cannot_be_looked_up_is_untouched(hs: object) -> None:
    servlet_class = make_servlet_class((200, dict(RESPONSE)))
    servlet = servlet_class(hs)
    if hs is None:
        del servlet.hs
    assert post(servlet) == (200, RESPONSE)


def test_failing_hook_sends_synapse_response_logs_and_counts(
    caplog: pytest.LogCaptureFixture,
) -> None:
    failures: list[str] = []

    async def broken(facts: internals.RequestFacts, response: dict[str, Any]) -> dict[str, Any]:
        raise RuntimeError("injected")

    def on_failure() -> None:
        failures.append("counted")
        raise RuntimeError("and counting fails too")

    hs = Homeserver()
    register(hs, broken, on_failure)
    result = (200, dict(RESPONSE))
    with caplog.at_level(logging.ERROR, logger="synapse_base_cs_url"):
        assert post(make_servlet_class(result)(hs)) is result
    assert failures == ["counted"]
    [record] = caplog.records
    assert "could not add base_cs_url to a login response" in record.getMessage()
    assert record.exc_info is not None
    assert "secret-token" not in caplog.text


def test_failed_login_raises_through_unchanged() -> None:
    class Refused(Exception):
        pass

    class Servlet:
        def __init__(self, hs: object) -> None:
            self.hs = hs

        async def on_POST(self, request: Any) -> Any:
            raise Refused

    internals._install_wrapper(Servlet, internals.LOGIN)
    hs = Homeserver()
    register(hs, add_field)
    with pytest.raises(Refused):
        post(Servlet(hs))


def test_installed_once() -> None:
    servlet_class = make_servlet_class((200, dict(RESPONSE)))
    wrapped = servlet_class.on_POST  # type: ignore[attr-defined]
    internals._install_wrapper(servlet_class, internals.LOGIN)
    assert servlet_class.on_POST is wrapped  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("version", "parsed"),
    [
        ("1.163.2", (1, 163, 2)),
        ("1.100.0", (1, 100, 0)),
        ("1.163.2rc1", (1, 163, 2)),
        ("1.164.0rc3", (1, 164, 0)),
        ("1.99.10.post1", (1, 99, 10)),
        ("1.100", (1, 100)),
    ],
)
def test_synapse_version_parsing_ignores_pre_release_suffixes(
    version: str, parsed: tuple[int, ...]
) -> None:
    # "1.163.2rc1" used to read as 1.163.21: newer than tested, and warned about.
    assert internals._parse_version(version) == parsed


class Request:
    def __init__(self, content: bytes, address: Any) -> None:
        self.content = io.BytesIO(content)
        self._address = address

    def getClientAddress(self) -> Any:
        if isinstance(self._address, Exception):
            raise self._address
        return self._address


def test_request_facts_re_read_the_body_synapse_already_read() -> None:
    request = Request(b'{"type": "m.login.password"}', SimpleNamespace(host="192.0.2.7"))
    request.content.read()  # as Synapse's parse_json_object_from_request does
    facts = internals.RequestFacts(request)
    assert facts.body() == {"type": "m.login.password"}
    assert facts.client_ip() == "192.0.2.7"


@pytest.mark.parametrize(
    ("content", "address"),
    [
        (b"{not json", RuntimeError("no address")),
        (b"[1, 2]", SimpleNamespace()),  # e.g. a UNIX socket address: no host
    ],
)
def test_unreadable_request_facts_are_unknown_not_errors(content: bytes, address: Any) -> None:
    facts = internals.RequestFacts(Request(content, address))
    assert facts.body() is None
    assert facts.client_ip() is None
