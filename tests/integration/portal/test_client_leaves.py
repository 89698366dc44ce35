"""A client that leaves before its answer, at every moment it can: while the portal is still
*connecting* to the homeserver (its listen backlog is full), while it *waits* for the answer
(the homeserver accepted and says nothing), and, through the client-server gateway, while an
answer or an upload is *streaming*. Each is the client's doing: logged and counted ``499``
(as nginx does), never the homeserver's ``502`` / ``504``, and never an "unexpected error".

Only fake homeservers (no Synapse): each test takes a few seconds at most.
"""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import attr
import pytest

from synapse_base_cs_url._dev.throwaway_portal import PortalProcess
from tests.harness.fake_servers import DrippingServer, HangingServer, UnacceptingServer
from tests.harness.metrics import CLIENT_API, total

# The portal's own processes and connections, whatever answers behind it: the same with
# either Synapse, so run once (against the newest).
pytestmark = [pytest.mark.integration, pytest.mark.once]

LOGINS = "synapse_base_cs_url_portal_logins_total"
CONNECT_TIMEOUT = 2.0
TOTAL_TIMEOUT = 3.0
#: The gateway's wait for an answer to start (and for a silent homeserver mid-answer).
CLIENT_API_TIMEOUT = 2.0
#: How long the client stays before it closes its socket.
STAY = 0.5
ALARMS = ("unexpected error", "Traceback", "status=502", "status=504")


@attr.s(auto_attribs=True)
class Leaving:
    portal: PortalProcess
    hanging: HangingServer
    unaccepting: UnacceptingServer
    dripping: DrippingServer


@pytest.fixture(scope="module")
def leaving(start_portal: Any) -> Iterator[Leaving]:
    """A proxy portal with the gateway on, in front of three fake homeservers: ``full`` never
    accepts a connection, ``hang`` accepts and never answers, ``drip`` starts an answer and
    stops. Users (and user-id paths) go to the one their localpart names."""
    hanging, unaccepting, dripping = HangingServer(), UnacceptingServer(), DrippingServer()
    config = {
        "public_baseurl": "https://portal.example.com",
        "mode": "proxy",
        "client_api": "proxy",
        "homeservers": {
            "hang": {"base_url": hanging.url},
            "full": {"base_url": unaccepting.url},
            "drip": {"base_url": dripping.url},
        },
        "routes": [
            {"name": "hang-users", "match": {"localpart": "hang_.*"}, "homeserver": "hang"},
            {"name": "full-users", "match": {"localpart": "full_.*"}, "homeserver": "full"},
            {"name": "drip-users", "match": {"localpart": "drip_.*"}, "homeserver": "drip"},
        ],
        "default_homeserver": "hang",
        "discovery_cache_ttl": 0,
        "timeouts": {
            "connect": CONNECT_TIMEOUT,
            "total": TOTAL_TIMEOUT,
            "client_api": CLIENT_API_TIMEOUT,
        },
    }
    try:
        yield Leaving(start_portal("client-leaves", config), hanging, unaccepting, dripping)
    finally:
        hanging.close()
        unaccepting.close()
        dripping.close()


# --- the client: a raw socket, closed at the moment the test chooses --------------------------


def leave(
    portal: PortalProcess,
    head: bytes,
    body: bytes = b"",
    *,
    read_first: bool = False,
) -> bytes:
    """Send ``head`` and ``body``, stay :data:`STAY` seconds (reading the start of the answer
    first if ``read_first``), close. What the client got before it left."""
    got = b""
    with socket.create_connection((portal.host, portal.port), timeout=10) as sock:
        sock.sendall(head + body)
        if read_first:
            while b"\r\n\r\n" not in got:
                data = sock.recv(65536)
                assert data, f"the portal closed the connection: {got!r}"
                got += data
        time.sleep(STAY)
    return got


def login_request(user: str) -> tuple[bytes, bytes]:
    body = (
        b'{"type": "m.login.password", "identifier": {"type": "m.id.user", "user": "%s"}, '
        b'"password": "secret"}' % user.encode()
    )
    head = (
        b"POST /_matrix/client/v3/login HTTP/1.1\r\nHost: portal.test\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
    )
    return head, body


def gateway_head(method: str, path: str, *extra: str) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: portal.test", *extra, "", ""]
    return "\r\n".join(lines).encode()


