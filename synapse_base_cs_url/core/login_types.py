"""The login types the package reads by name (the Matrix spec's ``m.login.*``), spelled once."""

from __future__ import annotations

PASSWORD_TYPE = "m.login.password"
TOKEN_TYPE = "m.login.token"
"""Single sign-on's last step: the token is opaque, so it says nothing of the user."""
APPSERVICE_TYPE = "m.login.application_service"
