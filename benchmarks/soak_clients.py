"""The soak's clients, each a thread: logins retried as a client retries them, registrations,
password resets, sessions at the portal's address, and clients that vanish."""

from __future__ import annotations

import json
import os
import random
import secrets
import socket
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from functools import partial
from typing import Any

import requests
from soak_deployment import Deployment, email_of
from soak_record import (
    GIVE_UP,
    LOGIN,
    NAMES,
    PASSWORD,
    PROXIED_CLIENT,
    REGISTER,
    RESET,
    Outcome,
    Record,
)

from synapse_base_cs_url.core import rendezvous_pick


class Clients:
    def __init__(self, d: Deployment, record: Record, stop: threading.Event) -> None:
        self.d = d
        self.record = record
        self.stop = stop
        self.users = list(d.users)
        self.users_lock = threading.Lock()

    def home_of_server(self, server_name: str) -> str:
        return next(n for n, hs in self.d.homeservers.items() if hs.server_name == server_name)

    def timed(
        self,
        kind: str,
        home: str,
        send: Callable[[], requests.Response],
        ok: Callable[[requests.Response], bool] = lambda r: r.status_code == 200,
    ) -> tuple[Outcome, requests.Response | None]:
        started = time.monotonic()
        try:
            answer: requests.Response | None = send()
        except requests.RequestException as e:
            answer = None
            why = type(e).__name__
        now = time.monotonic()
        outcome = Outcome(
            now, kind, home, 0 if answer is None else answer.status_code, now - started
        )
        if answer is not None:
            outcome.retry_after = "Retry-After" in answer.headers
            outcome.ok = ok(answer)
            why = "" if outcome.ok else answer.text[:200]
        outcome.why = why
        self.record.add(outcome)
        return outcome, answer

    def pick_user(self) -> tuple[str, str]:
        with self.users_lock:
            return random.choice(self.users)

    # logins, retried until they succeed (or count as lost)

    def login_body(self, kind: str, user: str, home: str) -> dict[str, Any]:
        if kind == "login-email":
            identifier = {"type": "m.id.thirdparty", "medium": "email", "address": email_of(user)}
        elif kind == "login-mxid-proxy":
            identifier = {"type": "m.id.user", "user": f"@{user}:{home}.test"}
        else:
            identifier = {"type": "m.id.user", "user": user}
        return {"type": "m.login.password", "identifier": identifier, "password": PASSWORD}

    def login_until_done(
        self, session: requests.Session, kind: str, user: str, home: str
    ) -> str | None:
        """One login, retried as a client would; its access token (logged out after unless
        kept), or None if lost."""
        body = self.login_body(kind, user, home)
        headers = {"User-Agent": PROXIED_CLIENT} if kind.endswith("-proxy") else {}
        give_up = time.monotonic() + GIVE_UP
        while time.monotonic() < give_up:
            outcome, answer = self.timed(
                kind,
                home,
                lambda: session.post(
                    self.d.nginx.url + LOGIN,
                    json=body,
                    headers=headers,
                    allow_redirects=False,
                    timeout=30,
                ),
                ok=lambda r: r.status_code in (200, 307),
            )
            if answer is not None and answer.status_code == 307:
                location = answer.headers["Location"]
                try:
                    answer = requests.post(location, json=body, timeout=30)
                except requests.RequestException:
                    answer = None
                if answer is None or answer.status_code != 200:
                    outcome.ok = False
                    outcome.status = 0 if answer is None else answer.status_code
                    outcome.why = f"at the homeserver: {outcome.status}"
                    # When it failed, not when the portal answered: a homeserver stopped
                    # between the two is a fault that excuses it.
                    outcome.at = time.monotonic()
            if outcome.ok and answer is not None:
                landed = self.home_of_server(answer.json()["user_id"].partition(":")[2])
                if landed != home:
                    with self.record.lock:
                        self.record.wrong_home.append(f"{kind} {user}: {landed}, not {home}")
                    return None
                token: str = answer.json()["access_token"]
                return token
            wait = 1.0
            if answer is not None and "Retry-After" in answer.headers:
                wait = min(5.0, float(answer.headers["Retry-After"]))
            if self.stop.wait(wait):
                return None
        with self.record.lock:
            self.record.lost.append(f"{kind} {user} ({home})")
        return None

    def logout(self, home: str, token: str) -> None:
        with suppress(requests.RequestException):
            requests.post(
                self.d.homeservers[home].base_url + "/_matrix/client/v3/logout",
                headers={"Authorization": f"Bearer {token}"},
                timeout=10,
            )

    def login_worker(self, kinds: tuple[str, ...], pause: float) -> None:
        session = requests.Session()
        while not self.stop.is_set():
            user, home = self.pick_user()
            kind = random.choice(kinds)
            if kind == "login-email" and not user.startswith("soaker"):
                kind = "login-localpart"
            token = self.login_until_done(session, kind, user, home)
            if token is not None:
                self.logout(home, token)
            self.stop.wait(pause)

    # registrations

    def register_worker(self, pause: float) -> None:
        session = requests.Session()
        while not self.stop.is_set():
            name = "new" + secrets.token_hex(4)
            home = rendezvous_pick(list(NAMES), name)
            if self.register_until_done(session, name, home):
                with self.users_lock:
                    self.users.append((name, home))
            self.stop.wait(pause)

    def register_until_done(self, session: requests.Session, name: str, home: str) -> bool:
        give_up = time.monotonic() + GIVE_UP
        body: dict[str, Any] = {"username": name, "password": PASSWORD}
        while time.monotonic() < give_up:
            steps = partial(self.register_steps, session, body)
            outcome, answer = self.timed("register", home, steps)
            if outcome.ok and answer is not None:
                token = answer.json()["access_token"]
                self.logout(home, token)
                return True
            if answer is not None and answer.status_code == 400:
                return False  # refused for good (e.g. a name taken): not a lost login
            if self.stop.wait(1.0):
                return False
        with self.record.lock:
            self.record.lost.append(f"register {name} ({home})")
        return False

    def register_steps(self, session: requests.Session, body: dict[str, Any]) -> requests.Response:
        """A registration with the dummy stage, each step sent to the portal's address."""
        first = self.follow(session, REGISTER, body)
        if first.status_code != 401 or "session" not in first.json():
            return first
        auth = {"type": "m.login.dummy", "session": first.json()["session"]}
        return self.follow(session, REGISTER, {**body, "auth": auth})

    # password resets

    def follow(
        self, session: requests.Session, path: str, body: dict[str, Any]
    ) -> requests.Response:
        """A POST to the portal's address, following its 307 as a client does."""
        answer = session.post(self.d.nginx.url + path, json=body, allow_redirects=False, timeout=30)
        if answer.status_code == 307:
            answer = requests.post(answer.headers["Location"], json=body, timeout=30)
        return answer

    def reset_worker(self, pause: float) -> None:
        session = requests.Session()
        while not self.stop.is_set():
            user, home = self.pick_user()
            if user.startswith("soaker"):
                body = {
                    "email": email_of(user),
                    "client_secret": secrets.token_hex(8),
                    "send_attempt": 1,
                }
                self.timed("reset", home, partial(self.follow, session, RESET, body))
            self.stop.wait(pause)

    # sessions staying at the portal's address

    def session_worker(self, user: str, home: str, pause: float) -> None:
        http = requests.Session()
        token = None
        while token is None and not self.stop.is_set():
            token = self.login_until_done(http, "login-localpart", user, home)
        if token is None:
            return
        auth = {"Authorization": f"Bearer {token}"}
        client = self.d.nginx.url + "/_matrix/client/v3"
        room = None
        since = None
        while not self.stop.is_set():
            if room is None:
                create = partial(
                    http.post, client + "/createRoom", json={}, headers=auth, timeout=30
                )
                _, made = self.timed("send", home, create)
                room = made.json()["room_id"] if made is not None and made.ok else None
            whoami = partial(http.get, client + "/account/whoami", headers=auth, timeout=30)
            self.timed("whoami", home, whoami)
            if room is not None:
                url = f"{client}/rooms/{room}/send/m.room.message/{secrets.token_hex(8)}"
                message = {"msgtype": "m.text", "body": "soak"}
                self.timed(
                    "send", home, partial(http.put, url, json=message, headers=auth, timeout=30)
                )
            query = "timeout=5000" + (
                f"&since={since}" if since else '&filter={"room":{"timeline":{"limit":1}}}'
            )
            sync = partial(http.get, f"{client}/sync?{query}", headers=auth, timeout=40)
            _, synced = self.timed("sync", home, sync)
            if synced is not None and synced.ok:
                since = synced.json()["next_batch"]
            self.media_round_trip(http, home, auth)
            self.stop.wait(pause)

    def media_round_trip(self, http: requests.Session, home: str, auth: dict[str, str]) -> None:
        payload = os.urandom(64 * 1024)
        upload = partial(
            http.post,
            self.d.nginx.url + "/_matrix/media/v3/upload",
            data=payload,
            headers={**auth, "Content-Type": "application/octet-stream"},
            timeout=30,
        )
        _, uploaded = self.timed("upload", home, upload)
        if uploaded is None or not uploaded.ok:
            return
        server, media_id = uploaded.json()["content_uri"].removeprefix("mxc://").split("/")
        url = f"{self.d.nginx.url}{self.d.media_prefix}/download/{server}/{media_id}"
        self.timed(
            "download",
            home,
            partial(http.get, url, headers=auth, timeout=30),
            ok=lambda r: r.status_code == 200 and r.content == payload,
        )

    # clients that vanish

    def vanish_worker(self, pause: float) -> None:
        port = self.d.nginx.port
        while not self.stop.is_set():
            user, home = self.pick_user()
            body = json.dumps(self.login_body("login-localpart", user, home)).encode()
            started = time.monotonic()
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                    head = (
                        f"POST {LOGIN} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
                    ).encode()
                    if random.random() < 0.5:
                        s.sendall(head + body[: len(body) // 2])  # half a body, then gone
                    else:
                        s.sendall(head + body)  # a whole request, gone before the answer
                    time.sleep(random.uniform(0, 0.05))
                ok = True
            except OSError:
                ok = False
            now = time.monotonic()
            self.record.add(Outcome(now, "vanish", home, 499, now - started, ok=ok))
            self.stop.wait(pause)
