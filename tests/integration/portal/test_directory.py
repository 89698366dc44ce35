"""The account directory against three real Synapses: users placed by a 2-member hash pool,
the pool grown to 3, and every existing user still found where their account lives, by bare
localpart and by e-mail, in every mode; a localpart held twice; a homeserver down; replicas
sharing the cache in a real Redis; an operator's HTTP directory; bad admin tokens."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import attr
import pytest
import requests
import yaml

from synapse_base_cs_url._dev.throwaway_portal import PortalProcess
from synapse_base_cs_url._dev.throwaway_synapse import SynapseProcess, free_port
from synapse_base_cs_url.core import rendezvous_pick
from tests.harness.cli import run_tool
from tests.harness.clients import whoami
from tests.harness.constants import MODULE, PASSWORD
from tests.harness.metrics import total
from tests.harness.nginx import NginxProcess
from tests.harness.portal import homeserver_entries, portal_homeserver
from tests.harness.services import redis_server
from tests.harness.smtp import SmtpSink
from tests.harness.switchable_proxy import SwitchableProxy
from tests.harness.synapse import start_all

pytestmark = pytest.mark.integration

NAMES = ("d1", "d2", "d3")
USERS = [f"user{i}" for i in range(12)]
#: Held on d1 and on d2: a bare login by it must not guess.
DOUBLED = "twice"
LOGIN = "/_matrix/client/v3/login"


@attr.s(auto_attribs=True)
class Deployment:
    homeservers: dict[str, SynapseProcess]
    tokens: dict[str, Path]
    placed: dict[str, str]
    """Each user's homeserver, as the 2-member pool placed it."""
    workdir: Path

    def config(self, **overrides: Any) -> dict[str, Any]:
        config: dict[str, Any] = {
            "public_baseurl": "https://portal.example.com",
            "mode": "redirect",
            "homeservers": homeserver_entries(self.homeservers, admin_token_file=self.tokens),
            "routes": [{"name": "pool", "pool": list(NAMES), "strategy": "hash"}],
            "default_homeserver": "d1",
            # Every test logs in from one address, many times.
            "directory": {"burst": 1000},
        }
        config.update(overrides)
        return config


def email_of(user: str) -> str:
    return f"{user}@mail.example.com"


@pytest.fixture(scope="module")
def smtp() -> Iterator[SmtpSink]:
    sink = SmtpSink()
    yield sink
    sink.close()


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory, smtp: SmtpSink) -> Iterator[Deployment]:
    made = {
        name: portal_homeserver(tmp_path_factory, f"{name}.test", module=True)[0] for name in NAMES
    }
    workdir = tmp_path_factory.mktemp("directory")
    for name, hs in made.items():
        # Password resets by e-mail, into the test's SMTP sink.
        hs.config["email"] = smtp.synapse_config(f"noreply@{name}.test")
        # Refresh tokens, for a refresh through the gateway after a redirected login.
        hs.config["refreshable_access_token_lifetime"] = "5m"
        # The module also answers registrations with the new account's base_cs_url.
        for module in hs.config["modules"]:
            if module["module"] == MODULE:
                module["config"]["on_register"] = True
    try:
        start_all(list(made.values()))
        tokens: dict[str, Path] = {}
        for name, hs in made.items():
            admin = hs.register_user("portal-directory", PASSWORD, admin=True)
            token = hs.password_login(admin, PASSWORD).json()["access_token"]
            tokens[name] = workdir / f"{name}.token"
            tokens[name].write_text(token + "\n")
        placed = {user: rendezvous_pick(["d1", "d2"], user) for user in USERS}
        for user, name in placed.items():
            hs = made[name]
            user_id = hs.register_user(user, PASSWORD)
            bind = requests.put(
                f"{hs.base_url}/_synapse/admin/v2/users/{user_id}",
                json={"threepids": [{"medium": "email", "address": email_of(user)}]},
                headers={"Authorization": f"Bearer {tokens[name].read_text().strip()}"},
                timeout=30,
            )
            assert bind.status_code == 200, bind.text
        for name in ("d1", "d2"):
            made[name].register_user(DOUBLED, PASSWORD)
        yield Deployment(made, tokens, placed, workdir)
    finally:
        for hs in made.values():
            hs.stop()


