"""One name, one address, one homeserver, whichever door an account comes in by: two real
Synapses running the module with placement, and a real portal that holds their secrets and no
admin token. A registration made directly at a homeserver asks the portal first."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attr
import pytest
import requests
import yaml

from synapse_base_cs_url._dev.throwaway_portal import PortalProcess
from synapse_base_cs_url._dev.throwaway_synapse import SynapseProcess, free_port
from synapse_base_cs_url.core.placement_protocol import ASK_PATH
from tests.harness.cli import run_tool
from tests.harness.constants import PASSWORD
from tests.harness.portal import (
    homeserver_entries,
    placement_module,
    placement_secrets,
    portal_homeserver,
)
from tests.harness.services import redis_server
from tests.harness.smtp import SmtpSink
from tests.harness.switchable_proxy import SwitchableProxy
from tests.harness.synapse import start_all

pytestmark = pytest.mark.integration

REGISTER = "/_matrix/client/v3/register"
LOGIN = "/_matrix/client/v3/login"
NAMES = ("p1", "p2")


@attr.s(auto_attribs=True)
class Deployment:
    homeservers: dict[str, SynapseProcess]
    portal: PortalProcess
    to_portal: SwitchableProxy
    """p1's way to the portal (switched off: the portal is unreachable for p1)."""
    unchecked: SynapseProcess
    """A homeserver whose portal never answers, with ``when_portal_unreachable: allow``."""
    smtp: SmtpSink


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    workdir = tmp_path_factory.mktemp("placement")
    smtp = SmtpSink()
    made = {
        name: portal_homeserver(tmp_path_factory, f"{name}.test", module=True)[0] for name in NAMES
    }
    unchecked = portal_homeserver(tmp_path_factory, "p3.test", module=True)[0]
    secret_files = placement_secrets(workdir, (*NAMES, "p3"))
    portal = PortalProcess(
        {
            "public_baseurl": "https://portal.example.com",
            "mode": "redirect",
            "homeservers": homeserver_entries(made, placement_secret_file=secret_files),
            "default_homeserver": "p1",
            "directory": {"burst": 1000},
        },
        workdir,
    )
    to_portal = SwitchableProxy(portal.port)
    for name, hs in made.items():
        hs.config["email"] = smtp.synapse_config(f"noreply@{name}.test")
        url = to_portal.url if name == "p1" else portal.url
        placement_module(hs, url, secret_files[name])
    dead = f"http://127.0.0.1:{free_port()}"
    placement_module(unchecked, dead, secret_files["p3"], when_portal_unreachable="allow")
    try:
        portal.start()
        start_all([*made.values(), unchecked])
        yield Deployment(made, portal, to_portal, unchecked, smtp)
    finally:
        for hs in [*made.values(), unchecked]:
            hs.stop()
        portal.stop()
        to_portal.close()
        smtp.close()


def register_at(base_url: str, username: str) -> requests.Response:
    """A registration with the dummy stage, directly at a homeserver."""
    body: dict[str, Any] = {"username": username, "password": PASSWORD}
    first = requests.post(base_url + REGISTER, json=body, timeout=30)
    if first.status_code != 401:
        return first
    auth = {"type": "m.login.dummy", "session": first.json()["session"]}
    return requests.post(base_url + REGISTER, json={**body, "auth": auth}, timeout=30)


def available(hs: SynapseProcess, username: str) -> bool:
    answer = requests.get(
        f"{hs.base_url}{REGISTER}/available", params={"username": username}, timeout=30
    )
    return answer.status_code == 200


