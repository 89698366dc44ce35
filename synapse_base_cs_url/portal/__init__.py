"""The MSC1730 login portal: clients log in at one address, each lands on their homeserver.

``synapse-base-cs-url portal --config portal.yaml`` runs it; see ``docs/portal.md``.

- ``config/``: ``portal.yaml``, one module per section;
- ``web/``: the HTTP layer at the bottom (URL table, request and ``BodySink``, site, resource);
- ``state/``: one state layer (expiring maps, shared lookups, rate limits, Redis);
- ``upstream/``: HTTP to the homeservers (client, bodies, headers, failures);
- ``login_routes``: where a login goes (server name, the directory, routes, default);
- ``directory/``: where an existing account lives (the homeservers' admin API, an HTTP
  directory, a function); ``placement`` and ``registration``: where a new one goes;
- ``login/``: ``POST /login`` from body to log line, redirect or proxy;
- ``sso/``: single sign-on through the portal, and which homeserver issued each login token;
- ``gateway/``: the rest of the client-server API for clients that stay at the portal's
  address (``client_api: proxy``), and the ``auth_request`` endpoint for nginx;
- ``discovery`` (what clients ask before logging in), ``errors``, ``metrics``, ``logs``,
  ``reactor`` (the typed reactor and clock);
- ``endpoints`` (the URL map) and ``wiring`` (what one config builds), ``process`` (one
  process: start, reload, drain) and ``workers`` (several processes on one port).
"""

from __future__ import annotations

from synapse_base_cs_url.portal.config.homeservers import Homeserver
from synapse_base_cs_url.portal.config.login import Mode
from synapse_base_cs_url.portal.config.portal_config import PortalConfig

__all__ = ["Homeserver", "Mode", "PortalConfig"]
