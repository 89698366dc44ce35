"""Every client-server API path the portal recognises, in one place (each matched whole,
with ``fullmatch``), so that the login handler, the account steps, the gateway and the URL
map name one pattern for one endpoint (versions as Synapse serves them); and the one table
of what the gateway must know of the endpoints it treats apart (:data:`GATEWAY_ENDPOINTS`),
read by its routing, its exchanges and its streaming alike."""

from __future__ import annotations

import enum
import re

import attr

#: ``POST /login`` (and ``GET`` for the flows).
LOGIN_PATH = re.compile(rb"/_matrix/client/(?:api/v1|r0|v3)/login")
#: Synapse's ``SsoRedirectServlet`` paths; the identity provider id as Synapse allows it.
SSO_REDIRECT_PATH = re.compile(
    rb"/_matrix/client/(?:(?:api/v1|r0|v3)/login/(?:sso|cas)/redirect"
    rb"|(?:r0|v3)/login/sso/redirect/(?P<idp>[A-Za-z0-9_.~-]+))"
)
VERSIONS_PATH = b"/_matrix/client/versions"
#: The identity lookup Tchap's clients ask before login (``identity_info``), and its twin
#: for the homeservers' modules.
INFO_PATH = b"/_matrix/identity/api/v1/info"
INTERNAL_INFO_PATH = b"/_matrix/identity/api/v1/internal-info"
#: ``POST /register`` (every step of a user-interactive registration).
REGISTER_PATH = re.compile(rb"/_matrix/client/(?:r0|v3|unstable)/register")
#: ``GET /register/available?username=``.
AVAILABLE_PATH = re.compile(rb"/_matrix/client/(?:r0|v3|unstable)/register/available")
#: A registration's e-mail or phone verification (group 1: the medium).
REGISTER_TOKEN_PATH = re.compile(
    rb"/_matrix/client/(?:r0|v3|unstable)/register/(email|msisdn)/requestToken"
)
#: A forgotten password's e-mail or phone verification (group 1: the medium).
RESET_TOKEN_PATH = re.compile(
    rb"/_matrix/client/(?:r0|v3|unstable)/account/password/(email|msisdn)/requestToken"
)
#: ``POST /account/password``: a reset's last step, or a signed-in user's change.
PASSWORD_PATH = re.compile(rb"/_matrix/client/(?:r0|v3|unstable)/account/password")
#: ``POST /refresh`` (carries a refresh token, no access token).
REFRESH_PATH = re.compile(rb"/_matrix/client/(?:v1|v3)/refresh")
#: Media downloads and thumbnails (group 1: the server name of the media).
MEDIA_PATH = re.compile(
    rb"/_matrix/(?:media/(?:r0|v1|v3)|client/v1/media)/(?:download|thumbnail)/([^/]+)/[^/]+(?:/.*)?"
)
#: ``/sync``: a long poll, as long as the client asks.
SYNC_PATH = re.compile(rb"/_matrix/client/(?:r0|v3)/sync")
#: Requests after which an access token is no more (logout, deactivation).
FORGETS_PATH = re.compile(rb"/_matrix/client/(?:r0|v3)/(?:logout(?:/all)?|account/deactivate)")
#: Who an access token belongs to (asked of homeservers, never served).
WHOAMI_PATH = b"/_matrix/client/v3/account/whoami"
#: Everything of the client-server API (what the gateway carries when nothing else does).
CLIENT_API_PATH = re.compile(rb"/_matrix/(?:client|media)/.*")


class Learns(enum.Enum):
    """What the gateway learns from a homeserver's answer to an endpoint."""

    NOTHING = "nothing"
    TOKENS = "tokens"
    """A ``200`` names an access (and refresh) token: remembered with its homeserver."""
    REGISTRATION = "registration"
    """A ``200`` names the new account and its tokens; a ``401`` the session to follow."""
    FORGETS = "forgets"
    """A ``200`` ends the request's access token (logout, deactivation)."""


@attr.s(auto_attribs=True, frozen=True, slots=True)
class ClientEndpoint:
    """What the gateway must know of one endpoint, in one row: how it is routed and what
    its answer teaches. Every endpoint not in :data:`GATEWAY_ENDPOINTS` is routed by its
    token (or its path) and streamed both ways, learning nothing."""

    path: re.Pattern[bytes]
    methods: tuple[bytes, ...]
    by_body: bool = False
    """Routed by what its body says: read whole before routing, never streamed (an upload
    cannot be one of these)."""
    learns: Learns = Learns.NOTHING

    def reads_answer(self, status: int) -> bool:
        """Whether an answer with ``status`` is read whole, to learn from it."""
        if self.learns is Learns.TOKENS:
            return status == 200
        return self.learns is Learns.REGISTRATION and status in (200, 401)


GATEWAY_ENDPOINTS: tuple[ClientEndpoint, ...] = (
    ClientEndpoint(REGISTER_PATH, (b"POST",), by_body=True, learns=Learns.REGISTRATION),
    ClientEndpoint(REFRESH_PATH, (b"POST",), by_body=True, learns=Learns.TOKENS),
    ClientEndpoint(REGISTER_TOKEN_PATH, (b"POST",), by_body=True),
    ClientEndpoint(RESET_TOKEN_PATH, (b"POST",), by_body=True),
    ClientEndpoint(PASSWORD_PATH, (b"POST",), by_body=True),
    ClientEndpoint(FORGETS_PATH, (b"POST",), learns=Learns.FORGETS),
)


def gateway_endpoint(method: bytes, path: bytes) -> ClientEndpoint | None:
    """The row of :data:`GATEWAY_ENDPOINTS` a request is (``None``: an ordinary one)."""
    for endpoint in GATEWAY_ENDPOINTS:
        if method in endpoint.methods and endpoint.path.fullmatch(path):
            return endpoint
    return None


def routed_by_body(method: bytes, path: bytes) -> bool:
    """A registration, a token refresh or a password reset step: where it goes is in its
    body (so the body is read whole before routing)."""
    endpoint = gateway_endpoint(method, path)
    return endpoint is not None and endpoint.by_body
