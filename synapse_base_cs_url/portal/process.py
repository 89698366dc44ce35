"""The portal process: wiring (config -> upstream client, discovery, handlers, route table,
site), listening, and its life: a Redis check at startup, reload on ``SIGHUP``, drain on
``SIGTERM``."""

from __future__ import annotations

import functools
import gc
import logging
import resource
import signal
import socket
from typing import Any, cast

import attr
from twisted.internet import defer, task

from synapse_base_cs_url.portal.config.gateway import ClientApi
from synapse_base_cs_url.portal.config.portal_config import PortalConfig
from synapse_base_cs_url.portal.discovery import Discovery
from synapse_base_cs_url.portal.gateway.auth_request import AuthRequestEndpoint
from synapse_base_cs_url.portal.gateway.destination import Destinations
from synapse_base_cs_url.portal.gateway.handler import Gateway
from synapse_base_cs_url.portal.gateway.resolver import Resolver
from synapse_base_cs_url.portal.gateway.token_map import InMemoryTokenMap, SharedTokenMap, TokenMap
from synapse_base_cs_url.portal.login.login_handler import LoginHandler
from synapse_base_cs_url.portal.logs import configure_logging
from synapse_base_cs_url.portal.metrics import PortalMetrics
from synapse_base_cs_url.portal.reactor import PortalReactor
from synapse_base_cs_url.portal.sso.callback import CallbackSigner
from synapse_base_cs_url.portal.sso.login_tokens import (
    InMemorySsoTokenStore,
    SharedSsoTokenStore,
    SsoTokenStore,
)
from synapse_base_cs_url.portal.sso.sso_handler import SsoHandler
from synapse_base_cs_url.portal.state.redis import RedisState, StateUnavailable
from synapse_base_cs_url.portal.upstream.client import Upstream
from synapse_base_cs_url.portal.web.request import PortalRequest, request_class
from synapse_base_cs_url.portal.web.resource import PortalResource, portal_endpoints
from synapse_base_cs_url.portal.web.site import PortalSite
from synapse_base_cs_url.portal.web.url_table import UrlTable
from synapse_base_cs_url.portal.workers import unblock_signals, worker_number

logger = logging.getLogger("synapse_base_cs_url.portal")

#: File descriptors kept free beyond ``connections.max`` (upstream connections, Redis, logs).
FD_MARGIN = 64
#: How often a drain looks whether the last request has finished.
DRAIN_POLL = 0.05
#: Config settings (sections, or ``section.key``) that only take effect at a restart.
RESTART_ONLY = (
    "listen",
    "workers",
    "state",
    "connections",
    "shutdown_grace",
    "sso.token_ttl",
    "sso.max_tokens",
    "gateway.max_tokens",
)


class StartupError(Exception):
    """The portal cannot start; the message is the one line it prints."""


@attr.s(auto_attribs=True, frozen=True, slots=True)
class Portal:
    """What one config builds; replaced as a whole on reload."""

    config: PortalConfig
    upstream: Upstream
    routes: UrlTable
    gateway: Gateway | None = None


