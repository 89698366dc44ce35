"""The portal's configuration (``portal.yaml``), parsed once at startup.

:meth:`PortalConfig.from_config` raises ``ValueError`` whose message starts with the path of
the offending key (``homeservers.hs2.proxy_url: ...``), so ``synapse-base-cs-url portal``
can print it and exit without a traceback.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Mapping
from pathlib import Path

import attr

from synapse_base_cs_url.core import RuleSet, parse_rules
from synapse_base_cs_url.core.config_values import (
    boolean,
    check_keys,
    non_negative_seconds,
    positive_int,
    positive_seconds,
    prefixed,
    read_yaml,
    required,
    section,
    strings,
    type_name,
)
from synapse_base_cs_url.core.urls import validate_base_url
from synapse_base_cs_url.portal.config_gateway import (
    ClientApi,
    GatewaySettings,
    parse_client_api,
    parse_gateway,
)
from synapse_base_cs_url.portal.config_serving import (
    DEFAULT_SHUTDOWN_GRACE,
    DEFAULT_WORKERS,
    Backend,
    Connections,
    SigningKeys,
    StateSettings,
    parse_connections,
    parse_signing_keys,
    parse_state,
    parse_workers,
)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
DEFAULT_MAX_BODY_SIZE = 64 * 1024
DEFAULT_CONNECT_TIMEOUT = 5.0
DEFAULT_TOTAL_TIMEOUT = 30.0
DEFAULT_DISCOVERY_TTL = 10.0
#: Idle kept-alive connections per homeserver, and how long each is kept: shorter than the
#: keep-alive timeout of the homeserver (or of a reverse proxy in front of it), so that the
#: portal closes an idle connection before the other side does.
DEFAULT_MAX_IDLE_CONNECTIONS = 32
DEFAULT_IDLE_TIMEOUT = 30.0
#: Login answers and discovery documents are small; anything larger is not a homeserver's.
DEFAULT_MAX_RESPONSE_SIZE = 4 * 1024 * 1024
#: Synapse's login tokens live 2 minutes unless configured otherwise.
DEFAULT_SSO_TOKEN_TTL = 120.0
DEFAULT_SSO_MAX_TOKENS = 100_000
#: ``dart:io``'s HttpClient sends ``Dart/<version> (dart:io)`` and does not follow a 307 on POST.
DEFAULT_PROXY_USER_AGENTS = ("Dart/",)

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
)
LISTEN_KEYS = ("host", "port", "x_forwarded")
HOMESERVER_KEYS = ("base_url", "proxy_url", "server_name")
TIMEOUT_KEYS = ("connect", "total", "client_api", "long_poll_margin")
DEFAULT_CLIENT_API_TIMEOUT = 60.0
DEFAULT_LONG_POLL_MARGIN = 30.0
UPSTREAM_KEYS = ("max_idle_connections", "idle_timeout", "max_response_size")
SSO_KEYS = (
    "default",
    "identity_providers",
    "client_whitelist",
    "token_ttl",
    "max_tokens",
    "signing_key_file",
    "previous_signing_key_files",
)
#: Identity provider ids as Synapse's ``/login/sso/redirect/<idp_id>`` accepts them.
IDP_ID_RE = re.compile(r"[A-Za-z0-9_.~-]+")
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
# A server name as Synapse accepts it: hostname or IP literal, optional port.
_SERVER_NAME_RE = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:\d{1,5})?")


class Mode(str, enum.Enum):
    """How a routed login reaches its homeserver; the value is the config spelling."""

    REDIRECT = "redirect"
    PROXY = "proxy"
    AUTO = "auto"


MODE_NAMES = tuple(m.value for m in Mode)


@attr.s(auto_attribs=True, frozen=True, slots=True)
class Homeserver:
    """One homeserver behind the portal."""

    name: str
    base_url: str
    """What clients are sent to (redirect target, and the ``base_cs_url`` the portal adds)."""
    proxy_url: str
    """Where the portal itself connects (proxy mode, discovery); ``base_url`` unless set."""
    server_name: str | None = None
    """The homeserver's server name (``example.com`` in ``@alice:example.com``): media
    downloads naming it are routed here by the client-server gateway."""


@attr.s(auto_attribs=True, frozen=True, slots=True)
class Listen:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    x_forwarded: bool = False
    """Trust ``X-Forwarded-For`` / ``-Proto`` from the reverse proxy in front of the portal."""


@attr.s(auto_attribs=True, frozen=True, slots=True)
class Timeouts:
    connect: float = DEFAULT_CONNECT_TIMEOUT
    total: float = DEFAULT_TOTAL_TIMEOUT
    client_api: float = DEFAULT_CLIENT_API_TIMEOUT
    """The gateway: seconds until a homeserver's answer starts, for every request but /sync."""
    long_poll_margin: float = DEFAULT_LONG_POLL_MARGIN
    """The gateway: seconds a /sync may take beyond the ``timeout`` the client asked for."""


