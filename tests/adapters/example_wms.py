"""A made-up warehouse, "Example WMS", written the way a third party would: an adapter on the kit
and a sandbox kit, each a page. It is what test_example_wms.py holds to the shared contract
through the two entry points a package would declare:

    [project.entry-points."connector.warehouses"]
    example-wms = "example_wms:ExampleAdapter"
    [project.entry-points."connector.sandboxes"]
    example-wms = "example_wms:kit"

Its API: Bearer token; `POST /v1/orders` (409 for a repeated reference), `GET /v1/orders?reference=`,
`GET /v1/shipments` (cursor-paged by `next_cursor`), `GET /v1/stock` (numbered pages with a
page count), `GET /v1/skus`; `X-Calls-Left` and `Retry-After` headers; `{"error": ...}` bodies.
"""

from __future__ import annotations

import itertools
import threading
from collections import defaultdict
from datetime import datetime
from typing import Any, ClassVar

from pydantic import Field
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from adapters.base import Capabilities
from adapters.http import CursorPages, PageNumbers
from adapters.kit import VendorAdapter, VendorConfig, iso, parse_time, shipment_lines, tracking_numbers
from connector.domain import CreateResult, Shipment, StockLevel, WarehouseOrder
from connector.errors import PermanentError
from connector.sandbox import common
from connector.sandbox.common import Edge, Planned, SandboxKit, ShipPlan, endpoint, halves, now_utc, stamp_ms
from connector.sandbox.faults import FaultMiddleware, Faults

# -- the adapter ------------------------------------------------------------------------------


class ExampleConfig(VendorConfig):
    """Example WMS credentials: one API token."""

    adapter: str = "example-wms"
    base_url: str = "https://api.example-wms.invalid"
    token: str = Field(min_length=1)
    rate_per_minute: float = Field(default=600, gt=0)

    def secrets(self) -> list[str]:
        return [self.token]


class ExampleAdapter(VendorAdapter):
    """Orders in by reference (409 on a repeat), shipments and stock out."""

    name: ClassVar[str] = "example-wms"
    Config: ClassVar[type[ExampleConfig]] = ExampleConfig
    capabilities: ClassVar[Capabilities] = Capabilities(inventory=True, sku_catalog=True)
    rate_remaining_header = "X-Calls-Left"

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.config.token}"}

    async def check(self) -> str:
        return f"Example WMS at {self.config.base_url}: {len(await self.known_skus())} SKUs"

    async def create_order(self, order: WarehouseOrder) -> CreateResult:
        body = {"reference": order.reference, "ship_method": order.ship_method,
                "lines": [{"sku": line.sku, "qty": line.quantity} for line in order.lines]}
        try:
            created = (await self.http.request("POST", "/v1/orders", json=body, idempotent=False, ok=(201,))).json()
        except PermanentError as exc:
            found = await self.already_there(order.reference) if exc.status == 409 else None
            if found is None:
                raise
            return found
        return CreateResult(warehouse_order_id=str(created["id"]), reference=order.reference)

    async def find_order(self, reference: str) -> CreateResult | None:
        orders = await self.fetch("GET", "/v1/orders", params={"reference": reference})
        return next((CreateResult(warehouse_order_id=str(o["id"]), reference=reference) for o in orders if o["reference"] == reference), None)

    async def known_skus(self) -> set[str]:
        return set(await self.fetch("GET", "/v1/skus"))

    async def shipments_since(self, since: datetime) -> list[Shipment]:
        paging = CursorPages(self.name, items="shipments", param="cursor", cursor=lambda body: body.get("next_cursor"))
        return [
            Shipment(shipment_id=s["id"], reference=s["reference"], tracking_numbers=tracking_numbers(s["tracking"]),
                     shipped_at=parse_time(s["shipped_at"]), voided=s["void"], lines=shipment_lines((i["sku"], i["qty"]) for i in s["items"]))
            async for page in self.pages(paging, "/v1/shipments", {"since": iso(since)}) for s in page if self.context.owns(s["reference"])
        ]

    async def stock_levels(self) -> list[StockLevel]:
        paging = PageNumbers(self.name, items="stock", page_param="page", size=2, size_param="per_page", pages=lambda body: body["pages"])
        return [StockLevel(sku=r["sku"], warehouse_id=r["site"], available=r["free"], on_hand=r["held"])
                async for page in self.pages(paging, "/v1/stock", {}) for r in page]


# -- the sandbox and its kit ------------------------------------------------------------------


