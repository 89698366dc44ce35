"""The module glue on a stand-in ModuleApi: hooks per endpoint, counters registered once."""

from __future__ import annotations

import io
import json
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client import REGISTRY

from synapse_base_cs_url.synapse_module import _synapse_internals as internals
from synapse_base_cs_url.synapse_module.module import BaseCsUrlModule
from tests.harness.deferreds import settle

RESPONSES = "synapse_base_cs_url_responses_total"
FAIL_OPEN = "synapse_base_cs_url_fail_open_total"


class FakeHomeserver:
    pass


class FakeModuleApi:
    def __init__(self, server_name: str) -> None:
        self._hs = FakeHomeserver()
        self.server_name = server_name
        self.public_baseurl = f"https://{server_name}/"


def make_module(server_name: str, **config: Any) -> tuple[BaseCsUrlModule, FakeModuleApi]:
    api = FakeModuleApi(server_name)
    module = BaseCsUrlModule(BaseCsUrlModule.parse_config(config), api)  # type: ignore[arg-type]
    return module, api


def sample(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


class FakeRequest:
    """What the hook reads of Synapse's request: the JSON body and the client address."""

    def __init__(self, body: dict[str, Any]) -> None:
        self.content = io.BytesIO(json.dumps(body).encode())

    def getClientAddress(self) -> SimpleNamespace:
        return SimpleNamespace(host="192.0.2.1")


def login(module: BaseCsUrlModule, endpoint: str, user_id: str, **body: Any) -> dict[str, Any]:
    facts = internals.RequestFacts(FakeRequest(body))
    response = {"user_id": user_id, "access_token": "secret-token", "device_id": "D"}
    amended = module._hook_for(endpoint)(facts, response)
    return amended if isinstance(amended, dict) else settle(amended)


def test_counts_by_rule_and_endpoint_per_homeserver() -> None:
    eu, _ = make_module(
        "eu.unit",
        on_register=True,
        rules=[{"name": "bots", "match": {"localpart": "bot_.*"}, "base_cs_url": "https://b.x"}],
    )
    us, _ = make_module("us.unit")  # a second instance in the same process: no duplicate error

    # Every series exists at 0 from startup, so rate() and alerts work at once.
    for rule in ("default", "bots"):
        for endpoint in ("login", "register"):
            assert sample(RESPONSES, server_name="eu.unit", endpoint=endpoint, rule=rule) == 0
    assert sample(FAIL_OPEN, server_name="eu.unit", endpoint="login", reason="hook_error") == 0
    assert sample(RESPONSES, server_name="us.unit", endpoint="register", rule="default") is None

    assert login(eu, "login", "@bot_1:eu.unit")["base_cs_url"] == "https://b.x"
    assert login(eu, "login", "@bot_2:eu.unit")["base_cs_url"] == "https://b.x"
    assert login(eu, "register", "@a:eu.unit")["base_cs_url"] == "https://eu.unit"
    assert login(us, "login", "@bot_1:us.unit")["base_cs_url"] == "https://us.unit"

    assert sample(RESPONSES, server_name="eu.unit", endpoint="login", rule="bots") == 2
    assert sample(RESPONSES, server_name="eu.unit", endpoint="register", rule="default") == 1
    assert sample(RESPONSES, server_name="eu.unit", endpoint="login", rule="default") == 0
    assert sample(RESPONSES, server_name="us.unit", endpoint="login", rule="default") == 1


def test_compute_fall_through_and_hook_errors_count_as_fail_open() -> None:
    module, api = make_module(
        "compute.unit",
        compute="tests.in_synapse.compute_functions:by_localpart_prefix",
    )
    labels = {"server_name": "compute.unit", "endpoint": "login"}
    assert login(module, "login", "@computed_a:compute.unit")["base_cs_url"] == (
        "https://computed.example.com/computed_a"
    )
    assert login(module, "login", "@raise_a:compute.unit")["base_cs_url"] == (
        "https://compute.unit"
    )
    assert login(module, "login", "@garbage_a:compute.unit")["base_cs_url"] == (
        "https://compute.unit"
    )
    assert sample(RESPONSES, **labels, rule="compute") == 1
    assert sample(RESPONSES, **labels, rule="default") == 2
    assert sample(FAIL_OPEN, **labels, reason="compute_error") == 1
    assert sample(FAIL_OPEN, **labels, reason="compute_invalid") == 1

    # What the wrapper around Synapse's servlet calls when the hook itself raised.
    registration = internals._hooks[api._hs]["login"]
    registration.on_failure()
    assert sample(FAIL_OPEN, **labels, reason="hook_error") == 1


def test_register_hook_only_with_on_register() -> None:
    _, api = make_module("plain.unit")
    assert set(internals._hooks[api._hs]) == {"login"}
    _, api = make_module("register.unit", on_register=True)
    assert set(internals._hooks[api._hs]) == {"login", "register"}


def test_without_base_cs_url_or_usable_public_baseurl_startup_fails() -> None:
    from synapse.module_api.errors import ConfigError

    api = FakeModuleApi("x.unit")
    api.public_baseurl = "not a url"
    with pytest.raises(ConfigError) as info:
        BaseCsUrlModule(BaseCsUrlModule.parse_config({}), api)  # type: ignore[arg-type]
    assert "base_cs_url is not set and Synapse's public_baseurl cannot be used" in str(info.value)
