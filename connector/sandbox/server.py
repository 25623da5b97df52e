"""Runs a sandbox (a starlette app) as a real HTTP server on loopback.

`SandboxServer(app).start()` serves in a background thread with its own event loop, so the demo and
tests talk to it over real sockets exactly as the daemon talks to UltraCart or a warehouse.
`serve_blocking()` runs one in the foreground, for a sandbox in its own process (bench, tests that
must not share the connector's CPU).
"""

from __future__ import annotations

import asyncio
import socket
import threading

import uvicorn


def _bind(host: str, port: int) -> socket.socket:
    # IPPROTO_TCP explicitly: asyncio turns Nagle off only on sockets that say so, and accepted
    # sockets inherit it; without it every loopback request waited ~40 ms for delayed ACKs.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.setblocking(False)
    return sock


class SandboxServer:
    """A loopback HTTP server for one ASGI app; `url` is known once `start()` returns."""

    def __init__(self, app, host: str = "127.0.0.1", port: int = 0):
        self.app = app
        self._sock = _bind(host, port)
        self.host, self.port = self._sock.getsockname()[:2]
        self.url = f"http://{self.host}:{self.port}"
        config = uvicorn.Config(app, log_level="critical", access_log=False, lifespan="off", timeout_graceful_shutdown=1)
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    def start(self) -> SandboxServer:
        self._thread = threading.Thread(target=self._run, name=f"sandbox:{self.port}", daemon=True)
        self._thread.start()
        for _ in range(500):
            if self._server.started:
                return self
            if not self._thread.is_alive():
                raise RuntimeError("sandbox server failed to start")
            threading.Event().wait(0.01)
        raise RuntimeError("sandbox server did not start within 5 s")

    def _run(self) -> None:
        asyncio.run(self._server.serve(sockets=[self._sock]))

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread:
            self._thread.join(timeout=5)

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def serve_blocking(app, host: str = "127.0.0.1", port: int = 0, ready_file: str | None = None, on_ready=None) -> None:
    """Serve in the foreground; write the URL to `ready_file` once listening (for parent
    processes), after handing it to `on_ready(url)` when given."""
    server = SandboxServer(app, host, port)
    if on_ready is not None:
        on_ready(server.url)  # the socket is bound: the URL is final before the first request
    if ready_file:
        config = server._server.config

        async def main() -> None:
            task = asyncio.create_task(server._server.serve(sockets=[server._sock]))
            while not server._server.started:
                await asyncio.sleep(0.01)
            with open(ready_file + ".tmp", "w") as fh:
                fh.write(server.url)
            import os

            os.replace(ready_file + ".tmp", ready_file)
            await task

        del config
        asyncio.run(main())
    else:
        asyncio.run(server._server.serve(sockets=[server._sock]))
