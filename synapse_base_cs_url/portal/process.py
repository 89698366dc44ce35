"""The portal process and its life: a Redis check at startup, listening (on its own port or
its parent's socket; the same for the metrics listener, if any), reload on ``SIGHUP``, drain
on ``SIGTERM``, the open-files limit. What it serves is built by ``wiring.py``."""

from __future__ import annotations

import gc
import logging
import resource
import signal
import socket
from collections.abc import Callable
from typing import Any, cast

import attr
from twisted.internet import defer, task

from synapse_base_cs_url.portal.config.portal_config import PortalConfig
from synapse_base_cs_url.portal.config.restart_only import changed, config_key
from synapse_base_cs_url.portal.config.serving import Connections, MetricsListener
from synapse_base_cs_url.portal.directory.admin_tokens import RefusedToken, StartupTokenCheck
from synapse_base_cs_url.portal.endpoints import metrics_site
from synapse_base_cs_url.portal.logs import configure_logging
from synapse_base_cs_url.portal.reactor import PortalReactor
from synapse_base_cs_url.portal.sso.callback import CallbackSigner
from synapse_base_cs_url.portal.sso_tokens import SsoTokenStore
from synapse_base_cs_url.portal.state.shared import StateUnavailable
from synapse_base_cs_url.portal.web.body_sink import BodySink
from synapse_base_cs_url.portal.web.request import PortalRequest, RequestSettings, request_class
from synapse_base_cs_url.portal.web.resource import PortalResource
from synapse_base_cs_url.portal.web.site import PortalSite
from synapse_base_cs_url.portal.wiring import Lasting, LastingSettings, build_portal
from synapse_base_cs_url.portal.workers import unblock_signals, worker_number

logger = logging.getLogger("synapse_base_cs_url.portal")

#: File descriptors kept free beyond ``connections.max`` (upstream connections, Redis, logs).
FD_MARGIN = 64
#: How often a drain looks whether the last request has finished.
DRAIN_POLL = 0.05


#: Config settings (sections, or ``section.key``) that only take effect at a restart.
@attr.s(frozen=True, slots=True, kw_only=True)
class ProcessSettings:
    """What the process is started with (its sockets, its connection limits, its grace):
    read only from here, so that a reload knows what it cannot change."""

    host: str = attr.ib(metadata=config_key("listen.host"))
    port: int = attr.ib(metadata=config_key("listen.port"))
    metrics_listener: MetricsListener | None = attr.ib(metadata=config_key("metrics.listener"))
    workers: int = attr.ib(metadata=config_key("workers"))
    connections: Connections = attr.ib(metadata=config_key("connections"))
    shutdown_grace: float = attr.ib(metadata=config_key("shutdown_grace"))

    @classmethod
    def of(cls, config: PortalConfig) -> ProcessSettings:
        return cls(
            host=config.listen.host,
            port=config.listen.port,
            metrics_listener=config.metrics.listener,
            workers=config.workers,
            connections=config.connections,
            shutdown_grace=config.shutdown_grace,
        )


class StartupError(Exception):
    """The portal cannot start; the message is the one line it prints."""