class ExampleSandbox(Planned):
    """A loopback Example WMS (what the contract needs of it, nothing more)."""

    api_error = common.ApiError

    def __init__(self, token: str, products: tuple[str, ...]):
        self.token, self.products = token, tuple(products)
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self.orders: dict[str, dict[str, Any]] = {}
        self.shipments: list[dict[str, Any]] = []
        self.stock: dict[tuple[str, str], tuple[int, int]] = {}
        self.plans: dict[str, ShipPlan] = {}
        self.create_attempts: dict[str, int] = defaultdict(int)
        self.create_count = 0
        self.requests: dict[str, int] = defaultdict(int)
        self.faults = Faults()
        routes = [Route("/v1/orders", self._create, methods=["POST"]), Route("/v1/orders", self._find, methods=["GET"]),
                  Route("/v1/shipments", self._shipments, methods=["GET"]), Route("/v1/stock", self._stock, methods=["GET"]),
                  Route("/v1/skus", self._skus, methods=["GET"])]
        self.app = Edge(FaultMiddleware(Starlette(routes=routes), self.faults), self._count,
                        lambda status, headers: [*headers, (b"x-calls-left", b"100")])

    def _count(self, method: str, path: str) -> None:
        with self._lock:
            self.requests[f"{method} {path}"] += 1

    def _check_auth(self, request: Request) -> None:
        if request.headers.get("authorization") != f"Bearer {self.token}":
            raise common.ApiError(401, {"error": "bad token"})

    def ship(self, reference: str) -> list[dict[str, Any]]:
        with self._lock:
            order = self.orders.get(reference)
            if order is None or order["shipped"]:
                return []
            plan = ShipPlan.pick(self.plans, reference, order["id"], 0, 0)
            groups = halves(order["lines"], lambda line: line[1], lambda line, q: (line[0], q)) if plan.split else [order["lines"]]
            made = [(order["lines"], True)] * plan.void_first + [(g, False) for g in groups]
            for n, (lines, void) in enumerate(made, 1):
                tracking = plan.tracking if plan.tracking is not None else f"EX{order['id']:06d}{n}"
                self.shipments.append({"id": f"S{order['id']}-{n}", "reference": reference, "tracking": tracking, "void": void,
                                       "shipped_at": stamp_ms(now_utc()), "items": [{"sku": s, "qty": q} for s, q in lines]})
            order["shipped"] = True
            return made

    def ship_all(self) -> None:
        for reference in list(self.orders):
            self.ship(reference)

    @endpoint
    async def _create(self, request: Request) -> Response:
        body = await request.json()
        with self._lock:
            self.create_attempts[body["reference"]] += 1
            if body["reference"] in self.orders:
                raise common.ApiError(409, {"error": "duplicate reference"})
            self.create_count += 1
            order = {"id": next(self._ids), "reference": body["reference"], "shipped": False,
                     "lines": [(line["sku"], line["qty"]) for line in body["lines"]]}
            self.orders[body["reference"]] = order
        return JSONResponse({"id": order["id"]}, status_code=201)

    @endpoint
    async def _find(self, request: Request) -> Response:
        with self._lock:
            order = self.orders.get(request.query_params.get("reference", ""))
            return JSONResponse([{"id": order["id"], "reference": order["reference"]}] if order else [])

    @endpoint
    async def _shipments(self, request: Request) -> Response:
        at = int(request.query_params.get("cursor") or 0)
        with self._lock:
            page = self.shipments[at : at + 2]
            return JSONResponse({"shipments": page, "next_cursor": str(at + 2) if at + 2 < len(self.shipments) else None})

    @endpoint
    async def _stock(self, request: Request) -> Response:
        page, size = int(request.query_params.get("page") or 1), int(request.query_params.get("per_page") or 2)
        with self._lock:
            rows = [{"sku": sku, "site": site, "free": free, "held": held} for (sku, site), (free, held) in sorted(self.stock.items())]
        return JSONResponse({"stock": rows[(page - 1) * size : page * size], "pages": max(1, -(-len(rows) // size))})

    @endpoint
    async def _skus(self, request: Request) -> Response:
        return JSONResponse(list(self.products))


class ExampleKit(SandboxKit):
    """Example WMS as a `connector.sandbox.kits.WarehouseKit`."""

    name = "example-wms"
    routes = {"create": ("POST", "/v1/orders"), "find": ("GET", "/v1/orders"), "shipments": ("GET", "/v1/shipments"),
              "stock": ("GET", "/v1/stock"), "skus": ("GET", "/v1/skus")}

    def warehouse_config(self, base_url: str, workdir: Any) -> dict[str, Any]:
        return {"adapter": "example-wms", "base_url": base_url, "token": self.sandbox.token}

    def set_stock(self, sku: str, warehouse_id: str, available: int, on_hand: int | None = None) -> None:
        with self.sandbox._lock:
            self.sandbox.stock[(sku, warehouse_id)] = (available, available if on_hand is None else on_hand)

    def orders_created(self, reference: str) -> int:
        return int(reference in self.sandbox.orders)

    def warehouse_ids(self) -> list[str]:
        return ["north", "south"]


def kit(*, products: tuple[str, ...], ship_methods: tuple[str, ...], credential: str = "sandbox-secret", **kw: Any) -> ExampleKit:
    """The Example WMS sandbox kit (the `connector.sandboxes` entry point's target)."""
    return ExampleKit(ExampleSandbox(credential, tuple(products)), tuple(ship_methods) or ("Ground",))
