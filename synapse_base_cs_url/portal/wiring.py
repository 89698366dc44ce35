"""Wiring: what one ``portal.yaml`` builds (the upstream client, discovery, the login, SSO
and gateway handlers, and the URL map that serves them), apart from the process that runs
it (``process.py``), as Synapse keeps ``homeserver.py`` apart from ``app/_base.py``.

A reload builds a new :class:`Portal` from the new config; what must outlive a reload (the
metrics, the shared state, the token stores, the SSO signer) is built once per process
(:class:`Lasting`) and handed in.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import attr

from synapse_base_cs_url.portal.account_steps import AccountSteps
from synapse_base_cs_url.portal.config.directory import DirectorySettings
from synapse_base_cs_url.portal.config.directory import Source as DirectorySource
from synapse_base_cs_url.portal.config.gateway import ClientApi
from synapse_base_cs_url.portal.config.homeservers import canonical_names
from synapse_base_cs_url.portal.config.portal_config import PortalConfig
from synapse_base_cs_url.portal.config.restart_only import config_key
from synapse_base_cs_url.portal.config.state import StateSettings
from synapse_base_cs_url.portal.directory.directory import Directory, DirectoryCache
from synapse_base_cs_url.portal.directory.sources import (
    FunctionSource,
    HomeserverSource,
    HttpSource,
    Source,
)
from synapse_base_cs_url.portal.discovery import Discovery
from synapse_base_cs_url.portal.endpoints import portal_endpoints
from synapse_base_cs_url.portal.gateway.auth_request import AuthRequestEndpoint
from synapse_base_cs_url.portal.gateway.destination import Destinations
from synapse_base_cs_url.portal.gateway.gateway import Gateway
from synapse_base_cs_url.portal.gateway.resolver import Resolver, unknown_tokens
from synapse_base_cs_url.portal.gateway.token_map import TokenMap
from synapse_base_cs_url.portal.homes import Homes
from synapse_base_cs_url.portal.identity_lookup import IdentityLookup
from synapse_base_cs_url.portal.login.login_handler import LoginHandler
from synapse_base_cs_url.portal.login_routes import LoginRoutes
from synapse_base_cs_url.portal.metrics import PortalMetrics
from synapse_base_cs_url.portal.password_reset import PasswordReset
from synapse_base_cs_url.portal.placement import PLACEMENT_TTL, Placement, PlacementRecords
from synapse_base_cs_url.portal.placement_asks import PlacementAsks
from synapse_base_cs_url.portal.reactor import PortalReactor
from synapse_base_cs_url.portal.records import RecordLimiter
from synapse_base_cs_url.portal.registration import AccountRedirects
from synapse_base_cs_url.portal.sso.callback import CallbackSigner
from synapse_base_cs_url.portal.sso.page import SignInPage
from synapse_base_cs_url.portal.sso.sign_in import SIGN_IN_PATH, SignIn
from synapse_base_cs_url.portal.sso.sso_handler import SsoHandler
from synapse_base_cs_url.portal.sso.to_homeserver import ToHomeserver
from synapse_base_cs_url.portal.sso_tokens import SsoTokenStore
from synapse_base_cs_url.portal.state.expiring import ExpiringMap
from synapse_base_cs_url.portal.state.keys import (
    PLACEMENT_PREFIX,
    RECENT_CLIENT_PREFIX,
    RESET_PREFIX,
    SESSION_PREFIX,
)
from synapse_base_cs_url.portal.state.rate_limit import ClientBuckets
from synapse_base_cs_url.portal.state.redis import RedisState
from synapse_base_cs_url.portal.state.store import Store
from synapse_base_cs_url.portal.upstream.client import Upstream
from synapse_base_cs_url.portal.upstream.health import HomeserverHealth
from synapse_base_cs_url.portal.web.body_sink import BodySink
from synapse_base_cs_url.portal.web.request import PortalRequest
from synapse_base_cs_url.portal.web.url_table import UrlTable

#: Records of each kind kept by the memory backend (new names placed, clients' latest
#: registrations, registration sessions, password resets' client secrets): each kind has a
#: map of its own, so that a flood of one cannot push out another.
MAX_RECORDS = 100_000


@attr.s(frozen=True, slots=True, kw_only=True)
class LastingSettings:
    """What :class:`Lasting` is built from: a reload does not change it (``reload`` says so
    for each key that differs)."""

    state: StateSettings = attr.ib(metadata=config_key("state"))
    sso_token_ttl: float = attr.ib(metadata=config_key("sso.token_ttl"))
    sso_max_tokens: int = attr.ib(metadata=config_key("sso.max_tokens"))
    gateway_max_tokens: int = attr.ib(metadata=config_key("gateway.max_tokens"))
    directory_max_cached: int = attr.ib(metadata=config_key("directory.max_cached"))

    @classmethod
    def of(cls, config: PortalConfig) -> LastingSettings:
        return cls(
            state=config.state,
            sso_token_ttl=config.sso.token_ttl,
            sso_max_tokens=config.sso.max_tokens,
            gateway_max_tokens=config.gateway.max_tokens,
            directory_max_cached=config.directory.max_cached,
        )


@attr.s(auto_attribs=True, frozen=True, slots=True, kw_only=True)
class ClientLimitsKept:
    """Each per-client limit's buckets, handed to every limiter built for it: a reload
    builds new limiters (its settings may change) over the same buckets, so it hands
    nobody a fresh burst."""

    directory: ClientBuckets = attr.Factory(ClientBuckets)
    resolutions: ClientBuckets = attr.Factory(ClientBuckets)
    records: ClientBuckets = attr.Factory(ClientBuckets)
    unknown_tokens: ExpiringMap[str, bool]
    """Tokens every homeserver said it does not know (by the homeservers asked)."""


@attr.s(auto_attribs=True, frozen=True, slots=True, kw_only=True)
class Lasting:
    """What one portal process keeps for its whole life, across reloads."""

    settings: LastingSettings
    """What it was built from (a reload that changes it takes effect at the next restart)."""

    metrics: PortalMetrics
    state: RedisState | None
    """The shared state (``state.backend: redis``), or ``None`` for memory."""
    sso_tokens: SsoTokenStore
    token_map: TokenMap
    signer: CallbackSigner | None
    """A signer fixed by the caller (tests); ``None``: from the config's key files."""
    random_signer: CallbackSigner
    """Without ``sso.signing_key_file``: one random key for the life of the process, so that
    a reload does not invalidate the SSO logins in progress."""
    directory_memory: ExpiringMap[str, str]
    """The directory's answers, with the memory backend."""
    limits: ClientLimitsKept
    """What each client has left of its limits, and the tokens known to be unknown."""
    placements: PlacementRecords
    """Where the portal placed each new name, each client's latest registration and each
    registration session."""
    reset_secrets: Store
    """Where each password reset's client secret was sent."""

    @classmethod
    def build(
        cls,
        config: PortalConfig,
        reactor: PortalReactor,
        *,
        sso_tokens: SsoTokenStore | None = None,
        signer: CallbackSigner | None = None,
    ) -> Lasting:
        """``ValueError`` if the state backend cannot be used (txredisapi missing). Reads
        the config only through :class:`LastingSettings` (and its TTLs, which every use
        gives again)."""
        settings = LastingSettings.of(config)
        metrics = PortalMetrics()
        state = (
            RedisState(settings.state, reactor, on_change=metrics.shared_state_up)
            if settings.state.redis is not None
            else None
        )
        if sso_tokens is None:
            sso_tokens = SsoTokenStore.build(
                settings.sso_token_ttl, settings.sso_max_tokens, reactor, state
            )
        token_map = TokenMap.build(settings.gateway_max_tokens, reactor, state)
        return cls(
            settings=settings,
            metrics=metrics,
            state=state,
            sso_tokens=sso_tokens,
            token_map=token_map,
            signer=signer,
            random_signer=CallbackSigner(),
            directory_memory=ExpiringMap(
                reactor,
                max_entries=settings.directory_max_cached,
                ttl=DirectorySettings().found_ttl,  # (each answer is put with its own TTL)
                sliding=False,
            ),
            limits=ClientLimitsKept(unknown_tokens=unknown_tokens(reactor)),
            placements=PlacementRecords(
                names=_records(PLACEMENT_PREFIX, reactor, state),
                clients=_records(RECENT_CLIENT_PREFIX, reactor, state),
                sessions=_records(SESSION_PREFIX, reactor, state),
            ),
            reset_secrets=_records(RESET_PREFIX, reactor, state),
        )

    def signer_for(self, config: PortalConfig) -> CallbackSigner:
        if self.signer is not None:
            return self.signer
        keys = config.sso.signing_keys
        if keys is None:
            return self.random_signer
        return CallbackSigner(keys.current, keys.previous)


