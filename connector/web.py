"""The HTTP listener on `[daemon].listen`: health and readiness for probes and load balancers.

`/healthz` answers while the process serves; `/readyz` also checks that the database answers and
the scheduler runs (503 otherwise, with the reason).
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from connector.runtime import Runtime


def build_app(runtime: Runtime, scheduler_running: Callable[[], bool]) -> Starlette:
    async def healthz(_: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    async def readyz(_: Request) -> JSONResponse:
        problems = []
        try:
            await runtime.store.ping()
        except Exception as exc:  # noqa: BLE001 - any database failure means not ready
            problems.append(f"database: {type(exc).__name__}: {exc}")
        if not scheduler_running():
            problems.append("scheduler: not running")
        if problems:
            return JSONResponse({"status": "not ready", "problems": problems}, status_code=503)
        return JSONResponse({"status": "ready", "merchants": sorted(runtime.contexts)})

    return Starlette(routes=[Route("/healthz", healthz), Route("/readyz", readyz)])


def parse_listen(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    return (host or "127.0.0.1").strip("[]"), int(port)
