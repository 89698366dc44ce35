"""``workers: N``: N portal processes on one port, under a parent that keeps them running.

The parent opens the listening socket (with ``SO_REUSEPORT``, so that a new portal can bind
the same port while this one drains) and every worker accepts from it: one queue of new
connections, so a worker that dies takes only the requests it was answering with it, never
connections waiting to be accepted. No connection passes through the parent. The parent:

- starts the workers, and starts another when one dies (not more than a few times in a row
  within seconds of starting: a worker that cannot start at all stops the portal);
- passes ``SIGTERM`` / ``SIGINT`` on (each worker drains, then exits) and ``SIGHUP`` on
  (each worker reloads portal.yaml), and exits 0 once every worker has;
- gives the workers one directory for their Prometheus samples
  (``PROMETHEUS_MULTIPROC_DIR``), so one scrape of ``/metrics`` counts the whole portal;
- with ``metrics: {host, port}``, opens that socket too and passes it on the same way: every
  worker accepts scrapes from it, and whichever answers reads every worker's samples.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from typing import Any

from synapse_base_cs_url.portal.config.portal_config import PortalConfig
from synapse_base_cs_url.portal.metrics import MULTIPROCESS_ENV

logger = logging.getLogger("synapse_base_cs_url.portal")

#: Set in a worker's environment: its number (1..N), and the listening socket it inherits.
WORKER_ENV = "SYNAPSE_BASE_CS_URL_PORTAL_WORKER"
LISTEN_FD_ENV = "SYNAPSE_BASE_CS_URL_PORTAL_LISTEN_FD"
#: ...and the metrics listener's socket, with ``metrics: {host, port}``.
METRICS_FD_ENV = "SYNAPSE_BASE_CS_URL_PORTAL_METRICS_FD"
#: A worker that dies within this many seconds of starting has failed to start...
EARLY_DEATH = 5.0
#: ...and this many such deaths in a row stop the portal.
MAX_EARLY_DEATHS = 5
POLL = 0.1


def worker_number() -> int | None:
    """This process's worker number, if it is a worker."""
    return _number_from_env(WORKER_ENV)


def inherited_listen_fd() -> int | None:
    """The listening socket a worker's parent passed on."""
    return _number_from_env(LISTEN_FD_ENV)


def inherited_metrics_fd() -> int | None:
    """The metrics listener's socket a worker's parent passed on, if it opened one."""
    return _number_from_env(METRICS_FD_ENV)


def _number_from_env(name: str) -> int | None:
    value = os.environ.get(name)
    return int(value) if value and value.isdigit() else None


#: Signals a worker must not get before it can handle them (they are blocked while it
#: starts and unblocked once its reactor runs: see ``unblock_signals``).
FORWARDED = {signal.SIGTERM, signal.SIGHUP, signal.SIGINT}


