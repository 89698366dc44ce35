"""Prometheus metrics, in a registry of the portal's own (served on ``/metrics``)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class PortalMetrics:
    """Logins by homeserver, mode and status, and how long the portal took to answer."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.logins = Counter(
            "synapse_base_cs_url_portal_logins",
            "Logins routed by the portal, by homeserver, mode (redirect or proxy) and the "
            "HTTP status the client got",
            ("homeserver", "mode", "status"),
            registry=self.registry,
        )
        self.login_latency = Histogram(
            "synapse_base_cs_url_portal_login_duration_seconds",
            "Time from a login request arriving to the portal's answer being written",
            ("mode",),
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.rejected = Counter(
            "synapse_base_cs_url_portal_rejected_requests",
            "Login requests the portal answered itself with an error, by errcode and status",
            ("errcode", "status"),
            registry=self.registry,
        )
        self.sso_callbacks = Counter(
            "synapse_base_cs_url_portal_sso_callbacks",
            "SSO callbacks from homeservers: recorded (token -> homeserver remembered), "
            "replayed (token already recorded) or refused (bad or expired signature)",
            ("result",),
            registry=self.registry,
        )
        self._children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    def login(self, homeserver: str, mode: str, status: int, seconds: float) -> None:
        # labels() looks the child up (and validates) on every call; keep them at hand.
        key = (homeserver, mode, status)
        children = self._children.get(key)
        if children is None:
            children = (
                self.logins.labels(homeserver, mode, str(status)),
                self.login_latency.labels(mode),
            )
            self._children[key] = children
        count, latency = children
        count.inc()
        latency.observe(seconds)

    def reject(self, errcode: str, status: int) -> None:
        self.rejected.labels(errcode, str(status)).inc()

    def sso_callback(self, result: str) -> None:
        self.sso_callbacks.labels(result).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
