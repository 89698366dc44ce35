"""Every client-server API path the portal recognises, in one place (each matched whole,
with ``fullmatch``), so that the login handler, the account steps, the gateway and the URL
map name one pattern for one endpoint. Versions as Synapse serves them."""

from __future__ import annotations

import re

#: ``POST /login`` (and ``GET`` for the flows).
LOGIN_PATH = re.compile(rb"/_matrix/client/(?:api/v1|r0|v3)/login")
#: Synapse's ``SsoRedirectServlet`` paths; the identity provider id as Synapse allows it.
SSO_REDIRECT_PATH = re.compile(
    rb"/_matrix/client/(?:(?:api/v1|r0|v3)/login/(?:sso|cas)/redirect"
    rb"|(?:r0|v3)/login/sso/redirect/(?P<idp>[A-Za-z0-9_.~-]+))"
)
VERSIONS_PATH = b"/_matrix/client/versions"
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
