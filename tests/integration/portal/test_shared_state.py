"""Portal replicas sharing a real Redis: single sign-on (CAS and OpenID Connect) through one
portal process and the token login through another, a token honoured once when it reaches
two at the same moment, shared and rotated signing keys, and Redis going away and coming
back while the portals run.

Two real Synapses: ``ss1.test`` (CAS and an OpenID Connect provider) and ``ss2.test`` (CAS),
each with its own fake identity provider on loopback, behind real portal processes.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import attr
import pytest
import requests

from synapse_base_cs_url._dev.throwaway_portal import PortalProcess
from synapse_base_cs_url._dev.throwaway_synapse import SynapseProcess, free_port
from synapse_base_cs_url.portal.state.keys import token_tag
from tests.harness.certificates import make_certificates
from tests.harness.clients import password_body, whoami
from tests.harness.constants import PASSWORD
from tests.harness.fake_cas import FakeCasServer
from tests.harness.fake_oidc import FakeOidcProvider
from tests.harness.metrics import CLIENT_API, RESOLUTIONS, total
from tests.harness.services import RedisServer, redis_server
from tests.harness.sso import (
    CALLBACK,
    LOGIN,
    cas_leg,
    get,
    oidc_leg,
    start_sso,
    through_callback,
    token_login,
)
from tests.harness.synapse import module_entry, start_all, synapse_process

pytestmark = pytest.mark.integration

OIDC_IDP = "oidc-test"
WHITELIST = "http://127.0.0.1:1/"


def generate_key(path: Path) -> Path:
    done = subprocess.run(
        [sys.executable, "-m", "synapse_base_cs_url", "generate-key", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert path.stat().st_mode & 0o777 == 0o600
    return path


@attr.s(auto_attribs=True)
class Shared:
    hs: dict[str, SynapseProcess]
    cas: dict[str, FakeCasServer]
    oidc: FakeOidcProvider
    redis: RedisServer
    keys: dict[str, Path]
    workdir: Path
    portals: list[PortalProcess] = attr.Factory(list)

    def portal_config(self, mode: str = "proxy", **sso: Any) -> dict[str, Any]:
        return {
            "public_baseurl": "https://replaced.invalid",
            "mode": mode,
            "homeservers": {name: {"base_url": h.base_url} for name, h in self.hs.items()},
            "default_homeserver": "hs1",
            "discovery_cache_ttl": 0,
            "state": {
                "backend": "redis",
                "url": f"redis://127.0.0.1:{self.redis.port}/0",
                "key_prefix": "test:",
                "command_timeout": 1,
            },
            "sso": {
                "identity_providers": {"cas": "hs2", OIDC_IDP: "hs1"},
                "client_whitelist": [WHITELIST],
                "signing_key_file": str(self.keys["old"]),
                **sso,
            },
        }

    def start_portal(self, label: str, config: dict[str, Any]) -> PortalProcess:
        workdir = self.workdir / label
        workdir.mkdir()
        portal = PortalProcess(config, workdir)
        portal.config["sso"]["client_whitelist"] = [WHITELIST]
        portal.config["public_baseurl"] = portal.url  # the browser comes back to it
        self.portals.append(portal)
        return portal.start()


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shared]:
    redis = redis_server()
    workdir = tmp_path_factory.mktemp("shared-state")
    keys = {name: generate_key(workdir / f"{name}.key") for name in ("old", "new")}
    oidc = FakeOidcProvider()
    with FakeCasServer() as cas1, FakeCasServer() as cas2:
        cas = {"hs1": cas1, "hs2": cas2}
        hs = {
            name: synapse_process(f"ss{name[-1]}.test", tmp_path_factory.mktemp(f"ss-{name}"))
            for name in ("hs1", "hs2")
        }
        # The portals' ports are not known yet: let every loopback callback through.
        for name, h in hs.items():
            h.config.update(
                {
                    "modules": [module_entry(base_cs_url=h.base_url)],
                    "public_baseurl": h.base_url + "/",
                    "cas_config": {"enabled": True, "server_url": cas[name].url},
                    "ip_range_whitelist": ["127.0.0.1"],
                    "sso": {"client_whitelist": ["http://127.0.0.1:"]},
                }
            )
        # Synapse prefixes "oidc-": this provider's id is OIDC_IDP.
        hs["hs1"].config["oidc_providers"] = [oidc.synapse_config("test")]
        setup = Shared(hs, cas, oidc, redis, keys, workdir)
        try:
            start_all(list(hs.values()))
            yield setup
        finally:
            for portal in setup.portals:
                portal.stop()
            for h in hs.values():
                h.stop()
            oidc.close()
            redis.cleanup()


@pytest.fixture(scope="module")
def pair(shared: Shared) -> tuple[PortalProcess, PortalProcess]:
    """Portals A and B: the same Redis, the same signing key."""
    return (
        shared.start_portal("a", shared.portal_config()),
        shared.start_portal("b", shared.portal_config()),
    )


def at(portal: PortalProcess, url: str) -> str:
    """``url`` (a portal callback) sent to ``portal`` instead."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"127.0.0.1:{portal.port}"))


