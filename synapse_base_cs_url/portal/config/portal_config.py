"""The whole of ``portal.yaml``, parsed once at startup from its sections."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from pathlib import Path

import attr

from synapse_base_cs_url.core import RuleSet, parse_rules
from synapse_base_cs_url.core.config_values import (
    boolean,
    check_keys,
    non_negative_seconds,
    positive_int,
    prefixed,
    read_yaml,
    required,
    section,
    type_name,
)
from synapse_base_cs_url.core.urls import validate_base_url
from synapse_base_cs_url.portal.config.clients import ClientLimits, parse_clients
from synapse_base_cs_url.portal.config.directory import DirectorySettings, parse_directory
from synapse_base_cs_url.portal.config.gateway import (
    GATEWAY_TIMEOUT_KEYS,
    ClientApi,
    GatewaySettings,
    parse_client_api,
    parse_gateway,
)
from synapse_base_cs_url.portal.config.homeservers import (
    Homeserver,
    canonical_names,
    homeserver_name,
    parse_homeservers,
)
from synapse_base_cs_url.portal.config.login import (
    DEFAULT_DISCOVERY_TTL,
    DEFAULT_PROXY_USER_AGENTS,
    Mode,
    parse_mode,
    parse_server_name,
    parse_user_agents,
)
from synapse_base_cs_url.portal.config.serving import (
    DEFAULT_MAX_BODY_SIZE,
    DEFAULT_SHUTDOWN_GRACE,
    DEFAULT_WORKERS,
    Connections,
    Listen,
    Metrics,
    check_metrics_apart,
    parse_connections,
    parse_listen,
    parse_metrics,
    parse_workers,
)
from synapse_base_cs_url.portal.config.sso import SsoSettings, check_sso_sharing, parse_sso
from synapse_base_cs_url.portal.config.state import Backend, StateSettings, parse_state
from synapse_base_cs_url.portal.config.upstream import (
    TIMEOUT_KEYS,
    Timeouts,
    UpstreamSettings,
    parse_timeouts,
    parse_upstream,
)

logger = logging.getLogger(__name__)

TOP_LEVEL_KEYS = (
    "listen",
    "public_baseurl",
    "mode",
    "homeservers",
    "routes",
    "default_homeserver",
    "sso",
    "server_name",
    "proxy_user_agents",
    "max_body_size",
    "timeouts",
    "upstream",
    "discovery_cache_ttl",
    "metrics",
    "workers",
    "shutdown_grace",
    "connections",
    "state",
    "client_api",
    "gateway",
    "directory",
    "clients",
    "request_token_inhibit_3pid_errors",
    "identity_info",
)


def check_reservations_shared(
    homeservers: Mapping[str, Homeserver], workers: int, state: StateSettings
) -> None:
    """The homeservers' asks reserve names: with several processes, in one shared store."""
    asking = [hs.name for hs in homeservers.values() if hs.placement_secret is not None]
    if asking and workers > 1 and state.backend is Backend.MEMORY:
        raise ValueError(
            f"state.backend: workers: {workers} with homeservers.{asking[0]}."
            "placement_secret_file needs backend redis: two homeservers asking two processes "
            "for the same new name would both be told yes"
        )