@attr.s(auto_attribs=True, frozen=True, slots=True, kw_only=True)
class UpstreamSettings:
    """The portal's connections to its homeservers."""

    max_idle_connections: int = DEFAULT_MAX_IDLE_CONNECTIONS
    """Idle kept-alive connections kept per homeserver."""
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT
    """Seconds an idle connection is kept before the portal closes it."""
    max_response_size: int = DEFAULT_MAX_RESPONSE_SIZE
    """Bytes of a homeserver's answer body the portal reads at most (then 502)."""


@attr.s(auto_attribs=True, frozen=True, slots=True, kw_only=True)
class SsoSettings:
    """Which homeserver serves which identity provider, and the SSO login token store."""

    default: str
    """Homeserver for SSO redirects without (or with an unlisted) identity provider, for
    legacy CAS redirects, and for ``m.login.token`` logins whose token the portal did not see
    being issued."""
    identity_providers: Mapping[str, str] = attr.Factory(dict)
    """Identity provider id -> homeserver name."""
    client_whitelist: tuple[str, ...] = ()
    """URL prefixes of clients the portal sends a login token to without asking the user."""
    token_ttl: float = DEFAULT_SSO_TOKEN_TTL
    max_tokens: int = DEFAULT_SSO_MAX_TOKENS
    signing_keys: SigningKeys | None = None
    """From ``signing_key_file`` (and ``previous_signing_key_files``); ``None``: a random
    key per process, which only one portal process can use."""
    configured: bool = False
    """Whether portal.yaml has an ``sso`` section."""

    def homeserver_for(self, idp_id: str | None) -> str:
        if idp_id is None:
            return self.default
        return self.identity_providers.get(idp_id, self.default)

    @property
    def homeservers(self) -> tuple[str, ...]:
        """Every homeserver SSO logins can go to: the default first, then in config order."""
        names = [self.default]
        names += [hs for hs in self.identity_providers.values() if hs not in names]
        return tuple(dict.fromkeys(names))


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
    metrics: bool
    workers: int = DEFAULT_WORKERS
    shutdown_grace: float = DEFAULT_SHUTDOWN_GRACE
    connections: Connections = attr.Factory(Connections)
    state: StateSettings = attr.Factory(StateSettings)
    client_api: ClientApi = ClientApi.REFUSE
    gateway: GatewaySettings = attr.Factory(GatewaySettings)

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
        homeservers = _parse_homeservers(raw.get("homeservers"))

        def parse_homeserver_name(value: object) -> str:
            return _homeserver_name(value, homeservers)

        routes = parse_rules(
            raw.get("routes"),
            key="routes",
            parse_target=parse_homeserver_name,
            target_key="homeserver",
        )
        default = required(raw, "default_homeserver")
        default_hs = prefixed("default_homeserver", parse_homeserver_name, default)
        sso = _parse_sso(raw.get("sso"), default_hs, parse_homeserver_name)
        workers = parse_workers(raw.get("workers"))
        state = parse_state(raw.get("state"))
        _check_sso_sharing(sso, workers, state)
        return PortalConfig(
            listen=_parse_listen(raw.get("listen")),
            public_baseurl=prefixed(
                "public_baseurl", validate_base_url, required(raw, "public_baseurl")
            ),
            mode=_parse_mode(raw.get("mode", Mode.REDIRECT.value)),
            homeservers=homeservers,
            routes=routes,
            default_homeserver=default_hs,
            sso=sso,
            server_name=_parse_server_name(raw.get("server_name")),
            proxy_user_agents=_parse_user_agents(
                raw.get("proxy_user_agents", list(DEFAULT_PROXY_USER_AGENTS))
            ),
            max_body_size=positive_int(
                raw.get("max_body_size", DEFAULT_MAX_BODY_SIZE),
                "max_body_size",
                "whole number of bytes",
            ),
            timeouts=_parse_timeouts(raw.get("timeouts")),
            upstream=_parse_upstream(raw.get("upstream")),
            discovery_cache_ttl=non_negative_seconds(
                raw.get("discovery_cache_ttl", DEFAULT_DISCOVERY_TTL), "discovery_cache_ttl"
            ),
            metrics=boolean(raw.get("metrics", True), "metrics"),
            workers=workers,
            shutdown_grace=non_negative_seconds(
                raw.get("shutdown_grace", DEFAULT_SHUTDOWN_GRACE), "shutdown_grace"
            ),
            connections=parse_connections(raw.get("connections")),
            state=state,
            client_api=parse_client_api(raw.get("client_api")),
            gateway=parse_gateway(raw.get("gateway")),
        )

    @staticmethod
    def load(path: str | Path) -> PortalConfig:
        """Read and validate a YAML file; problems reading it are ``ValueError`` too."""
        return PortalConfig.from_config(read_yaml(path))