class PortalProcess:
    """One portal process. The reactor is the one clock of everything built here."""

    def __init__(
        self,
        config: PortalConfig,
        reactor: PortalReactor,
        *,
        sso_tokens: SsoTokenStore | None = None,
        signer: CallbackSigner | None = None,
        listen_fd: int | None = None,
    ) -> None:
        self.reactor = reactor
        self.metrics = PortalMetrics()
        self.state = RedisState(config.state, reactor) if config.state.redis is not None else None
        if sso_tokens is None:
            sso_tokens = (
                SharedSsoTokenStore(self.state, config.sso.token_ttl)
                if self.state is not None
                else InMemorySsoTokenStore(config.sso.token_ttl, config.sso.max_tokens, reactor)
            )
        self.sso_tokens = sso_tokens
        self.token_map: TokenMap = (
            SharedTokenMap(self.state)
            if self.state is not None
            else InMemoryTokenMap(config.gateway.max_tokens, reactor)
        )
        # Without sso.signing_key_file: one random key for the life of the process, so that
        # a reload does not invalidate the SSO logins in progress.
        self._signer = signer
        self._random_signer = CallbackSigner()
        self.draining = False
        # Read once: the parent waits for its workers with the grace they started with.
        self._grace = config.shutdown_grace
        self._listen_fd = listen_fd
        self.port: Any = None
        self.portal = self._build(config)
        self.resource = PortalResource(self.portal.routes)
        self.site = PortalSite(self.resource, config.connections, self.metrics, reactor)
        self.site.requestFactory = request_class(config.max_body_size)
        self.site.displayTracebacks = False
        self.site.stream_body = self._stream_body

    @property
    def config(self) -> PortalConfig:
        return self.portal.config

    def _build(self, config: PortalConfig, previous: Portal | None = None) -> Portal:
        """Everything that serves requests under ``config`` (``previous``: what served them
        before a reload)."""
        upstream = Upstream(self.reactor, config.timeouts, config.upstream)
        default = config.homeservers[config.default_homeserver]
        # The default homeserver first: combined discovery answers take its flow objects.
        ordered = [default, *(hs for hs in config.homeservers.values() if hs is not default)]
        discovery = Discovery(
            upstream,
            ordered,
            sso=config.sso if config.sso_served else None,
            clock=self.reactor,
            ttl=config.discovery_cache_ttl,
        )
        gateway = auth_request = None
        if config.client_api is ClientApi.PROXY:
            resolver = Resolver(
                upstream,
                list(config.homeservers.values()),
                config.gateway,
                self.reactor,
                on_result=self.metrics.token_resolution,
            )
            if previous is not None and previous.gateway is not None:
                resolver.keep_limits_of(previous.gateway.destinations.resolver)
            destinations = Destinations(config, self.token_map, resolver)
            gateway = Gateway(config, upstream, destinations, self.metrics, self.reactor)
            auth_request = AuthRequestEndpoint(config, destinations, self.metrics)
        login = LoginHandler(
            config,
            upstream,
            self.sso_tokens,
            self.metrics,
            self.reactor,
            learn=gateway.destinations.learn_answer if gateway is not None else None,
        )
        signer = self._signer_for(config)
        sso = SsoHandler(config, self.sso_tokens, signer, self.metrics, self.reactor)
        routes = portal_endpoints(
            config,
            login,
            sso,
            discovery,
            metrics=self.metrics,
            ready=self.not_ready,
            gateway=gateway,
            auth_request=auth_request,
        )
        return Portal(config, upstream, routes, gateway)

    def _stream_body(
        self, request: PortalRequest, method: bytes, target: bytes, length: int | None
    ) -> bool:
        """Whether the gateway takes this request's body as it arrives (and starts now)."""
        gateway = self.portal.gateway
        path = target.partition(b"?")[0]
        if gateway is None or not self.portal.routes.falls_back(method, path):
            return False
        if not gateway.streams(method, path):
            return False
        gateway.begin(request, method, target, length)
        return True

    def _signer_for(self, config: PortalConfig) -> CallbackSigner:
        if self._signer is not None:
            return self._signer
        keys = config.sso.signing_keys
        if keys is None:
            return self._random_signer
        return CallbackSigner(keys.current, keys.previous)

    # -- life -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Check what the config needs, then listen; :class:`StartupError` if impossible."""
        config = self.config
        if self.state is not None:
            try:
                version = await self.state.check()
            except StateUnavailable as e:
                raise StartupError(f"portal cannot use Redis: {e}") from None
            logger.info("state in Redis %s at %s", version, self.state.address.shown())
        if self.draining:  # told to stop while it was starting
            return
        raise_open_files_limit(config.connections.max + FD_MARGIN)
        try:
            self.port = self._listen(config)
        except Exception as e:  # e.g. CannotListenError: address in use
            raise StartupError(
                f"portal cannot listen on {config.listen.host}:{config.listen.port}: {e}"
            ) from None
        address = self.port.getHost()
        logger.info(
            "portal listening on http://%s:%s (mode=%s, homeservers: %s; default %s)",
            getattr(address, "host", config.listen.host),
            getattr(address, "port", config.listen.port),
            config.mode.value,
            ", ".join(f"{hs.name}={hs.base_url}" for hs in config.homeservers.values()),
            config.default_homeserver,
        )

    def _listen(self, config: PortalConfig) -> Any:
        if self._listen_fd is None:
            return self.reactor.listenTCP(
                config.listen.port, self.site, interface=config.listen.host
            )
        # A worker: accept from the socket its parent opened (one queue for all workers).
        sock = socket.socket(fileno=self._listen_fd)
        try:
            adopt: Any = cast(Any, self.reactor).adoptStreamPort
            return adopt(sock.fileno(), sock.family, self.site)
        finally:
            sock.close()  # the reactor holds its own copy of the descriptor

    async def not_ready(self) -> str | None:
        """Why a load balancer should not send traffic here now (``None``: it may)."""
        if self.draining:
            return "draining"
        if self.state is not None and not await self.state.ping():
            return f"Redis at {self.state.address.shown()} does not answer"
        return None

    def reload(self, path: str) -> bool:
        """Re-read ``path``: a valid file serves new requests from now on (requests under
        way finish as they started); an invalid one is logged and changes nothing."""
        try:
            new = PortalConfig.load(path)
        except ValueError as e:
            logger.error("reload: invalid config %s: %s (still serving the previous one)", path, e)
            return False
        old = self.portal
        for setting in RESTART_ONLY:
            names = setting.split(".")
            if functools.reduce(getattr, names, new) != functools.reduce(
                getattr, names, old.config
            ):
                logger.warning("reload: a change to %r takes effect at the next restart", setting)
        self.portal = self._build(new, old)
        self.resource.routes = self.portal.routes
        self.site.requestFactory = request_class(new.max_body_size)
        # Requests under way still use the old client: close its idle connections once
        # they are surely done.
        self.reactor.callLater(
            old.config.timeouts.total + 1, lambda: defer.ensureDeferred(old.upstream.close())
        )
        logger.info("reloaded %s (mode=%s)", path, new.mode.value)
        return True

    async def drain(self) -> None:
        """Stop accepting, fail readiness, let the requests under way finish (up to
        ``shutdown_grace``), then release everything."""
        self.draining = True
        if self.port is not None:
            await self.port.stopListening()
            self.port = None
        self.site.drain()
        grace = self._grace
        deadline = self.reactor.seconds() + grace
        busy = self._busy()
        if busy:
            logger.info("draining: %d request(s) under way, up to %gs", busy, grace)
        while self._busy() and self.reactor.seconds() < deadline:
            await task.deferLater(cast(Any, self.reactor), DRAIN_POLL, lambda: None)
        left = self._busy()
        if left:
            logger.warning("draining: %d request(s) still under way after %gs", left, grace)
        await self.portal.upstream.close()
        if self.state is not None:
            self.state.close()
        logger.info("portal stopped")

    def _busy(self) -> int:
        return sum(1 for channel in self.site.channels if channel.busy)