def by_localpart(user: str) -> dict[str, Any]:
    return {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": user},
        "password": PASSWORD,
    }


def by_email(user: str) -> dict[str, Any]:
    return {
        "type": "m.login.password",
        # As a user types it: Synapse stores (and the directory looks up) the canonical form.
        "identifier": {
            "type": "m.id.thirdparty",
            "medium": "email",
            "address": f" {user.upper()}@Mail.Example.com",
        },
        "password": PASSWORD,
    }


def login(portal: PortalProcess, body: dict[str, Any], **headers: str) -> requests.Response:
    return requests.post(
        portal.url + LOGIN, json=body, headers=headers, allow_redirects=False, timeout=30
    )


def logged_in_at(
    portal: PortalProcess, body: dict[str, Any], deployment: Deployment, **headers: str
) -> str:
    """Log in through ``portal`` (following a 307 as a client does); the homeserver that
    holds the session."""
    answer = login(portal, body, **headers)
    if answer.status_code == 307:
        answer = requests.post(answer.headers["Location"], json=body, timeout=30)
    assert answer.status_code == 200, answer.text
    server = answer.json()["user_id"].partition(":")[2]
    return next(name for name, hs in deployment.homeservers.items() if hs.server_name == server)


def test_without_the_directory_a_grown_pool_locks_users_out(
    deployment: Deployment, start: Any
) -> None:
    """What the directory is for: the same grown pool, no admin tokens."""
    config = deployment.config()
    del config["directory"]
    for settings in config["homeservers"].values():
        del settings["admin_token_file"]
    portal = start(config, "no-directory")
    moved = [
        user
        for user, home in deployment.placed.items()
        if login(portal, by_localpart(user)).headers.get("Location", "").split("/_matrix")[0]
        != deployment.homeservers[home].base_url
    ]
    assert moved, "the grown pool moved nobody: this test would prove nothing"


@pytest.mark.parametrize("mode", ["redirect", "proxy", "auto"])
def test_every_existing_user_is_found_where_they_live(
    deployment: Deployment, start: Any, mode: str
) -> None:
    portal = start(deployment.config(mode=mode), f"dir-{mode}")
    headers = {"User-Agent": "Dart/3.5 (dart:io)"} if mode == "auto" else {}
    for user, home in deployment.placed.items():
        assert logged_in_at(portal, by_localpart(user), deployment, **headers) == home, user
        assert logged_in_at(portal, by_email(user), deployment, **headers) == home, user
    lookups = "synapse_base_cs_url_portal_directory_lookups_total"
    found = total(portal.url, lookups, source="homeservers", outcome="found")
    assert found == 2 * len(USERS)  # once per localpart and once per address
    # Logging in again: every answer from the cache, nobody asked.
    for user, home in list(deployment.placed.items())[:3]:
        assert logged_in_at(portal, by_localpart(user), deployment, **headers) == home
    assert total(portal.url, lookups) == found
    assert "route=directory" in portal.logs()
    assert "mail.example.com" not in portal.logs().lower()


def test_a_new_name_is_placed_by_the_routes(deployment: Deployment, start: Any) -> None:
    portal = start(deployment.config(), "dir-new")
    answer = login(portal, by_localpart("nobody-yet"))
    expected = deployment.homeservers[rendezvous_pick(list(NAMES), "nobody-yet")]
    assert answer.status_code == 307
    assert answer.headers["Location"] == expected.base_url + LOGIN
    assert "route=pool" in portal.logs()


def test_a_localpart_held_twice_is_never_guessed(deployment: Deployment, start: Any) -> None:
    portal = start(deployment.config(), "dir-doubled")
    answer = login(portal, by_localpart(DOUBLED))
    assert answer.status_code == 400, answer.text
    body = answer.json()
    assert body["errcode"] == "M_INVALID_PARAM"
    assert "@twice:d1.test" in body["error"] and "@twice:d2.test" in body["error"]
    # The full Matrix ID names its homeserver.
    assert logged_in_at(portal, by_localpart("@twice:d2.test"), deployment) == "d2"


