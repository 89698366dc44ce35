"""The directory's sources against homeservers and directories played by the test."""

from __future__ import annotations

from typing import Any

from twisted.internet import defer
from twisted.web.http_headers import Headers

from synapse_base_cs_url.portal import errors
from synapse_base_cs_url.portal.config.directory import DirectoryFunction
from synapse_base_cs_url.portal.config.homeservers import Homeserver
from synapse_base_cs_url.portal.directory.identifier import EMAIL, LOCALPART, Identifier
from synapse_base_cs_url.portal.directory.sources import (
    FunctionSource,
    HomeserverSource,
    HttpSource,
    SourceAnswer,
)
from synapse_base_cs_url.portal.upstream.client import UpstreamResponse
from tests.harness.deferreds import settle

HOMESERVERS = {
    name: Homeserver(
        name=name,
        base_url=f"https://{name}.example",
        proxy_url=f"http://{name}.internal",
        server_name=f"{name}.example",
        admin_token=f"syt_admin_{name}",
    )
    for name in ("hs1", "hs2", "hs3")
}


class Upstream:
    """Answers each homeserver (by name) with a status, or fails like an unreachable one."""

    def __init__(self, answers: dict[str, Any]) -> None:
        self.answers = answers
        self.asked: list[tuple[str, bytes, dict[bytes, list[bytes]]]] = []

    async def request(
        self,
        hs: Homeserver,
        method: bytes,
        path: bytes,
        headers: Any = (),
        body: Any = None,
        *,
        timeout: float | None = None,
    ) -> UpstreamResponse:
        self.asked.append((hs.name, path, dict(headers)))
        answer = self.answers[hs.name]
        if isinstance(answer, Exception):
            raise answer
        default = b'{"errcode": "M_NOT_FOUND"}' if answer == 404 else b"{}"
        status, body = answer if isinstance(answer, tuple) else (answer, default)
        return UpstreamResponse(status, Headers(), body)


def ask(source: Any, identifier: Identifier) -> SourceAnswer:
    result: SourceAnswer = settle(defer.ensureDeferred(source.ask(identifier)))
    return result


def test_every_homeserver_is_asked_with_its_own_token_and_server_name() -> None:
    upstream = Upstream({"hs1": 404, "hs2": 200, "hs3": 404})
    source = HomeserverSource(upstream, list(HOMESERVERS.values()))  # type: ignore[arg-type]
    assert ask(source, Identifier(LOCALPART, "bob")) == SourceAnswer(frozenset({"hs2"}))
    paths = {name: path for name, path, _ in upstream.asked}
    assert paths["hs2"] == b"/_synapse/admin/v2/users/%40bob%3Ahs2.example"
    tokens = {name: h[b"Authorization"] for name, _, h in upstream.asked}
    assert tokens["hs3"] == [b"Bearer syt_admin_hs3"]


def test_threepids_are_looked_up_by_medium_and_address() -> None:
    upstream = Upstream({"hs1": 200, "hs2": 200, "hs3": 404})
    source = HomeserverSource(upstream, list(HOMESERVERS.values()))  # type: ignore[arg-type]
    answer = ask(source, Identifier(EMAIL, "a+b@example.com"))
    assert answer.holders == frozenset({"hs1", "hs2"})
    assert upstream.asked[0][1] == b"/_synapse/admin/v1/threepid/email/users/a%2Bb%40example.com"


def test_a_homeserver_that_cannot_say_is_never_a_no() -> None:
    # A proxy's 404 page in front of the admin API is no answer either: only Synapse's own
    # M_NOT_FOUND says the account is not there.
    html_404 = (404, b"<html>Not Found</html>")
    upstream = Upstream({"hs1": 404, "hs2": 403, "hs3": errors.unreachable("hs3", "refused")})
    source = HomeserverSource(upstream, list(HOMESERVERS.values()))  # type: ignore[arg-type]
    assert ask(source, Identifier(LOCALPART, "bob")) == SourceAnswer(frozenset(), ("hs2", "hs3"))
    upstream.answers["hs1"] = html_404
    assert ask(source, Identifier(LOCALPART, "bob")).unanswered == ("hs1", "hs2", "hs3")


