"""A loopback UltraCart: the Fulfillment API subset the connector uses, with UltraCart's quirks.

Faithful where it matters to the connector: the fetch returns the SAME first <= 100 queued orders
until they are acknowledged, writes answer 204 with an empty body, the 100/100/500 limits come back
as 400 with UltraCart's own UC-REST-ERROR messages, error bodies have no `success` key, and every
response carries an `X-UltraCart-Request-Id`. Paths are served both bare (`/fulfillment/...`) and
under UltraCart's `/rest/v2` prefix, so a base URL copied from the real config works too.

A control API under `/_sandbox/` lets a test in another process queue orders, read the state and
set faults. The server runs in its own thread, so every mutation holds `self._lock`.
"""

from __future__ import annotations

import copy
import json
import threading
import uuid
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from connector.sandbox.faults import FaultMiddleware, Faults

API_VERSION = "2017-03-01"
FETCH_LIMIT = 100
LIMITS = {  # endpoint -> (max records, UltraCart's message)
    "ack": (100, "order_ids can not contain more than 100 records at a time"),
    "shipments": (100, "shipments can not contain more than 100 records at a time"),
    "inventory": (500, "inventories can not contain more than 500 records at a time"),
}
ENDPOINTS = ("dcs", "fetch", "ack", "shipments", "inventory")


class SandboxError(Exception):
    """An UltraCart-style error reply: status, UC-REST-ERROR header and ErrorResponse body."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message

    def response(self) -> Response:
        body = {"error": {"developer_message": self.message, "user_message": self.message}, "metadata": {}}
        return JSONResponse(body, status_code=self.status, headers={"UC-REST-ERROR": self.message})


class _Edge:
    """Outermost layer: strips `/rest/v2` and stamps a unique request id on every reply (faults too)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"].startswith("/rest/v2/"):
            path = scope["path"][len("/rest/v2") :]
            scope = dict(scope, path=path, raw_path=path.encode())
        request_id = uuid.uuid4().hex.upper()

        async def stamped(message) -> None:
            if message["type"] == "http.response.start":
                headers = [h for h in message.get("headers", []) if h[0].lower() != b"x-ultracart-request-id"]
                message = dict(message, headers=[*headers, (b"x-ultracart-request-id", request_id.encode())])
            await send(message)

        await self.app(scope, receive, stamped)


