"""The soak's vocabulary: the kinds of request, what each client saw (an outcome), the faults
and the windows that excuse an error."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

NAMES = ("h1", "h2", "h3")
PASSWORD = "soak password"
LOGIN = "/_matrix/client/v3/login"
REGISTER = "/_matrix/client/v3/register"
RESET = "/_matrix/client/v3/account/password/email/requestToken"
PROXIED_CLIENT = "Dart/3.5 (dart:io)"
LOGIN_KINDS = ("login-localpart", "login-email", "login-mxid-proxy", "login-localpart-proxy")
SESSION_KINDS = ("whoami", "send", "sync", "upload", "download")
KINDS = (*LOGIN_KINDS, "register", "reset", *SESSION_KINDS, "vanish")
#: Seconds after a fault ends during which its errors are still excused (the portal's probe
#: notices a homeserver back within ``upstream.probe_interval``; a client retrying waits).
GRACE = 10.0
#: Longest a login keeps being retried before it counts as lost.
GIVE_UP = 360.0
GENEROUS = {"per_second": 10000, "burst_count": 10000}
MB = 1024 * 1024


@dataclass
class Outcome:
    at: float
    kind: str
    home: str
    status: int
    """HTTP status; 0 for no answer (timeout, connection dropped)."""
    seconds: float
    retry_after: bool = False
    ok: bool = False
    why: str = ""


@dataclass
class Fault:
    name: str
    target: str
    """A homeserver's name, ``redis`` or a replica's name."""
    start: float
    end: float = 0.0
    fds_before: dict[str, int] = field(default_factory=dict)
    fds_after: dict[str, int] = field(default_factory=dict)


class Record:
    """Everything the clients saw, thread-safe."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.outcomes: list[Outcome] = []
        self.lost: list[str] = []
        self.faults: list[Fault] = []
        self.wrong_home: list[str] = []

    def add(self, outcome: Outcome) -> None:
        with self.lock:
            self.outcomes.append(outcome)

    def excused(self, outcome: Outcome) -> bool:
        """Whether a failed request fell in a window that excuses it."""
        for fault in self.faults:
            end = (fault.end or time.monotonic()) + GRACE
            started = outcome.at - outcome.seconds
            if not (started <= end and outcome.at >= fault.start):
                continue
            if fault.name == "replica killed" and started <= fault.start + 2:
                return True  # in flight at the replica when it died
            if fault.target == outcome.home and fault.name != "replica killed":
                return True
            if outcome.kind == "register" and fault.name in ("stopped", "hung", "restarted"):
                return True  # a new name is checked against every homeserver and reserved
            if outcome.kind == "reset" and fault.target == "redis":
                return True  # its client secret is shared: the last step may reach either
        return False
