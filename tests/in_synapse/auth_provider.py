"""A password auth provider module, loaded into a real Synapse by the integration tests.

It accepts a custom login type, ``com.example.login.fixed``, with a fixed secret, so the
tests can check that logins accepted by other modules also get ``base_cs_url``.
"""

from __future__ import annotations

from typing import Any

from synapse.module_api import ModuleApi

LOGIN_TYPE = "com.example.login.fixed"


class FixedSecretAuthProvider:
    def __init__(self, config: dict[str, Any], api: ModuleApi) -> None:
        self._api = api
        self._secret = config["secret"]
        api.register_password_auth_provider_callbacks(
            auth_checkers={(LOGIN_TYPE, ("secret",)): self.check_auth}
        )

    async def check_auth(
        self, username: str, login_type: str, login_dict: dict[str, Any]
    ) -> tuple[str, None] | None:
        if login_type != LOGIN_TYPE or login_dict.get("secret") != self._secret:
            return None
        user_id = self._api.get_qualified_user_id(username)
        if not await self._api.check_user_exists(user_id):
            return None
        return user_id, None
