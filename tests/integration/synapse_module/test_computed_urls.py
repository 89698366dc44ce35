"""Per-login base URLs on a real Synapse: rules, pools, compute, registration and metrics."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from synapse_base_cs_url._dev.throwaway_synapse import (
    HttpResult,
    JsonDict,
    SynapseProcess,
    http_request,
)
from synapse_base_cs_url.core import rendezvous_pick
from tests.harness.cli import run_tool
from tests.harness.constants import AS_TOKEN, PASSWORD
from tests.harness.synapse import (
    METRICS_LISTENER,
    X_FORWARDED_CLIENT_LISTENER,
    StartSynapseWithListeners,
    appservice_config_file,
    module_entry,
    startup_failure_output,
)
from tests.in_synapse.compute_functions import COMPUTED_URL

pytestmark = pytest.mark.integration

SERVER = "routing.test"
FALLBACK = "https://fallback.example.com"
INTERNAL = "https://matrix.internal.example.com"
BRIDGES = "http://synapse-internal:8008"
EU = "https://eu.example.com"
POOL = ("https://a.example.com", "https://b.example.com", "https://c.example.com")
AS_LOGIN = "m.login.application_service"

RULES = [
    {
        "name": "internal-clients",
        "match": {"client_ip": ["10.0.0.0/8", "fd00::/8"]},
        "base_cs_url": INTERNAL,
    },
    {"name": "bridges", "match": {"login_type": AS_LOGIN}, "base_cs_url": BRIDGES},
    {"name": "eu-users", "match": {"user_id": "@eu_.*:routing\\.test"}, "base_cs_url": EU},
    {"name": "sticky-pool", "match": {"localpart": "pool_.*"}, "pool": list(POOL)},
    {
        "name": "rr-pool",
        "match": {"localpart": "rr_.*"},
        "pool": list(POOL),
        "strategy": "round_robin",
    },
]


class RoutingHomeserver:
    """The Synapse under test, its extra listeners, and helpers to log in through them."""

    def __init__(self, hs: SynapseProcess, ports: dict[str, int]) -> None:
        self.hs = hs
        self.forwarded_url = f"http://127.0.0.1:{ports.get('forwarded')}"
        self.metrics_url = f"http://127.0.0.1:{ports['metrics']}/_synapse/metrics"

    def user(self, localpart: str) -> str:
        """Register ``localpart`` (unique per run) and return it."""
        self.hs.register_user(localpart, PASSWORD)
        return localpart

    def login(
        self, user: str, *, forwarded_for: str | None = None, via_proxy: bool = False
    ) -> JsonDict:
        body = {
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": user},
            "password": PASSWORD,
        }
        headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
        base = self.forwarded_url if via_proxy else self.hs.base_url
        result = http_request("POST", f"{base}/_matrix/client/v3/login", body, headers=headers)
        assert result.status == 200, result
        response: JsonDict = result.json()
        # The field and the well_known clients act on always agree.
        assert response["well_known"]["m.homeserver"]["base_url"] == response["base_cs_url"]
        return response

    def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """Our counters from Synapse's metrics listener: {(sample, sorted labels): value}."""
        result = http_request("GET", self.metrics_url)
        assert result.status == 200, result
        samples = {}
        for family in text_string_to_metric_families(result.body.decode()):
            for s in family.samples:
                if s.name.startswith("synapse_base_cs_url_"):
                    samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
        return samples


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def routing(
    start_synapse_with_listeners: StartSynapseWithListeners,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RoutingHomeserver]:
    as_file = appservice_config_file(
        tmp_path_factory.mktemp("routing-as"), SERVER, f"@bridge_.*:{SERVER}"
    )
    hs, ports = start_synapse_with_listeners(
        SERVER,
        modules=[
            module_entry(
                base_cs_url=FALLBACK,
                rules=RULES,
                compute="tests.in_synapse.compute_functions:by_localpart_prefix",
                on_register=True,
            )
        ],
        extra_config={
            "public_baseurl": "https://public.example.com/",
            "app_service_config_files": [str(as_file)],
            "enable_registration": True,
            "enable_registration_without_verification": True,
        },
        listeners={"forwarded": X_FORWARDED_CLIENT_LISTENER, "metrics": METRICS_LISTENER},
    )
    yield RoutingHomeserver(hs, ports)


# --- users land on different URLs -------------------------------------------------------------