class PortalProcess:
    """One portal process: starts (the Redis check, listening on its port or its parent's
    socket, and on the metrics listener's), reloads on ``SIGHUP`` and drains on
    ``SIGTERM``. What it serves is built by ``wiring.py``. The reactor is the one clock of
    everything built here.

    ``listen_fd`` and ``metrics_fd`` are the sockets a worker's parent opened for it."""

    def __init__(
        self,
        config: PortalConfig,
        reactor: PortalReactor,
        *,
        sso_tokens: SsoTokenStore | None = None,
        signer: CallbackSigner | None = None,
        listen_fd: int | None = None,
        metrics_fd: int | None = None,
    ) -> None:
        self.reactor = reactor
        self.lasting = Lasting.build(config, reactor, sso_tokens=sso_tokens, signer=signer)
        self.metrics = self.lasting.metrics
        self.state = self.lasting.state
        self.draining = False
        # Read once: the parent waits for its workers with the grace they started with.
        self.started_with = ProcessSettings.of(config)
        self._grace = self.started_with.shutdown_grace
        self._listen_fd = listen_fd
        self._metrics_fd = metrics_fd
        self.port: Any = None
        self.metrics_port: Any = None
        self.token_check: StartupTokenCheck | None = None
        #: Told why the portal must stop after it started (a token refused later).
        self.on_fatal: Callable[[str], None] = lambda message: logger.error("%s", message)
        """The metrics listener's, with ``metrics: {host, port}``."""
        self.portal = build_portal(config, reactor, self.lasting, ready=self.not_ready)
        self.resource = PortalResource(self.portal.endpoints)
        self.site = PortalSite(self.resource, self.started_with.connections, self.metrics, reactor)
        self.site.requestFactory = self._request_class(config)
        self.site.displayTracebacks = False

    @property
    def config(self) -> PortalConfig:
        return self.portal.config

    def _request_class(self, config: PortalConfig) -> type[PortalRequest]:
        settings = RequestSettings(
            max_body_size=config.max_body_size,
            stream_bodies=self._sink,
            x_forwarded=config.listen.x_forwarded,
        )
        return request_class(settings)

    def _sink(
        self, request: PortalRequest, method: bytes, target: bytes, length: int | None
    ) -> BodySink | None:
        # The portal serving now (a reload replaces it) decides.
        return self.portal.stream_bodies(request, method, target, length)

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
        homeservers = list(config.homeservers.values())
        if any(hs.admin_token is not None for hs in homeservers):
            self.token_check = StartupTokenCheck(
                self.portal.upstream,
                homeservers,
                self.reactor,
                on_refused=lambda line: self.on_fatal(
                    f"portal cannot use the account directory: {line}"
                ),
                on_answer=self.lasting.metrics.admin_token,
            )
            try:
                await self.token_check.settle()
            except RefusedToken as e:
                raise StartupError(f"portal cannot use the account directory: {e}") from None
        if self.draining:  # told to stop while it was starting
            return
        started = self.started_with
        raise_open_files_limit(started.connections.max + FD_MARGIN)
        try:
            self.port = self._listen()
        except Exception as e:  # e.g. CannotListenError: address in use
            raise StartupError(
                f"portal cannot listen on {started.host}:{started.port}: {e}"
            ) from None
        address = self.port.getHost()
        logger.info(
            "portal listening on http://%s:%s (mode=%s, homeservers: %s; default %s)",
            getattr(address, "host", started.host),
            getattr(address, "port", started.port),
            config.mode.value,
            ", ".join(f"{hs.name}={hs.base_url}" for hs in config.homeservers.values()),
            config.default_homeserver,
        )
        own = started.metrics_listener
        if own is not None:
            try:
                self.metrics_port = self._listen_metrics(own)
            except Exception as e:
                raise StartupError(
                    f"portal cannot listen for metrics on {own.host}:{own.port}: {e}"
                ) from None
            if self.metrics_port is not None:
                address = self.metrics_port.getHost()
                logger.info(
                    "metrics on http://%s:%s/metrics",
                    getattr(address, "host", own.host),
                    getattr(address, "port", own.port),
                )

    def _listen(self) -> Any:
        if self._listen_fd is None:
            started = self.started_with
            return self.reactor.listenTCP(started.port, self.site, interface=started.host)
        # A worker: accept from the socket its parent opened (one queue for all workers).
        return self._adopt(self._listen_fd, self.site)

    def _listen_metrics(self, own: MetricsListener) -> Any:
        site = metrics_site(self.metrics, self.reactor, self.started_with.connections.idle_timeout)
        if self._metrics_fd is not None:
            # A worker: the parent's socket, as for the public one. Whichever worker answers
            # a scrape reads every worker's samples (metrics.py).
            return self._adopt(self._metrics_fd, site)
        if self._listen_fd is not None:
            # A worker whose parent opened no metrics socket: the listener was added to
            # portal.yaml after the parent started (this worker replaces one that died).
            logger.warning("a change to 'metrics.listener' takes effect at the next restart")
            return None
        return self.reactor.listenTCP(own.port, site, interface=own.host)

    def _adopt(self, fd: int, site: Any) -> Any:
        sock = socket.socket(fileno=fd)
        try:
            adopt: Any = cast(Any, self.reactor).adoptStreamPort
            return adopt(sock.fileno(), sock.family, site)
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
        waiting = changed(self.started_with, ProcessSettings.of(new)) + changed(
            self.lasting.settings, LastingSettings.of(new)
        )
        for key in waiting:
            logger.warning("reload: a change to %r takes effect at the next restart", key)
        self.portal = build_portal(new, self.reactor, self.lasting, ready=self.not_ready)
        if self.token_check is not None:
            # Its tokens, and its client, are the old config's: a token refused now must not
            # stop a portal whose running config is another.
            self.token_check.stop()
            self.token_check = None
        self._check_tokens_again(new)
        self.resource.routes = self.portal.endpoints
        self.site.requestFactory = self._request_class(new)
        # Requests under way still use the old client: close its idle connections once
        # they are surely done.
        self.reactor.callLater(
            old.config.timeouts.total + 1, lambda: defer.ensureDeferred(old.upstream.close())
        )
        logger.info("reloaded %s (mode=%s)", path, new.mode.value)
        if new.directory.enabled:
            logger.info(
                "reload: the account directory keeps what it found (for directory.found_ttl): "
                "existing accounts still go where they live, new routes only place new names; "
                "%s",
                "'synapse-base-cs-url directory forget' drops one answer"
                if self.state is not None
                else "a restart forgets them (this process holds its own cache)",
            )
        return True

    def _check_tokens_again(self, new: PortalConfig) -> None:
        """A reloaded config's admin tokens (a file may have been replaced, or its token
        revoked meanwhile), checked in the background: a refused one is a warning and the
        ``admin_token_ok`` gauge, not a stop: the portal serves the other homeservers."""
        homeservers = list(new.homeservers.values())
        if not any(hs.admin_token is not None for hs in homeservers):
            return
        self.token_check = StartupTokenCheck(
            self.portal.upstream,
            homeservers,
            self.reactor,
            on_refused=lambda line: logger.warning(
                "reload: %s; its account lookups answer 503 until the token is replaced", line
            ),
            on_answer=self.lasting.metrics.admin_token,
        )
        self.token_check.in_background()

    async def drain(self) -> None:
        """Stop accepting, fail readiness, let the requests under way finish (up to
        ``shutdown_grace``), then release everything."""
        self.draining = True
        if self.token_check is not None:
            self.token_check.stop()
        # (maybeDeferred: a test reactor's ports stop at once, returning no Deferred.)
        if self.port is not None:
            await defer.maybeDeferred(self.port.stopListening)
            self.port = None
        if self.metrics_port is not None:
            # Only stop accepting: the drain waits for requests on the public site alone,
            # and a scrape's connection closes with the process.
            await defer.maybeDeferred(self.metrics_port.stopListening)
            self.metrics_port = None
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


def run_portal(
    config: PortalConfig,
    config_path: str,
    *,
    listen_fd: int | None = None,
    metrics_fd: int | None = None,
) -> int:
    """Serve until SIGTERM/SIGINT (then drain); SIGHUP reloads ``config_path``. Returns the
    exit status: 0 after a drain, 1 if the portal could not start."""
    from twisted.internet import reactor as global_reactor

    reactor = cast(PortalReactor, global_reactor)
    configure_logging(reactor, worker=worker_number())
    try:
        service = PortalProcess(config, reactor, listen_fd=listen_fd, metrics_fd=metrics_fd)
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

        def fatal(message: str) -> None:
            if service.draining:
                return
            failed.append(message)
            logger.error("%s", message)
            reactor.stop()

        service.on_fatal = fatal
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
