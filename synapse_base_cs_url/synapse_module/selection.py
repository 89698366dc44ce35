"""Which base URL a login (or registration) response gets: compute, then rules, then default.

Pure: no Synapse or Twisted imports, so it is unit-tested alone and the glue in ``module``
stays thin. Nothing here may make a login fail: a compute function that raises or returns
garbage is logged and skipped, and the rules and the fallback always produce a URL.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

import attr

from synapse_base_cs_url.core import LoginContext, RuleSet, Selection
from synapse_base_cs_url.core.urls import validate_base_url
from synapse_base_cs_url.synapse_module.compute import ComputeHook

logger = logging.getLogger(__name__)

#: Rule name reported when the fallback URL (``base_cs_url`` / ``public_baseurl``) is used.
DEFAULT_RULE = "default"
#: Rule name reported when the ``compute`` function chose the URL.
COMPUTE_RULE = "compute"
#: Names the rules cannot use, since metrics and logs would confuse them.
RESERVED_RULE_NAMES = (DEFAULT_RULE, COMPUTE_RULE)

#: ``on_failure`` reasons: the compute function raised / returned something not a URL.
COMPUTE_ERROR = "compute_error"
COMPUTE_INVALID = "compute_invalid"

FailureCallback = Callable[[str], None]


def _ignore(reason: str) -> None:
    pass


def context_for(
    body: Mapping[str, object] | None,
    client_ip: str | None,
    response: Mapping[str, object],
) -> LoginContext:
    """The facts of one successful login or registration.

    The request body is what the client sent (a bare localpart, a third-party id, any
    capitalisation); the response's ``user_id`` and ``device_id`` are what Synapse decided,
    so they win: rules and hash pools then see the canonical user whatever was typed.
    """
    user_id = response.get("user_id")
    device_id = response.get("device_id")
    return LoginContext.from_login_body(
        body or {},
        client_ip=client_ip,
        user_id=user_id if isinstance(user_id, str) else None,
        device_id=device_id if isinstance(device_id, str) else None,
    )


@attr.s(auto_attribs=True, frozen=True, slots=True, kw_only=True)
class UrlSelector:
    """Picks the URL for a login: ``compute`` first, then the first matching rule, then
    ``default_url``. Shared by every endpoint of one homeserver."""

    default_url: str
    rules: RuleSet[str] = attr.ib(factory=RuleSet)
    compute: ComputeHook | None = None

    @property
    def is_static(self) -> bool:
        """True when every login gets ``default_url``, so no context need be built."""
        return self.compute is None and not self.rules

    def select_by_rules(self, ctx: LoginContext) -> Selection[str]:
        """The first matching rule's URL, else ``default_url`` (what ``select`` does after
        ``compute``): no coroutine, for the common case of no ``compute`` function."""
        selection = self.rules.select(ctx)
        if selection is not None:
            return selection
        return Selection(self.default_url, DEFAULT_RULE)

    async def select(
        self, ctx: LoginContext, on_failure: FailureCallback = _ignore
    ) -> Selection[str]:
        """The URL for ``ctx`` and the name of what chose it (for metrics).

        ``on_failure`` is told (with ``COMPUTE_ERROR`` or ``COMPUTE_INVALID``) when the
        compute function had to be skipped.
        """
        if self.compute is not None:
            url = await self._computed(ctx, on_failure)
            if url is not None:
                return Selection(target=url, rule_name=COMPUTE_RULE)
        return self.select_by_rules(ctx)

    async def _computed(self, ctx: LoginContext, on_failure: FailureCallback) -> str | None:
        assert self.compute is not None
        # The function only ever sees user id, login type, IP and device id, never the
        # request body, so neither it nor these logs can leak a password or token.
        try:
            result = await self.compute(ctx)
        except Exception:
            logger.warning(
                "synapse-base-cs-url: compute function %s raised for %s; using the rules instead",
                self.compute.path,
                ctx.user_id,
                exc_info=True,
            )
            on_failure(COMPUTE_ERROR)
            return None
        if result is None:
            return None
        try:
            return validate_base_url(result)
        except ValueError as e:
            logger.warning(
                "synapse-base-cs-url: compute function %s returned an invalid base URL for %s "
                "(%s); using the rules instead",
                self.compute.path,
                ctx.user_id,
                _shorten(str(e)),
            )
            on_failure(COMPUTE_INVALID)
            return None


def _shorten(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[:limit] + "..."
