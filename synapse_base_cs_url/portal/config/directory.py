"""``directory``: where an existing account lives, asked before the routes for identifiers
that name no configured server (a bare localpart, an e-mail address or a phone number).

Sources, tried in the order configured: ``homeservers`` (every homeserver: its module, with
``homeservers.<name>.placement_secret_file``, else Synapse's admin API, with
``admin_token_file``), ``http`` (an operator's directory at ``directory.url``) and
``function`` (``directory.function``, ``package.module:function``). Without a ``directory``
section, a placement secret or an admin token on every homeserver is enough to switch the
``homeservers`` source on.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

import attr

from synapse_base_cs_url.core import dotted_path
from synapse_base_cs_url.core.config_values import (
    boolean,
    positive_int,
    positive_rate,
    positive_seconds,
    prefixed,
    section,
    strings,
)
from synapse_base_cs_url.core.dotted_path import OperatorFunction
from synapse_base_cs_url.core.urls import validate_base_url
from synapse_base_cs_url.portal.config.homeservers import Homeserver

DIRECTORY_KEYS = (
    "sources",
    "url",
    "function",
    "found_ttl",
    "not_found_ttl",
    "timeout",
    "concurrency",
    "max_waiting",
    "per_second",
    "burst",
    "max_cached",
    "unique_localparts",
    "reservation_ttl",
)
#: What a directory function is called with: a localpart, or a medium and an address.
FUNCTION_KWARGS = ("localpart", "medium", "address")


class Source(str, enum.Enum):
    HOMESERVERS = "homeservers"
    HTTP = "http"
    FUNCTION = "function"


@attr.s(auto_attribs=True, frozen=True, slots=True)
class DirectoryFunction:
    """A resolved ``directory.function`` and its configured path (for logs)."""

    path: str
    function: OperatorFunction = attr.ib(eq=False, repr=False)


@attr.s(auto_attribs=True, frozen=True, slots=True, kw_only=True)
class DirectorySettings:
    sources: tuple[Source, ...] = ()
    """Empty: no directory (the routes place every login, as before)."""
    url: str | None = None
    """The ``http`` source's address."""
    function: DirectoryFunction | None = None
    found_ttl: float = 7 * 24 * 3600.0
    """Seconds a found account is remembered (accounts do not move)."""
    not_found_ttl: float = 10.0
    """Seconds "nobody holds it" is remembered (a new account may appear any moment)."""
    timeout: float = 5.0
    """Seconds one source may take before it counts as not answering."""
    concurrency: int = 16
    """Lookups at once."""
    max_waiting: int = 1000
    """Lookups waiting for one of those (then 429): a login storm after a restart, every
    identifier still unknown, waits rather than fails."""
    per_second: float = 1.0
    burst: int = 10
    """Lookups one client address may start: a burst, then this many a second."""
    max_cached: int = 1_000_000
    """Answers kept by the memory state backend (the least recently used go first)."""
    unique_localparts: bool = True
    """A registration of a name held on any homeserver is refused (``M_USER_IN_USE``)."""
    reservation_ttl: float = 600.0
    """Seconds a name or address stays reserved for the homeserver that asked to create it
    (its account is found by the directory from then on; a registration never completed
    frees it)."""

    @property
    def enabled(self) -> bool:
        return bool(self.sources)


def parse_directory(raw: object, homeservers: Mapping[str, Homeserver]) -> DirectorySettings:
    askable = [
        hs.name
        for hs in homeservers.values()
        if hs.admin_token is not None or hs.placement_secret is not None
    ]
    if raw is None:
        if not askable:
            return DirectorySettings()
        settings = DirectorySettings(sources=(Source.HOMESERVERS,))
    else:
        raw = section(raw, "directory", DIRECTORY_KEYS)
        settings = _parse_section(raw)
    with_tokens = [hs.name for hs in homeservers.values() if hs.admin_token is not None]
    if Source.HOMESERVERS in settings.sources:
        _check_homeservers(homeservers)
    elif with_tokens and raw is not None:
        raise ValueError(
            f"directory.sources: homeservers.{with_tokens[0]}.admin_token_file is set but the "
            "'homeservers' source is not listed"
        )
    return settings


def _parse_section(raw: Mapping[object, object]) -> DirectorySettings:
    d = DirectorySettings()
    names = strings(raw.get("sources", [Source.HOMESERVERS.value]), "directory.sources", "a source")
    sources: list[Source] = []
    for i, name in enumerate(names):
        source = next((s for s in Source if s.value == name), None)
        if source is None:
            allowed = ", ".join(s.value for s in Source)
            raise ValueError(f"directory.sources[{i}]: unknown source {name!r}; allowed: {allowed}")
        if source in sources:
            raise ValueError(f"directory.sources[{i}]: {name!r} is listed twice")
        sources.append(source)
    if not sources:
        raise ValueError("directory.sources: must list at least one source (or leave it out)")
    url = None
    if Source.HTTP in sources:
        if raw.get("url") is None:
            raise ValueError("directory.url: required with the 'http' source")
        url = prefixed("directory.url", validate_base_url, raw["url"])
    elif raw.get("url") is not None:
        raise ValueError("directory.url: only used with the 'http' source")
    function = None
    if Source.FUNCTION in sources:
        if raw.get("function") is None:
            raise ValueError("directory.function: required with the 'function' source")
        path = raw["function"]
        resolved = prefixed(
            "directory.function",
            lambda p: dotted_path.resolve(p, FUNCTION_KWARGS, "'mypackage.accounts:where'"),
            path,
        )
        function = DirectoryFunction(path=str(path), function=resolved)
    elif raw.get("function") is not None:
        raise ValueError("directory.function: only used with the 'function' source")

    def seconds(key: str, default: float) -> float:
        return positive_seconds(raw.get(key, default), f"directory.{key}")

    def whole(key: str, default: int) -> int:
        return positive_int(raw.get(key, default), f"directory.{key}")

    return DirectorySettings(
        sources=tuple(sources),
        url=url,
        function=function,
        found_ttl=seconds("found_ttl", d.found_ttl),
        not_found_ttl=seconds("not_found_ttl", d.not_found_ttl),
        timeout=seconds("timeout", d.timeout),
        concurrency=whole("concurrency", d.concurrency),
        max_waiting=whole("max_waiting", d.max_waiting),
        per_second=positive_rate(raw.get("per_second", d.per_second), "directory.per_second"),
        burst=whole("burst", d.burst),
        max_cached=whole("max_cached", d.max_cached),
        unique_localparts=boolean(
            raw.get("unique_localparts", d.unique_localparts), "directory.unique_localparts"
        ),
        reservation_ttl=seconds("reservation_ttl", d.reservation_ttl),
    )


def _check_homeservers(homeservers: Mapping[str, Homeserver]) -> None:
    """Every homeserver is asked (its module, else its admin API), or a "nobody holds it"
    could be wrong."""
    for hs in homeservers.values():
        if hs.placement_secret is not None:
            continue
        if hs.admin_token is None:
            raise ValueError(
                f"homeservers.{hs.name}.admin_token_file: required by the directory's "
                "'homeservers' source unless the homeserver runs the module with a "
                "placement_secret_file (every homeserver must be asked, or an account on this "
                "one would look free)"
            )
        if hs.server_name is None:
            raise ValueError(
                f"homeservers.{hs.name}.server_name: required by the directory's "
                "'homeservers' source (a localpart is looked up as @localpart:server_name)"
            )
