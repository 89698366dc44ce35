"""A real single sign-on (CAS) login ends in m.login.token, which gets base_cs_url too."""

from __future__ import annotations

from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from tests.harness.fake_cas import FakeCasServer
from tests.harness.synapse import StartSynapse, module_entry

pytestmark = pytest.mark.integration

CLIENT_REDIRECT = "http://127.0.0.1:1/client-after-sso"


def test_cas_sso_login_token_gets_base_cs_url(start_synapse: StartSynapse) -> None:
    with FakeCasServer() as cas:
        hs = start_synapse(
            "sso.test",
            modules=[module_entry(base_cs_url="https://cs.example.com")],
            extra_config=lambda hs: {
                # SSO endpoints redirect to the canonical public_baseurl first.
                "public_baseurl": hs.base_url + "/",
                "cas_config": {"enabled": True, "server_url": cas.url},
                # Synapse refuses outbound requests to loopback unless allowed.
                "ip_range_whitelist": ["127.0.0.1"],
                # Skip the "continue to your client?" page: redirect straight back.
                "sso": {"client_whitelist": ["http://127.0.0.1:1/"]},
            },
        )
        flows = [f["type"] for f in hs.get("/_matrix/client/v3/login").json()["flows"]]
        assert "m.login.sso" in flows
        assert "m.login.token" in flows

        # The browser leg: Synapse sends the user to CAS...
        start = hs.get(
            "/_matrix/client/v3/login/sso/redirect?" + urlencode({"redirectUrl": CLIENT_REDIRECT})
        )
        assert start.status == 302, start
        assert start.headers["Location"].startswith(cas.url + "/login?service=")
        # ...CAS authenticates them and sends them back with a ticket...
        cas.issue_ticket("ST-1-sso", "ssouser")
        query = urlencode({"redirectUrl": CLIENT_REDIRECT, "ticket": "ST-1-sso"})
        back = hs.get(f"/_matrix/client/r0/login/cas/ticket?{query}")
        assert back.status == 302, back
        location = back.headers["Location"]
        assert location.startswith(CLIENT_REDIRECT)
        login_token = parse_qs(urlsplit(location).query)["loginToken"][0]

        # ...and the client finishes with m.login.token.
        result = hs.post(
            "/_matrix/client/v3/login", {"type": "m.login.token", "token": login_token}
        )
        assert result.status == 200, result
        body = result.json()
        assert body["user_id"] == "@ssouser:sso.test"
        assert body["base_cs_url"] == "https://cs.example.com"
        assert body["well_known"]["m.homeserver"]["base_url"] == "https://cs.example.com"
        hs.stop()
