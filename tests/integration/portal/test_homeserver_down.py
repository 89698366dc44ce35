"""One homeserver failing costs the others nothing, against real Synapses (the directory asks
their modules): one hung with SIGSTOP is marked down after its first failures and lookups of
the others' users stop waiting for it, its own users get 503 with Retry-After, and it is up
again within seconds of SIGCONT; a portal started while one hangs serves at once; one that
refuses connections is a 502 at once; Redis stopped leaves bare-name logins routed."""

from __future__ import annotations

import os
import secrets
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attr
import pytest
import requests

from synapse_base_cs_url._dev.throwaway_portal import PortalProcess
from synapse_base_cs_url._dev.throwaway_synapse import SynapseProcess
from tests.harness.constants import MODULE, PASSWORD
from tests.harness.metrics import total
from tests.harness.portal import homeserver_entries, placement_secrets, portal_homeserver
from tests.harness.services import redis_server
from tests.harness.switchable_proxy import SwitchableProxy
from tests.harness.synapse import start_all

pytestmark = pytest.mark.integration

LOGIN = "/_matrix/client/v3/login"
NAMES = ("h1", "h2", "h3")
#: directory.timeout, and how long the portal waits for a homeserver (timeouts.total).
TIMEOUT = 2.0


@attr.s(auto_attribs=True)
class Deployment:
    homeservers: dict[str, SynapseProcess]
    secrets: dict[str, Path]
    h3_door: SwitchableProxy
    """h3's address as the portal knows it (switched off: h3 refuses connections)."""
    workdir: Path

    def config(self, **overrides: Any) -> dict[str, Any]:
        config: dict[str, Any] = {
            "public_baseurl": "https://portal.example.com",
            "mode": "redirect",
            "homeservers": homeserver_entries(self.homeservers, placement_secret_file=self.secrets),
            "default_homeserver": "h1",
            "directory": {"burst": 1000, "timeout": TIMEOUT, "not_found_ttl": 0.001},
            "timeouts": {"connect": TIMEOUT, "total": TIMEOUT},
            "upstream": {"probe_interval": 0.5},
        }
        config["homeservers"]["h3"]["proxy_url"] = self.h3_door.url
        config.update(overrides)
        return config


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    workdir = tmp_path_factory.mktemp("down")
    made = {
        name: portal_homeserver(tmp_path_factory, f"{name}.test", module=True)[0] for name in NAMES
    }
    secret_files = placement_secrets(workdir, NAMES)
    for name, hs in made.items():
        for module in hs.config["modules"]:
            if module["module"] == MODULE:
                # The module answers the directory; nothing here asks the portal.
                module["config"]["placement"] = {
                    "portal_url": "http://127.0.0.1:9",
                    "secret_file": str(secret_files[name]),
                    "when_portal_unreachable": "allow",
                }
    door: SwitchableProxy | None = None
    try:
        start_all(list(made.values()))
        door = SwitchableProxy(made["h3"].port)
        for name, hs in made.items():
            for i in range(4):
                hs.register_user(f"{name}user{i}", PASSWORD)
        yield Deployment(made, secret_files, door, workdir)
    finally:
        for hs in made.values():
            hs.stop()
        if door is not None:
            door.close()


def login(portal: PortalProcess, user: str) -> tuple[requests.Response, float]:
    body = {"type": "m.login.password", "user": user, "password": PASSWORD}
    started = time.monotonic()
    answer = requests.post(portal.url + LOGIN, json=body, allow_redirects=False, timeout=30)
    return answer, time.monotonic() - started


def home_of(answer: requests.Response, deployment: Deployment) -> str:
    assert answer.status_code == 307, answer.text
    location = answer.headers["Location"]
    return next(n for n, hs in deployment.homeservers.items() if location.startswith(hs.base_url))


def down_in_info(portal: PortalProcess) -> list[str]:
    info = requests.get(portal.url + "/_synapse_base_cs_url/portal", timeout=30).json()
    return list(info["homeservers_down"])