def test_two_users_land_on_different_urls(routing: RoutingHomeserver) -> None:
    eu_user, other = routing.user(unique("eu_")), routing.user(unique("bob"))
    assert routing.login(eu_user)["base_cs_url"] == EU
    assert routing.login(other)["base_cs_url"] == FALLBACK
    # The full user id works too, and routes the same way.
    assert routing.login(f"@{eu_user}:{SERVER}")["base_cs_url"] == EU


def users_for_every_pool_member() -> list[str]:
    """Fresh ``pool_`` localparts, one landing on each member of POOL by the routing core.

    Picked rather than drawn at random, so that "the pool spreads users" cannot fail by the
    luck of the draw (8 random users all on one member: about 1 run in 2000).
    """
    by_member: dict[str, str] = {}
    while len(by_member) < len(POOL):
        localpart = unique("pool_")
        by_member.setdefault(rendezvous_pick(POOL, f"@{localpart}:{SERVER}"), localpart)
    return list(by_member.values())


def test_hash_pool_is_sticky_per_user_and_spreads_users(routing: RoutingHomeserver) -> None:
    users = [routing.user(localpart) for localpart in users_for_every_pool_member()]
    landed = {}
    for user in users:
        first = routing.login(user)["base_cs_url"]
        # What the shared routing core says for the canonical user id: the portal agrees.
        assert first == rendezvous_pick(POOL, f"@{user}:{SERVER}")
        # Sticky: every later login, however the user spells their name, lands there too.
        assert routing.login(user)["base_cs_url"] == first
        assert routing.login(user.upper())["base_cs_url"] == first
        assert routing.login(f"@{user}:{SERVER}")["base_cs_url"] == first
        landed[user] = first
    assert sorted(landed.values()) == sorted(POOL), landed


def test_explain_says_where_real_logins_land(routing: RoutingHomeserver) -> None:
    users = [routing.user(unique("eu_")), routing.user(unique("bob"))]
    users += [routing.user(localpart) for localpart in users_for_every_pool_member()]
    for user in users:
        landed = routing.login(user)["base_cs_url"]
        said = run_tool("explain", "--config", str(routing.hs.config_path), user)
        assert said.status == 0, said.err
        assert f"\n  -> {landed}\n" in said.out, said.out
    # A client address the homeserver takes from X-Forwarded-For, given to explain.
    user = routing.user(unique("bob"))
    landed = routing.login(user, forwarded_for="10.1.2.3", via_proxy=True)["base_cs_url"]
    said = run_tool(
        "explain", "--config", str(routing.hs.config_path), user, "--client-ip", "10.1.2.3"
    )
    assert (landed, f"\n  -> {INTERNAL}\n" in said.out) == (INTERNAL, True), said.out


def test_round_robin_pool_spreads_logins(routing: RoutingHomeserver) -> None:
    user = routing.user(unique("rr_"))
    urls = [routing.login(user)["base_cs_url"] for _ in range(len(POOL))]
    assert sorted(urls) == sorted(POOL)


# --- application services ---------------------------------------------------------------------


def appservice_register(hs: SynapseProcess, localpart: str, **extra: Any) -> HttpResult:
    return hs.post(
        "/_matrix/client/v3/register",
        {"type": AS_LOGIN, "username": localpart, **extra},
        headers={"Authorization": f"Bearer {AS_TOKEN}"},
    )


def test_application_service_login_matched_by_login_type(routing: RoutingHomeserver) -> None:
    localpart = unique("bridge_")
    registered = appservice_register(routing.hs, localpart, inhibit_login=True)
    assert registered.status == 200, registered
    body = {"type": AS_LOGIN, "identifier": {"type": "m.id.user", "user": localpart}}
    result = routing.hs.post(
        "/_matrix/client/v3/login", body, headers={"Authorization": f"Bearer {AS_TOKEN}"}
    )
    assert result.status == 200, result
    assert result.json()["user_id"] == f"@{localpart}:{SERVER}"
    assert result.json()["base_cs_url"] == BRIDGES
    assert result.json()["well_known"]["m.homeserver"]["base_url"] == BRIDGES


# --- client IP through an x_forwarded listener ------------------------------------------------


@pytest.mark.parametrize("forwarded_for", ["10.1.2.3", "fd00::1234", "10.9.9.9, 192.0.2.77"])
def test_client_ip_rule_uses_the_ip_synapse_records(
    routing: RoutingHomeserver, forwarded_for: str
) -> None:
    user = routing.user(unique("ip"))
    # Behind a proxy that Synapse trusts (x_forwarded: true): the forwarded client IP counts.
    assert routing.login(user, forwarded_for=forwarded_for, via_proxy=True)["base_cs_url"] == (
        INTERNAL
    )