def unblock_signals() -> None:
    """For a worker whose handlers are in place: let the signals its parent held in."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, FORWARDED)


def _die_with_parent() -> None:  # pragma: no cover (runs in the child, before exec)
    """Linux: a worker gets SIGTERM (and drains) if its parent dies, even by SIGKILL."""
    try:
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class Parent:
    def __init__(
        self,
        config_path: str,
        workers: int,
        grace: float,
        listener: Any,
        metrics_listener: Any = None,
    ) -> None:
        self.config_path = config_path
        self.listener = listener
        self.metrics_listener = metrics_listener
        self.count = workers
        # Beyond the workers' own drain time, how long to wait before killing them.
        self.stop_timeout = grace + 10
        self.metrics_dir = tempfile.mkdtemp(prefix="synapse-base-cs-url-metrics-")
        self.children: dict[int, subprocess.Popen[bytes]] = {}
        self.started: dict[int, float] = {}
        self.stopping = False
        self.signalled = False
        self.early_deaths = 0
        self._stop_deadline = 0.0

    def spawn(self, number: int) -> None:
        if self.stopping:
            return
        fd = self.listener.fileno()
        env = {
            **os.environ,
            WORKER_ENV: str(number),
            LISTEN_FD_ENV: str(fd),
            MULTIPROCESS_ENV: self.metrics_dir,
        }
        fds = [fd]
        if self.metrics_listener is not None:
            env[METRICS_FD_ENV] = str(self.metrics_listener.fileno())
            fds.append(self.metrics_listener.fileno())
        argv = [sys.executable, "-m", "synapse_base_cs_url", "portal", "-c", self.config_path]
        # The worker starts with these signals blocked (the mask survives exec) until it can
        # handle them: a reload or stop arriving while it starts waits instead of killing it.
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, FORWARDED)
        try:
            child = subprocess.Popen(
                argv,
                env=env,
                pass_fds=fds,
                # Its own session: a terminal's Ctrl-C reaches the parent, which passes it on.
                start_new_session=True,
                preexec_fn=_die_with_parent,  # noqa: PLW1509 (the parent has no threads)
            )
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)
        self.children[number] = child
        self.started[number] = time.monotonic()
        logger.info("worker %d started (pid %d)", number, child.pid)

    def forward(self, signum: int) -> None:
        for child in self.children.values():
            if child.poll() is None:
                child.send_signal(signum)

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        signal.signal(signal.SIGHUP, lambda signum, frame: self.forward(signal.SIGHUP))
        try:
            for number in range(1, self.count + 1):
                self.spawn(number)
            return self._watch()
        finally:
            # Whatever happened, no worker outlives its parent.
            for child in self.children.values():
                if child.poll() is None:
                    child.kill()
            shutil.rmtree(self.metrics_dir, ignore_errors=True)

    def _on_stop(self, signum: int, frame: object) -> None:
        # Only note it here: the loop in _watch acts (signal handlers run between bytecodes,
        # possibly in the middle of spawn()).
        self.signalled = True

    def _begin_stopping(self) -> None:
        self.stopping = True
        self.listener.close()  # new connections are refused from now on
        if self.metrics_listener is not None:
            self.metrics_listener.close()
        self._stop_deadline = time.monotonic() + self.stop_timeout
        logger.info("stopping: draining %d worker(s)", len(self.children))
        self.forward(signal.SIGTERM)

    def _watch(self) -> int:
        status = 0
        while self.children:
            if self.signalled and not self.stopping:
                self._begin_stopping()
            time.sleep(POLL)
            for number, child in list(self.children.items()):
                code = child.poll()
                if code is None:
                    if self.stopping and time.monotonic() > self._stop_deadline:
                        logger.warning("worker %d did not stop in time: killing it", number)
                        child.kill()
                    continue
                del self.children[number]
                self._forget(child.pid)
                if self.stopping:
                    status = status or (0 if code == 0 else 1)
                    continue
                early = time.monotonic() - self.started[number] < EARLY_DEATH
                self.early_deaths = self.early_deaths + 1 if early else 0
                if self.early_deaths >= MAX_EARLY_DEATHS:
                    logger.error(
                        "worker %d exited with %s %d times in a row right after starting: "
                        "stopping the portal",
                        number,
                        code,
                        self.early_deaths,
                    )
                    self._begin_stopping()
                    status = 1
                    continue
                logger.warning("worker %d exited with %s: starting another", number, code)
                self.spawn(number)
        return status

    def _forget(self, pid: int) -> None:
        """A dead worker's live gauges (open connections) no longer count."""
        from prometheus_client import multiprocess

        os.environ.setdefault(MULTIPROCESS_ENV, self.metrics_dir)
        multiprocess.mark_process_dead(pid, self.metrics_dir)  # type: ignore[no-untyped-call]


def reuse_port_socket(host: str, port: int) -> socket.socket:
    """The listening socket a parent shares with its workers. ``SO_REUSEPORT`` also lets a
    new portal bind the same port while the old one drains (a deploy without downtime)."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
        sock.listen(socket.SOMAXCONN)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def run_parent(config_path: str, config: PortalConfig) -> int:
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: parent: %(message)s",
        stream=sys.stderr,
    )
    host, port = config.listen.host, config.listen.port
    try:
        listener = reuse_port_socket(host, port)
    except OSError as e:
        logger.error("portal cannot listen on %s:%s: %s", host, port, e)
        return 1
    with contextlib.ExitStack() as sockets:
        sockets.enter_context(listener)
        metrics_listener = None
        own = config.metrics.listener
        if own is not None:
            # Opened here, not by each worker: port 0 then means one port for all of them,
            # and a port in use stops the portal at once, not each worker as it starts.
            try:
                metrics_listener = sockets.enter_context(reuse_port_socket(own.host, own.port))
            except OSError as e:
                logger.error("portal cannot listen for metrics on %s:%s: %s", own.host, own.port, e)
                return 1
        parent = Parent(
            config_path, config.workers, config.shutdown_grace, listener, metrics_listener
        )
        return parent.run()