def raise_open_files_limit(wanted: int) -> None:
    """Raise the soft open-files limit to the hard one (as Synapse does), and say so if it
    is still below what ``connections.max`` needs."""
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft != hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
    except (ValueError, OSError):
        return
    if soft != resource.RLIM_INFINITY and soft < wanted:
        logger.warning(
            "open-files limit %d is below connections.max + %d (%d): lower connections.max "
            "or raise the limit (systemd: LimitNOFILE=)",
            soft,
            FD_MARGIN,
            wanted,
        )


def run_portal(config: PortalConfig, config_path: str, *, listen_fd: int | None = None) -> int:
    """Serve until SIGTERM/SIGINT (then drain); SIGHUP reloads ``config_path``. Returns the
    exit status: 0 after a drain, 1 if the portal could not start."""
    from twisted.internet import reactor as global_reactor

    reactor = cast(PortalReactor, global_reactor)
    configure_logging(reactor, worker=worker_number())
    try:
        service = PortalProcess(config, reactor, listen_fd=listen_fd)
    except ValueError as e:  # e.g. state.backend: redis without txredisapi
        logger.error("portal cannot start: %s", e)
        return 1
    failed: list[str] = []

    def begin() -> None:
        # A worker's parent held these signals back until the handlers were in place.
        unblock_signals()

        def fail(failure: Any) -> None:
            if service.draining:
                return  # stopped while starting: nothing failed
            failed.append(str(failure.value))
            logger.error("%s", failure.value)
            reactor.stop()

        defer.ensureDeferred(service.start()).addErrback(fail)

    def on_hangup(signum: int, frame: object) -> None:
        cast(Any, reactor).callFromThread(service.reload, config_path)

    reactor.callWhenRunning(begin)
    reactor.addSystemEventTrigger(
        "before", "shutdown", lambda: defer.ensureDeferred(service.drain())
    )
    signal.signal(signal.SIGHUP, on_hangup)
    # As Synapse does: everything allocated so far lives for the whole process; keep the
    # garbage collector from walking it again and again.
    gc.collect()
    gc.freeze()
    reactor.run()
    return 1 if failed else 0