@attr.s(auto_attribs=True, frozen=True, slots=True, kw_only=True)
class PortalConfig:
    """Everything in ``portal.yaml``, validated."""

    listen: Listen
    public_baseurl: str
    mode: Mode
    homeservers: Mapping[str, Homeserver]
    routes: RuleSet[str]
    """Targets are homeserver names (keys of ``homeservers``)."""
    default_homeserver: str
    sso: SsoSettings
    server_name: str | None
    proxy_user_agents: tuple[re.Pattern[str], ...]
    max_body_size: int
    timeouts: Timeouts
    upstream: UpstreamSettings
    discovery_cache_ttl: float
    metrics: Metrics = attr.Factory(Metrics)
    workers: int = DEFAULT_WORKERS
    shutdown_grace: float = DEFAULT_SHUTDOWN_GRACE
    connections: Connections = attr.Factory(Connections)
    state: StateSettings = attr.Factory(StateSettings)
    client_api: ClientApi = ClientApi.REFUSE
    gateway: GatewaySettings = attr.Factory(GatewaySettings)
    directory: DirectorySettings = attr.Factory(DirectorySettings)
    clients: ClientLimits = attr.Factory(ClientLimits)
    request_token_inhibit_3pid_errors: bool = False
    identity_info: bool = False
    """Serve ``GET /_matrix/identity/api/v1/info`` (which homeserver holds an e-mail address
    or phone number, else where the routes would place it), as Tchap's clients ask."""
    """As Synapse's option of that name: a registration's ``requestToken`` for an address
    held on some homeserver is answered as if it were sent (a made-up ``sid``) rather than
    ``400 M_THREEPID_IN_USE``, so the portal reveals no more than the homeservers do."""

    @property
    def shared(self) -> bool:
        """Whether more than one process serves this config (so state must be shared)."""
        return self.workers > 1 or self.state.backend is Backend.REDIS

    @property
    def sso_served(self) -> bool:
        """Whether the portal serves single sign-on: always for one process; for several,
        only with an ``sso`` section (which then has the shared key and state it needs)."""
        return self.sso.configured or not self.shared

    @staticmethod
    def from_config(raw: object) -> PortalConfig:
        if not isinstance(raw, Mapping):
            raise ValueError(f"config: must be a mapping of keys to values, not {type_name(raw)}")
        check_keys(raw, TOP_LEVEL_KEYS, "config")
        homeservers = parse_homeservers(raw.get("homeservers"))

        def parse_homeserver_name(value: object) -> str:
            return homeserver_name(value, homeservers)

        routes = parse_rules(
            raw.get("routes"),
            key="routes",
            parse_target=parse_homeserver_name,
            target_key="homeserver",
        )
        default = required(raw, "default_homeserver")
        default_hs = prefixed("default_homeserver", parse_homeserver_name, default)
        sso = parse_sso(raw.get("sso"), default_hs, parse_homeserver_name)
        workers = parse_workers(raw.get("workers"))
        timeouts_raw = raw.get("timeouts")
        timeouts: Mapping[object, object] = (
            {}
            if timeouts_raw is None
            else section(timeouts_raw, "timeouts", TIMEOUT_KEYS + GATEWAY_TIMEOUT_KEYS)
        )
        state = parse_state(raw.get("state"))
        check_sso_sharing(sso, workers, state)
        check_reservations_shared(homeservers, workers, state)
        listen = parse_listen(raw.get("listen"))
        metrics = parse_metrics(raw.get("metrics"))
        check_metrics_apart(listen, metrics)
        config = PortalConfig(
            listen=listen,
            public_baseurl=prefixed(
                "public_baseurl", validate_base_url, required(raw, "public_baseurl")
            ),
            mode=parse_mode(raw.get("mode", Mode.REDIRECT.value)),
            homeservers=homeservers,
            routes=routes,
            default_homeserver=default_hs,
            sso=sso,
            server_name=parse_server_name(raw.get("server_name")),
            proxy_user_agents=parse_user_agents(
                raw.get("proxy_user_agents", list(DEFAULT_PROXY_USER_AGENTS))
            ),
            max_body_size=positive_int(
                raw.get("max_body_size", DEFAULT_MAX_BODY_SIZE),
                "max_body_size",
                "whole number of bytes",
            ),
            timeouts=parse_timeouts(timeouts),
            upstream=parse_upstream(raw.get("upstream")),
            discovery_cache_ttl=non_negative_seconds(
                raw.get("discovery_cache_ttl", DEFAULT_DISCOVERY_TTL), "discovery_cache_ttl"
            ),
            metrics=metrics,
            workers=workers,
            shutdown_grace=non_negative_seconds(
                raw.get("shutdown_grace", DEFAULT_SHUTDOWN_GRACE), "shutdown_grace"
            ),
            connections=parse_connections(raw.get("connections")),
            state=state,
            client_api=parse_client_api(raw.get("client_api")),
            gateway=parse_gateway(raw.get("gateway"), timeouts),
            directory=parse_directory(raw.get("directory"), homeservers),
            clients=parse_clients(raw.get("clients")),
            identity_info=boolean(raw.get("identity_info", False), "identity_info"),
            request_token_inhibit_3pid_errors=boolean(
                raw.get("request_token_inhibit_3pid_errors", False),
                "request_token_inhibit_3pid_errors",
            ),
        )
        _warn_if_server_name_bypasses_the_directory(config)
        return config

    @staticmethod
    def load(path: str | Path) -> PortalConfig:
        """Read and validate a YAML file; problems reading it are ``ValueError`` too."""
        return PortalConfig.from_config(read_yaml(path))


def _warn_if_server_name_bypasses_the_directory(config: PortalConfig) -> None:
    """The portal's ``server_name`` makes a bare name ``@name:<server_name>``, and a user id
    naming a homeserver's server name goes there before any lookup: set to one of several
    homeservers' names, every bare name goes to that homeserver, and the account directory
    is never asked. Accepted (every account a bare name means may live there), with a
    warning at every start, reload and ``--check``."""
    if config.server_name is None or not config.directory.enabled:
        return
    named = [
        name
        for name, hs in config.homeservers.items()
        if (hs.server_name or "").lower() == config.server_name.lower()
    ]
    others = len(set(canonical_names(config.homeservers).values())) > 1
    if named and others:
        logger.warning(
            "server_name: %s is the server name of homeserver %s: every bare name is routed "
            "there as @name:%s and the account directory is never asked; remove server_name "
            "unless every account a bare name means lives on %s",
            config.server_name,
            named[0],
            config.server_name,
            named[0],
        )