def wait_for(check: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


@attr.s(auto_attribs=True)
class Before:
    """What the portal's log and metrics said before a test's client came and went."""

    portal: PortalProcess
    log_at: int
    counts: dict[tuple[str, tuple[tuple[str, str], ...]], float]

    @classmethod
    def take(cls, portal: PortalProcess, *samples: tuple[str, dict[str, str]]) -> Before:
        counts = {
            (name, tuple(sorted(labels.items()))): total(portal.url, name, **labels)
            for name, labels in samples
        }
        return cls(portal, len(portal.logs()), counts)

    def new_log(self) -> str:
        return self.portal.logs()[self.log_at :]

    def moved(self, name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return total(self.portal.url, name, **labels) - self.counts[key]


def samples(name: str, homeserver: str) -> list[tuple[str, dict[str, str]]]:
    return [(name, {"homeserver": homeserver, "status": s}) for s in ("499", "502", "504")]


def assert_quiet(log: str) -> None:
    for alarm in ALARMS:
        assert alarm not in log, log


# --- a proxied login --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("user", "homeserver", "route"),
    [("full_ann", "full", "full-users"), ("hang_bob", "hang", "hang-users")],
    ids=["connecting", "waiting"],
)
def test_a_proxied_login_whose_client_leaves_is_499(
    leaving: Leaving, user: str, homeserver: str, route: str
) -> None:
    portal = leaving.portal
    before = Before.take(portal, *samples(LOGINS, homeserver))
    leave(portal, *login_request(user))
    line = re.compile(rf"login route={route} homeserver={homeserver} mode=proxy status=(\d+)")
    # Long enough for the connect timeout (a 504) to have been logged instead.
    assert wait_for(lambda: line.search(before.new_log()) is not None, TOTAL_TIMEOUT + 1)
    log = before.new_log()
    assert [m.group(1) for m in line.finditer(log)] == ["499"], log
    assert "problem='client closed the connection'" in log
    assert_quiet(log)
    assert before.moved(LOGINS, homeserver=homeserver, status="499") == 1
    assert before.moved(LOGINS, homeserver=homeserver, status="502") == 0
    assert before.moved(LOGINS, homeserver=homeserver, status="504") == 0


def test_a_proxied_login_leaving_while_connecting_gives_up_the_connection(
    leaving: Leaving,
) -> None:
    """Nothing of it is left: no 504 once the connect timeout has passed."""
    portal = leaving.portal
    before = Before.take(portal, *samples(LOGINS, "full"))
    leave(portal, *login_request("full_cid"))
    assert wait_for(lambda: "status=499" in before.new_log(), CONNECT_TIMEOUT)
    time.sleep(CONNECT_TIMEOUT)  # the attempt would have timed out by now
    assert_quiet(before.new_log())
    assert before.moved(LOGINS, homeserver="full", status="504") == 0


# --- the client-server gateway -----------------------------------------------------------------

UPLOAD_LENGTH = 10 * 1024 * 1024
GATEWAY_CASES = [
    # (moment, homeserver, request head, body, whether the client reads the answer's start)
    (
        "connecting",
        "full",
        gateway_head("GET", "/_matrix/client/v3/profile/@full_dee:elsewhere.test"),
        b"",
        False,
    ),
    (
        "waiting",
        "hang",
        gateway_head("GET", "/_matrix/client/v3/profile/@hang_eve:elsewhere.test"),
        b"",
        False,
    ),
    (
        "streaming-answer",
        "drip",
        gateway_head("GET", "/_matrix/client/v3/profile/@drip_fay:elsewhere.test"),
        b"",
        True,
    ),
    (
        "uploading-while-connecting",
        "full",
        gateway_head(
            "PUT",
            "/_matrix/client/v3/profile/@full_gus:elsewhere.test/displayname",
            "Content-Type: application/json",
            f"Content-Length: {UPLOAD_LENGTH}",
        ),
        b"x" * 65536,
        False,
    ),
    (
        "uploading",
        "hang",
        gateway_head(
            "PUT",
            "/_matrix/client/v3/profile/@hang_hal:elsewhere.test/displayname",
            "Content-Type: application/json",
            f"Content-Length: {UPLOAD_LENGTH}",
        ),
        b"x" * 65536,
        False,
    ),
]
GATEWAY_IDS = [case[0] for case in GATEWAY_CASES]


@pytest.fixture(scope="module", params=GATEWAY_CASES, ids=GATEWAY_IDS)
def gateway_left(leaving: Leaving, request: pytest.FixtureRequest) -> tuple[str, Before]:
    """One client-server request through the gateway whose client left: the homeserver it
    went to, and the portal's log and metrics from before it came."""
    _, homeserver, head, body, read_first = request.param
    portal = leaving.portal
    before = Before.take(portal, *samples(CLIENT_API, homeserver))
    got = leave(portal, head, body, read_first=read_first)
    if read_first:
        assert got.startswith(b"HTTP/1.1 200 "), got
    # Long enough for the connect timeout, or the gateway's own, to have counted a 504.
    time.sleep(max(CONNECT_TIMEOUT, CLIENT_API_TIMEOUT) + 0.5)
    return homeserver, before


def test_a_gateway_request_whose_client_leaves_is_never_the_homeservers_failure(
    leaving: Leaving, gateway_left: tuple[str, Before]
) -> None:
    homeserver, before = gateway_left
    assert_quiet(before.new_log())
    assert before.moved(CLIENT_API, homeserver=homeserver, status="502") == 0
    assert before.moved(CLIENT_API, homeserver=homeserver, status="504") == 0
    assert requests_health(leaving.portal)


def test_a_gateway_request_whose_client_leaves_is_counted_499(
    gateway_left: tuple[str, Before],
) -> None:
    homeserver, before = gateway_left
    assert before.moved(CLIENT_API, homeserver=homeserver, status="499") == 1


def requests_health(portal: PortalProcess) -> bool:
    with socket.create_connection((portal.host, portal.port), timeout=5) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: portal.test\r\nConnection: close\r\n\r\n")
        answer = b""
        while data := sock.recv(4096):
            answer += data
    return answer.startswith(b"HTTP/1.1 200 ")
