"""portal.yaml's ``metrics``: off unless asked for, ``public`` only when said, a listener of
its own otherwise; ``true`` (once the default, and public) is refused with what to write."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest

from synapse_base_cs_url.portal.config.portal_config import PortalConfig
from synapse_base_cs_url.portal.config.serving import Metrics, MetricsListener

BASE: dict[str, Any] = {
    "public_baseurl": "https://portal.example.com",
    "homeservers": {"hs1": {"base_url": "https://hs1.example.com"}},
    "default_homeserver": "hs1",
}


def config(**overrides: Any) -> PortalConfig:
    raw = copy.deepcopy(BASE)
    raw.update(overrides)
    return PortalConfig.from_config(raw)


def test_absent_null_or_false_serve_no_metrics() -> None:
    assert config().metrics == Metrics(public=False, listener=None)
    assert config(metrics=None).metrics == Metrics()
    assert config(metrics=False).metrics == Metrics()


def test_public_is_the_old_behaviour_said_explicitly() -> None:
    assert config(metrics="public").metrics == Metrics(public=True)


def test_a_listener_of_its_own_defaults_to_loopback() -> None:
    assert config(metrics={"port": 9101}).metrics == Metrics(
        listener=MetricsListener(host="127.0.0.1", port=9101)
    )
    assert config(metrics={"host": "::1", "port": 9101}).metrics.listener == MetricsListener(
        host="::1", port=9101
    )


def test_port_0_is_any_free_port_and_cannot_clash_with_listen() -> None:
    c = config(metrics={"port": 0}, listen={"port": 0})
    assert c.metrics.listener == MetricsListener(port=0)


def test_true_is_refused_saying_what_to_write_instead() -> None:
    with pytest.raises(ValueError) as e:
        config(metrics=True)
    message = str(e.value)
    assert message.startswith("metrics: true is no longer accepted")
    assert "'metrics: public'" in message  # the old behaviour
    assert "'metrics: {host: 127.0.0.1, port: 9101}'" in message  # the new listener


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("on", "metrics: must be false, 'public' or a mapping (keys: host, port), not 'on'"),
        ("true", "metrics: must be false, 'public' or a mapping (keys: host, port), not 'true'"),
        (9101, "metrics: must be false, 'public' or a mapping (keys: host, port), not 9101"),
        ({}, "metrics.port: required"),
        ({"host": "127.0.0.1"}, "metrics.port: required"),
        ({"port": 70000}, "metrics.port: must be a port number (0-65535), not 70000"),
        ({"port": "9101"}, "metrics.port: must be a port number (0-65535), not '9101'"),
        ({"port": True}, "metrics.port: must be a port number (0-65535), not True"),
        ({"port": 9101, "host": ""}, "metrics.host: must be an IP address or host name, not ''"),
        (
            {"port": 9101, "x_forwarded": True},
            "metrics: unknown key 'x_forwarded'; allowed keys: host, port",
        ),
        (
            {"host": "0.0.0.0", "port": 8080},
            "metrics.port: 8080 is listen.port too; the metrics listener needs a port of its own",
        ),
    ],
)
def test_mistakes_name_the_key(value: object, message: str) -> None:
    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        config(metrics=value)