def _records(prefix: str, reactor: PortalReactor, state: RedisState | None) -> Store:
    """A store of one kind of record: a bounded map of its own in memory; in the shared
    state, under its own prefix, each record with its TTL."""
    memory: ExpiringMap[str, str] = ExpiringMap(
        reactor, max_entries=MAX_RECORDS, ttl=PLACEMENT_TTL, sliding=False
    )
    return Store(prefix, memory, state)


@attr.s(auto_attribs=True, frozen=True, slots=True)
class Portal:
    """What one config builds; replaced as a whole on reload."""

    config: PortalConfig
    upstream: Upstream
    endpoints: UrlTable
    gateway: Gateway | None = None
    directory: Directory | None = None

    def stream_bodies(
        self, request: PortalRequest, method: bytes, target: bytes, length: int | None
    ) -> BodySink | None:
        """Where a request's body goes as it arrives: the gateway's exchange, started now,
        for a client-server request it carries whose body is not needed to route it."""
        gateway = self.gateway
        path = target.partition(b"?")[0]
        if gateway is None or not self.endpoints.falls_back(method, path):
            return None
        if not gateway.streams(method, path):
            return None
        return gateway.begin(request, method, target, length)


def build_portal(
    config: PortalConfig,
    reactor: PortalReactor,
    lasting: Lasting,
    *,
    ready: Callable[[], Awaitable[str | None]],
) -> Portal:
    """Everything that serves requests under ``config`` (``ready`` says why the process is
    not ready for traffic). Built anew on reload; what must outlive it is in ``lasting``."""
    metrics = lasting.metrics
    health = HomeserverHealth(
        reactor,
        config.homeservers,
        failures_to_down=config.upstream.failures_to_down,
        probe_interval=config.upstream.probe_interval,
        on_change=metrics.homeserver_up,
    )
    upstream = Upstream(reactor, config.timeouts, config.upstream, health=health)
    default = config.homeservers[config.default_homeserver]
    # The default homeserver first: combined discovery answers take its flow objects.
    ordered = [default, *(hs for hs in config.homeservers.values() if hs is not default)]
    discovery = Discovery(
        upstream,
        ordered,
        sso=config.sso if config.sso_served else None,
        clock=reactor,
        ttl=config.discovery_cache_ttl,
    )
    directory = None
    if config.directory.enabled:
        directory = build_directory(config, upstream, reactor, lasting)
    records = RecordLimiter(config.clients, reactor, lasting.limits.records)
    login_routes = LoginRoutes(config)
    placement = Placement(config, login_routes, directory, lasting.placements, records)
    homes = Homes(login_routes, lasting.sso_tokens, directory, placement)
    reset = PasswordReset(config, homes, lasting.reset_secrets, records)
    steps = AccountSteps(login_routes, placement, reset)
    gateway = auth_request = None
    if config.client_api is ClientApi.PROXY:
        resolver = Resolver(
            upstream,
            list(config.homeservers.values()),
            config.gateway,
            reactor,
            on_result=metrics.token_resolution,
            ipv6_prefix_length=config.clients.ipv6_prefix_length,
            buckets=lasting.limits.resolutions,
            unknown=lasting.limits.unknown_tokens,
        )
        destinations = Destinations(
            config,
            lasting.token_map,
            resolver,
            placement=placement,
            steps=steps,
            homes=homes,
        )
        gateway = Gateway(config, upstream, destinations, metrics, reactor)
        auth_request = AuthRequestEndpoint(config, destinations, metrics)
    login = LoginHandler(
        config,
        upstream,
        homes,
        metrics,
        reactor,
        learn=gateway.destinations.learn_answer if gateway is not None else None,
    )
    signer = lasting.signer_for(config)
    page = SignInPage(config.sso.page, config.public_baseurl + SIGN_IN_PATH.decode())
    to_homeserver = ToHomeserver(config, signer, reactor)
    sign_in = SignIn(
        config, homes, signer, metrics, reactor, page=page, to_homeserver=to_homeserver
    )
    sso = SsoHandler(
        config,
        lasting.sso_tokens,
        signer,
        metrics,
        reactor,
        records=records,
        sign_in=sign_in,
        to_homeserver=to_homeserver,
    )
    endpoints = portal_endpoints(
        config,
        login,
        sso,
        discovery,
        metrics=metrics,
        ready=ready,
        gateway=gateway,
        auth_request=auth_request,
        account_steps=AccountRedirects(config, steps, metrics) if gateway is None else None,
        identity_lookup=(
            IdentityLookup(config.homeservers, homes) if config.identity_info else None
        ),
        homeserver_health=health,
        placement_asks=(
            PlacementAsks(config.homeservers, placement, metrics)
            if any(hs.placement_secret for hs in config.homeservers.values())
            else None
        ),
    )
    return Portal(config, upstream, endpoints, gateway, directory)