def test_a_name_held_on_another_homeserver_is_refused_at_every_door(
    deployment: Deployment,
) -> None:
    p1, p2 = deployment.homeservers["p1"], deployment.homeservers["p2"]
    assert register_at(p1.base_url, "alice").status_code == 200
    refused = register_at(p2.base_url, "Alice")
    assert refused.status_code == 400, refused.text
    assert refused.json()["errcode"] == "M_USER_IN_USE"
    assert "another homeserver" in refused.json()["error"]
    assert available(p2, "alice")  # nothing was created there
    # The shared-secret admin API creates accounts through the same handler.
    with pytest.raises(RuntimeError, match="M_USER_IN_USE"):
        p2.register_user("alice", PASSWORD)
    # A new name registered directly at p2 is refused at p1 from then on.
    assert register_at(p2.base_url, "bob").status_code == 200
    assert register_at(p1.base_url, "bob").json()["errcode"] == "M_USER_IN_USE"
    # Their logins are not asked about, and the portal finds each where it lives, asking
    # the homeservers' modules (it holds no admin token).
    for user, home in (("alice", p1), ("bob", p2)):
        login = {"type": "m.login.password", "user": user, "password": PASSWORD}
        answer = requests.post(
            deployment.portal.url + LOGIN, json=login, allow_redirects=False, timeout=30
        )
        assert answer.status_code == 307, answer.text
        assert answer.headers["Location"] == home.base_url + LOGIN


def test_the_same_new_names_at_two_homeservers_at_once_make_one_account_each(
    deployment: Deployment,
) -> None:
    names = [f"race{i}" for i in range(8)]
    results: dict[tuple[str, str], int] = {}

    def register(name: str, hs: str) -> None:
        answer = register_at(deployment.homeservers[hs].base_url, name)
        results[(name, hs)] = answer.status_code

    threads = [threading.Thread(target=register, args=(name, hs)) for name in names for hs in NAMES]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for name in names:
        made = [hs for hs in NAMES if results[(name, hs)] == 200]
        assert len(made) == 1, (name, results)
        others = [hs for hs in NAMES if hs not in made]
        assert [results[(name, hs)] for hs in others] == [400]
        held = [hs for hs in NAMES if not available(deployment.homeservers[hs], name)]
        assert held == made


def test_registration_at_the_portals_address_still_works(deployment: Deployment) -> None:
    portal, p1 = deployment.portal, deployment.homeservers["p1"]
    body: dict[str, Any] = {"username": "viaportal", "password": PASSWORD}

    def post(body: dict[str, Any]) -> requests.Response:
        step = requests.post(portal.url + REGISTER, json=body, allow_redirects=False, timeout=30)
        assert step.status_code == 307, step.text
        return requests.post(step.headers["Location"], json=body, timeout=30)

    first = post(body)
    assert first.status_code == 401, first.text
    done = post({**body, "auth": {"type": "m.login.dummy", "session": first.json()["session"]}})
    assert done.status_code == 200, done.text
    assert done.json()["user_id"] == f"@viaportal:{p1.server_name}"
    assert register_at(deployment.homeservers["p2"].base_url, "viaportal").status_code == 400


