"""A throwaway SMTP sink on loopback (aiosmtpd): Synapse's e-mails (password resets) are
captured here for the test to read."""

from __future__ import annotations

import email
import email.policy
import re
import time
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller

from synapse_base_cs_url._dev.throwaway_synapse import free_port


class _Keep:
    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append(parsed)
        return "250 OK"


class SmtpSink:
    def __init__(self) -> None:
        self.port = free_port()
        self._handler = _Keep()
        self._controller = Controller(self._handler, hostname="127.0.0.1", port=self.port)
        self._controller.start()

    def synapse_config(self, sender: str) -> dict[str, Any]:
        """homeserver.yaml's ``email`` section, pointed here (no TLS: loopback)."""
        return {
            "smtp_host": "127.0.0.1",
            "smtp_port": self.port,
            "force_tls": False,
            "require_transport_security": False,
            "enable_tls": False,
            "notif_from": f"Test <{sender}>",
            "app_name": "test",
        }

    def wait_for(self, to: str, timeout: float = 20.0) -> EmailMessage:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for message in self._handler.messages:
                if to in str(message.get("To", "")):
                    return message
            time.sleep(0.05)
        raise AssertionError(f"no e-mail to {to} within {timeout}s")

    @staticmethod
    def link(message: EmailMessage, pattern: str) -> str:
        """The first link in the message's text matching ``pattern`` (a regex)."""
        part = message.get_body(preferencelist=("plain", "html"))
        assert part is not None
        text = part.get_content().replace("&amp;", "&")
        found = re.search(pattern, text)
        assert found is not None, text
        return found.group(0)

    def close(self) -> None:
        self._controller.stop()
