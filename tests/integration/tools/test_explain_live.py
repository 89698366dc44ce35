"""``explain`` agrees with the deployment it explains: for each user, the homeserver it names
for a portal.yaml is where that portal's ``307`` sends the login. (For a homeserver.yaml, see
``tests/integration/synapse_module/test_computed_urls.py``.)"""

from __future__ import annotations

import re

import pytest
import requests

from tests.harness.cli import run_tool
from tests.harness.portal import PortalProcess

pytestmark = pytest.mark.integration

LOGIN = "/_matrix/client/v3/login"


@pytest.mark.parametrize("user", ["alice", "h2_carol", "@h2_carol:hs2.test", "p_erin"])
def test_explain_names_where_the_portal_sends_a_login(
    portals: dict[str, PortalProcess], user: str
) -> None:
    portal = portals["redirect"]
    said = run_tool("explain", "--config", str(portal.config_path), user)
    assert said.status == 0, said.err
    named = re.search(r"^  -> (\S+) \((\S+)\), mode (\w+)$", said.out, re.M)
    assert named is not None, said.out
    assert named.group(3) == "redirect"
    # No password: the portal answers the 307 itself, and no homeserver sees the login.
    body = {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": user}}
    answer = requests.post(portal.url + LOGIN, json=body, allow_redirects=False, timeout=30)
    assert answer.status_code == 307, answer.text
    assert answer.headers["Location"] == named.group(2).rstrip("/") + LOGIN
