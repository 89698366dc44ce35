"""``explain --ask-directory``: the account directory asked now, exactly as the portal asks
it (the same sources, the config's tokens), on a reactor of its own for this one command."""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

from twisted.internet import defer
from twisted.internet.selectreactor import SelectReactor
from twisted.python.failure import Failure

from synapse_base_cs_url.portal.config.portal_config import PortalConfig
from synapse_base_cs_url.portal.directory.directory import Location
from synapse_base_cs_url.portal.directory.identifier import Identifier
from synapse_base_cs_url.portal.reactor import PortalReactor
from synapse_base_cs_url.portal.upstream.client import Upstream
from synapse_base_cs_url.portal.wiring import Lasting, build_directory


def look_up(config: PortalConfig, identifiers: Sequence[Identifier]) -> list[Location]:
    """Where each identifier lives, asked of the sources now (nothing cached before)."""
    reactor = SelectReactor()
    portal_reactor = cast(PortalReactor, reactor)
    upstream = Upstream(portal_reactor, config.timeouts, config.upstream)
    lasting = Lasting.build(config, portal_reactor)
    directory = build_directory(config, upstream, portal_reactor, lasting)
    found: list[Location] = []
    failure: list[BaseException] = []

    async def ask_all() -> None:
        try:
            for identifier in identifiers:
                found.append(await directory.locate(identifier, "explain"))
        finally:
            await upstream.close()

    def done(result: object) -> None:
        if isinstance(result, Failure) and result.value is not None:
            failure.append(result.value)
        reactor.stop()

    reactor.callWhenRunning(lambda: defer.ensureDeferred(ask_all()).addBoth(done))
    reactor.run(installSignalHandlers=False)
    if failure:
        raise failure[0]
    return found
