"""A Synapse module that records the client IP Synapse attributes to each login.

Synapse stores no IP at login time (``last_seen_ip`` only appears with the first
authenticated request, which a client sends straight to its homeserver, not via the portal).
The address Synapse itself assigns to the ``/login`` request is what its login spam checker
receives, after ``x_forwarded`` handling; this module appends it to a JSON-lines file so a
test can see whether Synapse saw the client or the portal.

    modules:
      - module: tests.in_synapse.login_ip_recorder.LoginIpRecorder
        config: {path: /tmp/logins.jsonl}
"""

from __future__ import annotations

import json
from collections.abc import Collection
from typing import Any

from synapse.module_api import NOT_SPAM, ModuleApi


class LoginIpRecorder:
    def __init__(self, config: dict[str, Any], api: ModuleApi) -> None:
        self._path = config["path"]
        api.register_spam_checker_callbacks(check_login_for_spam=self.check_login_for_spam)

    @staticmethod
    def parse_config(config: dict[str, Any]) -> dict[str, Any]:
        return config

    async def check_login_for_spam(
        self,
        user_id: str,
        device_id: str | None,
        initial_display_name: str | None,
        request_info: Collection[tuple[str | None, str]],
        auth_provider_id: str | None = None,
    ) -> Any:
        with open(self._path, "a", encoding="utf-8") as f:
            for user_agent, ip in request_info:
                record = {"user_id": user_id, "device_id": device_id, "ip": ip, "ua": user_agent}
                f.write(json.dumps(record) + "\n")
        return NOT_SPAM


def recorded(path: str) -> list[dict[str, Any]]:
    try:
        with open(path, encoding="utf-8") as f:
            return [json.loads(line) for line in f if line.strip()]
    except FileNotFoundError:
        return []
