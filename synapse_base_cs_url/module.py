"""The Synapse-facing glue: parse the config, check Synapse, install the login hook.

Everything that decides *which* URL a login gets lives elsewhere (``config``,
``login_response``); everything that touches Synapse internals lives in
``_synapse_internals``.
"""

from __future__ import annotations

import logging
from typing import Any

from synapse.module_api import ModuleApi
from synapse.module_api.errors import ConfigError

from synapse_base_cs_url import _synapse_internals as internals
from synapse_base_cs_url.config import ModuleConfig
from synapse_base_cs_url.login_response import with_base_url
from synapse_base_cs_url.urls import validate_base_url

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
        internals.register_response_hook(api, internals.LOGIN, self.amend_response)
        logger.info("synapse-base-cs-url: login responses get base_cs_url=%s", self._default_url)

    @staticmethod
    def parse_config(config: dict[str, Any]) -> ModuleConfig:
        try:
            return ModuleConfig.from_config(config)
        except ValueError as e:
            raise ConfigError(f"synapse_base_cs_url: {e}") from None

    async def choose_base_url(self, facts: internals.RequestFacts, response: dict[str, Any]) -> str:
        """The base URL for this login."""
        return self._default_url

    async def amend_response(
        self, facts: internals.RequestFacts, response: dict[str, Any]
    ) -> dict[str, Any]:
        url = await self.choose_base_url(facts, response)
        return with_base_url(response, url, set_well_known=self._config.well_known)

    def __repr__(self) -> str:
        return f"BaseCsUrlModule(base_cs_url={self._default_url!r})"