class UltraCartSandbox:
    """State of one simulated UltraCart merchant plus its ASGI app (`.app`) and faults (`.faults`)."""

    def __init__(self, api_key: str = "sandbox-key", merchant_id: str = "DEMO", distribution_centers=("DFLT",)):
        self.api_key = api_key
        self.merchant_id = merchant_id
        self.distribution_centers = tuple(distribution_centers)
        self.faults = Faults()
        self._lock = threading.Lock()
        self.reset()
        routes = [
            Route("/fulfillment/distribution_centers", self._dcs, methods=["GET"]),
            Route("/fulfillment/distribution_centers/{dc}/orders", self._fetch, methods=["GET"]),
            Route("/fulfillment/distribution_centers/{dc}/acknowledgements", self._ack, methods=["PUT"]),
            Route("/fulfillment/distribution_centers/{dc}/shipments", self._shipments, methods=["POST"]),
            Route("/fulfillment/distribution_centers/{dc}/inventory", self._inventory, methods=["POST"]),
            Route("/_sandbox/orders", self._control_orders, methods=["POST"]),
            Route("/_sandbox/state", self._control_state, methods=["GET"]),
            Route("/_sandbox/faults", self._control_faults, methods=["POST"]),
            Route("/_sandbox/reset", self._control_reset, methods=["POST"]),
        ]
        self.app = _Edge(FaultMiddleware(Starlette(routes=routes), self.faults))

    # -- Python-side API ------------------------------------------------------------------------

    def reset(self) -> None:
        """Empty queues, records, counters and faults (the Faults object itself is kept: the app holds it)."""
        with self._lock:
            self._queues: dict[str, dict[str, dict]] = {dc: {} for dc in self.distribution_centers}
            self._acknowledged: list[str] = []
            self._shipment_posts: list[list[dict]] = []
            self._inventory_posts: list[list[dict]] = []
            self.requests: dict[str, int] = dict.fromkeys(ENDPOINTS, 0)
            defaults = {k: v for k, v in Faults().snapshot().items() if k not in ("counts", "script")}
            self.faults.update(defaults)
            self.faults.script.clear()
            self.faults.counts.clear()

    def queue(self, dc: str, orders: list[dict]) -> None:
        """Put orders in a DC's queue, in order. A re-queued id keeps its place and takes the new body."""
        with self._lock:
            queue = self._queue_of(dc)
            for order in orders:
                if not isinstance(order, dict) or not order.get("order_id"):
                    raise ValueError("every queued order needs an order_id")
                queue[str(order["order_id"])] = copy.deepcopy(order)

    def queued(self, dc: str) -> list[str]:
        with self._lock:
            return list(self._queue_of(dc))

    @property
    def acknowledged(self) -> list[str]:
        """Every id received in acknowledgements, in order, repeats included (so double acks show)."""
        with self._lock:
            return list(self._acknowledged)

    @property
    def shipment_posts(self) -> list[list[dict]]:
        with self._lock:
            return copy.deepcopy(self._shipment_posts)

    @property
    def inventory_posts(self) -> list[list[dict]]:
        with self._lock:
            return copy.deepcopy(self._inventory_posts)

    def tracking(self, order_id: str) -> list[str]:
        """Every tracking number posted for an order, in posting order."""
        with self._lock:
            return [t for post in self._shipment_posts for s in post if s.get("order_id") == order_id for t in s.get("tracking_numbers") or []]

    def inventory_levels(self) -> dict[str, Any]:
        """The last quantity posted per itemId."""
        with self._lock:
            return {r.get("itemId"): r.get("quantity") for post in self._inventory_posts for r in post}

    def state(self) -> dict[str, Any]:
        with self._lock:
            return {
                "queued": {dc: list(q) for dc, q in self._queues.items()},
                "acknowledged": list(self._acknowledged),
                "shipment_posts": copy.deepcopy(self._shipment_posts),
                "inventory_posts": copy.deepcopy(self._inventory_posts),
                "requests": dict(self.requests),
                "faults": dict(self.faults.counts),
            }

    def _queue_of(self, dc: str) -> dict[str, dict]:
        if dc not in self._queues:
            raise KeyError(f"unknown distribution center {dc!r}")
        return self._queues[dc]

    # -- request checks, in UltraCart's order: credentials, version, DC, body -------------------

    def _check(self, request: Request, endpoint: str, dc: str | None = None) -> None:
        with self._lock:
            self.requests[endpoint] += 1
        if request.headers.get("x-ultracart-simple-key") != self.api_key:
            raise SandboxError(401, "Invalid or missing API credentials (x-ultracart-simple-key)")
        version = request.headers.get("x-ultracart-api-version")
        if version != API_VERSION:
            raise SandboxError(400, f"Missing or unsupported X-UltraCart-Api-Version header {version!r}; use {API_VERSION}")
        if dc is not None and dc not in self._queues:
            raise SandboxError(400, f"Invalid distribution center code {dc!r} for merchant {self.merchant_id}")

    async def _records(self, request: Request, endpoint: str) -> list:
        try:
            body = json.loads(await request.body())
        except ValueError as exc:
            raise SandboxError(400, f"Invalid JSON in request body: {exc}") from None
        if not isinstance(body, list):
            raise SandboxError(400, "Request body must be a JSON array")
        limit, message = LIMITS[endpoint]
        if len(body) > limit:
            raise SandboxError(400, message)
        return body

    # -- the Fulfillment API --------------------------------------------------------------------

    async def _dcs(self, request: Request) -> Response:
        try:
            self._check(request, "dcs")
        except SandboxError as exc:
            return exc.response()
        centers = [
            {"code": dc, "name": f"{dc} warehouse", "distribution_center_oid": 1000 + i, "default_center": i == 0,
             "hold_before_transmission": False, "transport": "Fulfillment API"}
            for i, dc in enumerate(self.distribution_centers)
        ]
        return JSONResponse({"distribution_centers": centers, "success": True, "metadata": {"payload_name": "DistributionCentersResponse"}})

    async def _fetch(self, request: Request) -> Response:
        dc = request.path_params["dc"]
        try:
            self._check(request, "fetch", dc)
        except SandboxError as exc:
            return exc.response()
        with self._lock:
            # No paging: the head of the queue, again and again, until it is acknowledged.
            orders = [copy.deepcopy(o) for o in list(self._queues[dc].values())[:FETCH_LIMIT]]
        return JSONResponse({"orders": orders, "success": True, "metadata": {"payload_name": "OrdersResponse"}})

    async def _ack(self, request: Request) -> Response:
        dc = request.path_params["dc"]
        try:
            self._check(request, "ack", dc)
            ids = await self._records(request, "ack")
            if not all(isinstance(i, str) for i in ids):
                raise SandboxError(400, "order_ids must be an array of strings")
        except SandboxError as exc:
            return exc.response()
        with self._lock:
            for order_id in ids:
                self._queues[dc].pop(order_id, None)  # unknown ids are ignored, as acks are idempotent
            self._acknowledged.extend(ids)
        return Response(status_code=204)

    async def _shipments(self, request: Request) -> Response:
        try:
            self._check(request, "shipments", request.path_params["dc"])
            records = await self._records(request, "shipments")
            if not all(isinstance(r, dict) and r.get("order_id") for r in records):
                raise SandboxError(400, "every shipment needs an order_id")
        except SandboxError as exc:
            return exc.response()
        with self._lock:
            self._shipment_posts.append(records)
        return Response(status_code=204)

    async def _inventory(self, request: Request) -> Response:
        try:
            self._check(request, "inventory", request.path_params["dc"])
            records = await self._records(request, "inventory")
            if not all(isinstance(r, dict) and r.get("itemId") for r in records):
                raise SandboxError(400, "every inventory record needs an itemId")
        except SandboxError as exc:
            return exc.response()
        with self._lock:
            self._inventory_posts.append(records)
        return Response(status_code=204)

    # -- the control API (never faulted) --------------------------------------------------------

    async def _control_orders(self, request: Request) -> Response:
        dc = request.query_params.get("dc") or self.distribution_centers[0]
        try:
            orders = json.loads(await request.body())
            if isinstance(orders, dict):
                orders = orders.get("orders", [])
            self.queue(dc, orders)
        except (ValueError, KeyError, TypeError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse({"queued": self.queued(dc)})

    async def _control_state(self, request: Request) -> Response:
        return JSONResponse(self.state())

    async def _control_faults(self, request: Request) -> Response:
        try:
            values = json.loads(await request.body())
            if not isinstance(values, dict):
                raise ValueError("faults must be a JSON object")
            with self._lock:
                self.faults.update(values)
        except (ValueError, KeyError) as exc:
            return JSONResponse({"error": f"bad fault setting: {exc}"}, status_code=400)
        return JSONResponse(self.faults.snapshot())

    async def _control_reset(self, request: Request) -> Response:
        self.reset()
        return Response(status_code=204)
