"""``check`` against throwaway deployments: green on a good one, and each fault found with its
hint: the module missing on a homeserver, a homeserver that does not answer, a portal route
to a wrong base_url, missing CORS, an expired or self-signed certificate."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from synapse_base_cs_url._dev.throwaway_synapse import free_port
from tests.harness.certificates import Pem, make_certificates
from tests.harness.constants import PASSWORD, REPO_ROOT
from tests.harness.fake_servers import StaticMatrixServer
from tests.harness.portal import Homeservers, PortalProcess, portal_config

pytestmark = pytest.mark.integration

PASSWORD_VAR = "CHECK_TEST_PASSWORD"


def check(*argv: str) -> tuple[int, str]:
    """``synapse-base-cs-url check`` as an operator runs it: a process, the password in the
    environment."""
    env = {**os.environ, PASSWORD_VAR: PASSWORD}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
    done = subprocess.run(
        [sys.executable, "-m", "synapse_base_cs_url", "check", *argv],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert not done.stderr, done.stderr
    return done.returncode, done.stdout


def with_password(*argv: str) -> tuple[int, str]:
    return check(*argv, "--password-env", PASSWORD_VAR)


def test_a_good_portal_deployment_is_green(
    portals: dict[str, PortalProcess], homeservers: Homeservers
) -> None:
    hs1 = homeservers.hs1.base_url
    status, out = with_password(portals["redirect"].url, "--user", "alice")
    assert status == 0, out
    assert "✗" not in out
    for line in (
        "✓ versions: ",
        "✓ /.well-known/matrix/client: m.homeserver.base_url https://portal.example.com",
        "✓ login flows: m.login.password",
        "✓ CORS: ",
        "✓ kind: a login portal (mode: redirect)",
        f"✓ route: the portal sends alice to {hs1}",
        f"✓ homeserver versions: {hs1}",
        "✓ homeserver CORS: ",
        "✓ login: logged in as @alice:hs1.test",
        f"✓ base_cs_url: {hs1}, the same as well_known",
        f"✓ whoami: {hs1} knows the new token as @alice:hs1.test",
        "✓ logout: the check's device is logged out again",
    ):
        assert line in out, out


def test_json_output_for_monitoring(homeservers: Homeservers) -> None:
    status, out = check(homeservers.hs2.base_url, "--json")
    document = json.loads(out)
    assert (status, document["ok"]) == (0, True)
    assert {c["name"]: c["status"] for c in document["checks"]}["kind"] == "ok"
    assert document["checks"][-1]["detail"] == "a homeserver"


def test_the_module_missing_on_a_homeserver(portals: dict[str, PortalProcess]) -> None:
    status, out = with_password(portals["redirect"].url, "--user", "p_erin")
    assert status == 1
    assert "✗ base_cs_url: the login response from http://127.0.0.1:" in out
    assert "hint: the module is not loaded on this homeserver" in out


def test_a_homeserver_that_does_not_answer() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    status, out = check(url)
    assert status == 1
    assert f"✗ versions: {url}: no answer (ConnectionRefusedError" in out
    assert "hint: is the server running, and is this its client-server API URL?" in out


def test_a_portal_route_to_a_wrong_base_url(homeservers: Homeservers, start_portal: Any) -> None:
    wrong = f"http://127.0.0.1:{free_port()}"
    named = {"hs1": homeservers.hs1, "hs2": homeservers.hs2, "plain": homeservers.plain}
    config = portal_config(named)
    # The portal itself reaches hs2 (discovery works), but sends clients to a dead URL.
    config["homeservers"]["hs2"] = {"base_url": wrong, "proxy_url": homeservers.hs2.base_url}
    portal = start_portal("wrong-base-url", config)
    status, out = check(portal.url, "--user", "h2_carol")
    assert status == 1
    assert f"✓ route: the portal sends h2_carol to {wrong}" in out
    assert f"✗ homeserver versions: {wrong}: no answer" in out
    assert "hint: the portal sends this user to a base_url that does not answer" in out


def test_a_user_is_routed_by_e_mail_address_as_explain_takes_it(
    portals: dict[str, PortalProcess], homeservers: Homeservers
) -> None:
    # The routes send *@dept2.example.com to hs2; as a localpart it would go to hs1.
    status, out = check(portals["redirect"].url, "--user", "carol@dept2.example.com")
    assert status == 0, out
    assert f"✓ route: the portal sends carol@dept2.example.com to {homeservers.hs2.base_url}" in out


def test_a_proxying_portal_with_a_password_is_judged_by_the_login(
    portals: dict[str, PortalProcess], homeservers: Homeservers
) -> None:
    status, out = with_password(portals["proxy"].url, "--user", "alice")
    assert status == 0, out
    assert "route:" not in out  # no "give --password-env" when it was given
    assert f"✓ base_cs_url: {homeservers.hs1.base_url}, the same as well_known" in out


def test_a_proxying_portal_is_a_warning_without_a_password(
    portals: dict[str, PortalProcess], homeservers: Homeservers
) -> None:
    logins = homeservers.hs1.log_text().count('"POST /_matrix/client/v3/login')
    status, out = check(portals["proxy"].url, "--user", "alice")
    assert status == 0, out
    assert "✓ kind: a login portal (mode: proxy)" in out
    assert "! route: the portal proxies logins (mode: proxy): not asked" in out
    assert "give --password-env" in out
    # Nothing reached a homeserver's login endpoint, so nothing counts as a failed login.
    assert homeservers.hs1.log_text().count('"POST /_matrix/client/v3/login') == logins


def test_a_portal_carrying_the_client_server_api(
    homeservers: Homeservers, start_portal: Any
) -> None:
    named = {"hs1": homeservers.hs1, "hs2": homeservers.hs2, "plain": homeservers.plain}
    config = {**portal_config(named), "client_api": "proxy"}
    portal = start_portal("check-gateway", config)
    status, out = with_password(portal.url, "--user", "h2_carol")
    assert status == 0, out
    assert "✓ kind: a login portal (mode: redirect, carrying the client-server API)" in out
    assert f"✓ route: the portal sends h2_carol to {homeservers.hs2.base_url}" in out
    assert "✓ login: logged in as @h2_carol:hs2.test" in out


def test_missing_cors() -> None:
    server = StaticMatrixServer(cors=False)
    try:
        status, out = check(server.url)
    finally:
        server.close()
    assert status == 1
    assert "✗ CORS: " in out
    assert "no Access-Control-Allow-Origin" in out
    assert "hint: web clients (Element Web) cannot log in here" in out


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Pem]:
    return make_certificates(tmp_path_factory.mktemp("certificates"))


@pytest.fixture
def tls_server(certificates: dict[str, Pem]) -> Iterator[Any]:
    servers: list[StaticMatrixServer] = []

    def start(label: str) -> StaticMatrixServer:
        pem = certificates[label]
        server = StaticMatrixServer(cert=(str(pem.cert), str(pem.key)))
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


def test_a_valid_certificate_and_its_days_left(
    tls_server: Any, certificates: dict[str, Pem]
) -> None:
    server = tls_server("valid")
    status, out = check(server.url, "--ca-file", str(certificates["ca"].cert))
    assert status == 0, out
    assert "✓ TLS certificate: valid, expires " in out
    assert "(89 days left)" in out or "(90 days left)" in out


@pytest.mark.parametrize(
    ("label", "words"),
    [("self_signed", "self-signed certificate"), ("expired", "certificate has expired")],
)
def test_bad_certificates(
    tls_server: Any, certificates: dict[str, Pem], label: str, words: str
) -> None:
    server = tls_server(label)
    status, out = check(server.url, "--ca-file", str(certificates["ca"].cert))
    assert status == 1
    assert f"✗ TLS certificate: 127.0.0.1:{server.port}: {words}" in out
    assert "hint: clients refuse this certificate" in out
    # The rest of the list still runs (without verifying), so one fault hides no other.
    assert "✓ versions: " in out


def test_the_certificate_of_the_homeserver_a_user_is_sent_to(
    homeservers: Homeservers, start_portal: Any, tls_server: Any, certificates: dict[str, Pem]
) -> None:
    expired = tls_server("expired")
    named = {"hs1": homeservers.hs1, "hs2": homeservers.hs2, "plain": homeservers.plain}
    config = portal_config(named)
    # The portal reaches hs2 itself; clients are sent to an https address whose certificate
    # has expired.
    config["homeservers"]["hs2"] = {"base_url": expired.url, "proxy_url": homeservers.hs2.base_url}
    portal = start_portal("expired-homeserver", config)
    status, out = check(portal.url, "--user", "h2_carol", "--ca-file", str(certificates["ca"].cert))
    assert status == 1
    assert f"✓ route: the portal sends h2_carol to {expired.url}" in out
    assert f"✗ homeserver TLS certificate: 127.0.0.1:{expired.port}: certificate has expired" in out
    # The portal's own address is plain http here: no certificate line for it.
    assert "✓ TLS certificate" not in out and "✗ TLS certificate" not in out
