"""What one client may make the portal remember: every record kept on a client's behalf (a
registration's placement and session, a password reset's client secret, an SSO login token)
is written only once that client passes this limit (``clients.records_burst``, then
``clients.records_per_second``), and each kind of record has a store of its own, bounded in
memory and expiring in Redis. So no client can push other users' flows out of the portal's
memory, or fill Redis, by sending requests that cost it nothing."""

from __future__ import annotations

from synapse_base_cs_url.portal import errors
from synapse_base_cs_url.portal.config.clients import ClientLimits
from synapse_base_cs_url.portal.reactor import Clock
from synapse_base_cs_url.portal.state.rate_limit import ClientBuckets, RateLimiter

#: Client addresses whose buckets are kept (the least recently seen go first).
MAX_TRACKED_CLIENTS = 100_000


class RecordLimiter:
    def __init__(
        self, limits: ClientLimits, clock: Clock, buckets: ClientBuckets | None = None
    ) -> None:
        """``buckets``: what each client had left before a reload."""
        self._buckets = RateLimiter(
            limits.records_per_second,
            limits.records_burst,
            clock,
            max_keys=MAX_TRACKED_CLIENTS,
            ipv6_prefix_length=limits.ipv6_prefix_length,
            buckets=buckets,
        )

    def allow(self, client_ip: str) -> None:
        """Count one record for ``client_ip``; ``429`` (nothing to be written) past its
        limit."""
        wait = self._buckets.take(client_ip)
        if wait > 0:
            raise errors.limit_exceeded(wait)
