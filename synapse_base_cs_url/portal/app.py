"""Wiring: config -> upstream client, discovery, handlers, route table, web site -> a
listening port."""

from __future__ import annotations

import gc
import logging
from typing import Any, cast

from twisted.internet import defer

from synapse_base_cs_url.portal.config import PortalConfig
from synapse_base_cs_url.portal.discovery import Discovery
from synapse_base_cs_url.portal.login.handler import LoginHandler
from synapse_base_cs_url.portal.logs import configure_logging
from synapse_base_cs_url.portal.metrics import PortalMetrics
from synapse_base_cs_url.portal.reactor import PortalReactor
from synapse_base_cs_url.portal.sso.callback import CallbackSigner
from synapse_base_cs_url.portal.sso.handler import SsoHandler
from synapse_base_cs_url.portal.sso.tokens import InMemorySsoTokenStore, SsoTokenStore
from synapse_base_cs_url.portal.upstream import Upstream
from synapse_base_cs_url.portal.web.site import (
    PortalResource,
    PortalSite,
    build_site,
    portal_routes,
)

logger = logging.getLogger("synapse_base_cs_url.portal")


def build_portal(
    config: PortalConfig,
    reactor: PortalReactor,
    *,
    sso_tokens: SsoTokenStore | None = None,
    signer: CallbackSigner | None = None,
) -> tuple[PortalSite, Upstream]:
    """The web site serving ``config``, and its upstream client (to close on shutdown).

    The reactor is the one clock of everything built here.
    """
    upstream = Upstream(reactor, config.timeouts, config.upstream)
    default = config.homeservers[config.default_homeserver]
    # The default homeserver first: combined discovery answers take its flow objects.
    ordered = [default, *(hs for hs in config.homeservers.values() if hs is not default)]
    discovery = Discovery(
        upstream, ordered, sso=config.sso, clock=reactor, ttl=config.discovery_cache_ttl
    )
    metrics = PortalMetrics()
    if sso_tokens is None:
        sso_tokens = InMemorySsoTokenStore(config.sso.token_ttl, config.sso.max_tokens, reactor)
    login = LoginHandler(config, upstream, sso_tokens, metrics, reactor)
    sso = SsoHandler(config, sso_tokens, signer or CallbackSigner(), metrics, reactor)
    routes = portal_routes(config, login, sso, discovery, metrics)
    return build_site(PortalResource(routes), config.max_body_size), upstream


def listen(config: PortalConfig, reactor: PortalReactor) -> Any:
    """Listen on ``config.listen``; returns Twisted's listening port."""
    site, upstream = build_portal(config, reactor)
    port = reactor.listenTCP(config.listen.port, site, interface=config.listen.host)
    reactor.addSystemEventTrigger(
        "before", "shutdown", lambda: defer.ensureDeferred(upstream.close())
    )
    address = port.getHost()
    logger.info(
        "portal listening on http://%s:%s (mode=%s, homeservers: %s; default %s)",
        getattr(address, "host", config.listen.host),
        getattr(address, "port", config.listen.port),
        config.mode.value,
        ", ".join(f"{hs.name}={hs.base_url}" for hs in config.homeservers.values()),
        config.default_homeserver,
    )
    return port


def run_portal(config: PortalConfig) -> int:
    """Serve until SIGINT/SIGTERM; return the exit status."""
    from twisted.internet import reactor as global_reactor

    reactor = cast(PortalReactor, global_reactor)
    configure_logging(reactor)
    try:
        listen(config, reactor)
    except Exception as e:  # e.g. CannotListenError: address in use
        logger.error("portal cannot listen on %s:%s: %s", config.listen.host, config.listen.port, e)
        return 1
    # As Synapse does: everything allocated so far lives for the whole process; keep the
    # garbage collector from walking it again and again.
    gc.collect()
    gc.freeze()
    reactor.run()
    return 0
