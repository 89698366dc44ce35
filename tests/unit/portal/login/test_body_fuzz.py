"""Whatever a client sends, routing answers 400 or picks a homeserver: never an exception
that would become a 500."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from synapse_base_cs_url.portal.config.portal_config import PortalConfig
from synapse_base_cs_url.portal.errors import MatrixError
from synapse_base_cs_url.portal.login.body import check_login_body
from synapse_base_cs_url.portal.login_routes import LoginRoutes
from synapse_base_cs_url.portal.web.json_body import parse_json_object

CONFIG = PortalConfig.from_config(
    {
        "public_baseurl": "https://m.example.com",
        "homeservers": {n: {"base_url": f"https://{n}.example.com"} for n in ("a", "b", "c")},
        "routes": [
            {"match": {"user_id": "@.*:b\\.example\\.com"}, "homeserver": "b"},
            {"match": {"address": ".*@c\\.example\\.com", "medium": "email"}, "homeserver": "c"},
            {"match": {"client_ip": "10.0.0.0/8", "localpart": "x.*"}, "homeserver": "c"},
            {"pool": ["a", "b", "c"]},
        ],
        "default_homeserver": "a",
        "server_name": "example.com",
    }
)
ROUTER = LoginRoutes(CONFIG)

scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)
KEYS = ["type", "identifier", "user", "medium", "address", "password", "token", "device_id"]
ID_KEYS = ["type", "user", "medium", "address", "country", "phone"]
login_like = st.fixed_dictionaries(
    {},
    optional={
        **dict.fromkeys(KEYS, json_values),
        "type": st.sampled_from(["m.login.password", "m.login.token", "x"]) | json_values,
        "identifier": st.fixed_dictionaries(
            {},
            optional={
                **{k: json_values | st.text() for k in ID_KEYS},
                "type": st.sampled_from(["m.id.user", "m.id.thirdparty", "m.id.phone"]),
            },
        )
        | json_values,
    },
)


@settings(max_examples=400, deadline=None)
@given(login_like, st.sampled_from(["10.1.2.3", "192.0.2.1", "::1", "not an ip"]))
def test_any_body_is_a_400_or_a_decision(body: dict[str, Any], client_ip: str) -> None:
    try:
        parsed = parse_json_object(json.dumps(body).encode())
        login_type = check_login_body(parsed)
    except MatrixError as e:
        assert e.status == 400
        return
    decision = ROUTER.decide(parsed, login_type, client_ip)
    assert decision.target.name in ("a", "b", "c")


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_any_bytes_parse_or_400(raw: bytes) -> None:
    try:
        parse_json_object(raw)
    except MatrixError as e:
        assert (e.status, e.errcode) in ((400, "M_NOT_JSON"), (400, "M_BAD_JSON"))
