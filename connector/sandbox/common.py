"""Plumbing the warehouse sandboxes share: shipping plans, the request-counting edge, the
sliding rate-limit window, the `/_sandbox` control endpoints and the kit boilerplate.

Only what is really the same lives here. What makes each vendor faithful (header names, error
bodies, paging, ids) stays in its own module and is handed in as a parameter or a callback.
"""

from __future__ import annotations

import functools

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# What `kit()` plans when a caller says nothing: the demo shows a split order and a voided label.
DEMO_PLAN = {"split_every": 9, "void_every": 13}

Line = TypeVar("Line")


def now_utc() -> datetime:
    return datetime.now(UTC)


def stamp_ms(moment: datetime) -> str:
    """ISO 8601 in UTC with milliseconds and a `Z`, as ShipBob and ShipStation v2 write dates."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def parse_time(value: str) -> datetime | None:
    """An ISO 8601 date-time (a naive one is read as UTC), or None when it is not one."""
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def endpoint(handler):
    """A sandbox API endpoint: the caller is authenticated first (`self._check_auth`), and a vendor
    error raised anywhere inside (the sandbox's `api_error` class) becomes that vendor's reply."""

    @functools.wraps(handler)
    async def wrapped(self, request):
        try:
            self._check_auth(request)
            return await handler(self, request)
        except self.api_error as exc:
            return exc.response()

    return wrapped


class ApiError(Exception):
    """A vendor's error reply: a status and a body (None: no body, str: plain text, else JSON).

    Vendors whose errors carry a fixed structure subclass it and override `response()`.
    """

    def __init__(self, status: int, body: Any = None):
        super().__init__(f"{status} {body}")
        self.status, self.body = status, body

    def response(self) -> Response:
        if self.body is None:
            return Response(status_code=self.status)
        if isinstance(self.body, str):
            return PlainTextResponse(self.body, status_code=self.status)
        return JSONResponse(self.body, status_code=self.status)


@dataclass
class ShipPlan:
    """How one order ships: split in two, a voided first label, a given tracking text."""

    split: bool = False
    void_first: bool = False
    tracking: str | None = None  # e.g. "  " to simulate a label with a blank tracking number

    @classmethod
    def pick(cls, plans: dict[str, ShipPlan], reference: str, seq: int, split_every: int, void_every: int) -> ShipPlan:
        """The plan set for `reference`, else the every-Nth default by creation sequence `seq`
        (deterministic, so a demo run always splits and voids the same orders)."""
        return plans.get(reference) or cls(
            split=bool(split_every and seq % split_every == 0),
            void_first=bool(void_every and seq % void_every == 0),
        )


class Planned:
    """Mixin for a sandbox that ships by plan: `plan()` fixes how one order will ship.
    The sandbox provides `self._lock` and `self.plans` (by the vendor's order reference)."""

    _lock: Any
    plans: dict[str, ShipPlan]

    def plan(self, reference: str, *, split: bool = False, void_first: bool = False, tracking: str | None = None) -> None:
        """Decide how an order will ship, before or after it is created."""
        with self._lock:
            self.plans[reference] = ShipPlan(split, void_first, tracking)


def halves(lines: list[Line], quantity: Callable[[Line], int], with_quantity: Callable[[Line, int], Line]) -> list[list[Line]]:
    """Split one order's lines in two shipments: by lines when there are two or more, else by
    quantity of the single line; `[lines]` when it cannot be split. The line shape is the
    vendor's, so it says how to read and rewrite a quantity."""
    if len(lines) >= 2:
        return [lines[: len(lines) // 2], lines[len(lines) // 2 :]]
    if lines and quantity(lines[0]) >= 2:
        q = quantity(lines[0])
        return [[with_quantity(lines[0], q // 2)], [with_quantity(lines[0], q - q // 2)]]
    return [lines]


class CallWindow:
    """The calls of the last minute, as a vendor's sliding rate-limit window counts them.

    Only reported in headers: the 429s themselves come from `Faults`, so a sandbox limits
    nothing unless a test or the demo asks it to.
    """

    def __init__(self, seconds: float = 60.0):
        self.seconds = seconds
        self._calls: deque[float] = deque()
        self._lock = threading.Lock()  # the edge runs on the server thread, tests on theirs

    def spend(self) -> tuple[int, float]:
        """Count one call now; returns (calls in the window, seconds since the oldest of them)."""
        now = time.monotonic()
        with self._lock:
            while self._calls and now - self._calls[0] >= self.seconds:
                self._calls.popleft()
            self._calls.append(now)
            return len(self._calls), now - self._calls[0]


class Edge:
    """Outermost ASGI layer: counts API requests and lets the vendor stamp its rate headers.

    `count(method, path)` records a request; `stamp(status, headers)` returns the headers of a
    reply (faults included) with the vendor's own rate-limit headers. The control API
    (`/_sandbox`) is neither counted nor stamped.
    """

    def __init__(self, app: ASGIApp, count: Callable[[str, str], None],
                 stamp: Callable[[int, list[tuple[bytes, bytes]]], list[tuple[bytes, bytes]]] | None = None):
        self.app, self.count, self.stamp = app, count, stamp

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith("/_sandbox"):
            await self.app(scope, receive, send)
            return
        self.count(scope["method"], scope["path"])
        if self.stamp is None:
            await self.app(scope, receive, send)
            return
        stamp = self.stamp

        async def stamped(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = dict(message, headers=stamp(message["status"], list(message.get("headers", []))))
            await send(message)

        await self.app(scope, receive, stamped)


def control_routes(sandbox: Any, *, shipped_key: str = "shipped", reference_keys: Iterable[str] = ("reference",),
                   stock_entry: Callable[[dict[str, Any]], tuple[Any, ...]] | None = None) -> list[Route]:
    """The `/_sandbox` control API every HTTP sandbox serves (never faulted):

    - GET `/_sandbox/state`: `sandbox.state()`;
    - POST `/_sandbox/faults`: change `sandbox.faults` live (400 on an unknown setting);
    - POST `/_sandbox/ship`: ship one order (by the first of `reference_keys` in the body, with an
      optional plan) or all; answers `{shipped_key: [...]}`;
    - POST `/_sandbox/stock` (when `stock_entry` is given): one entry or a list, each turned into
      `sandbox.set_stock(*stock_entry(entry))`, so the vendor keeps its own field names.
    """
    keys = tuple(reference_keys)

    async def state(request: Request) -> Response:
        return JSONResponse(sandbox.state())

    async def faults(request: Request) -> Response:
        try:
            sandbox.faults.update(await request.json())
        except (KeyError, ValueError, TypeError) as exc:
            return JSONResponse({"error": f"unknown fault setting: {exc}"}, status_code=400)
        snapshot = sandbox.faults.snapshot()
        return JSONResponse({k: v for k, v in snapshot.items() if k != "script"} | {"script": sandbox.faults.script})

    async def ship(request: Request) -> Response:
        body = await request.json() if await request.body() else {}
        reference = next((body[k] for k in keys if body.get(k)), None)
        if reference:
            if any(k in body for k in ("split", "void_first", "tracking")):
                sandbox.plan(reference, split=bool(body.get("split")), void_first=bool(body.get("void_first")),
                             tracking=body.get("tracking"))
            shipped = sandbox.ship(reference)
        else:
            shipped = sandbox.ship_all()
        return JSONResponse({shipped_key: shipped})

    async def stock(request: Request) -> Response:
        assert stock_entry is not None
        body = await request.json()
        try:
            for entry in body if isinstance(body, list) else [body]:
                sandbox.set_stock(*stock_entry(entry))
        except (KeyError, TypeError, ValueError) as exc:
            return JSONResponse({"error": f"bad stock entry: {exc!r}"}, status_code=400)
        return JSONResponse({"stock": sandbox.state()["stock"]})

    routes = [
        Route("/_sandbox/state", state, methods=["GET"]),
        Route("/_sandbox/faults", faults, methods=["POST"]),
        Route("/_sandbox/ship", ship, methods=["POST"]),
    ]
    if stock_entry is not None:
        routes.append(Route("/_sandbox/stock", stock, methods=["POST"]))
    return routes


class SandboxKit:
    """The levers of `connector.sandbox.kits.WarehouseKit` every HTTP sandbox pulls the same way.

    A vendor's kit adds `name`, `warehouse_config`, `set_stock`, `warehouse_ids` and
    `orders_created`, and lists in `routes` the request (method, path prefix) each adapter
    operation starts with, which is how `fail_next` aims a fault at "the next create".
    """

    name: str
    routes: dict[str, tuple[str, str]] = {}  # "create", "find", "shipments", "ack", "stock", "skus", "ship_methods"

    def __init__(self, sandbox: Any, ship_methods: tuple[str, ...], skus: tuple[str, ...] = ()):
        self.sandbox = sandbox
        self.app = sandbox.app
        self.faults = sandbox.faults
        self.ship_methods = ship_methods
        self.skus = tuple(skus or getattr(sandbox, "products", ()))  # the catalogue it was made with

    def ship_all(self) -> None:
        self.sandbox.ship_all()

    def ship(self, reference: str, *, split: bool = False, void_first: bool = False, tracking: str | None = None) -> list[Any]:
        self.sandbox.plan(reference, split=split, void_first=void_first, tracking=tracking)
        return self.sandbox.ship(reference)

    def fail_next(self, operation: str, kind: int | str, *, after: bool = False) -> None:
        if operation not in self.routes:
            raise NotImplementedError(f"the {self.name} adapter makes no {operation!r} call")
        method, path = self.routes[operation]
        self.faults.script.append({"method": method, "path": path, "status": kind, "after": after})

    def created(self) -> int:
        return self.sandbox.create_count

    def create_attempts(self) -> dict[str, int]:
        return dict(self.sandbox.create_attempts)