def test_ingress_points_of_one_homeserver_are_asked_once() -> None:
    ingress = {
        "a": Homeserver(
            name="a",
            base_url="https://a.x",
            proxy_url="http://a",
            server_name="big.x",
            admin_token="t",
        ),
        "a2": Homeserver(
            name="a2",
            base_url="https://a2.x",
            proxy_url="http://a2",
            server_name="big.x",
            admin_token="t",
        ),
    }
    upstream = Upstream({"a": 200, "a2": 200})
    source = HomeserverSource(upstream, list(ingress.values()))  # type: ignore[arg-type]
    assert ask(source, Identifier(LOCALPART, "bob")) == SourceAnswer(frozenset({"a"}))
    assert [name for name, _, _ in upstream.asked] == ["a"]


def test_a_homeserver_asking_about_itself_is_left_out() -> None:
    upstream = Upstream({"hs1": 200, "hs2": 404, "hs3": 404})
    source = HomeserverSource(upstream, list(HOMESERVERS.values()))  # type: ignore[arg-type]
    answer = settle(defer.ensureDeferred(source.ask(Identifier(LOCALPART, "bob"), "hs1")))
    assert answer == SourceAnswer(frozenset())
    assert sorted(name for name, _, _ in upstream.asked) == ["hs2", "hs3"]


def test_an_http_directory() -> None:
    answers = {"directory": (200, b'{"homeserver": "hs3"}')}
    upstream = Upstream(answers)
    source = HttpSource(upstream, "https://dir.example/where", HOMESERVERS)  # type: ignore[arg-type]
    assert ask(source, Identifier(EMAIL, "a@b.example")) == SourceAnswer(frozenset({"hs3"}))
    assert upstream.asked[0][1] == b"/where?medium=email&address=a%40b.example"
    for body, expected in [
        (b'{"homeserver": null}', SourceAnswer()),
        (b'{"homeserver": ["hs1", "hs2"]}', SourceAnswer(frozenset({"hs1", "hs2"}))),
        (b'{"homeserver": "hs9"}', SourceAnswer(unanswered=("http",))),
        (b'{"something": "else"}', SourceAnswer(unanswered=("http",))),
        (b"not json", SourceAnswer(unanswered=("http",))),
    ]:
        answers["directory"] = (200, body)
        assert ask(source, Identifier(LOCALPART, "bob")) == expected, body
    answers["directory"] = (500, b'{"homeserver": "hs1"}')
    assert ask(source, Identifier(LOCALPART, "bob")) == SourceAnswer(unanswered=("http",))
    answers["directory"] = errors.timed_out("directory", 5)
    assert ask(source, Identifier(LOCALPART, "bob")) == SourceAnswer(unanswered=("http",))


def test_a_function_sync_or_async() -> None:
    def where(localpart: str | None, medium: str | None, address: str | None) -> object:
        if localpart == "boom":
            raise RuntimeError("the operator's bug")
        return {"bob": "hs1", "ghost": "nowhere"}.get(localpart or address or "")

    async def where_async(**kwargs: Any) -> object:
        return where(**kwargs)

    for function in (where, where_async):
        source = FunctionSource(DirectoryFunction("m:where", function), HOMESERVERS)
        assert ask(source, Identifier(LOCALPART, "bob")) == SourceAnswer(frozenset({"hs1"}))
        assert ask(source, Identifier(LOCALPART, "alice")) == SourceAnswer()
        assert ask(source, Identifier(LOCALPART, "ghost")).unanswered == ("function",)
        assert ask(source, Identifier(LOCALPART, "boom")).unanswered == ("function",)


def test_a_token_is_refused_only_by_401_or_403() -> None:
    from synapse_base_cs_url.portal.directory.admin_tokens import check_token

    hs = HOMESERVERS["hs1"]

    class Answers:
        def __init__(self, whoami: int, admin: int) -> None:
            self.whoami, self.admin = whoami, admin

        async def request(
            self, hs: Homeserver, method: bytes, path: bytes, *a: Any, **kw: Any
        ) -> UpstreamResponse:
            if path.endswith(b"/whoami"):
                return UpstreamResponse(self.whoami, Headers(), b'{"user_id": "@p:hs1.example"}')
            return UpstreamResponse(self.admin, Headers(), b"{}")

    def ok(whoami: int, admin: int) -> bool | None:
        check = settle(defer.ensureDeferred(check_token(Answers(whoami, admin), hs)))  # type: ignore[arg-type]
        assert "syt_admin" not in check.detail
        return check.ok

    assert ok(200, 200) is True
    assert ok(401, 200) is False
    assert ok(200, 403) is False
    # A proxy's 502 in front of a Synapse that is down: no answer, not a refusal.
    assert ok(502, 200) is None
    assert ok(200, 503) is None
