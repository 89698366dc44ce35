"""What clients ask before logging in: ``/versions``, ``GET /login``, ``.well-known``.

``/versions`` and the login flows come from the homeservers themselves, cached for
``discovery_cache_ttl`` seconds. A client asks them before the portal knows who the user is,
so the answer must hold for whichever homeserver the login is routed to:

- ``versions``: the spec versions that *every* answering homeserver lists (order of the
  default homeserver's list); ``unstable_features``: a feature is listed only if every
  answering homeserver lists it, and is ``true`` only if all say ``true``.
- login flows: flows whose ``type`` every answering homeserver offers (the flow object is
  the default homeserver's, else the first answering one's), except the SSO flows, which
  come from the SSO homeservers (``sso.default`` and those of ``sso.identity_providers``):
  ``m.login.sso`` is offered if any of them offers it, and lists each identity provider
  from the homeserver the portal sends that provider to (an id listed under
  ``sso.identity_providers`` from that homeserver, any other id from ``sso.default``; a
  provider several homeservers share is listed once, from the first of them that offers it);
  ``m.login.token`` if any of them offers it; the legacy ``m.login.cas`` only as
  ``sso.default`` offers it (``/login/cas/redirect`` goes there).

A homeserver that does not answer is left out until the cache expires; if none answers the
client gets the 502/504 of the upstream errors. Failures are not cached.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from twisted.internet import defer

from synapse_base_cs_url.core.json_dict import json_object
from synapse_base_cs_url.portal import errors
from synapse_base_cs_url.portal.config.homeservers import Homeserver
from synapse_base_cs_url.portal.config.sso import SsoSettings
from synapse_base_cs_url.portal.reactor import Clock
from synapse_base_cs_url.portal.state.expiring import ExpiringMap
from synapse_base_cs_url.portal.state.single_flight import SingleFlight
from synapse_base_cs_url.portal.upstream.client import Upstream

logger = logging.getLogger(__name__)

SSO_FLOW_TYPES = frozenset({"m.login.sso", "m.login.token", "m.login.cas"})

Answers = list[tuple[str, dict[str, Any]]]
"""(homeserver name, JSON object) for every homeserver that answered, in config order."""


#: Discovery documents kept (one per path a client asks: a handful).
MAX_DOCUMENTS = 64


class TtlCache:
    """Documents by path for ``ttl`` seconds (``0``: not kept); concurrent misses for one
    path share one fetch, and a failure is not kept."""

    def __init__(self, clock: Clock, ttl: float) -> None:
        self._ttl = ttl
        self._values: ExpiringMap[bytes, bytes] = ExpiringMap(
            clock, max_entries=MAX_DOCUMENTS, ttl=max(ttl, 1.0), sliding=False
        )
        self._fetches: SingleFlight[bytes, bytes] = SingleFlight()

    async def get(self, key: bytes, fetch: Callable[[], Awaitable[bytes]]) -> bytes:
        hit = self._values.get(key)
        if hit is not None:
            return hit

        async def fetch_and_keep() -> bytes:
            value = await fetch()
            if self._ttl > 0:
                self._values.put(key, value, self._ttl)
            return value

        return await self._fetches.run(key, fetch_and_keep)


def well_known_client(public_baseurl: str) -> bytes:
    return json.dumps({"m.homeserver": {"base_url": public_baseurl}}).encode()


def combine_versions(answers: Answers) -> dict[str, Any]:
    lists = [a.get("versions") for _, a in answers]
    version_lists = [v for v in lists if isinstance(v, list)]
    common: list[Any] = []
    if version_lists:
        others = [set(map(str, v)) for v in version_lists[1:]]
        common = [v for v in version_lists[0] if all(str(v) in o for o in others)]
    features = [a.get("unstable_features") for _, a in answers]
    feature_maps = [f for f in features if isinstance(f, dict)]
    combined: dict[str, bool] = {}
    if feature_maps and len(feature_maps) == len(answers):
        for name in feature_maps[0]:
            if all(name in f for f in feature_maps):
                combined[name] = all(f[name] is True for f in feature_maps)
    return {"versions": common, "unstable_features": combined}


def _flows(answer: Mapping[str, Any]) -> list[dict[str, Any]]:
    flows = answer.get("flows")
    if not isinstance(flows, list):
        return []
    return [f for f in flows if isinstance(f, dict) and isinstance(f.get("type"), str)]


def combine_login_flows(answers: Answers, *, sso: SsoSettings | None) -> dict[str, Any]:
    """``sso`` ``None``: the portal serves no single sign-on, so it offers none."""
    by_server = {name: _flows(answer) for name, answer in answers}
    type_sets = [{f["type"] for f in flows} for flows in by_server.values()]
    common_types = set.intersection(*type_sets) if type_sets else set()
    first = next(iter(by_server.values()), [])
    combined = [f for f in first if f["type"] in common_types and f["type"] not in SSO_FLOW_TYPES]
    if sso is not None:
        combined += _sso_flows(by_server, sso)
    return {"flows": combined}


def _sso_flows(by_server: Mapping[str, list[dict[str, Any]]], sso: SsoSettings) -> list[Any]:
    def flow(hs: str, flow_type: str) -> dict[str, Any] | None:
        return next((f for f in by_server.get(hs, []) if f["type"] == flow_type), None)

    result: list[dict[str, Any]] = []
    sso_flows = [(hs, f) for hs in sso.homeservers if (f := flow(hs, "m.login.sso")) is not None]
    if sso_flows:
        _, first_flow = sso_flows[0]
        merged = dict(first_flow)  # the default's flow object if it offers SSO
        if any("identity_providers" in f for _, f in sso_flows):
            providers: list[Any] = []
            seen: set[str] = set()
            for hs, f in sso_flows:
                for idp in f.get("identity_providers") or []:
                    idp_id = idp.get("id") if isinstance(idp, dict) else None
                    if (
                        isinstance(idp_id, str)
                        and hs in sso.offered_by(idp_id)
                        and idp_id not in seen
                    ):
                        seen.add(idp_id)
                        providers.append(idp)
            merged["identity_providers"] = providers
        result.append(merged)
    tokens = [f for hs in sso.homeservers if (f := flow(hs, "m.login.token")) is not None]
    if tokens:
        result.append(tokens[0])
    cas = flow(sso.default, "m.login.cas")
    if cas is not None:
        result.append(cas)
    return result


class Discovery:
    """Answers ``/versions`` and ``GET /login`` from the homeservers' own, cached."""

    def __init__(
        self,
        upstream: Upstream,
        homeservers: Sequence[Homeserver],
        *,
        sso: SsoSettings | None,
        clock: Clock,
        ttl: float,
    ) -> None:
        self._upstream = upstream
        self._homeservers = homeservers
        self._sso = sso
        self._cache = TtlCache(clock, ttl)

    async def versions(self, path: bytes) -> bytes:
        async def fetch() -> bytes:
            return json.dumps(combine_versions(await self._ask_all(path))).encode()

        return await self._cache.get(path, fetch)

    async def login_flows(self, path: bytes) -> bytes:
        async def fetch() -> bytes:
            answers = await self._ask_all(path)
            return json.dumps(combine_login_flows(answers, sso=self._sso)).encode()

        return await self._cache.get(path, fetch)

    async def _ask_all(self, path: bytes) -> Answers:
        results = await defer.DeferredList(
            [defer.ensureDeferred(self._ask(hs, path)) for hs in self._homeservers],
            consumeErrors=True,
        )
        answers: Answers = []
        failures: list[errors.MatrixError] = []
        for hs, (ok, value) in zip(self._homeservers, results, strict=True):
            result: Any = value  # the answer, or a Failure
            if ok:
                answers.append((hs.name, result))
            else:
                err = result.value
                if not isinstance(err, errors.MatrixError):
                    err = errors.bad_gateway(hs.name, repr(err))
                logger.warning("discovery: GET %s: %s", path.decode(), err.message)
                failures.append(err)
        if not answers:
            status = 504 if all(f.status == 504 for f in failures) else 502
            raise errors.MatrixError(
                status,
                errors.UNKNOWN,
                f"No homeserver answered GET {path.decode()}: "
                + "; ".join(f.message for f in failures),
            )
        return answers

    async def _ask(self, homeserver: Homeserver, path: bytes) -> dict[str, Any]:
        response = await self._upstream.request(homeserver, b"GET", path)
        if response.status != 200:
            raise errors.bad_gateway(homeserver.name, f"HTTP {response.status} for {path.decode()}")
        answer = json_object(response.body)
        if answer is None:
            raise errors.bad_gateway(homeserver.name, "not a JSON object")
        return answer
