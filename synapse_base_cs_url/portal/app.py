"""Wiring: config -> upstream client, discovery, metrics, web site -> a listening port."""

from __future__ import annotations

import gc
import logging
from typing import Any

from twisted.internet import defer

from synapse_base_cs_url.portal.config import PortalConfig
from synapse_base_cs_url.portal.discovery import Discovery
from synapse_base_cs_url.portal.logs import configure_logging
from synapse_base_cs_url.portal.metrics import PortalMetrics
from synapse_base_cs_url.portal.server import PortalResource, PortalSite, build_site
from synapse_base_cs_url.portal.upstream import Upstream

logger = logging.getLogger("synapse_base_cs_url.portal")


def build_portal(config: PortalConfig, reactor: Any) -> tuple[PortalSite, Upstream]:
    """The web site serving ``config``, and its upstream client (to close on shutdown)."""
    upstream = Upstream(reactor, config.timeouts)
    default = config.homeservers[config.default_homeserver]
    # The default homeserver first: combined discovery answers take its flow objects.
    ordered = [default, *(hs for hs in config.homeservers.values() if hs is not default)]
    discovery = Discovery(
        upstream,
        ordered,
        sso=config.sso,
        clock=reactor,
        ttl=config.discovery_cache_ttl,
    )
    resource = PortalResource(config, upstream, discovery, PortalMetrics())
    return build_site(resource, config.max_body_size), upstream


def listen(config: PortalConfig, reactor: Any) -> Any:
    site, upstream = build_portal(config, reactor)
    port: Any = reactor.listenTCP(config.listen.port, site, interface=config.listen.host)
    reactor.addSystemEventTrigger(
        "before", "shutdown", lambda: defer.ensureDeferred(upstream.close())
    )
    address: Any = port.getHost()
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
    from twisted.internet import reactor as _reactor

    reactor: Any = _reactor
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
