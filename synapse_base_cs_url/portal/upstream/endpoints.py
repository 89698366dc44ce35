"""How the portal connects to a homeserver: a refused connection known at once.

Twisted's ``Agent`` connects through a ``HostnameEndpoint``, which tries the addresses a name
resolves to one after the other, ``attemptDelay`` (0.3 s) apart, and notices that the list
has ended only at its next turn: a homeserver that refuses connections cost every request to
it 0.3 s. Here an IP literal (``proxy_url: http://10.0.0.5:8008``) is connected to directly
(no name to resolve, nothing to race), and a name gets ``HostnameEndpoint`` with
:data:`ATTEMPT_DELAY`: every address of a name is still tried, and the end of the list is
noticed within that delay.
"""

from __future__ import annotations

import ipaddress
from typing import cast

from twisted.internet.endpoints import (
    HostnameEndpoint,
    TCP4ClientEndpoint,
    TCP6ClientEndpoint,
    wrapClientTLS,
)
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.web.client import URI, BrowserLikePolicyForHTTPS
from twisted.web.iweb import IAgentEndpointFactory
from zope.interface import implementer

from synapse_base_cs_url.portal.reactor import PortalReactor

#: Seconds between connection attempts to the addresses of one name (Twisted's default is
#: 0.3 s, which is also how late a refusal of the last one was noticed).
ATTEMPT_DELAY = 0.05


@implementer(IAgentEndpointFactory)
class HomeserverEndpoints:
    """The endpoint for each homeserver URL: TCP (with TLS for ``https``), as Twisted's
    own factory, but without waiting to learn that a connection was refused."""

    def __init__(self, reactor: PortalReactor, connect_timeout: float) -> None:
        self._reactor = reactor
        self._timeout = connect_timeout
        self._tls = BrowserLikePolicyForHTTPS()  # type: ignore[no-untyped-call]

    def endpointForURI(self, uri: URI) -> IStreamClientEndpoint:
        host = uri.host.decode("ascii")
        endpoint: object
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            endpoint = HostnameEndpoint(
                self._reactor, host, uri.port, timeout=self._timeout, attemptDelay=ATTEMPT_DELAY
            )
        else:
            tcp = TCP4ClientEndpoint if address.version == 4 else TCP6ClientEndpoint
            endpoint = tcp(self._reactor, host, uri.port, timeout=self._timeout)
        if uri.scheme == b"https":
            creator = self._tls.creatorForNetloc(uri.host, uri.port)
            endpoint = wrapClientTLS(creator, cast(IStreamClientEndpoint, endpoint))
        return cast(IStreamClientEndpoint, endpoint)
