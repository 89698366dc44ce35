"""``synapse-base-cs-url directory forget --config portal.yaml WHO...``: drop the account
directory's cached answer for a name or an address, for every portal replica at once.

A found account is cached for ``directory.found_ttl`` (a week): after an operator fixed an
account made twice, or moved an address, the portal would go on sending that login where it
found it first. With ``state.backend: redis`` the cache is shared, so deleting its key here
is seen by every replica at their next lookup. With the memory backend each portal process
holds its own cache: only a restart forgets it (a reload keeps it, by design).

The key is computed exactly as the portal computes it (the login the portal would look up
for WHO, its identifier's hash, under ``state.key_prefix``); nothing of WHO is printed but
its log tag. Redis is spoken to directly (RESP over TCP, TLS or a Unix socket), so the
command needs neither Twisted's reactor nor a running portal."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Sequence
from typing import TextIO

from synapse_base_cs_url.core.login_types import PASSWORD_TYPE
from synapse_base_cs_url.portal.config.portal_config import PortalConfig
from synapse_base_cs_url.portal.config.state import Backend, RedisAddress
from synapse_base_cs_url.portal.login_routes import LoginRoutes
from synapse_base_cs_url.portal.state.keys import DIRECTORY_PREFIX
from synapse_base_cs_url.tools.explain import login_body


class RedisError(Exception):
    """Redis could not be reached, or answered an error."""


class Resp:
    """The few Redis commands this needs, one at a time, blocking, each bounded in time."""

    def __init__(self, address: RedisAddress, timeout: float) -> None:
        try:
            if address.scheme == "unix":
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.settimeout(timeout)
                sock.connect(address.path)
            else:
                sock = socket.create_connection((address.host, address.port), timeout)
                if address.tls:
                    context = ssl.create_default_context()
                    sock = context.wrap_socket(sock, server_hostname=address.host)
        except OSError as e:
            raise RedisError(f"cannot reach Redis at {address.shown()}: {e}") from None
        self._sock = sock
        self._file = sock.makefile("rb")
        if address.password is not None:
            credentials = [address.username] if address.username else []
            self.command("AUTH", *credentials, address.password)
        if address.db:
            self.command("SELECT", str(address.db))

    def command(self, *args: str) -> object:
        frame = [f"*{len(args)}\r\n".encode()]
        for arg in args:
            data = arg.encode()
            frame.append(b"$%d\r\n%s\r\n" % (len(data), data))
        try:
            self._sock.sendall(b"".join(frame))
            return self._reply()
        except OSError as e:
            raise RedisError(f"Redis did not answer: {e}") from None

    def _reply(self) -> object:
        line = self._file.readline()
        if not line.endswith(b"\r\n"):
            raise RedisError("Redis closed the connection")
        kind, rest = line[:1], line[1:-2]
        if kind == b"-":
            raise RedisError(f"Redis answered an error: {rest.decode(errors='replace')}")
        if kind == b":":
            return int(rest)
        if kind == b"+":
            return rest.decode()
        if kind == b"$":
            length = int(rest)
            return None if length < 0 else self._file.read(length + 2)[:-2]
        raise RedisError(f"unexpected reply from Redis: {line[:40]!r}")

    def close(self) -> None:
        self._file.close()
        self._sock.close()


def forget(portal: PortalConfig, whos: Sequence[str], out: TextIO, err: TextIO) -> int:
    """Delete each WHO's cached directory answer; the exit status (2: nothing can be done
    with this config; 1: Redis failed)."""
    if not portal.directory.enabled:
        print("directory forget: this portal.yaml has no account directory", file=err)
        return 2
    if portal.state.backend is not Backend.REDIS or portal.state.redis is None:
        print(
            "directory forget: state.backend is memory: each portal process keeps its own "
            "cache (directory.found_ttl); restart the portal to forget (a reload keeps it)",
            file=err,
        )
        return 2
    routes = LoginRoutes(portal)
    keys = []
    for who in whos:
        identifier = routes.to_locate(login_body(who, PASSWORD_TYPE), PASSWORD_TYPE)
        if identifier is None:
            print(
                f"directory forget: {who!r} is a full Matrix ID the portal sends by its server "
                "name, or nothing it looks up: nothing is cached for it",
                file=err,
            )
            return 2
        keys.append((identifier.tag, portal.state.key_prefix + DIRECTORY_PREFIX + identifier.key))
    try:
        redis = Resp(portal.state.redis, portal.state.command_timeout)
        try:
            for tag, key in keys:
                deleted = redis.command("DEL", key)
                said = "forgotten" if deleted else "nothing cached"
                print(f"{tag}: {said}", file=out)
        finally:
            redis.close()
    except RedisError as e:
        print(f"directory forget: {e}", file=err)
        return 1
    return 0
