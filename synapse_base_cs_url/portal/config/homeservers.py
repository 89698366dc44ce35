"""``homeservers``: the homeservers behind the portal, and the names that refer to them."""

from __future__ import annotations

import re
from collections.abc import Mapping

import attr

from synapse_base_cs_url.core.config_values import (
    check_keys,
    prefixed,
    type_name,
)
from synapse_base_cs_url.core.secrets import MIN_SHARED_SECRET, read_secret_file, same_secret
from synapse_base_cs_url.core.urls import validate_base_url

HOMESERVER_KEYS = (
    "base_url",
    "proxy_url",
    "server_name",
    "admin_token_file",
    "placement_secret_file",
)

_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")

# A server name as Synapse accepts it: hostname or IP literal, optional port.
_SERVER_NAME_RE = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:\d{1,5})?")


@attr.s(auto_attribs=True, frozen=True, slots=True)
class Homeserver:
    """One homeserver behind the portal."""

    name: str
    base_url: str
    """What clients are sent to (redirect target, and the ``base_cs_url`` the portal adds)."""
    proxy_url: str
    """Where the portal itself connects (proxy mode, discovery); ``base_url`` unless set."""
    server_name: str | None = None
    """The homeserver's server name (``example.com`` in ``@alice:example.com``): user ids
    and media downloads naming it are routed here."""
    admin_token: str | None = attr.ib(default=None, repr=False)
    """An admin access token of this homeserver, read from ``admin_token_file`` (at startup
    and on every reload): the account directory asks Synapse's admin API with it. Never
    logged, never shown."""
    placement_secret: str | None = attr.ib(default=None, repr=False)
    """The secret this homeserver's module shares with the portal, read from
    ``placement_secret_file``: the module asks with it before an account or an address is
    created there, and answers the directory's lookups with it. Never logged, never shown."""


def parse_homeservers(raw: object) -> dict[str, Homeserver]:
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
            server_name = prefixed(
                f"{path}.server_name", check_server_name, settings["server_name"]
            )
        admin_token = None
        if settings.get("admin_token_file") is not None:
            admin_token = read_secret_file(settings["admin_token_file"], f"{path}.admin_token_file")
        placement_secret = None
        if settings.get("placement_secret_file") is not None:
            placement_secret = read_secret_file(
                settings["placement_secret_file"],
                f"{path}.placement_secret_file",
                what="secret",
                min_length=MIN_SHARED_SECRET,
            )
        result[name] = Homeserver(
            name=name,
            base_url=base_url,
            proxy_url=proxy_url,
            server_name=server_name,
            admin_token=admin_token,
            placement_secret=placement_secret,
        )
    _check_secrets_apart(result)
    return result


def canonical_names(homeservers: Mapping[str, Homeserver]) -> dict[str, str]:
    """Each homeserver entry's canonical name: the first entry with its server name (several
    ingress points of one homeserver are one for placement and the directory)."""
    first: dict[str, str] = {}
    canonical = {}
    for hs in homeservers.values():
        key = (hs.server_name or hs.name).lower()
        canonical[hs.name] = first.setdefault(key, hs.name)
    return canonical


def _check_secrets_apart(homeservers: Mapping[str, Homeserver]) -> None:
    """A placement secret tells the portal which homeserver asks: two homeservers (two
    server names) with one secret would be taken for each other, and one could create a
    name the other holds. Ingress points of one server name may share theirs."""
    canonical = canonical_names(homeservers)
    owner: dict[str, Homeserver] = {}
    for hs in homeservers.values():
        if hs.placement_secret is None:
            continue
        other = owner.setdefault(hs.placement_secret, hs)
        if canonical[other.name] != canonical[hs.name]:
            raise ValueError(
                f"homeservers.{hs.name}.placement_secret_file: holds the same secret as "
                f"homeservers.{other.name}.placement_secret_file; give each homeserver its own"
            )


def homeserver_name(value: object, homeservers: Mapping[str, Homeserver]) -> str:
    if not isinstance(value, str):
        raise ValueError(f"must be the name of a homeserver, not {type_name(value)}")
    if value not in homeservers:
        raise ValueError(
            f"unknown homeserver {value!r}; configured homeservers: {', '.join(homeservers)}"
        )
    return value


def check_server_name(raw: object) -> str:
    if not isinstance(raw, str) or not _SERVER_NAME_RE.fullmatch(raw):
        raise ValueError(f"must be a server name such as example.com, not {raw!r}")
    return raw


def homeserver_by_secret(homeservers: Mapping[str, Homeserver], given: str | None) -> str | None:
    """The homeserver whose placement secret ``given`` is: every secret is compared,
    whatever matched, so the time taken tells nothing."""
    if not given:
        return None
    found = None
    for hs in homeservers.values():
        if hs.placement_secret is not None and same_secret(given, hs.placement_secret):
            found = hs.name
    return found