def test_oidc_through_the_portal_lands_on_its_homeserver(
    shared: Shared, pair: tuple[PortalProcess, PortalProcess]
) -> None:
    a, b = pair
    signed = shared.oidc.id_tokens_issued
    callback = oidc_leg(shared.hs["hs1"], shared.oidc, start_sso(a, OIDC_IDP), "olive")
    token, _ = through_callback(a, callback)
    assert shared.oidc.id_tokens_issued == signed + 1  # Synapse took the user from it
    result = token_login(b, token)  # the other replica
    assert result.status_code == 200, result.text
    assert result.json()["user_id"] == "@olive:ss1.test"
    assert result.json()["base_cs_url"] == shared.hs["hs1"].base_url
    assert "login route=sso homeserver=hs1 mode=proxy status=200" in b.logs()


def test_callback_through_a_then_token_login_through_b(
    shared: Shared, pair: tuple[PortalProcess, PortalProcess]
) -> None:
    a, b = pair
    callback = cas_leg(shared.hs["hs2"], shared.cas["hs2"], start_sso(a, "cas"), "carol")
    token, _ = through_callback(a, callback)
    result = token_login(b, token)
    assert result.status_code == 200, result.text
    assert result.json()["user_id"] == "@carol:ss2.test"
    assert whoami(shared.hs["hs2"].base_url, result.json()["access_token"]).status_code == 200
    assert "login route=sso homeserver=hs2 mode=proxy status=200" in b.logs()


def test_a_callback_signed_by_a_is_accepted_by_b(
    shared: Shared, pair: tuple[PortalProcess, PortalProcess]
) -> None:
    a, b = pair
    callback = cas_leg(shared.hs["hs2"], shared.cas["hs2"], start_sso(a, "cas"), "carol")
    token, _ = through_callback(b, at(b, callback))
    result = token_login(a, token)
    assert result.status_code == 200, result.text
    assert result.json()["user_id"] == "@carol:ss2.test"


