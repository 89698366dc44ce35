"""The MSC1730 login portal: clients log in at one address, each lands on their homeserver.

``synapse-base-cs-url portal --config portal.yaml`` runs it; see ``docs/portal.md``.

- ``web/``: the route table (404 vs 405), the request and site classes;
- ``login/``: ``POST /login`` from body to log line: body checks, the routing decision,
  redirect or proxy;
- ``sso/``: single sign-on through the portal, and which homeserver issued each login token;
- ``gateway/``: the rest of the client-server API for clients that stay at the portal's
  address (``client_api: proxy``), and the decision endpoint for nginx;
- ``state/``: state shared by several portal processes (Redis);
- ``config`` (portal.yaml, with ``config_serving`` and ``config_gateway``), ``upstream``
  (HTTP to the homeservers), ``discovery`` (what clients ask before logging in),
  ``errors``, ``metrics``, ``logs``, ``reactor`` (the typed reactor and clock), ``app``
  (wiring, listening, reload and drain) and ``workers`` (several processes on one port).
"""

from __future__ import annotations

from synapse_base_cs_url.portal.config.homeservers import Homeserver
from synapse_base_cs_url.portal.config.login import Mode
from synapse_base_cs_url.portal.config.portal_config import PortalConfig

__all__ = ["Homeserver", "Mode", "PortalConfig"]
