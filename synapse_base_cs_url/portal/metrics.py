"""Prometheus metrics, in a registry of the portal's own (served on ``/metrics``).

With ``workers`` > 1 every process writes its samples to files in the directory named by
``PROMETHEUS_MULTIPROC_DIR`` (set by the parent before it starts them), and whichever
process answers a scrape reads all of them: one scrape shows the whole portal.
"""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"


class PortalMetrics:
    """Logins by homeserver, mode and status, how long the portal took to answer, and the
    state of its client connections."""

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
            "replayed (token already recorded), refused (bad or expired signature), "
            "limited (the client over clients.records_*: 429) or unavailable (the shared "
            "state did not answer)",
            ("result",),
            registry=self.registry,
        )
        self.sso_sign_ins = Counter(
            "synapse_base_cs_url_portal_sso_sign_ins",
            "Answers of the page that asks who signs in with a shared identity provider: "
            "page (asked), remembered (a browser's cookie went straight through), sent (to "
            "the account's homeserver), placed (a new account, where the routes place it), "
            "ambiguous (several hold the name: the full Matrix ID asked), unavailable (the "
            "directory could not say), invalid (not a name or address), not_offered (the "
            "account's homeserver does not offer the provider), refused (a forged or expired "
            "form) or limited (429)",
            ("result",),
            registry=self.registry,
        )
        self.open_connections = Gauge(
            "synapse_base_cs_url_portal_open_connections",
            "Client connections open now (all processes)",
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        self.refused_connections = Counter(
            "synapse_base_cs_url_portal_refused_connections",
            "Client connections answered 503 and closed because connections.max were open",
            registry=self.registry,
        )
        self.connection_timeouts = Counter(
            "synapse_base_cs_url_portal_connection_timeouts",
            "Client connections closed for missing a deadline: header (connections."
            "header_timeout) or body (connections.body_timeout)",
            ("deadline",),
            registry=self.registry,
        )
        self.unreadable_requests = Counter(
            "synapse_base_cs_url_portal_unreadable_requests",
            "Requests answered and closed before anything of them was routed, because their "
            "head could not be read: 414 (request line too long), 431 (headers too large) "
            "or 400 (malformed)",
            ("status",),
            registry=self.registry,
        )
        self.client_api_requests = Counter(
            "synapse_base_cs_url_portal_client_api_requests",
            "Client-server API requests the gateway passed on, by homeserver, how it was chosen "
            "(token, resolved, register, registration-session, refresh-token, refresh-user, "
            "media, user-id, default) and the HTTP status the client got (499: it left first)",
            ("homeserver", "route", "status"),
            registry=self.registry,
        )
        self.route_decisions = Counter(
            "synapse_base_cs_url_portal_route_decisions",
            "Questions answered at the decision endpoint (nginx's auth_request), by how the "
            "homeserver was chosen (as for client_api_requests), or 'portal' when the portal "
            "must answer the request itself",
            ("homeserver", "route"),
            registry=self.registry,
        )
        self.token_resolutions = Counter(
            "synapse_base_cs_url_portal_token_resolutions",
            "Access tokens the gateway had not seen: found (a homeserver knew it), unknown "
            "(every homeserver said no), unanswered (none knew it and some could not say: "
            "503), malformed (a Synapse token with a bad checksum: nobody asked) or "
            "limited (429)",
            ("result",),
            registry=self.registry,
        )
        self.directory_lookups = Counter(
            "synapse_base_cs_url_portal_directory_lookups",
            "Account directory lookups by source and outcome: found, several (the same "
            "identifier on several homeservers), not-found, unanswered (a source could not "
            "say) or limited (429)",
            ("source", "outcome"),
            registry=self.registry,
        )
        self.directory_latency = Histogram(
            "synapse_base_cs_url_portal_directory_lookup_seconds",
            "Seconds one directory source took to answer",
            ("source",),
            registry=self.registry,
        )
        self.directory_cache = Counter(
            "synapse_base_cs_url_portal_directory_cache",
            "Directory answers taken from the cache (hit) or looked up (miss)",
            ("result",),
            registry=self.registry,
        )
        self.registrations = Counter(
            "synapse_base_cs_url_portal_registrations",
            "Registration and password reset steps the portal sent to a homeserver (307) or "
            "answered itself, by step (register, available, reset-token, reset), homeserver "
            "and status",
            ("step", "homeserver", "status"),
            registry=self.registry,
        )
        self.placement_asks = Counter(
            "synapse_base_cs_url_portal_placement_asks",
            "Asks from a homeserver's module before it creates an account or binds an "
            "address, by homeserver, kind (name, email, msisdn) and outcome: allowed "
            "(reserved for it), refused (held or reserved elsewhere), unavailable (503: the "
            "directory could not say), forbidden (no or a wrong secret: homeserver '-') or "
            "bad (a malformed ask)",
            ("homeserver", "kind", "outcome"),
            registry=self.registry,
        )
        self.homeservers_up = Gauge(
            "synapse_base_cs_url_portal_homeserver_up",
            "1 while a homeserver is up, 0 while it is marked down (upstream.failures_to_down "
            "failures in a row; nothing waits for it until a probe finds it up)",
            ("homeserver",),
            registry=self.registry,
        )
        self.state_up = Gauge(
            "synapse_base_cs_url_portal_state_up",
            "1 while the shared state (Redis) answers, 0 while it is marked down (nothing "
            "waits for it until a probe finds it up); absent with state.backend: memory",
            registry=self.registry,
            multiprocess_mode="livemin",
        )
        self.admin_token_ok = Gauge(
            "synapse_base_cs_url_portal_admin_token_ok",
            "1 once a homeserver accepted the directory's admin token (an admin's), 0 once it "
            "refused it (checked at startup and at each reload)",
            ("homeserver",),
            registry=self.registry,
            multiprocess_mode="livemin",
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

    def client_api(self, homeserver: str, route: str, status: int, seconds: float) -> None:
        self.client_api_requests.labels(homeserver, route, str(status)).inc()

    def route_decision(self, homeserver: str, route: str) -> None:
        self.route_decisions.labels(homeserver, route).inc()

    def token_resolution(self, result: str) -> None:
        self.token_resolutions.labels(result).inc()

    def registration(self, step: str, homeserver: str, status: int) -> None:
        self.registrations.labels(step, homeserver, str(status)).inc()

    def admin_token(self, homeserver: str, ok: bool) -> None:
        self.admin_token_ok.labels(homeserver).set(1 if ok else 0)

    def shared_state_up(self, up: bool) -> None:
        self.state_up.set(1 if up else 0)

    def homeserver_up(self, homeserver: str, up: bool) -> None:
        self.homeservers_up.labels(homeserver).set(1 if up else 0)

    def placement_ask(self, homeserver: str, kind: str, outcome: str) -> None:
        self.placement_asks.labels(homeserver, kind, outcome).inc()

    def directory_lookup(self, source: str, outcome: str, seconds: float) -> None:
        self.directory_lookups.labels(source, outcome).inc()
        if source != "-":
            self.directory_latency.labels(source).observe(seconds)

    def directory_cached(self, hit: bool) -> None:
        self.directory_cache.labels("hit" if hit else "miss").inc()

    def reject(self, errcode: str, status: int) -> None:
        self.rejected.labels(errcode, str(status)).inc()

    def sso_callback(self, result: str) -> None:
        self.sso_callbacks.labels(result).inc()

    def sso_sign_in(self, result: str) -> None:
        self.sso_sign_ins.labels(result).inc()

    def connections_open(self, count: int) -> None:
        self.open_connections.set(count)

    def connection_refused(self) -> None:
        self.refused_connections.inc()

    def connection_timeout(self, deadline: str) -> None:
        self.connection_timeouts.labels(deadline).inc()

    def unreadable_request(self, status: int) -> None:
        self.unreadable_requests.labels(str(status)).inc()

    def render(self) -> bytes:
        if os.environ.get(MULTIPROCESS_ENV):
            from prometheus_client import multiprocess

            everyone = CollectorRegistry()
            multiprocess.MultiProcessCollector(everyone)  # type: ignore[no-untyped-call]
            return generate_latest(everyone)
        return generate_latest(self.registry)