def test_client_ip_rule_ignores_untrusted_or_outside_addresses(
    routing: RoutingHomeserver,
) -> None:
    user = routing.user(unique("ip"))
    # A listener without x_forwarded does not trust the header: the peer (127.0.0.1) counts.
    assert routing.login(user, forwarded_for="10.1.2.3")["base_cs_url"] == FALLBACK
    assert routing.login(user, forwarded_for="203.0.113.5", via_proxy=True)["base_cs_url"] == (
        FALLBACK
    )
    assert routing.login(user, via_proxy=True)["base_cs_url"] == FALLBACK


def test_first_matching_rule_wins(routing: RoutingHomeserver) -> None:
    eu_user = routing.user(unique("eu_"))
    # internal-clients comes before eu-users.
    assert routing.login(eu_user, forwarded_for="10.0.0.1", via_proxy=True)["base_cs_url"] == (
        INTERNAL
    )
    assert routing.login(eu_user, forwarded_for="192.0.2.1", via_proxy=True)["base_cs_url"] == EU


# --- registration -----------------------------------------------------------------------------


def open_register(hs: SynapseProcess, localpart: str, **extra: Any) -> HttpResult:
    """Open registration: the first request gets a UI-auth session, the second completes it."""
    body: JsonDict = {"username": localpart, "password": PASSWORD, **extra}
    challenge = hs.post("/_matrix/client/v3/register", body)
    assert challenge.status == 401, challenge
    assert ["m.login.dummy"] in [flow["stages"] for flow in challenge.json()["flows"]]
    body["auth"] = {"type": "m.login.dummy", "session": challenge.json()["session"]}
    return hs.post("/_matrix/client/v3/register", body)


def test_registration_gets_base_cs_url_with_on_register(routing: RoutingHomeserver) -> None:
    eu_user = unique("eu_")
    result = open_register(routing.hs, eu_user)
    assert result.status == 200, result
    body = result.json()
    assert body["user_id"] == f"@{eu_user}:{SERVER}"
    assert "access_token" in body
    assert body["base_cs_url"] == EU
    assert body["well_known"] == {"m.homeserver": {"base_url": EU}}

    result = open_register(routing.hs, unique("plain"))
    assert result.status == 200, result
    assert result.json()["base_cs_url"] == FALLBACK


def test_registration_without_login_is_untouched(routing: RoutingHomeserver) -> None:
    result = open_register(routing.hs, unique("eu_"), inhibit_login=True)
    assert result.status == 200, result
    assert "access_token" not in result.json()
    assert "base_cs_url" not in result.json()
    assert "well_known" not in result.json()


def test_appservice_registration_is_routed_like_its_logins(routing: RoutingHomeserver) -> None:
    result = appservice_register(routing.hs, unique("bridge_"))
    assert result.status == 200, result
    assert "access_token" in result.json()
    assert result.json()["base_cs_url"] == BRIDGES


def test_registration_untouched_without_on_register(module_hs: SynapseProcess) -> None:
    """The shared module_hs fixture has the module without on_register."""
    result = appservice_register(module_hs, unique("bridge_noreg_"))
    assert result.status == 200, result
    assert "access_token" in result.json()
    assert "base_cs_url" not in result.json()
    assert "well_known" not in result.json()


# --- compute ----------------------------------------------------------------------------------


def test_compute_returns_a_url(routing: RoutingHomeserver) -> None:
    user = routing.user(unique("computed_"))
    # compute comes before every rule, even internal-clients.
    for response in (
        routing.login(user),
        routing.login(user, forwarded_for="10.1.1.1", via_proxy=True),
    ):
        assert response["base_cs_url"] == f"{COMPUTED_URL}/{user}"


def test_compute_none_falls_through_to_the_rules(routing: RoutingHomeserver) -> None:
    eu_user = routing.user(unique("eu_"))  # the function returns None for it
    assert routing.login(eu_user)["base_cs_url"] == EU


