"""HTTP clients for the tests: ``requests`` sessions from a chosen loopback address, and
the request bodies and calls the tests make again and again."""

from __future__ import annotations

import secrets
from typing import Any

import requests

from tests.harness.constants import CLIENT_IP, PASSWORD


class SourceAddressAdapter(requests.adapters.HTTPAdapter):
    """Make ``requests`` connect from a chosen loopback address, with a timeout unless the
    call gives one (a portal that hangs must fail the test, not hang it)."""

    def __init__(self, source_ip: str) -> None:
        self._source = (source_ip, 0)
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["source_address"] = self._source
        super().init_poolmanager(*args, **kwargs)

    default_timeout = 30.0

    def send(self, request: Any, *args: Any, **kwargs: Any) -> requests.Response:
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.default_timeout
        return super().send(request, *args, **kwargs)


def session_from(source_ip: str = CLIENT_IP) -> requests.Session:
    session = requests.Session()
    session.mount("http://", SourceAddressAdapter(source_ip))
    return session


def new_device() -> str:
    return "T" + secrets.token_hex(6).upper()


def password_body(user: str, device_id: str | None = None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": user},
        "password": PASSWORD,
        **extra,
    }
    if device_id:
        body["device_id"] = device_id
    return body


def whoami(base_url: str, token: str) -> requests.Response:
    return requests.get(
        f"{base_url}/_matrix/client/v3/account/whoami",
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
