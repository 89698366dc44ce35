"""A :class:`Placement` (and the account steps around it) as the wiring builds them, on a
memory backend, for unit tests; a directory over a fixed table of holders."""

from __future__ import annotations

from synapse_base_cs_url.portal.account_steps import AccountSteps
from synapse_base_cs_url.portal.config.portal_config import PortalConfig
from synapse_base_cs_url.portal.directory.directory import Directory, DirectoryCache
from synapse_base_cs_url.portal.directory.identifier import Identifier
from synapse_base_cs_url.portal.directory.sources import SourceAnswer
from synapse_base_cs_url.portal.homes import Homes
from synapse_base_cs_url.portal.login_routes import LoginRoutes
from synapse_base_cs_url.portal.password_reset import PasswordReset
from synapse_base_cs_url.portal.placement import PLACEMENT_TTL, Placement, PlacementRecords
from synapse_base_cs_url.portal.reactor import Clock
from synapse_base_cs_url.portal.records import RecordLimiter
from synapse_base_cs_url.portal.sso_tokens import SsoTokenStore
from synapse_base_cs_url.portal.state.expiring import ExpiringMap
from synapse_base_cs_url.portal.state.store import Store


def memory_store(clock: Clock, max_entries: int = 1000) -> Store:
    memory: ExpiringMap[str, str] = ExpiringMap(
        clock, max_entries=max_entries, ttl=PLACEMENT_TTL, sliding=False
    )
    return Store("test:", memory, None)


def placement_for(
    config: PortalConfig,
    clock: Clock,
    directory: Directory | None = None,
    limiter: RecordLimiter | None = None,
) -> Placement:
    records = PlacementRecords(
        names=memory_store(clock), clients=memory_store(clock), sessions=memory_store(clock)
    )
    return Placement(
        config,
        LoginRoutes(config),
        directory,
        records,
        limiter or RecordLimiter(config.clients, clock),
    )


def homes_for(
    config: PortalConfig, clock: Clock, placement: Placement, directory: Directory | None = None
) -> Homes:
    """Where logins go, as the wiring builds it (SSO tokens in memory)."""
    sso_tokens = SsoTokenStore(memory_store(clock), config.sso.token_ttl)
    return Homes(LoginRoutes(config), sso_tokens, directory, placement)


def account_steps_for(config: PortalConfig, clock: Clock, placement: Placement) -> AccountSteps:
    homes = homes_for(config, clock, placement)
    reset = PasswordReset(config, homes, memory_store(clock), RecordLimiter(config.clients, clock))
    return AccountSteps(homes.routes, placement, reset)


class Holders:
    """A directory source that knows who holds which localpart or address: a homeserver's
    name, several (``"hs1,hs2"``), or ``"?"`` (it cannot say)."""

    name = "test"
    bounds_itself = False

    def __init__(self, holders: dict[str, str]) -> None:
        self.holders = holders

    async def ask(self, identifier: Identifier, leave_out: str | None = None) -> SourceAnswer:
        held = self.holders.get(identifier.address)
        if held == "?":
            return SourceAnswer(unanswered=(self.name,))
        return SourceAnswer(holders=frozenset(held.split(",")) if held else frozenset())


def directory_over(config: PortalConfig, clock: Clock, holders: dict[str, str]) -> Directory:
    memory: ExpiringMap[str, str] = ExpiringMap(clock, max_entries=100, ttl=60, sliding=False)
    cache = DirectoryCache(config.directory, memory, None, frozenset(config.homeservers))
    return Directory(config.directory, [Holders(holders)], cache, clock)  # type: ignore[list-item]
