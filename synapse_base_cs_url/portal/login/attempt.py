"""One login on its way through the portal, from arrival to its log line."""

from __future__ import annotations

import attr

from synapse_base_cs_url.core import JsonDict, Selection
from synapse_base_cs_url.portal.config.homeservers import Homeserver
from synapse_base_cs_url.portal.config.login import Mode
from synapse_base_cs_url.portal.directory.identifier import Identifier
from synapse_base_cs_url.portal.web.request import PortalRequest

CLIENT_LEFT = "client closed the connection"


@attr.s(auto_attribs=True, slots=True, kw_only=True)
class LoginAttempt:
    """What a login needs between steps: set as it is learnt, read by the log line."""

    request: PortalRequest
    started: float
    """The portal's clock when the request arrived (for the duration in logs and metrics)."""
    body: JsonDict
    login_type: str
    client_ip: str
    scheme: str
    """``http`` or ``https``, as the client reached the portal (for ``X-Forwarded-Proto``)."""
    mode: Mode
    """``redirect`` or ``proxy`` (by the client's User-Agent under ``auto``)."""
    token_tag: str = ""
    """For ``m.login.token``: a short hash of the token, to match it to its SSO callback."""
    looked_up: Identifier | None = None
    """What the account directory is asked (its tag names the login in a refusal's log)."""
    selection: Selection[Homeserver] | None = None
    """The homeserver, and the route (or ``default``, ``sso``, ``sso-default``) that chose it."""

    @property
    def homeserver(self) -> Homeserver:
        assert self.selection is not None, "the homeserver is chosen before it is used"
        return self.selection.target