@pytest.mark.parametrize(
    ("prefix", "logged"),
    [
        ("raise_", "RuntimeError: compute exploded for @raise_"),
        ("garbage_", "returned an invalid base URL"),
        ("garbage_int", "returned an invalid base URL"),
    ],
)
def test_compute_errors_and_garbage_fall_through(
    routing: RoutingHomeserver, prefix: str, logged: str
) -> None:
    user = routing.user(unique(prefix))
    response = routing.login(user)
    assert response["base_cs_url"] == FALLBACK
    log = routing.hs.log_path.read_text()
    lines = [line for line in log.splitlines() if f"@{user}:{SERVER}" in line]
    assert any("synapse-base-cs-url: compute function" in line for line in lines), lines
    # On this user's own lines: the log is shared with every other test on this homeserver.
    assert any(logged in line for line in lines), lines
    # Never a secret in the log.
    assert PASSWORD not in log
    assert response["access_token"] not in log


# --- metrics ----------------------------------------------------------------------------------


def series(name: str, **labels: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    return f"synapse_base_cs_url_{name}_total", tuple(sorted(labels.items()))


def counter(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples.get(series(name, **labels), 0.0)


def test_metrics_on_synapse_metrics_listener(routing: RoutingHomeserver) -> None:
    users = {
        name: routing.user(unique(name))
        for name in ("eu_", "plain", "computed_", "raise_", "garbage_")
    }
    before = routing.metrics()
    # Every series exists from startup.
    for rule in ("default", "compute", *(r["name"] for r in RULES)):
        for endpoint in ("login", "register"):
            assert series("responses", server_name=SERVER, endpoint=endpoint, rule=rule) in before

    for name in ("eu_", "eu_", "plain", "computed_", "raise_", "garbage_"):
        routing.login(users[name])
    routing.login(users["plain"], forwarded_for="10.0.0.1", via_proxy=True)
    assert open_register(routing.hs, unique("eu_")).status == 200
    after = routing.metrics()

    def delta(name: str, **labels: str) -> float:
        labels["server_name"] = SERVER
        return counter(after, name, **labels) - counter(before, name, **labels)

    assert delta("responses", endpoint="login", rule="eu-users") == 2
    # plain, raise_ and garbage_ fall through to the fallback.
    assert delta("responses", endpoint="login", rule="default") == 3
    assert delta("responses", endpoint="login", rule="compute") == 1
    assert delta("responses", endpoint="login", rule="internal-clients") == 1
    assert delta("responses", endpoint="register", rule="eu-users") == 1
    assert delta("fail_open", endpoint="login", reason="compute_error") == 1
    assert delta("fail_open", endpoint="login", reason="compute_invalid") == 1
    assert delta("fail_open", endpoint="login", reason="hook_error") == 0


def test_hook_failure_counted_as_fail_open(
    start_synapse_with_listeners: StartSynapseWithListeners,
) -> None:
    hs, ports = start_synapse_with_listeners(
        "faulty-metrics.test",
        modules=[
            module_entry(base_cs_url=FALLBACK),
            {
                "module": "tests.in_synapse.fault_injection.BreakUrlComputation",
                "config": {},
            },
        ],
        listeners={"metrics": METRICS_LISTENER},
    )
    routing = RoutingHomeserver(hs, ports)
    hs.register_user("alice", PASSWORD)
    for _ in range(2):
        result = hs.password_login("alice", PASSWORD)
        assert result.status == 200, result
        assert "base_cs_url" not in result.json()
    samples = routing.metrics()
    labels = {"server_name": "faulty-metrics.test", "endpoint": "login"}
    assert counter(samples, "fail_open", **labels, reason="hook_error") == 2
    assert counter(samples, "responses", **labels, rule="default") == 0
    hs.stop()


# --- startup ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (
            {"compute": "tests.in_synapse.compute_functions:no_such_function"},
            "synapse_base_cs_url: compute: 'tests.in_synapse.compute_functions:no_such_function': "
            "module 'tests.in_synapse.compute_functions' has no attribute 'no_such_function'",
        ),
        (
            {"compute": "tests.in_synapse.compute_import_error:choose"},
            "RuntimeError: this module is broken on purpose",
        ),
        (
            {"rules": [{"name": "default", "base_cs_url": EU}]},
            "synapse_base_cs_url: rules[0].name: 'default' is reserved",
        ),
        ({"on_register": "yes"}, "synapse_base_cs_url: on_register: must be true or false"),
    ],
)
def test_bad_rules_or_compute_stop_synapse_at_startup(
    tmp_path: Any, config: JsonDict, expected: str
) -> None:
    output = startup_failure_output(tmp_path, [module_entry(**config)])
    assert "Error in configuration" in output
    assert expected in output
