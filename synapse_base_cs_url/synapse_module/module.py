"""The Synapse-facing glue: parse the config, check Synapse, install the hooks, count.

Everything that decides *which* URL a login gets lives elsewhere (``selection``, ``config``,
``login_response``); everything that touches Synapse internals lives in
``_synapse_internals``.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from typing import Any

from synapse.module_api import ModuleApi
from synapse.module_api.errors import ConfigError

from synapse_base_cs_url.core import JsonDict, Selection
from synapse_base_cs_url.core.login_response import with_base_url
from synapse_base_cs_url.core.urls import validate_base_url
from synapse_base_cs_url.synapse_module import _synapse_internals as internals
from synapse_base_cs_url.synapse_module.config import ModuleConfig
from synapse_base_cs_url.synapse_module.metrics import HOOK_ERROR, ModuleMetrics
from synapse_base_cs_url.synapse_module.placement import PlacementGuard
from synapse_base_cs_url.synapse_module.selection import (
    COMPUTE_ERROR,
    COMPUTE_INVALID,
    COMPUTE_RULE,
    DEFAULT_RULE,
    UrlSelector,
    context_for,
)

logger = logging.getLogger(__name__)


class BaseCsUrlModule:
    """Adds ``base_cs_url`` (and a matching ``well_known``) to every successful login."""

    def __init__(self, config: ModuleConfig, api: ModuleApi) -> None:
        internals.check_compatibility(api)
        self._config = config
        self._api = api
        try:
            self._default_url = config.base_cs_url or validate_base_url(api.public_baseurl)
        except ValueError as e:
            raise ConfigError(
                f"base_cs_url is not set and Synapse's public_baseurl cannot be used: {e}",
                ("base_cs_url",),
            ) from None
        self._selector = UrlSelector(
            default_url=self._default_url, rules=config.rules, compute=config.compute
        )
        self._static_selection = Selection(target=self._default_url, rule_name=DEFAULT_RULE)
        self._metrics = ModuleMetrics(api.server_name)
        endpoints = [internals.LOGIN]
        if config.on_register:
            endpoints.append(internals.REGISTER)
        rule_names = [DEFAULT_RULE, *(rule.name for rule in config.rules)]
        if config.compute is not None:
            rule_names.append(COMPUTE_RULE)
        reasons = [HOOK_ERROR] + ([COMPUTE_ERROR, COMPUTE_INVALID] if config.compute else [])
        self._metrics.prepare(endpoints, rule_names, reasons)
        for endpoint in endpoints:
            internals.register_response_hook(
                api,
                endpoint,
                self._hook_for(endpoint),
                on_failure=functools.partial(self._failed_open, endpoint, HOOK_ERROR),
            )
        self._placement = (
            PlacementGuard(config.placement, api) if config.placement is not None else None
        )
        logger.info(
            "synapse-base-cs-url: %s responses get base_cs_url; fallback %s, %d rule(s)%s",
            "/".join(endpoints),
            self._default_url,
            len(config.rules),
            f", compute {config.compute.path}" if config.compute else "",
        )

    @staticmethod
    def parse_config(config: dict[str, Any]) -> ModuleConfig:
        try:
            return ModuleConfig.from_config(config)
        except ValueError as e:
            raise ConfigError(f"synapse_base_cs_url: {e}") from None

    async def choose_base_url(
        self,
        facts: internals.RequestFacts,
        response: dict[str, Any],
        endpoint: str = internals.LOGIN,
    ) -> Selection[str]:
        """The base URL for this response, and the name of what chose it."""
        if self._selector.is_static:  # the common case: no facts to look at
            return self._static_selection
        ctx = context_for(facts.body(), facts.client_ip(), response)
        if self._selector.compute is None:
            return self._selector.select_by_rules(ctx)
        return await self._selector.select(
            ctx, on_failure=lambda reason: self._failed_open(endpoint, reason)
        )

    def _hook_for(self, endpoint: str) -> internals.ResponseHook:
        """The hook for ``endpoint``: synchronous unless a ``compute`` function must be
        awaited, since a login pays for every coroutine on its way."""
        selector, static = self._selector, self._static_selection
        set_well_known = self._config.well_known
        metrics = self._metrics
        debug_enabled = functools.partial(logger.isEnabledFor, logging.DEBUG)

        def finish(response: JsonDict, selection: Selection[str]) -> JsonDict:
            amended = with_base_url(response, selection.target, set_well_known=set_well_known)
            try:  # noqa: SIM105 (cheaper than contextlib.suppress on every login)
                metrics.amended(endpoint, selection.rule_name)
            except Exception:  # never lose a ready response to counting
                pass
            if debug_enabled():
                logger.debug(
                    "synapse-base-cs-url: %s of %s gets %s (rule %s)",
                    endpoint,
                    response.get("user_id"),
                    selection.target,
                    selection.rule_name,
                )
            return amended

        if selector.is_static:

            def amend_static(facts: internals.RequestFacts, response: JsonDict) -> JsonDict:
                return finish(response, static)

            return amend_static

        if selector.compute is None:

            def amend_by_rules(facts: internals.RequestFacts, response: JsonDict) -> JsonDict:
                ctx = context_for(facts.body(), facts.client_ip(), response)
                return finish(response, selector.select_by_rules(ctx))

            return amend_by_rules

        async def amend_computed(facts: internals.RequestFacts, response: JsonDict) -> JsonDict:
            return finish(response, await self.choose_base_url(facts, response, endpoint))

        return amend_computed

    def _failed_open(self, endpoint: str, reason: str) -> None:
        # Counting must never be what breaks a login.
        with contextlib.suppress(Exception):
            self._metrics.failed_open(endpoint, reason)

    def __repr__(self) -> str:
        rules = len(self._config.rules)
        return f"BaseCsUrlModule(base_cs_url={self._default_url!r}, rules={rules})"