# --- parts ---------------------------------------------------------------------------------


def _parse_listen(raw: object) -> Listen:
    if raw is None:
        return Listen()
    raw = section(raw, "listen", LISTEN_KEYS)
    host = raw.get("host", DEFAULT_HOST)
    if not isinstance(host, str) or not host:
        raise ValueError(f"listen.host: must be an IP address or host name, not {host!r}")
    port = raw.get("port", DEFAULT_PORT)
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ValueError(f"listen.port: must be a port number (0-65535), not {port!r}")
    return Listen(
        host=host,
        port=port,
        x_forwarded=boolean(raw.get("x_forwarded", False), "listen.x_forwarded"),
    )


def _parse_mode(raw: object) -> Mode:
    for mode in Mode:
        if raw == mode.value:
            return mode
    raise ValueError(f"mode: unknown mode {raw!r}; allowed: {', '.join(MODE_NAMES)}")


def _parse_homeservers(raw: object) -> dict[str, Homeserver]:
    if raw is None:
        raise ValueError("homeservers: required (a mapping of name to {base_url, proxy_url})")
    if not isinstance(raw, Mapping):
        raise ValueError(
            f"homeservers: must be a mapping of name to settings, not {type_name(raw)}"
        )
    if not raw:
        raise ValueError("homeservers: must name at least one homeserver")
    result: dict[str, Homeserver] = {}
    for name, settings in raw.items():
        if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
            raise ValueError(
                f"homeservers: invalid name {name!r}; use letters, digits, '_', '.' and '-'"
            )
        path = f"homeservers.{name}"
        if not isinstance(settings, Mapping):
            raise ValueError(f"{path}: must be a mapping with base_url, not {type_name(settings)}")
        check_keys(settings, HOMESERVER_KEYS, path)
        if settings.get("base_url") is None:
            raise ValueError(f"{path}.base_url: required")
        base_url = prefixed(f"{path}.base_url", validate_base_url, settings["base_url"])
        proxy_url = base_url
        if settings.get("proxy_url") is not None:
            proxy_url = prefixed(f"{path}.proxy_url", validate_base_url, settings["proxy_url"])
        server_name = None
        if settings.get("server_name") is not None:
            server_name = prefixed(f"{path}.server_name", _server_name, settings["server_name"])
        result[name] = Homeserver(
            name=name, base_url=base_url, proxy_url=proxy_url, server_name=server_name
        )
    return result


def _homeserver_name(value: object, homeservers: Mapping[str, Homeserver]) -> str:
    if not isinstance(value, str):
        raise ValueError(f"must be the name of a homeserver, not {type_name(value)}")
    if value not in homeservers:
        raise ValueError(
            f"unknown homeserver {value!r}; configured homeservers: {', '.join(homeservers)}"
        )
    return value


def _parse_server_name(raw: object) -> str | None:
    if raw is None:
        return None
    return prefixed("server_name", _server_name, raw)


def _server_name(raw: object) -> str:
    if not isinstance(raw, str) or not _SERVER_NAME_RE.fullmatch(raw):
        raise ValueError(f"must be a server name such as example.com, not {raw!r}")
    return raw


def _parse_user_agents(raw: object) -> tuple[re.Pattern[str], ...]:
    if isinstance(raw, (list, tuple)) and not raw:
        return ()  # an empty list is allowed: auto mode then always redirects
    patterns: list[re.Pattern[str]] = []
    single = isinstance(raw, str)
    for i, item in enumerate(strings(raw, "proxy_user_agents", "a regular expression")):
        where = "proxy_user_agents" if single else f"proxy_user_agents[{i}]"
        try:
            patterns.append(re.compile(item))
        except re.error as e:
            raise ValueError(f"{where}: invalid regex {item!r}: {e}") from None
    return tuple(patterns)