def test_the_same_token_at_a_and_b_at_once_is_honoured_once(
    shared: Shared, pair: tuple[PortalProcess, PortalProcess]
) -> None:
    a, b = pair
    callback = cas_leg(shared.hs["hs2"], shared.cas["hs2"], start_sso(a, "cas"), "carol")
    token, _ = through_callback(a, callback)
    answers: list[requests.Response] = []
    go = threading.Barrier(2)

    def race(portal: PortalProcess) -> None:
        go.wait()
        answers.append(token_login(portal, token))

    threads = [threading.Thread(target=race, args=(p,)) for p in (a, b)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    # One portal took the record (hs2 logs carol in); the other found none and sent the
    # token to the default hs1, which refuses hs2's token.
    assert sorted(r.status_code for r in answers) == [200, 403], [r.text for r in answers]
    tag = token_tag(token)
    logins = [line for line in (a.logs() + b.logs()).splitlines() if f"token={tag}" in line]
    routes = sorted(line.split("login route=")[1].split()[0] for line in logins if "login " in line)
    assert routes == ["sso", "sso-default"], logins


def test_a_rotated_key_still_accepts_callbacks_signed_with_the_previous_one(
    shared: Shared, pair: tuple[PortalProcess, PortalProcess]
) -> None:
    a, _ = pair
    rotated = shared.start_portal(
        "rotated",
        shared.portal_config(
            signing_key_file=str(shared.keys["new"]),
            previous_signing_key_files=[str(shared.keys["old"])],
        ),
    )
    only_new = shared.start_portal(
        "only-new", shared.portal_config(signing_key_file=str(shared.keys["new"]))
    )
    callback = cas_leg(shared.hs["hs2"], shared.cas["hs2"], start_sso(a, "cas"), "carol")
    refused = get(at(only_new, callback))
    assert (refused.status_code, refused.json()["errcode"]) == (403, "M_FORBIDDEN")
    token, _ = through_callback(rotated, at(rotated, callback))
    assert token_login(rotated, token).json()["user_id"] == "@carol:ss2.test"


def test_redis_down_then_back(shared: Shared) -> None:
    redis = RedisServer().start()
    config = shared.portal_config()
    config["state"]["url"] = f"redis://127.0.0.1:{redis.port}/0"
    portal = shared.start_portal("faults", config)
    hs2 = shared.hs["hs2"]
    shared.hs["hs1"].register_user("dora", PASSWORD)
    try:
        assert get(portal.url + "/ready").status_code == 200
        redis.stop()
        # Password logins never touch Redis.
        login = requests.post(portal.url + LOGIN, json=password_body("dora"), timeout=30)
        assert login.status_code == 200, login.text
        assert login.json()["user_id"] == "@dora:ss1.test"
        # What needs Redis gets a quick, bounded 503 (command_timeout: 1 s).
        started = time.monotonic()
        callback = cas_leg(hs2, shared.cas["hs2"], start_sso(portal, "cas"), "carol")
        refused = get(callback)
        assert refused.status_code == 503, refused.text
        assert refused.json()["errcode"] == "M_UNAVAILABLE"
        assert int(refused.headers["Retry-After"]) >= 1
        tokenless = token_login(portal, "syl_whatever")
        assert (tokenless.status_code, tokenless.json()["errcode"]) == (503, "M_UNAVAILABLE")
        assert time.monotonic() - started < 15
        ready = get(portal.url + "/ready")
        assert ready.status_code == 503
        assert "does not answer" in ready.text
        # Redis back on the same port: the portal reconnects by itself.
        redis.start()
        deadline = time.monotonic() + 30
        while get(portal.url + "/ready").status_code != 200:
            assert time.monotonic() < deadline, portal.logs()
            time.sleep(0.5)
        callback = cas_leg(hs2, shared.cas["hs2"], start_sso(portal, "cas"), "carol")
        token, _ = through_callback(portal, callback)
        assert token_login(portal, token).json()["user_id"] == "@carol:ss2.test"
    finally:
        redis.cleanup()


def test_a_portal_that_cannot_use_redis_stops_with_one_line(shared: Shared) -> None:
    config = shared.portal_config()
    config["state"]["url"] = f"redis://127.0.0.1:{free_port()}/0"
    workdir = shared.workdir / "no-redis"
    workdir.mkdir()
    portal = PortalProcess(config, workdir)
    with pytest.raises(RuntimeError, match="portal exited with 1"):
        portal.start()
    errors = [line for line in portal.logs().splitlines() if " ERROR " in line]
    assert len(errors) == 1, portal.logs()
    assert "portal cannot use Redis: Redis at redis://127.0.0.1:" in errors[0]
    assert "did not answer within 1s" in errors[0]


def test_password_logins_still_route_with_redis(
    shared: Shared, pair: tuple[PortalProcess, PortalProcess]
) -> None:
    shared.hs["hs1"].register_user("pat", PASSWORD)
    result = requests.post(pair[1].url + LOGIN, json=password_body("pat"), timeout=30)
    assert result.status_code == 200, result.text
    assert CALLBACK not in result.text


def test_redis_on_a_unix_socket(shared: Shared) -> None:
    config = shared.portal_config()
    config["state"]["url"] = f"unix://{shared.redis.socket_path}?db=1"
    portal = shared.start_portal("unix-socket", config)
    assert get(portal.url + "/ready").status_code == 200
    callback = cas_leg(shared.hs["hs2"], shared.cas["hs2"], start_sso(portal, "cas"), "carol")
    token, _ = through_callback(portal, callback)
    assert token_login(portal, token).json()["user_id"] == "@carol:ss2.test"
    assert "state in Redis" in portal.logs() and "unix://" in portal.logs()


def test_replicas_share_what_the_gateway_learnt(shared: Shared) -> None:
    redis = RedisServer().start()
    try:
        replicas = []
        for label in ("gateway-a", "gateway-b"):
            config = shared.portal_config()
            config["state"]["url"] = f"redis://127.0.0.1:{redis.port}/0"
            config["client_api"] = "proxy"
            config["routes"] = [{"match": {"localpart": "s2_.*"}, "homeserver": "hs2"}]
            replicas.append(shared.start_portal(label, config))
        a, b = replicas
        shared.hs["hs2"].register_user("s2_gwen", PASSWORD)
        login = requests.post(a.url + LOGIN, json=password_body("s2_gwen"), timeout=30)
        assert login.status_code == 200, login.text
        token = login.json()["access_token"]
        # B never saw that login: it finds the token's homeserver in Redis and asks nobody.
        me = whoami(b.url, token)
        assert (me.status_code, me.json()["user_id"]) == (200, "@s2_gwen:ss2.test")
        assert total(b.url, RESOLUTIONS) == 0
        assert total(b.url, CLIENT_API, route="token", homeserver="hs2") == 1
        # Redis gone: the token map is a cache, so the homeservers are asked (once), and
        # the replica keeps the answer in its own memory while Redis is down.
        redis.stop()
        started = time.monotonic()
        down = whoami(b.url, token)
        assert (down.status_code, down.json()["user_id"]) == (200, "@s2_gwen:ss2.test")
        assert time.monotonic() - started < 10
        assert total(b.url, RESOLUTIONS, result="found") == 1
        assert whoami(b.url, token).status_code == 200
        assert total(b.url, RESOLUTIONS, result="found") == 1  # not asked again
        # Back (empty: the throwaway Redis keeps nothing): the token is looked up once more.
        redis.start()
        deadline = time.monotonic() + 30
        while get(b.url + "/ready").status_code != 200:
            assert time.monotonic() < deadline, b.logs()
            time.sleep(0.5)
        again = whoami(b.url, token)
        assert (again.status_code, again.json()["user_id"]) == (200, "@s2_gwen:ss2.test")
        assert total(b.url, RESOLUTIONS, result="found") == 2
    finally:
        redis.cleanup()


@pytest.mark.parametrize("path", ["native", "pre-6.2"])
def test_each_redis_command_path(shared: Shared, path: str) -> None:
    # The commands the portal sends to a Redis of 6.2 or newer, and the ones it sends to an
    # older one, against the real Redis: the same answers.
    url = f"redis://127.0.0.1:{shared.redis.port}/2"
    done = subprocess.run(
        [sys.executable, "-m", "tests.harness.redis_probe", url, path],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen["put_new"] is True and seen["put_new again"] is False
    assert (seen["take"], seen["take again"]) == ("hs2", None)
    assert seen["get_extending"] == "hs1"
    assert 590 <= seen["ttl"] <= 600  # extended from 5 s
    assert seen["get_extending missing"] is None
    assert seen["after delete"] is None


def test_redis_over_tls(shared: Shared, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pems = make_certificates(tmp_path)
    redis = RedisServer(tls=(pems["valid"].cert, pems["valid"].key, pems["ca"].cert)).start()
    try:
        config = shared.portal_config()
        config["state"]["url"] = f"rediss://127.0.0.1:{redis.tls_port}/0"
        # Not trusted: the portal stops at startup, saying why, in one line.
        with pytest.raises(RuntimeError, match="portal exited with 1"):
            shared.start_portal("tls-untrusted", config)
        untrusted = shared.portals[-1].logs()
        assert "portal cannot use Redis" in untrusted, untrusted
        assert "is its certificate valid for that host, and trusted?" in untrusted
        # Trusted as the system's CAs are (OpenSSL reads SSL_CERT_FILE): state over TLS.
        monkeypatch.setenv("SSL_CERT_FILE", str(pems["ca"].cert))
        portal = shared.start_portal("tls", config)
        assert get(portal.url + "/ready").status_code == 200
        callback = cas_leg(shared.hs["hs2"], shared.cas["hs2"], start_sso(portal, "cas"), "carol")
        token, _ = through_callback(portal, callback)
        assert token_login(portal, token).json()["user_id"] == "@carol:ss2.test"
        assert "rediss://" in portal.logs()
    finally:
        redis.cleanup()
