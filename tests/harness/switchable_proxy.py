"""A TCP forwarder in front of a real server that a test can switch off and on: a homeserver
outage (connections refused) and its recovery, without stopping the homeserver."""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading

#: How often the threads look whether they are to stop (seconds).
POLL = 0.1


class SwitchableProxy:
    """Listens on a free loopback port and forwards each connection to ``target_port``.

    ``refuse()`` closes the listening socket and every open connection (new connections are
    then refused, as by a homeserver that is down); ``accept()`` listens again on the same
    port. At most ``max_connections`` are forwarded at once (more are closed at once).
    ``close()`` stops everything; also a context manager."""

    def __init__(
        self, target_port: int, *, host: str = "127.0.0.1", max_connections: int = 64
    ) -> None:
        self._target = (host, target_port)
        self._host = host
        self._max = max_connections
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._pumps: list[threading.Thread] = []
        self._listener: socket.socket | None = None
        self._acceptor: threading.Thread | None = None
        self._stop = threading.Event()
        self.port = 0
        self.accept()
        self.url = f"http://{host}:{self.port}"

    # -- switching ----------------------------------------------------------------------

    def accept(self) -> None:
        """Listen (again, on the same port) and forward what connects."""
        if self._listener is not None:
            return
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self._host, self.port))
        listener.listen(64)
        listener.settimeout(POLL)
        self.port = listener.getsockname()[1]
        self._listener = listener
        self._stop.clear()
        self._acceptor = threading.Thread(target=self._accept_loop, args=(listener,), daemon=True)
        self._acceptor.start()

    def refuse(self) -> None:
        """Stop listening and cut every open connection: when this returns, a connection to
        :attr:`port` is refused."""
        self._stop.set()
        if self._acceptor is not None:
            self._acceptor.join(5)
            self._acceptor = None
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        with self._lock:
            cut = list(self._open)
            pumps, self._pumps = self._pumps, []
        for sock in cut:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        for pump in pumps:
            pump.join(5)

    def close(self) -> None:
        self.refuse()

    def __enter__(self) -> SwitchableProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- forwarding ---------------------------------------------------------------------

    def _accept_loop(self, listener: socket.socket) -> None:
        while not self._stop.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            with self._lock:
                full = len(self._open) >= 2 * self._max
            if full or self._stop.is_set():
                client.close()
                continue
            try:
                upstream = socket.create_connection(self._target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            pump = threading.Thread(target=self._pump, args=(client, upstream), daemon=True)
            with self._lock:
                self._open.update((client, upstream))
                self._pumps = [p for p in self._pumps if p.is_alive()]
                self._pumps.append(pump)
            pump.start()

    def _pump(self, client: socket.socket, upstream: socket.socket) -> None:
        """Copy bytes both ways until either side closes (or :meth:`refuse` cuts both)."""
        peer = {client: upstream, upstream: client}
        with selectors.DefaultSelector() as selector:
            selector.register(client, selectors.EVENT_READ)
            selector.register(upstream, selectors.EVENT_READ)
            try:
                while True:
                    for key, _ in selector.select(POLL):
                        source: socket.socket = key.fileobj  # type: ignore[assignment]
                        data = source.recv(65536)
                        if not data:
                            return
                        peer[source].sendall(data)
            except OSError:
                return
            finally:
                with self._lock:
                    self._open.discard(client)
                    self._open.discard(upstream)
                for sock in (client, upstream):
                    with contextlib.suppress(OSError):
                        sock.shutdown(socket.SHUT_RDWR)
                    sock.close()