def _parse_timeouts(raw: object) -> Timeouts:
    if raw is None:
        return Timeouts()
    raw = section(raw, "timeouts", TIMEOUT_KEYS)
    connect = positive_seconds(raw.get("connect", DEFAULT_CONNECT_TIMEOUT), "timeouts.connect")
    total = positive_seconds(raw.get("total", DEFAULT_TOTAL_TIMEOUT), "timeouts.total")
    client_api = positive_seconds(
        raw.get("client_api", DEFAULT_CLIENT_API_TIMEOUT), "timeouts.client_api"
    )
    margin = positive_seconds(
        raw.get("long_poll_margin", DEFAULT_LONG_POLL_MARGIN), "timeouts.long_poll_margin"
    )
    if connect > total:
        raise ValueError(
            f"timeouts.connect: {connect:g}s is longer than timeouts.total ({total:g}s)"
        )
    return Timeouts(connect=connect, total=total, client_api=client_api, long_poll_margin=margin)


def _parse_upstream(raw: object) -> UpstreamSettings:
    if raw is None:
        return UpstreamSettings()
    raw = section(raw, "upstream", UPSTREAM_KEYS)
    return UpstreamSettings(
        max_idle_connections=positive_int(
            raw.get("max_idle_connections", DEFAULT_MAX_IDLE_CONNECTIONS),
            "upstream.max_idle_connections",
        ),
        idle_timeout=positive_seconds(
            raw.get("idle_timeout", DEFAULT_IDLE_TIMEOUT), "upstream.idle_timeout"
        ),
        max_response_size=positive_int(
            raw.get("max_response_size", DEFAULT_MAX_RESPONSE_SIZE),
            "upstream.max_response_size",
            "whole number of bytes",
        ),
    )


def _parse_sso(
    raw: object, default: str, parse_homeserver_name: Callable[[object], str]
) -> SsoSettings:
    if raw is None:
        return SsoSettings(default=default)
    raw = section(raw, "sso", SSO_KEYS)
    if raw.get("default") is not None:
        default = prefixed("sso.default", parse_homeserver_name, raw["default"])
    idps_raw = raw.get("identity_providers")
    idps: dict[str, str] = {}
    if idps_raw is not None:
        if not isinstance(idps_raw, Mapping):
            raise ValueError(
                "sso.identity_providers: must be a mapping of identity provider id to "
                f"homeserver name, not {type_name(idps_raw)}"
            )
        for idp_id, hs in idps_raw.items():
            if not isinstance(idp_id, str) or not IDP_ID_RE.fullmatch(idp_id):
                raise ValueError(
                    f"sso.identity_providers: invalid identity provider id {idp_id!r}; "
                    "Synapse's ids use letters, digits, '_', '.', '~' and '-'"
                )
            idps[idp_id] = prefixed(f"sso.identity_providers.{idp_id}", parse_homeserver_name, hs)
    whitelist_raw = raw.get("client_whitelist")
    whitelist: tuple[str, ...] = ()
    if whitelist_raw is not None:
        if not isinstance(whitelist_raw, (list, tuple)):
            raise ValueError(
                "sso.client_whitelist: must be a list of URL prefixes, not "
                + type_name(whitelist_raw)
            )
        for i, prefix in enumerate(whitelist_raw):
            if not isinstance(prefix, str) or not prefix:
                raise ValueError(
                    f"sso.client_whitelist[{i}]: must be a URL prefix such as "
                    f"https://app.element.io/, not {prefix!r}"
                )
        whitelist = tuple(whitelist_raw)
    token_ttl = positive_seconds(raw.get("token_ttl", DEFAULT_SSO_TOKEN_TTL), "sso.token_ttl")
    max_tokens = positive_int(raw.get("max_tokens", DEFAULT_SSO_MAX_TOKENS), "sso.max_tokens")
    return SsoSettings(
        default=default,
        identity_providers=idps,
        client_whitelist=whitelist,
        token_ttl=token_ttl,
        max_tokens=max_tokens,
        signing_keys=parse_signing_keys(raw),
        configured=True,
    )


def _check_sso_sharing(sso: SsoSettings, workers: int, state: StateSettings) -> None:
    """Single sign-on across processes needs one signing key and one token store."""
    shared = workers > 1 or state.backend is Backend.REDIS
    if not (shared and sso.configured):
        return
    if sso.signing_keys is None:
        why = "state.backend is redis" if state.backend is Backend.REDIS else "workers > 1"
        raise ValueError(
            f"sso.signing_key_file: required when {why} (state.backend / workers): every "
            "portal process must sign and check SSO callbacks with the same key; make one "
            "with: synapse-base-cs-url generate-key FILE"
        )
    if state.backend is Backend.MEMORY:
        raise ValueError(
            f"state.backend: workers: {workers} with single sign-on needs backend redis: "
            "a login token's homeserver, recorded by one process, must be found by the "
            "process that receives the token login"
        )
