"""A :class:`Placement` (and the account steps around it) as the wiring builds them, on a
memory backend, for unit tests."""

from __future__ import annotations

from synapse_base_cs_url.portal.account_steps import AccountSteps
from synapse_base_cs_url.portal.config.portal_config import PortalConfig
from synapse_base_cs_url.portal.directory.directory import Directory
from synapse_base_cs_url.portal.login_routes import LoginRoutes
from synapse_base_cs_url.portal.password_reset import PasswordReset
from synapse_base_cs_url.portal.placement import PLACEMENT_TTL, Placement, PlacementRecords
from synapse_base_cs_url.portal.reactor import Clock
from synapse_base_cs_url.portal.records import RecordLimiter
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


def account_steps_for(config: PortalConfig, clock: Clock, placement: Placement) -> AccountSteps:
    login_routes = LoginRoutes(config)
    limiter = RecordLimiter(config.clients, clock)
    reset = PasswordReset(config, login_routes, None, memory_store(clock), limiter)
    return AccountSteps(login_routes, placement, reset)
