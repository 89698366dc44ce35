"""Matchers: one fact about a login each; a rule fires when all of its matchers match.

A matcher whose fact is missing from the :class:`LoginContext` does not match: routing on
something we do not know would send users somewhere by accident.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable, Mapping
from typing import ClassVar, Protocol, TypeAlias

import attr

from synapse_base_cs_url.core.config_values import strings, type_name
from synapse_base_cs_url.core.context import LoginContext

IPNetwork: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network


class Matcher(Protocol):
    """Anything that can say whether a login matches, and say what it looks at (for
    ``synapse-base-cs-url explain``)."""

    key: ClassVar[str]
    """The matcher's name in a rule's ``match`` mapping."""

    def matches(self, ctx: LoginContext) -> bool: ...

    def fact(self, ctx: LoginContext) -> str | None:
        """The value of the login this matcher compares (``None``: unknown)."""
        ...

    def describe(self) -> str:
        """What it wants, as written in the config."""
        ...


def _fullmatch(pattern: re.Pattern[str], value: str | None) -> bool:
    return value is not None and pattern.fullmatch(value) is not None


def _regex(pattern: re.Pattern[str]) -> str:
    return f"a full match of /{pattern.pattern}/"


@attr.s(auto_attribs=True, frozen=True, slots=True)
class UserIdMatcher:
    """Regex that must match the whole fully qualified user id."""

    pattern: re.Pattern[str]
    key: ClassVar[str] = "user_id"

    def matches(self, ctx: LoginContext) -> bool:
        return _fullmatch(self.pattern, ctx.user_id)

    def fact(self, ctx: LoginContext) -> str | None:
        return ctx.user_id

    def describe(self) -> str:
        return _regex(self.pattern)


@attr.s(auto_attribs=True, frozen=True, slots=True)
class LocalpartMatcher:
    """Regex that must match the whole localpart (derived from the user id if need be)."""

    pattern: re.Pattern[str]
    key: ClassVar[str] = "localpart"

    def matches(self, ctx: LoginContext) -> bool:
        return _fullmatch(self.pattern, ctx.effective_localpart)

    def fact(self, ctx: LoginContext) -> str | None:
        return ctx.effective_localpart

    def describe(self) -> str:
        return _regex(self.pattern)


@attr.s(auto_attribs=True, frozen=True, slots=True)
class LoginTypeMatcher:
    """The login type must equal one of ``login_types`` exactly."""

    login_types: frozenset[str]
    key: ClassVar[str] = "login_type"

    def matches(self, ctx: LoginContext) -> bool:
        return ctx.login_type is not None and ctx.login_type in self.login_types

    def fact(self, ctx: LoginContext) -> str | None:
        return ctx.login_type

    def describe(self) -> str:
        return "one of " + ", ".join(sorted(self.login_types))


def _masks(networks: tuple[IPNetwork, ...], version: int) -> tuple[tuple[int, int], ...]:
    return tuple((int(n.network_address), int(n.netmask)) for n in networks if n.version == version)


def parse_ip(text: str) -> tuple[int, int] | None:
    """``(version, address as an int)`` of an IP address string, or ``None``.

    ``inet_pton`` is several times cheaper than ``ipaddress.ip_address`` (which parses in
    Python); the latter is still asked for what ``inet_pton`` refuses (e.g. a scoped IPv6
    address such as ``fe80::1%eth0``).
    """
    family = socket.AF_INET6 if ":" in text else socket.AF_INET
    try:
        packed = socket.inet_pton(family, text)
    except (OSError, ValueError):
        try:
            ip = ipaddress.ip_address(text)
        except ValueError:
            return None
        return ip.version, int(ip)
    return (6 if family == socket.AF_INET6 else 4), int.from_bytes(packed, "big")


@attr.s(auto_attribs=True, frozen=True, slots=True)
class ClientIpMatcher:
    """The client address must lie in one of ``networks``.

    An IPv4-mapped IPv6 address (``::ffff:10.1.2.3``, what a dual-stack socket reports for an
    IPv4 peer) is also tried as the IPv4 address it carries.
    """

    networks: tuple[IPNetwork, ...]
    # (network, mask) as ints per IP version: a membership test is two integer operations.
    _v4: tuple[tuple[int, int], ...] = attr.ib(init=False, eq=False, repr=False)
    _v6: tuple[tuple[int, int], ...] = attr.ib(init=False, eq=False, repr=False)

    key: ClassVar[str] = "client_ip"

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "_v4", _masks(self.networks, 4))
        object.__setattr__(self, "_v6", _masks(self.networks, 6))

    def fact(self, ctx: LoginContext) -> str | None:
        return ctx.client_ip

    def describe(self) -> str:
        return "in " + ", ".join(str(n) for n in self.networks)

    def matches(self, ctx: LoginContext) -> bool:
        if ctx.client_ip is None:
            return False
        parsed = parse_ip(ctx.client_ip)
        if parsed is None:
            return False
        version, ip = parsed
        if version == 6:
            for net, mask in self._v6:
                if ip & mask == net:
                    return True
            if ip >> 32 != 0xFFFF:  # not ::ffff:a.b.c.d
                return False
            ip &= 0xFFFFFFFF
        for net, mask in self._v4:  # noqa: SIM110 (plain loops: no generator per login)
            if ip & mask == net:
                return True
        return False


@attr.s(auto_attribs=True, frozen=True, slots=True)
class AddressMatcher:
    """Regex that must match the whole third-party address (e.g. an e-mail address)."""

    pattern: re.Pattern[str]
    key: ClassVar[str] = "address"

    def matches(self, ctx: LoginContext) -> bool:
        return _fullmatch(self.pattern, ctx.address)

    def fact(self, ctx: LoginContext) -> str | None:
        return ctx.address

    def describe(self) -> str:
        return _regex(self.pattern)


@attr.s(auto_attribs=True, frozen=True, slots=True)
class MediumMatcher:
    """The third-party medium must equal ``medium`` exactly."""

    medium: str
    key: ClassVar[str] = "medium"

    def matches(self, ctx: LoginContext) -> bool:
        return ctx.medium is not None and ctx.medium == self.medium

    def fact(self, ctx: LoginContext) -> str | None:
        return ctx.medium

    def describe(self) -> str:
        return f"exactly {self.medium!r}"


@attr.s(auto_attribs=True, frozen=True, slots=True)
class AllOf:
    """AND of matchers; no matchers at all matches every login (a catch-all rule)."""

    matchers: tuple[Matcher, ...] = ()

    def matches(self, ctx: LoginContext) -> bool:
        for matcher in self.matchers:  # noqa: SIM110 (a plain loop: no generator per rule)
            if not matcher.matches(ctx):
                return False
        return True

    def failing(self, ctx: LoginContext) -> tuple[Matcher, ...]:
        """The matchers that do not match ``ctx`` (all of them are tried)."""
        return tuple(m for m in self.matchers if not m.matches(ctx))


# --- parsing -------------------------------------------------------------------------------


def _parse_regex(value: object, path: str) -> re.Pattern[str]:
    if not isinstance(value, str):
        raise ValueError(f"{path}: must be a string (a regular expression), not {type_name(value)}")
    try:
        return re.compile(value)
    except re.error as e:
        raise ValueError(f"{path}: invalid regex {value!r}: {e}") from None


def _parse_networks(value: object, path: str) -> ClientIpMatcher:
    # A list is named item by item in messages; a lone string by the key itself.
    items = strings(value, path, "an IP network (CIDR) string")
    single = isinstance(value, str)
    networks: list[IPNetwork] = []
    for i, item in enumerate(items):
        where = path if single else f"{path}[{i}]"
        try:
            networks.append(ipaddress.ip_network(item))
        except ValueError as e:
            raise ValueError(f"{where}: {item!r} is not an IP network: {e}") from None
    return ClientIpMatcher(tuple(networks))


def _parse_medium(value: object, path: str) -> MediumMatcher:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{path}: must be a non-empty string such as 'email' or 'msisdn'")
    return MediumMatcher(value)


_PARSERS: dict[str, Callable[[object, str], Matcher]] = {
    "address": lambda v, p: AddressMatcher(_parse_regex(v, p)),
    "client_ip": _parse_networks,
    "localpart": lambda v, p: LocalpartMatcher(_parse_regex(v, p)),
    "login_type": lambda v, p: LoginTypeMatcher(frozenset(strings(v, p, "a login type string"))),
    "medium": _parse_medium,
    "user_id": lambda v, p: UserIdMatcher(_parse_regex(v, p)),
}

MATCHER_NAMES: tuple[str, ...] = tuple(sorted(_PARSERS))
"""Every key allowed in a rule's ``match`` mapping."""


def parse_match(raw: object, path: str) -> AllOf:
    """Parse a rule's ``match`` mapping; ``None`` or ``{}`` matches every login.

    ``path`` (e.g. ``rules[2].match``) prefixes every error message.
    """
    if raw is None:
        return AllOf()
    if not isinstance(raw, Mapping):
        raise ValueError(
            f"{path}: must be a mapping of matcher name to value, not {type_name(raw)}"
        )
    matchers: list[Matcher] = []
    for name, value in raw.items():
        parser = _PARSERS.get(name) if isinstance(name, str) else None
        if parser is None:
            raise ValueError(
                f"{path}: unknown matcher {name!r}; allowed matchers: {', '.join(MATCHER_NAMES)}"
            )
        matchers.append(parser(value, f"{path}.{name}"))
    return AllOf(tuple(matchers))
