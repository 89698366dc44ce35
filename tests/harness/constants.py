"""Values shared by the tests and the processes they start."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
#: The module's public path in homeserver.yaml.
MODULE = "synapse_base_cs_url.BaseCsUrlModule"
PASSWORD = "correct horse battery staple"
JWT_SECRET = "jwt-secret-for-tests-only-0123456789"
AS_TOKEN = "as_token_for_tests"
CUSTOM_LOGIN_SECRET = "open sesame"
#: Module and control twins share a server name so that their answers can be compared byte
#: for byte.
TWIN_SERVER_NAME = "twin.test"

#: Where tests connect from when the address matters: the portals listen on 127.0.0.1 and
#: connect to the homeservers from 127.0.0.1, so a login recorded from 127.0.0.2 came from
#: the client itself (directly, or through X-Forwarded-For).
CLIENT_IP = "127.0.0.2"
PORTAL_IP = "127.0.0.1"
DART_UA = "Dart/3.5 (dart:io)"

#: Where the helper modules loaded into test Synapses live.
SYNAPSE_MODULES = "tests.in_synapse"