def test_a_hung_homeserver_is_not_waited_for_and_comes_back(
    deployment: Deployment, start: Any
) -> None:
    portal = start(deployment.config(), "hung")
    h2 = deployment.homeservers["h2"]
    os.kill(h2.pid, signal.SIGSTOP)
    try:
        # The first lookups wait for h2 (directory.timeout), until it is marked down.
        waited = [login(portal, f"h1user{i}") for i in range(3)]
        assert all(home_of(answer, deployment) == "h1" for answer, _ in waited)
        assert all(seconds >= TIMEOUT * 0.9 for _, seconds in waited)
        assert down_in_info(portal) == ["h2"]
        assert total(portal.url, "synapse_base_cs_url_portal_homeserver_up", homeserver="h2") == 0
        # From then on, the others' users are found without waiting for h2.
        answer, seconds = login(portal, "h3user0")
        assert home_of(answer, deployment) == "h3"
        assert seconds < TIMEOUT / 2, seconds
        # Its own users (nobody else holds them): 503 with Retry-After, never a guess.
        own, seconds = login(portal, "h2user0")
        assert own.status_code == 503 and own.json()["errcode"] == "M_UNAVAILABLE"
        assert int(own.headers["Retry-After"]) >= 1
        assert seconds < TIMEOUT / 2, seconds
    finally:
        os.kill(h2.pid, signal.SIGCONT)
    deadline = time.monotonic() + 10
    while down_in_info(portal):
        assert time.monotonic() < deadline, portal.logs()
        time.sleep(0.2)
    assert home_of(login(portal, "h2user1")[0], deployment) == "h2"
    logs = portal.logs()
    assert "homeserver h2 is down: 3 failures in a row" in logs
    assert "homeserver h2 is up again" in logs


def test_a_portal_started_while_one_hangs_serves_at_once(
    deployment: Deployment, tmp_path: Path
) -> None:
    config = deployment.config()
    # Admin tokens, which are checked at startup: h2's cannot be, while it hangs.
    h1, h2 = deployment.homeservers["h1"], deployment.homeservers["h2"]
    for name, hs in (("h1", h1), ("h2", h2)):
        admin = hs.register_user(f"admin-{secrets.token_hex(3)}", PASSWORD, admin=True)
        token = tmp_path / f"{name}.token"
        token.write_text(hs.password_login(admin, PASSWORD).json()["access_token"])
        config["homeservers"][name]["admin_token_file"] = str(token)
        del config["homeservers"][name]["placement_secret_file"]
    (tmp_path / "portal").mkdir()
    portal = PortalProcess(config, tmp_path / "portal")
    os.kill(h2.pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        portal.start(timeout=15)
        assert time.monotonic() - started < 5  # before: timeouts.total (2 s here; 30 s default)
        assert home_of(login(portal, "h1user2")[0], deployment) == "h1"
    finally:
        os.kill(h2.pid, signal.SIGCONT)
        portal.stop()
    assert "h2 has not answered the admin token check within 1s" in portal.logs()


def test_a_homeserver_that_refuses_connections_is_marked_down(
    deployment: Deployment, start: Any
) -> None:
    portal = start(deployment.config(), "refused")
    deployment.h3_door.refuse()
    try:
        for i in range(3):
            answer, _ = login(portal, f"h1user{i}")
            assert home_of(answer, deployment) == "h1"
        assert down_in_info(portal) == ["h3"]
        own, seconds = login(portal, "h3user1")
        assert own.status_code == 503 and seconds < TIMEOUT / 2
    finally:
        deployment.h3_door.accept()
    deadline = time.monotonic() + 10
    while down_in_info(portal):
        assert time.monotonic() < deadline, portal.logs()
        time.sleep(0.2)


def test_redis_stopped_leaves_lookup_logins_routed(deployment: Deployment, start: Any) -> None:
    redis = redis_server()
    try:
        url = f"redis://{redis.host}:{redis.port}/0"
        config = deployment.config(state={"backend": "redis", "url": url, "command_timeout": 1})
        portal = start(config, "redis")
        assert home_of(login(portal, "h2user2")[0], deployment) == "h2"
        redis.stop()
        # Cached before or never seen: asked of the homeservers, not 503.
        for user, home in (("h2user2", "h2"), ("h3user2", "h3"), ("h1user3", "h1")):
            answer, seconds = login(portal, user)
            assert home_of(answer, deployment) == home
        # After the first failure nothing waits for Redis's command_timeout again.
        assert seconds < 1, seconds
        assert "Redis is down" in portal.logs()
    finally:
        redis.cleanup()
