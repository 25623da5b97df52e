"""The daemon's HTTP listener: uvicorn with the limits a public endpoint needs.

uvicorn has no timeout for a request's headers (its keep-alive timer restarts on every byte), so
a client sending one header byte every few seconds holds a connection, and a thousand such
clients hold a thousand file descriptors. `GuardedH11Protocol` closes a connection whose request
headers have not arrived within `HEADER_SECONDS`, and refuses connections past
`MAX_CONNECTIONS` at once (closing the socket, so the descriptor is freed). Bodies are bounded
by the webhook receiver itself (size and time).
"""

from __future__ import annotations

import asyncio
import errno
import resource
import socket

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from connector.config import parse_listen
from connector.web import Refusals

HEADER_SECONDS = 10.0
MAX_CONNECTIONS = 256
KEEP_ALIVE_SECONDS = 5
REFUSALS = Refusals()


class GuardedH11Protocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol with a request-header deadline and a connection cap."""

    _guard: asyncio.TimerHandle | None = None
    _waiting_since_cycle: object = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > MAX_CONNECTIONS:
            REFUSALS.note("too_many_connections", limit=MAX_CONNECTIONS)
            transport.close()
            return
        self._arm()

    def _arm(self) -> None:
        self._disarm()
        self._waiting_since_cycle = self.cycle
        self._guard = self.loop.call_later(HEADER_SECONDS, self._expire)

    def _disarm(self) -> None:
        if self._guard is not None:
            self._guard.cancel()
            self._guard = None

    def _expire(self) -> None:
        self._guard = None
        if self.cycle is self._waiting_since_cycle and not self.transport.is_closing():
            REFUSALS.note("header_timeout", seconds=HEADER_SECONDS)
            self.transport.close()

    def handle_events(self) -> None:
        super().handle_events()
        if self._guard is not None and self.cycle is not self._waiting_since_cycle:
            self._disarm()  # a request's headers arrived

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm()  # waiting for the next request on this connection

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)


class ListenError(RuntimeError):
    """The listen address cannot be used (taken, not ours, malformed): one line for the operator."""


def bind(listen: str) -> socket.socket:
    """Bind the listen address now, before the daemon says it started: a taken port is one clear
    line and exit 2, not a traceback after start-up."""
    try:
        host, port = parse_listen(listen)
    except ValueError as exc:
        raise ListenError(f"[daemon].listen: {exc}") from None
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        why = {errno.EADDRINUSE: "the port is already in use (another connector, or another program)",
               errno.EADDRNOTAVAIL: "this machine has no such address",
               errno.EACCES: "permission denied (ports below 1024 need privileges)"}.get(exc.errno, exc.strerror or str(exc))
        raise ListenError(f"cannot listen on {listen}: {why}") from None
    except socket.gaierror as exc:
        sock.close()
        raise ListenError(f"cannot listen on {listen}: unknown host ({exc.strerror})") from None
    sock.listen(128)
    return sock


def server(app, sock: socket.socket) -> uvicorn.Server:
    # log_config=None: uvicorn's records go through our logging (redacted, bounded), not its own handlers.
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off", http=GuardedH11Protocol, log_config=None,
                            timeout_keep_alive=KEEP_ALIVE_SECONDS, limit_concurrency=MAX_CONNECTIONS, backlog=128)
    s = uvicorn.Server(config)
    s.install_signal_handlers = lambda: None  # type: ignore[method-assign]  # the daemon owns the signals
    return s


def raise_fd_limit() -> None:
    """Use the hard limit of open files: vendor connections and the database must never run out
    because the listener had a busy minute."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard if hard != resource.RLIM_INFINITY else max(soft, 65536), hard))
        except (ValueError, OSError):
            pass
