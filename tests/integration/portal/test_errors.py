"""Every error the portal answers itself: bad bodies, oversize bodies, dead and hanging
homeservers, paths it does not serve. Never a 500, never a hang."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import attr
import pytest
import requests

from synapse_base_cs_url._dev.throwaway_portal import PortalProcess
from synapse_base_cs_url._dev.throwaway_synapse import SynapseProcess, free_port
from tests.harness.clients import password_body
from tests.harness.constants import PASSWORD, REPO_ROOT
from tests.harness.fake_servers import HangingServer, UnacceptingServer
from tests.harness.portal import Homeservers, portal_config
from tests.harness.synapse import start_all

pytestmark = pytest.mark.integration

CONNECT_TIMEOUT = 1.0
# Well above CONNECT_TIMEOUT: "504 after the connect timeout, before the total one" must
# hold on a loaded CI machine too (with 1.5 it had half a second of slack).
TOTAL_TIMEOUT = 3.0
SMALL_LIMIT = 1024


def post_login(portal: PortalProcess, data: Any = None, **kwargs: Any) -> requests.Response:
    return requests.post(
        f"{portal.url}/_matrix/client/v3/login",
        data=data,
        timeout=30,
        allow_redirects=False,
        **kwargs,
    )


def assert_error(result: requests.Response, status: int, errcode: str, *words: str) -> None:
    assert result.status_code == status, result.text
    body = result.json()
    assert body["errcode"] == errcode
    for word in words:
        assert word in body["error"]
    assert result.headers["Access-Control-Allow-Origin"] == "*"


# --- bodies the portal refuses (any mode) -----------------------------------------------------


@pytest.mark.parametrize("mode", ["redirect", "proxy"])
@pytest.mark.parametrize(
    ("data", "errcode", "word"),
    [
        (b"{not json", "M_NOT_JSON", "JSON"),
        (b"\xff\xfe", "M_NOT_JSON", "JSON"),
        (b"", "M_NOT_JSON", "JSON"),
        (b"[1, 2]", "M_BAD_JSON", "object"),
        (b'{"identifier": {"type": "m.id.user", "user": "alice"}}', "M_BAD_JSON", "'type'"),
        (b'{"type": "m.login.password", "password": "x"}', "M_BAD_JSON", "identifier"),
        (b'{"type": "m.login.password", "identifier": "alice"}', "M_BAD_JSON", "identifier"),
        (
            b'{"type": "m.login.password", "identifier": {"type": "m.id.user"}}',
            "M_BAD_JSON",
            "user",
        ),
        (
            b'{"type": "m.login.password", '
            b'"identifier": {"type": "m.id.thirdparty", "medium": "email"}}',
            "M_BAD_JSON",
            "address",
        ),
        (b'{"type": "m.login.token"}', "M_BAD_JSON", "token"),
    ],
)
def test_bad_bodies(
    portals: dict[str, PortalProcess], mode: str, data: bytes, errcode: str, word: str
) -> None:
    result = post_login(portals[mode], data, headers={"Content-Type": "application/json"})
    assert_error(result, 400, errcode, word)


@pytest.mark.parametrize("mode", ["redirect", "proxy"])
def test_body_over_the_default_limit(portals: dict[str, PortalProcess], mode: str) -> None:
    body = b'{"type": "m.login.password", "pad": "' + b"x" * (64 * 1024) + b'"}'
    assert_error(post_login(portals[mode], body), 413, "M_TOO_LARGE", "65536")


def test_chunked_body_over_the_limit(portals: dict[str, PortalProcess]) -> None:
    """No Content-Length: the portal counts what arrives."""

    def chunks() -> Iterator[bytes]:
        yield b'{"type": "m.login.password", "pad": "'
        for _ in range(80):
            yield b"x" * 1024
        yield b'"}'

    assert_error(post_login(portals["proxy"], chunks()), 413, "M_TOO_LARGE")


def test_body_just_under_the_limit_is_routed(portals: dict[str, PortalProcess]) -> None:
    body = password_body("alice")
    body["pad"] = "x" * (64 * 1024 - 200)
    result = post_login(portals["redirect"], json=body)
    assert result.status_code == 307


@pytest.mark.parametrize(
    ("method", "path", "status", "errcode"),
    [
        ("GET", "/_matrix/client/v3/sync", 404, "M_UNRECOGNIZED"),
        ("POST", "/_matrix/client/v3/createRoom", 404, "M_UNRECOGNIZED"),
        # Registration is the portal's (a 307 to where the account will live); not by GET.
        ("GET", "/_matrix/client/v3/register", 405, "M_UNRECOGNIZED"),
        ("GET", "/_matrix/client/v3/account/whoami", 404, "M_UNRECOGNIZED"),
        ("GET", "/", 404, "M_UNRECOGNIZED"),
        ("PUT", "/_matrix/client/v3/login", 405, "M_UNRECOGNIZED"),
        ("DELETE", "/_matrix/client/versions", 405, "M_UNRECOGNIZED"),
        ("POST", "/.well-known/matrix/client", 405, "M_UNRECOGNIZED"),
        ("POST", "/_matrix/client/v3/login/sso/redirect", 405, "M_UNRECOGNIZED"),
        ("POST", "/_synapse_base_cs_url/sso/return", 405, "M_UNRECOGNIZED"),
        ("PUT", "/health", 405, "M_UNRECOGNIZED"),
        ("GET", "/_matrix/client/v3/versions", 404, "M_UNRECOGNIZED"),
    ],
)
def test_paths_the_portal_does_not_serve(
    portals: dict[str, PortalProcess], method: str, path: str, status: int, errcode: str
) -> None:
    result = requests.request(method, portals["proxy"].url + path, timeout=30)
    assert_error(result, status, errcode)
    if status == 404:
        assert "well_known" in result.json()["error"]


# --- homeservers that are down or hang -------------------------------------------------------


@attr.s(auto_attribs=True)
class Troubled:
    portal: PortalProcess
    doomed: SynapseProcess
    hanging: HangingServer
    unaccepting: UnacceptingServer


@pytest.fixture(scope="module")
def troubled(
    homeservers: Homeservers, start_portal: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Troubled]:
    """A proxy portal with hs1, a Synapse the tests stop (``doomed``) and one that hangs."""
    doomed = SynapseProcess(
        "doomed.test", workdir=tmp_path_factory.mktemp("doomed"), extra_pythonpath=[str(REPO_ROOT)]
    )
    start_all([doomed])
    doomed.register_user("doomed_frank", PASSWORD)
    hanging = HangingServer()
    unaccepting = UnacceptingServer()
    config = portal_config(
        {"hs1": homeservers.hs1},
        mode="proxy",
        timeouts={"connect": CONNECT_TIMEOUT, "total": TOTAL_TIMEOUT},
        max_body_size=SMALL_LIMIT,
        discovery_cache_ttl=0,
        routes=[
            {"name": "doomed-users", "match": {"localpart": "doomed_.*"}, "homeserver": "doomed"},
            {"name": "hanging-users", "match": {"localpart": "hang_.*"}, "homeserver": "hang"},
            {"name": "full-users", "match": {"localpart": "full_.*"}, "homeserver": "full"},
        ],
    )
    config["homeservers"]["doomed"] = {"base_url": doomed.base_url}
    config["homeservers"]["hang"] = {"base_url": hanging.url}
    config["homeservers"]["full"] = {"base_url": unaccepting.url}
    try:
        yield Troubled(start_portal("troubled", config), doomed, hanging, unaccepting)
    finally:
        doomed.stop()
        hanging.close()
        unaccepting.close()


def test_configured_body_limit(troubled: Troubled) -> None:
    small = password_body("alice")
    assert post_login(troubled.portal, json=small).status_code == 200
    big = dict(small, pad="x" * SMALL_LIMIT)
    assert_error(post_login(troubled.portal, json=big), 413, "M_TOO_LARGE", str(SMALL_LIMIT))


def test_stopped_homeserver_is_502_naming_it(troubled: Troubled) -> None:
    assert post_login(troubled.portal, json=password_body("doomed_frank")).status_code == 200
    troubled.doomed.stop()
    started = time.monotonic()
    result = post_login(troubled.portal, json=password_body("doomed_frank"))
    assert_error(result, 502, "M_UNKNOWN", "'doomed'", "unreachable")
    assert time.monotonic() - started < TOTAL_TIMEOUT
    # The others still work.
    assert post_login(troubled.portal, json=password_body("alice")).status_code == 200


def test_hanging_homeserver_is_504_naming_it(troubled: Troubled) -> None:
    started = time.monotonic()
    result = post_login(troubled.portal, json=password_body("hang_gary"))
    elapsed = time.monotonic() - started
    assert_error(result, 504, "M_UNKNOWN", "'hang'", f"{TOTAL_TIMEOUT:g}s")
    assert TOTAL_TIMEOUT <= elapsed < TOTAL_TIMEOUT + 2


def test_homeserver_not_accepting_connections_is_504_after_the_connect_timeout(
    troubled: Troubled,
) -> None:
    started = time.monotonic()
    result = post_login(troubled.portal, json=password_body("full_hank"))
    elapsed = time.monotonic() - started
    assert_error(
        result,
        504,
        "M_UNKNOWN",
        "'full'",
        f"did not accept a connection within {CONNECT_TIMEOUT:g}s",
    )
    assert CONNECT_TIMEOUT <= elapsed < TOTAL_TIMEOUT


def test_client_leaving_mid_proxy_is_logged_and_harmless(troubled: Troubled) -> None:
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.post(
            f"{troubled.portal.url}/_matrix/client/v3/login",
            json=password_body("hang_ivy"),
            timeout=0.3,
        )
    deadline = time.monotonic() + 5
    while "status=499" not in troubled.portal.logs() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert (
        "login route=hanging-users homeserver=hang mode=proxy status=499" in troubled.portal.logs()
    )
    assert requests.get(f"{troubled.portal.url}/health", timeout=5).status_code == 200
    assert "Traceback" not in troubled.portal.logs()


def test_discovery_leaves_out_homeservers_that_fail(
    troubled: Troubled, homeservers: Homeservers
) -> None:
    started = time.monotonic()
    result = requests.get(f"{troubled.portal.url}/_matrix/client/versions", timeout=30)
    assert result.status_code == 200, result.text
    assert time.monotonic() - started < TOTAL_TIMEOUT + 2
    direct = homeservers.hs1.get("/_matrix/client/versions").json()
    assert set(result.json()["versions"]) <= set(direct["versions"])
    assert result.json()["versions"]


def test_discovery_with_no_homeserver_answering_is_502(start_portal: Any) -> None:
    gone = f"http://127.0.0.1:{free_port()}"
    config = portal_config({}, mode="proxy", routes=[])
    config["homeservers"] = {"gone": {"base_url": gone}}
    config["default_homeserver"] = "gone"
    portal = start_portal("all-gone", config)
    for path in ("/_matrix/client/versions", "/_matrix/client/v3/login"):
        assert_error(requests.get(portal.url + path, timeout=30), 502, "M_UNKNOWN", "'gone'")
    assert_error(post_login(portal, json=password_body("alice")), 502, "M_UNKNOWN", "'gone'")