def test_a_homeserver_down_misroutes_nobody(
    deployment: Deployment, start: Any, tmp_path: Path
) -> None:
    config = deployment.config(mode="redirect")
    # d3 "down": nothing listens at its proxy address.
    config["homeservers"]["d3"]["proxy_url"] = f"http://127.0.0.1:{free_port()}"
    config["timeouts"] = {"connect": 1, "total": 2}
    portal = start(config, "dir-down")
    assert "d3 did not answer the admin token check" in portal.logs()
    user = next(u for u, home in deployment.placed.items() if home == "d1")
    # Found on d1: an answer found elsewhere counts.
    assert logged_in_at(portal, by_localpart(user), deployment) == "d1"
    # Nobody else says they hold it, but d3 could not say: not sent anywhere.
    answer = login(portal, by_localpart("maybe-on-d3"))
    assert answer.status_code == 503, answer.text
    assert answer.json()["errcode"] == "M_UNAVAILABLE"
    assert int(answer.headers["Retry-After"]) >= 1


def test_replicas_share_the_cache_in_redis(deployment: Deployment, start: Any) -> None:
    redis = redis_server()
    try:
        url = f"redis://{redis.host}:{redis.port}/0"
        config = deployment.config(state={"backend": "redis", "url": url})
        a = start(config, "dir-a")
        b = start(config, "dir-b")
        user, home = next(iter(deployment.placed.items()))
        assert logged_in_at(a, by_localpart(user), deployment) == home
        assert logged_in_at(b, by_localpart(user), deployment) == home
        assert total(a.url, "synapse_base_cs_url_portal_directory_lookups_total") == 1
        assert total(b.url, "synapse_base_cs_url_portal_directory_lookups_total") == 0
        assert total(b.url, "synapse_base_cs_url_portal_directory_cache_total", result="hit") == 1
        # An operator makes both replicas forget that answer (and by e-mail, one never
        # cached): the next login on either is looked up again.
        portal_yaml = deployment.workdir / "forget-portal.yaml"
        portal_yaml.write_text(yaml.safe_dump(config))
        forgot = run_tool("directory", "forget", "-c", str(portal_yaml), user, email_of(user))
        assert forgot.status == 0, forgot.err
        assert forgot.out.count(": forgotten") == 1 and ": nothing cached" in forgot.out
        assert user not in forgot.out + forgot.err and "mail.example.com" not in forgot.out
        assert logged_in_at(b, by_localpart(user), deployment) == home
        assert total(b.url, "synapse_base_cs_url_portal_directory_lookups_total") == 1
        again = run_tool("directory", "forget", "-c", str(portal_yaml), user)
        assert again.status == 0 and ": forgotten" in again.out
    finally:
        redis.cleanup()


def test_directory_forget_explains_what_it_cannot_do(deployment: Deployment) -> None:
    """The memory backend: only a restart forgets (each process holds its own cache)."""
    portal_yaml = deployment.workdir / "forget-memory.yaml"
    portal_yaml.write_text(yaml.safe_dump(deployment.config()))
    ran = run_tool("directory", "forget", "-c", str(portal_yaml), "user0")
    assert ran.status == 2
    assert "restart the portal to forget" in ran.err