def build_directory(
    config: PortalConfig, upstream: Upstream, reactor: PortalReactor, lasting: Lasting
) -> Directory:
    """The account directory and its sources, in the order configured."""
    settings = config.directory
    sources: list[Source] = []
    for source in settings.sources:
        if source is DirectorySource.HOMESERVERS:
            sources.append(
                HomeserverSource(upstream, list(config.homeservers.values()), settings.timeout)
            )
        elif source is DirectorySource.HTTP:
            assert settings.url is not None
            sources.append(HttpSource(upstream, settings.url, config.homeservers))
        else:
            assert settings.function is not None
            sources.append(FunctionSource(settings.function, config.homeservers))
    cache = DirectoryCache(
        settings, lasting.directory_memory, lasting.state, frozenset(config.homeservers)
    )
    # Ingress points of one server name ask as one homeserver.
    canonical = canonical_names(config.homeservers)
    askers = [hs for hs in config.homeservers.values() if hs.placement_secret is not None]
    metrics = lasting.metrics
    return Directory(
        settings,
        sources,
        cache,
        reactor,
        ipv6_prefix_length=config.clients.ipv6_prefix_length,
        askers=len({canonical[hs.name] for hs in askers}),
        buckets=lasting.limits.directory,
        on_lookup=metrics.directory_lookup,
        on_cache=metrics.directory_cached,
    )
