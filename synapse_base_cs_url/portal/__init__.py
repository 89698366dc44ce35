"""The MSC1730 login portal: clients log in at one address, each lands on their homeserver.

``synapse-base-cs-url portal --config portal.yaml`` runs it; see ``docs/portal.md``.

- ``web/``: the route table (404 vs 405), the request and site classes;
- ``login/``: ``POST /login`` from body to log line: body checks, the routing decision,
  redirect or proxy;
- ``sso/``: single sign-on through the portal, and which homeserver issued each login token;
- ``config`` (portal.yaml), ``upstream`` (HTTP to the homeservers), ``discovery`` (what
  clients ask before logging in), ``errors``, ``metrics``, ``logs``, ``reactor`` (the typed
  reactor and clock) and ``app`` (wiring and listening).
"""

from __future__ import annotations

from synapse_base_cs_url.portal.config import Homeserver, Mode, PortalConfig

__all__ = ["Homeserver", "Mode", "PortalConfig"]