def test_an_address_held_elsewhere_is_refused(deployment: Deployment) -> None:
    p1, p2 = deployment.homeservers["p1"], deployment.homeservers["p2"]
    admin = p1.register_user("admin1", PASSWORD, admin=True)
    token = p1.password_login(admin, PASSWORD).json()["access_token"]
    user = p1.register_user("carol", PASSWORD)
    bound = requests.put(
        f"{p1.base_url}/_synapse/admin/v2/users/{user}",
        json={"threepids": [{"medium": "email", "address": "carol@mail.example.com"}]},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert bound.status_code == 200, bound.text

    def request_token(hs: SynapseProcess, email: str) -> requests.Response:
        body = {"client_secret": secrets.token_hex(8), "email": email, "send_attempt": 1}
        return requests.post(f"{hs.base_url}{REGISTER}/email/requestToken", json=body, timeout=30)

    refused = request_token(p2, "Carol@mail.example.com")
    assert refused.status_code == 403, refused.text
    assert refused.json()["errcode"] == "M_THREEPID_DENIED"
    fresh = request_token(p2, "dave@mail.example.com")
    assert fresh.status_code == 200, fresh.text
    deployment.smtp.wait_for("dave@mail.example.com")
    # Reserved for p2 now: p1 may not take it.
    assert request_token(p1, "dave@mail.example.com").status_code == 403
    # No homeserver's log holds an address the portal looked up.
    for hs in (p1, p2):
        assert "carol@mail.example.com" not in hs.log_text().lower()


def test_a_portal_that_does_not_answer_refuses_clearly_or_allows(deployment: Deployment) -> None:
    p1 = deployment.homeservers["p1"]
    assert register_at(p1.base_url, "steady").status_code == 200
    deployment.to_portal.refuse()
    try:
        refused = register_at(p1.base_url, "offline")
        assert refused.status_code == 503, refused.text
        assert refused.json()["errcode"] == "M_UNAVAILABLE"
        assert refused.headers["Retry-After"] == "5"
        # Logins never ask.
        assert p1.password_login("steady", PASSWORD).status == 200
    finally:
        deployment.to_portal.accept()
    assert register_at(p1.base_url, "offline").status_code == 200
    # With when_portal_unreachable: allow, the homeserver goes on unchecked.
    assert register_at(deployment.unchecked.base_url, "unchecked").status_code == 200


@pytest.mark.parametrize("authorization", [None, "Bearer wrong-secret-0123456789"])
def test_only_a_homeservers_secret_may_ask(
    deployment: Deployment, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    answer = requests.post(
        deployment.portal.url + ASK_PATH, json={"localpart": "anyone"}, headers=headers, timeout=30
    )
    assert answer.status_code == 401
    assert answer.json()["errcode"] == "M_UNKNOWN_TOKEN"


def test_check_verifies_each_homeservers_secret(deployment: Deployment, tmp_path: Path) -> None:
    config = yaml.safe_load(deployment.portal.config_path.read_text())
    ran = run_tool("check", deployment.portal.url, "--config", str(deployment.portal.config_path))
    assert ran.status == 0, ran.out + ran.err
    for name in NAMES:
        assert f"{name} placement secret" in ran.out
        assert f"{name}'s module answers the directory with it" in ran.out
    wrong = tmp_path / "wrong.secret"
    wrong.write_text(secrets.token_hex(24))
    config["homeservers"]["p2"]["placement_secret_file"] = str(wrong)
    changed = tmp_path / "portal.yaml"
    changed.write_text(yaml.safe_dump(config))
    ran = run_tool("check", deployment.portal.url, "--config", str(changed))
    assert ran.status == 1
    assert "p2's module refused it (HTTP 401)" in ran.out
    assert wrong.read_text() not in ran.out + ran.err


def test_replicas_on_redis_share_their_reservations(
    deployment: Deployment, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Two portal processes on one Redis: p1 asks one, p2 the other, for the same new names
    at the same moment; each name is told yes exactly once."""
    redis = redis_server()
    replicas: list[PortalProcess] = []
    try:
        config = yaml.safe_load(deployment.portal.config_path.read_text())
        config["state"] = {"backend": "redis", "url": f"redis://{redis.host}:{redis.port}/0"}
        config.pop("listen")
        for label in ("replica-a", "replica-b"):
            replicas.append(PortalProcess(config, tmp_path_factory.mktemp(label)).start())
        secret = {
            name: Path(config["homeservers"][name]["placement_secret_file"]).read_text().strip()
            for name in NAMES
        }
        names = [f"shared{i}" for i in range(20)]
        told: dict[tuple[str, str], bool] = {}

        def ask(name: str, hs: str, portal: PortalProcess) -> None:
            answer = requests.post(
                portal.url + ASK_PATH,
                json={"localpart": name},
                headers={"Authorization": f"Bearer {secret[hs]}"},
                timeout=30,
            )
            assert answer.status_code == 200, answer.text
            told[(name, hs)] = answer.json()["allowed"]

        threads = [
            threading.Thread(target=ask, args=(name, hs, portal))
            for name in names
            for hs, portal in zip(NAMES, replicas, strict=True)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        for name in names:
            assert sorted(told[(name, hs)] for hs in NAMES) == [False, True], name
    finally:
        for replica in replicas:
            replica.stop()
        redis.cleanup()


def test_the_directorys_lookups_are_not_logged_as_failed_logins(deployment: Deployment) -> None:
    """Synapse's check_user_exists logs every miss as 'Attempted to login as ...': the
    module's lookups must not, on any homeserver."""
    login = {"type": "m.login.password", "user": "nobody-here", "password": PASSWORD}
    requests.post(deployment.portal.url + LOGIN, json=login, allow_redirects=False, timeout=30)
    for hs in deployment.homeservers.values():
        assert "nobody-here" not in hs.log_text()
