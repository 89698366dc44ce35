"""The MSC1730 login portal: clients log in at one address, each lands on their homeserver.

``synapse-base-cs-url portal --config portal.yaml`` runs it; see ``docs/portal.md``. Files:
``config`` (portal.yaml), ``login_body`` (who is logging in), ``decide`` (which homeserver,
which mode), ``redirect`` / ``proxy`` (the two ways there), ``upstream`` (HTTP to the
homeservers), ``discovery`` (pre-login endpoints), ``sso`` (single sign-on through the
portal), ``sso_tokens`` (which homeserver issued each login token), ``errors``, ``metrics``,
``http`` (CORS and answers), ``server`` (the web resource) and ``app`` (wiring and listening).
"""

from __future__ import annotations

from synapse_base_cs_url.portal.config import Homeserver, Mode, PortalConfig

__all__ = ["Homeserver", "Mode", "PortalConfig"]