class _Directory:
    """An operator's directory over HTTP: localpart -> homeserver name."""

    def __init__(self, answers: dict[str, Any]) -> None:
        self.asked: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.asked.append(self.path)
                query = parse_qs(urlsplit(self.path).query)
                key = (query.get("localpart") or query.get("address") or [""])[0]
                body = json.dumps({"homeserver": answers.get(key)}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/lookup"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_an_operators_http_directory(deployment: Deployment, start: Any) -> None:
    user, home = next(iter(deployment.placed.items()))
    directory = _Directory({user: home})
    try:
        config = deployment.config(directory={"sources": ["http"], "url": directory.url})
        for settings in config["homeservers"].values():
            del settings["admin_token_file"]
        portal = start(config, "dir-http")
        assert logged_in_at(portal, by_localpart(user), deployment) == home
        assert directory.asked == [f"/lookup?localpart={user}"]
    finally:
        directory.close()


def test_lookups_are_limited_per_client_but_cached_answers_are_not(
    deployment: Deployment, start: Any
) -> None:
    portal = start(deployment.config(directory={"burst": 2, "per_second": 0.1}), "dir-limits")
    users = list(deployment.placed.items())
    for user, home in users[:2]:
        assert logged_in_at(portal, by_localpart(user), deployment) == home
    limited = login(portal, by_localpart(users[2][0]))
    assert limited.status_code == 429, limited.text
    assert limited.json()["errcode"] == "M_LIMIT_EXCEEDED"
    assert limited.json()["retry_after_ms"] > 0
    # What the directory already knows costs no lookup: still served.
    assert logged_in_at(portal, by_localpart(users[0][0]), deployment) == users[0][1]
    lookups = "synapse_base_cs_url_portal_directory_lookups_total"
    assert total(portal.url, lookups, outcome="limited") == 1


def test_an_unknown_token_stops_startup(deployment: Deployment, tmp_path: Path) -> None:
    token_file = tmp_path / "bogus.token"
    token_file.write_text("syt_bm9ib2R5_notarealtokenatall_0abcde")
    config = deployment.config()
    config["homeservers"]["d1"]["admin_token_file"] = str(token_file)
    (tmp_path / "bogus").mkdir()
    portal = PortalProcess(config, tmp_path / "bogus")
    with pytest.raises(RuntimeError):
        portal.start(timeout=15)
    out = portal.logs()
    assert "homeservers.d1.admin_token_file: the token is refused (whoami answered 401)" in out
    assert "notarealtoken" not in out


def test_a_token_that_is_not_an_admins_stops_startup(
    deployment: Deployment, tmp_path: Path
) -> None:
    hs = deployment.homeservers["d2"]
    plain = hs.register_user("not-an-admin", PASSWORD)
    token_file = tmp_path / "plain.token"
    token_file.write_text(hs.password_login(plain, PASSWORD).json()["access_token"])
    config = deployment.config()
    config["homeservers"]["d2"]["admin_token_file"] = str(token_file)
    (tmp_path / "bad").mkdir()
    portal = PortalProcess(config, tmp_path / "bad")
    with pytest.raises(RuntimeError):
        portal.start(timeout=15)
    out = portal.logs()
    assert "homeservers.d2.admin_token_file: @not-an-admin:d2.test is not a server admin" in out
    assert token_file.read_text() not in out


REGISTER = "/_matrix/client/v3/register"


def register_through(portal: PortalProcess, username: str, *, follow: bool) -> requests.Response:
    """A registration with the dummy stage, each step sent to the portal (as a client that
    stays at the portal's address does), redirects followed when ``follow``."""

    def post(body: dict[str, Any]) -> requests.Response:
        answer = requests.post(portal.url + REGISTER, json=body, allow_redirects=False, timeout=30)
        if follow and answer.status_code == 307:
            answer = requests.post(answer.headers["Location"], json=body, timeout=30)
        return answer

    body: dict[str, Any] = {"username": username, "password": PASSWORD}
    first = post(body)
    if first.status_code != 401:
        return first
    session = first.json()["session"]
    return post({**body, "auth": {"type": "m.login.dummy", "session": session}})


def test_registration_through_the_portal_places_a_new_account_once(
    deployment: Deployment, start: Any
) -> None:
    portal = start(deployment.config(), "reg-redirect")
    name = "newcomer"
    home = deployment.homeservers[rendezvous_pick(list(NAMES), name)]
    step = requests.post(
        portal.url + REGISTER, json={"username": name}, allow_redirects=False, timeout=30
    )
    assert step.status_code == 307
    assert step.headers["Location"] == home.base_url + REGISTER
    done = register_through(portal, name, follow=True)
    assert done.status_code == 200, done.text
    assert done.json()["user_id"] == f"@{name}:{home.server_name}"
    # The homeserver's answer says where the new account's client goes from now on.
    assert done.json()["base_cs_url"] == home.base_url
    # Its first login, moments later, finds it where it was placed.
    assert logged_in_at(portal, by_localpart(name), deployment) == rendezvous_pick(
        list(NAMES), name
    )


def test_a_name_held_on_any_homeserver_is_refused(deployment: Deployment, start: Any) -> None:
    portal = start(deployment.config(), "reg-taken")
    user, _ = next(iter(deployment.placed.items()))
    taken = requests.post(
        portal.url + REGISTER, json={"username": user.upper()}, allow_redirects=False, timeout=30
    )
    assert taken.status_code == 400, taken.text
    assert taken.json()["errcode"] == "M_USER_IN_USE"
    available = requests.get(
        portal.url + REGISTER + "/available",
        params={"username": user},
        allow_redirects=False,
        timeout=30,
    )
    assert available.status_code == 400
    assert available.json()["errcode"] == "M_USER_IN_USE"
    free = requests.get(
        portal.url + REGISTER + "/available",
        params={"username": "still-free"},
        allow_redirects=False,
        timeout=30,
    )
    assert free.status_code == 307
    home = deployment.homeservers[rendezvous_pick(list(NAMES), "still-free")]
    assert free.headers["Location"].startswith(home.base_url + REGISTER + "/available?")


def test_registration_through_the_gateway(deployment: Deployment, start: Any) -> None:
    portal = start(deployment.config(client_api="proxy"), "reg-gateway")
    name = "gatewayer"
    done = register_through(portal, name, follow=False)
    assert done.status_code == 200, done.text
    home = rendezvous_pick(list(NAMES), name)
    assert done.json()["user_id"] == f"@{name}:{deployment.homeservers[home].server_name}"
    # The directory knows it at once: a login asks nobody.
    lookups = "synapse_base_cs_url_portal_directory_lookups_total"
    before = total(portal.url, lookups)
    assert logged_in_at(portal, by_localpart(name), deployment) == home
    assert total(portal.url, lookups) == before
    # A name held elsewhere is refused here too.
    user, _ = next(iter(deployment.placed.items()))
    taken = register_through(portal, user, follow=False)
    assert taken.status_code == 400 and taken.json()["errcode"] == "M_USER_IN_USE"


def test_check_says_what_each_admin_token_may_do(
    deployment: Deployment, start: Any, tmp_path: Path
) -> None:
    portal = start(deployment.config(), "dir-check")
    config_file = tmp_path / "portal.yaml"
    config = deployment.config()
    hs = deployment.homeservers["d3"]
    plain = hs.register_user("check-not-admin", PASSWORD)
    weak = tmp_path / "weak.token"
    weak.write_text(hs.password_login(plain, PASSWORD).json()["access_token"])
    config["homeservers"]["d3"]["admin_token_file"] = str(weak)
    config_file.write_text(yaml.safe_dump(config))
    ran = run_tool("check", portal.url, "--config", str(config_file))
    assert "✓ d1 admin token: @portal-directory:d1.test, a server admin" in ran.out
    assert "✗ d3 admin token: @check-not-admin:d3.test is not a server admin" in ran.out
    assert ran.status == 1
    for name in NAMES:
        assert deployment.tokens[name].read_text().strip() not in ran.out
    assert weak.read_text() not in ran.out


def test_explain_asks_the_directory_only_when_told(deployment: Deployment, tmp_path: Path) -> None:
    config_file = tmp_path / "portal.yaml"
    config_file.write_text(yaml.safe_dump(deployment.config()))
    user, home = next(iter(deployment.placed.items()))
    offline = run_tool("explain", "-c", str(config_file), user)
    assert "the account directory is asked first (homeservers)" in offline.out
    assert "chosen by: rule 'pool'" in offline.out  # what the routes would do for a new name
    live = run_tool(
        "explain",
        "-c",
        str(config_file),
        "--ask-directory",
        user,
        email_of(user),
        DOUBLED,
        "nobody-here",
    )
    assert live.status == 0, live.err
    blocks = live.out.split("\n\n")
    for block in blocks[:2]:
        assert f"-> {home} ({deployment.homeservers[home].base_url})" in block
        assert "chosen by: the account directory (homeservers)" in block
    assert "-> nowhere: accounts by this name live on d1, d2" in blocks[2]
    assert "found nobody: the routes place it" in blocks[3]
    assert "chosen by: rule 'pool'" in blocks[3]
    for name in NAMES:
        assert deployment.tokens[name].read_text().strip() not in live.out


def test_a_refresh_the_gateway_has_not_seen_goes_where_its_user_lives(
    deployment: Deployment, start: Any
) -> None:
    """A login redirected (the portal saw no token), then a refresh at the portal's address:
    the Synapse refresh token names its user, whom the directory finds (the grown pool's
    routes would send them elsewhere)."""
    gateway = start(deployment.config(client_api="proxy"), "refresh-gateway")
    user, home = next(
        (u, h) for u, h in deployment.placed.items() if rendezvous_pick(list(NAMES), u) != h
    )
    direct = requests.post(
        deployment.homeservers[home].base_url + LOGIN,
        json={**by_localpart(user), "refresh_token": True},
        timeout=30,
    )
    assert direct.status_code == 200, direct.text
    refreshed = requests.post(
        gateway.url + "/_matrix/client/v3/refresh",
        json={"refresh_token": direct.json()["refresh_token"]},
        timeout=30,
    )
    assert refreshed.status_code == 200, refreshed.text
    assert "access_token" in refreshed.json()


RESET_TOKEN = "/_matrix/client/v3/account/password/email/requestToken"
CHANGE_PASSWORD = "/_matrix/client/v3/account/password"


@pytest.mark.parametrize("door", ["refuse", "proxy", "nginx"])
def test_a_password_reset_by_email_reaches_the_homeserver_holding_the_address(
    deployment: Deployment, start: Any, smtp: SmtpSink, door: str
) -> None:
    """Without the gateway (a 307), with it (proxied), and with nginx in front of it as the
    deployment guide configures it (the portal answers the steps whose body says where
    they go)."""
    client_api = "refuse" if door == "refuse" else "proxy"
    portal = start(deployment.config(client_api=client_api), f"reset-{door}")
    nginx = NginxProcess(portal.port).start() if door == "nginx" else None
    address = portal.url if nginx is None else nginx.url
    user = sorted(u for u, home in deployment.placed.items() if home == "d2")[
        ["refuse", "proxy", "nginx"].index(door)
    ]
    secret = f"secret-{door}-0123456789"
    try:
        _reset_and_log_in(deployment, portal, smtp, address=address, user=user, secret=secret)
    finally:
        if nginx is not None:
            nginx.stop()


def _reset_and_log_in(
    deployment: Deployment,
    portal: PortalProcess,
    smtp: SmtpSink,
    *,
    address: str,
    user: str,
    secret: str,
) -> None:
    def post(path: str, body: dict[str, Any]) -> requests.Response:
        answer = requests.post(address + path, json=body, allow_redirects=False, timeout=30)
        if answer.status_code == 307:
            assert answer.headers["Location"].startswith(deployment.homeservers["d2"].base_url)
            answer = requests.post(answer.headers["Location"], json=body, timeout=30)
        return answer

    asked = post(
        RESET_TOKEN, {"email": email_of(user).upper(), "client_secret": secret, "send_attempt": 1}
    )
    assert asked.status_code == 200, asked.text
    sid = asked.json()["sid"]
    mail = smtp.wait_for(email_of(user))
    link = smtp.link(mail, r"/_synapse/client/password_reset/email/submit_token\?\S+")
    # The user opens the link (the homeserver's, reached here on loopback) and confirms:
    # Synapse asks before it accepts the token.
    confirmed = requests.post(deployment.homeservers["d2"].base_url + link, timeout=30)
    assert confirmed.status_code == 200, confirmed.text
    new_password = "a brand new password"
    changed = post(
        CHANGE_PASSWORD,
        {
            "new_password": new_password,
            "logout_devices": False,
            "auth": {
                "type": "m.login.email.identity",
                "threepid_creds": {"sid": sid, "client_secret": secret},
            },
        },
    )
    assert changed.status_code == 200, changed.text
    body = {**by_localpart(user), "password": new_password}
    assert logged_in_at(portal, body, deployment) == "d2"
    assert secret not in portal.logs() and "mail.example.com" not in portal.logs().lower()


def test_a_registrations_verification_follows_it_and_a_bound_address_is_refused(
    deployment: Deployment, start: Any
) -> None:
    portal = start(deployment.config(), "reg-verify")
    verify = "/_matrix/client/v3/register/email/requestToken"
    user, _ = next(iter(deployment.placed.items()))
    body = {"email": email_of(user), "client_secret": "verify-secret-1", "send_attempt": 1}
    taken = requests.post(portal.url + verify, json=body, allow_redirects=False, timeout=30)
    assert taken.status_code == 400, taken.text
    assert taken.json()["errcode"] == "M_THREEPID_IN_USE"
    # A new registration by this client, then its e-mail verification: the same homeserver.
    name = "verifier"
    home = deployment.homeservers[rendezvous_pick(list(NAMES), name)]
    first = requests.post(
        portal.url + REGISTER, json={"username": name}, allow_redirects=False, timeout=30
    )
    assert first.headers["Location"] == home.base_url + REGISTER
    fresh = {**body, "email": "verifier@elsewhere.example"}
    # (By the routes alone, the address would be placed elsewhere.)
    assert rendezvous_pick(list(NAMES), fresh["email"]) != rendezvous_pick(list(NAMES), name)
    step = requests.post(portal.url + verify, json=fresh, allow_redirects=False, timeout=30)
    assert step.status_code == 307, step.text
    assert step.headers["Location"] == home.base_url + verify


# Security review (issue 17), findings 1 and 2, against real Synapses (their unit tests:
# tests/unit/portal/test_placement.py, tests/unit/portal/gateway/test_resolver_and_destination.py).


def _post_register(portal: PortalProcess, body: dict[str, Any]) -> requests.Response:
    """One registration step sent to the portal's gateway."""
    return requests.post(portal.url + REGISTER, json=body, allow_redirects=False, timeout=30)


def _admin_headers(deployment: Deployment, name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {deployment.tokens[name].read_text().strip()}"}


def test_a_registration_session_cannot_take_a_name_held_elsewhere(
    deployment: Deployment, start: Any
) -> None:
    """Finding 1 of the security review: the gateway sent every step of a registration's
    user-interactive session to the homeserver where the session started, whatever name the
    step asked for. So a session started for a new name Z (placed on one homeserver) could
    register there a name U that a user already holds on *another* homeserver, which the
    portal's "a name held anywhere is refused" check never saw; the account's success then
    *replaced* what the directory knew of U, and U's bare-name logins went to the attacker's
    account (before the fix: ``200 @U:<Z's homeserver>``). A session now binds the name it
    was placed for: another name in it is ``400 M_INVALID_PARAM``, nothing is created, U
    still logs in at home, and the session's own registration still completes."""
    portal = start(deployment.config(client_api="proxy"), "reg-session-bound")
    # A user of d1 (the password-reset tests change passwords on d2 only).
    held, home = next((u, h) for u, h in sorted(deployment.placed.items()) if h == "d1")
    new = next(
        name
        for name in (f"session-starter{i}" for i in range(100))
        if rendezvous_pick(list(NAMES), name) != home
    )
    there_name = rendezvous_pick(list(NAMES), new)
    there = deployment.homeservers[there_name]
    attacker_password = "attacker-password-7c1e"

    started = _post_register(portal, {"username": new, "password": PASSWORD})
    assert started.status_code == 401, started.text
    session = started.json()["session"]

    hijack = _post_register(
        portal,
        {
            "username": held,
            "password": attacker_password,
            "auth": {"type": "m.login.dummy", "session": session},
        },
    )
    assert hijack.status_code == 400, f"{hijack.status_code} {hijack.text}"
    assert hijack.json()["errcode"] == "M_INVALID_PARAM"
    # Nothing was created where the session lives...
    account = requests.get(
        f"{there.base_url}/_synapse/admin/v2/users/@{held}:{there.server_name}",
        headers=_admin_headers(deployment, there_name),
        timeout=30,
    )
    assert account.status_code == 404, account.text
    # ...and the name's holder still logs in at home by their bare name.
    assert logged_in_at(portal, by_localpart(held), deployment) == home

    # The session's own registration is unharmed.
    done = _post_register(
        portal,
        {
            "username": new,
            "password": PASSWORD,
            "auth": {"type": "m.login.dummy", "session": session},
        },
    )
    assert done.status_code == 200, done.text
    assert done.json()["user_id"] == f"@{new}:{there.server_name}"

    logs = portal.logs()
    secrets = [PASSWORD, attacker_password, session, done.json()["access_token"]]
    secrets += [deployment.tokens[name].read_text().strip() for name in NAMES]
    for secret in secrets:
        assert secret not in logs


def test_a_homeserver_outage_never_logs_a_user_out(deployment: Deployment, start: Any) -> None:
    """Finding 2 of the security review: a token the gateway has not seen is resolved by
    asking every homeserver's whoami; a homeserver that could not answer (down, restarting)
    counted as "not mine", so its users' tokens were answered ``401 M_UNKNOWN_TOKEN``
    (``soft_logout: false``: clients drop the session, and keys not backed up with it) and
    stayed 401 for ``gateway.unknown_token_ttl`` after it came back. Now: ``503
    M_UNAVAILABLE`` with ``Retry-After`` while it is down, nothing remembered, and ``200``
    as soon as it answers again. d2 is reached through a forwarder the test switches off."""
    d2 = deployment.homeservers["d2"]
    port = urlsplit(d2.base_url).port
    assert port is not None
    with SwitchableProxy(port) as forwarder:
        config = deployment.config(client_api="proxy")
        config["homeservers"]["d2"]["proxy_url"] = forwarder.url
        portal = start(config, "outage")
        # A user of d2 whose password no other test changes, logged in at d2 itself: the
        # portal has never seen the token.
        user = sorted(u for u, h in deployment.placed.items() if h == "d2")[-1]
        direct = requests.post(d2.base_url + LOGIN, json=by_localpart(user), timeout=30)
        assert direct.status_code == 200, direct.text
        token = direct.json()["access_token"]

        forwarder.refuse()
        for _ in range(2):  # the first answer left nothing behind: the same again
            down = whoami(portal.url, token)
            assert down.status_code == 503, f"{down.status_code} {down.text}"
            assert int(down.headers["Retry-After"]) >= 1
            assert down.json()["errcode"] == "M_UNAVAILABLE"
            assert down.json().get("soft_logout") is not False

        forwarder.accept()
        back = whoami(portal.url, token)
        assert back.status_code == 200, f"{back.status_code} {back.text}"
        assert back.json()["user_id"] == f"@{user}:{d2.server_name}"

    logs = portal.logs()
    for secret in [token, PASSWORD, *(deployment.tokens[n].read_text().strip() for n in NAMES)]:
        assert secret not in logs


def test_an_expired_token_through_the_gateway_keeps_soft_logout(
    deployment: Deployment, start: Any
) -> None:
    """Finding 2 of the security review, its other half: an expired token is answered ``401
    M_UNKNOWN_TOKEN`` with ``soft_logout: true`` by the homeserver that issued it (the
    client refreshes, or logs in again keeping its device and keys). The resolver counted
    that 401 as "not mine", like every other homeserver's, and answered its own ``401``
    with ``soft_logout: false``: a hard logout. Now the token's own homeserver refusing it
    is where the request goes, and the client gets that homeserver's answer.

    The deployment's refreshable tokens live 5 minutes; a token that expires in a second is
    made with Synapse's admin API (``POST /_synapse/admin/v1/users/<user>/login`` with
    ``valid_until_ms``): Synapse expires it by the same ``valid_until_ms`` check as a
    refreshable access token, and answers it the same way."""
    portal = start(deployment.config(client_api="proxy"), "expired")
    user = sorted(u for u, h in deployment.placed.items() if h == "d2")[-1]
    d2 = deployment.homeservers["d2"]
    lifetime_ms = 1500
    made = requests.post(
        f"{d2.base_url}/_synapse/admin/v1/users/@{user}:{d2.server_name}/login",
        json={"valid_until_ms": int(time.time() * 1000) + lifetime_ms},
        headers=_admin_headers(deployment, "d2"),
        timeout=30,
    )
    assert made.status_code == 200, made.text
    token = made.json()["access_token"]
    time.sleep(lifetime_ms / 1000 + 0.5)
    # What the homeserver itself answers...
    own = whoami(d2.base_url, token)
    assert own.status_code == 401 and own.json()["soft_logout"] is True, own.text
    # ...is what the client gets through the portal.
    through = whoami(portal.url, token)
    assert through.status_code == 401, through.text
    assert through.json()["errcode"] == "M_UNKNOWN_TOKEN"
    assert through.json()["soft_logout"] is True, through.text

    logs = portal.logs()
    for secret in [token, *(deployment.tokens[n].read_text().strip() for n in NAMES)]:
        assert secret not in logs
