"""A loopback ShipStation (API v2): exactly the endpoints the `shipstation-v2` adapter uses.

Faithful where it matters to the connector (shapes from the official v2 document):
- `api-key` header on every call (401 with an `error_response_body` otherwise);
- `POST /v2/shipments` takes a batch; `external_shipment_id` is unique per account, immutable and
  silently truncated at 50 characters; a repeat is refused (400, `identifier_conflict`); a
  `service_code` must be offered by a connected carrier (the carrier's `carrier_id`, or the
  primary carrier offering it when none is given);
- lookup by `GET /v2/shipments/external_shipment_id/{id}` and `GET /v2/shipments/{id}` (404 when
  unknown), and `GET /v2/shipments?shipment_number=`;
- a shipment stays `pending` until it ships (`ship_all()`, `ship()`, or a labels read once
  `ship_after_s` has passed): then labels are bought. Per order (deterministic by creation
  sequence, or set with `plan()`): one label; Split Ship (the second half of the items moves to a
  new shipment with a generated `external_shipment_id` and the original's `shipment_number`, each
  gets a label); or a first label voided and a second bought;
- `GET /v2/labels` filtered by `created_at_start`, `shipment_id`, `label_status`, paged by
  `page`/`page_size` with `links`;
- the product catalog (`GET /v2/products`; a shipment may still name any SKU, as in ShipStation);
- stock per SKU and inventory warehouse from `GET /v2/inventory` (`available` = on hand minus
  allocated), paged by `links.next.href` (`page`); a create allocates, shipping takes stock off
  the shelf;
- `PUT /v2/shipments/{id}/cancel` answers 204 and marks a `pending` shipment `cancelled` (its
  allocation released; a cancelled one again is 204 too); a shipment with a label is refused
  (400: "Any label associated with the shipment needs to be voided first", the document's words);
  `split()` does a Split Ship by hand before any label (the new part is cancelled separately);
- `PUT /v2/shipments/{id}` (Update Shipment) replaces the writable fields it is sent (`ship_to`
  checked as on a create, `items` re-allocated) and answers the shipment, while it is `pending`;
  a shipment with a label is refused (400: void the label first), as is a cancelled one, and
  `external_shipment_id` cannot change;
- webhooks (`/v2/environment/webhooks`: list, create, get, update, delete): each bought label
  posts a `track` event (`{resource_url, resource_type, data}`) to every `track` webhook, with
  the webhook's custom headers, from a sender thread, to loopback URLs only (`hooks`);
- 429 with `Retry-After` (faults), and `X-Rate-Limit-*` headers on every reply.

The server runs in its own thread (SandboxServer), so every state change holds `self._lock`.
Control API (never faulted): GET /_sandbox/state, POST /_sandbox/faults, /_sandbox/ship, /_sandbox/stock.
"""

from __future__ import annotations

import copy
import re
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from connector.sandbox.common import DEMO_PLAN, CallWindow, Edge, Planned, SandboxKit, ShipPlan, control_routes, endpoint, halves
from connector.sandbox.common import now_utc as _now
from connector.sandbox.common import parse_time as _parse_time
from connector.sandbox.common import stamp_ms as _stamp
from connector.sandbox.faults import FaultMiddleware, Faults
from connector.sandbox.shipbob import HookDelivery, HookSender

MAX_EXTERNAL_ID = 50
DEFAULT_LIMIT = 200  # ShipStation's default requests per minute, reported when no limit is simulated
SERVICE_CODE = re.compile(r"^[a-z0-9]+(_[a-z0-9-]+)*$")
# carrier_id, carrier_code, friendly name, services; the first is the account's primary carrier
DEFAULT_CARRIERS = (
    ("se-101", "stamps_com", "USPS", ("usps_priority_mail", "usps_ground_advantage", "usps_first_class_mail")),
    ("se-102", "ups", "UPS", ("ups_ground", "ups_2nd_day_air")),
    ("se-103", "fedex", "FedEx", ("fedex_ground", "fedex_2day")),
)
DEFAULT_SHIP_METHODS = ("usps_priority_mail", "ups_ground", "fedex_2day")
SHIP_FROM_ID = "se-201"
DEFAULT_INVENTORY_WAREHOUSES = {"se-301": "Reno (NV)", "se-302": "Louisville (KY)"}
ORIGIN = {
    "name": "Shipping Dept", "phone": "775-555-0100", "company_name": "Sandbox 3PL", "address_line1": "100 Warehouse Way",
    "city_locality": "Reno", "state_province": "NV", "postal_code": "89502", "country_code": "US",
    "address_residential_indicator": "no",
}
STATE_FIELDS = ("external_shipment_id", "shipment_number", "shipment_status", "carrier_id", "service_code", "items")
WEBHOOK_EVENTS = ("batch", "carrier_connected", "order_source_refresh_complete", "rate", "report_complete", "sales_orders_imported", "track")
PUBLIC_BASE = "https://api.shipstation.com"  # what resource_url names (the sandbox does not know its own address)
ADDRESS_REQUIRED = ("name", "phone", "address_line1", "city_locality", "state_province", "postal_code", "country_code")


class ApiError(Exception):
    """A ShipStation `error_response_body` reply."""

    def __init__(self, status: int, code: str, message: str, error_type: str = "validation"):
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message, self.error_type = status, code, message, error_type

    def response(self) -> Response:
        body = {
            "request_id": str(uuid.uuid4()),
            "errors": [{"error_source": "ShipStation", "error_type": self.error_type, "error_code": self.code, "message": self.message}],
        }
        return JSONResponse(body, status_code=self.status)


class ShipStationV2Sandbox(Planned):
    """State of one simulated ShipStation account plus its ASGI app (`.app`) and faults (`.faults`)."""

    api_error = ApiError  # what @endpoint turns into a reply

    def __init__(
        self,
        api_key: str = "sandbox-api-key",
        products: list[str] | tuple[str, ...] = ("SKU-1", "SKU-2", "SKU-3"),
        ship_methods: list[str] | tuple[str, ...] = DEFAULT_SHIP_METHODS,
        inventory_warehouses: dict[str, str] | None = None,
        *,
        ship_after_s: float | None = None,  # None: orders ship only when told to
        split_every: int = 0,  # every Nth order (by creation) is split in two shipments
        void_every: int = 0,  # every Nth order has its first label voided, then re-bought
        page_size: int = 25,  # ShipStation's default page size (labels, shipments, inventory)
        faults: Faults | None = None,
    ):
        self.api_key = api_key
        self.ship_after_s = ship_after_s
        self.split_every, self.void_every = split_every, void_every
        self.page_size = page_size
        self.products: dict[str, dict[str, Any]] = {}  # by SKU
        self.inventory_warehouses = dict(inventory_warehouses or DEFAULT_INVENTORY_WAREHOUSES)
        self._lock = threading.Lock()
        self._seq = {"shipment": 700000, "label": 900000, "package": 500, "product": 10400000, "webhook": 3000}
        self.webhooks: dict[str, dict[str, Any]] = {}  # by webhook_id
        self.hooks = HookSender("shipstation-v2", _no_signature)
        for sku in products:
            self._add_product(sku)
        self.carriers: list[dict[str, Any]] = [self._carrier(cid, code, name, services, primary=i == 0)
                                               for i, (cid, code, name, services) in enumerate(DEFAULT_CARRIERS)]
        for code in ship_methods:  # methods a test names that no default carrier offers
            if SERVICE_CODE.match(code) and not any(code in self._service_codes(c) for c in self.carriers):
                self.carriers[0]["services"].append(self._service(self.carriers[0], code))
        self.warehouses = {SHIP_FROM_ID: {
            "warehouse_id": SHIP_FROM_ID, "name": "Reno DC", "created_at": _stamp(_now()), "is_default": True,
            "origin_address": dict(ORIGIN), "return_address": dict(ORIGIN),
        }}
        self.shipments: dict[str, dict[str, Any]] = {}  # by shipment_id
        self.by_external: dict[str, str] = {}  # external_shipment_id -> shipment_id
        self.labels: dict[str, dict[str, Any]] = {}  # by label_id
        self.stock: dict[str, dict[str, dict[str, int]]] = {}  # sku -> inventory warehouse -> on_hand, allocated
        self.create_attempts: dict[str, int] = defaultdict(int)
        self.create_count = 0
        self.cancel_attempts: dict[str, int] = defaultdict(int)  # cancel calls, by shipment_id
        self.update_attempts: dict[str, int] = defaultdict(int)  # update calls, by shipment_id
        self.plans: dict[str, ShipPlan] = {}  # by external_shipment_id
        self.requests: dict[str, int] = defaultdict(int)
        self._window = CallWindow()
        self.faults = faults or Faults()
        routes = [
            Route("/v2/carriers", self._list_carriers, methods=["GET"]),
            Route("/v2/warehouses/{warehouse_id}", self._get_warehouse, methods=["GET"]),
            Route("/v2/shipments", self._create_shipments, methods=["POST"]),
            Route("/v2/shipments", self._list_shipments, methods=["GET"]),
            Route("/v2/shipments/external_shipment_id/{external_id:path}", self._get_by_external_id, methods=["GET"]),
            Route("/v2/shipments/{shipment_id}", self._get_shipment, methods=["GET"]),
            Route("/v2/shipments/{shipment_id}", self._update_shipment, methods=["PUT"]),
            Route("/v2/shipments/{shipment_id}/cancel", self._cancel_shipment, methods=["PUT"]),
            Route("/v2/labels", self._list_labels, methods=["GET"]),
            Route("/v2/inventory", self._list_inventory, methods=["GET"]),
            Route("/v2/products", self._list_products, methods=["GET"]),
            Route("/v2/environment/webhooks", self._list_webhooks, methods=["GET"]),
            Route("/v2/environment/webhooks", self._create_webhook, methods=["POST"]),
            Route("/v2/environment/webhooks/{webhook_id}", self._get_webhook, methods=["GET"]),
            Route("/v2/environment/webhooks/{webhook_id}", self._update_webhook, methods=["PUT"]),
            Route("/v2/environment/webhooks/{webhook_id}", self._delete_webhook, methods=["DELETE"]),
            *control_routes(self, shipped_key="labels", stock_entry=lambda e: (
                str(e["sku"]), str(e["inventory_warehouse_id"]), int(e["available"]), e.get("on_hand"))),
        ]
        self.app = Edge(FaultMiddleware(Starlette(routes=routes), self.faults), self._count_request, self._rate_headers)

    # -- Python-side API (tests, demo) --------------------------------------------------------

    @property
    def ship_methods(self) -> tuple[str, ...]:
        """Every service code of the connected carriers."""
        return tuple(dict.fromkeys(s["service_code"] for c in self.carriers for s in c["services"]))

    def set_stock(self, sku: str, warehouse_id: str, available: int, on_hand: int | None = None) -> None:
        """Put stock on an inventory warehouse's shelf (on hand defaults to available)."""
        with self._lock:
            self.inventory_warehouses.setdefault(warehouse_id, f"Warehouse {warehouse_id}")
            if sku not in self.products:  # ShipStation keeps inventory for products only
                self._add_product(sku)
            on_hand = available if on_hand is None else on_hand
            self.stock.setdefault(sku, {})[warehouse_id] = {"on_hand": on_hand, "allocated": max(0, on_hand - available)}

    def ship_all(self) -> list[dict[str, Any]]:
        """Buy labels for every pending shipment; returns the new labels."""
        with self._lock:
            return [label for sid in list(self.shipments) for label in self._ship(sid)]

    def ship(self, reference: str) -> list[dict[str, Any]]:
        with self._lock:
            sid = self.by_external.get(reference)
            return self._ship(sid) if sid else []

    def split(self, reference: str) -> dict[str, Any] | None:
        """Split Ship done by hand before any label: the second half of the items moves to a new
        pending shipment (same `shipment_number`), which ships with the original. None when the
        shipment is not pending or cannot be split."""
        with self._lock:
            shipment = self.shipments.get(self.by_external.get(reference, ""))
            if shipment is None or shipment["shipment_status"] != "pending":
                return None
            child = self._split(shipment)
            return self._public(child) if child else None

    def orders_created(self, reference: str) -> int:
        """Shipments that carry `reference` as their external_shipment_id (0 or 1, as ShipStation allows)."""
        with self._lock:
            return sum(1 for s in self.shipments.values() if s.get("external_shipment_id") == reference)

    def state(self) -> dict[str, Any]:
        with self._lock:
            return {
                "shipments": {sid: {k: s.get(k) for k in STATE_FIELDS} for sid, s in self.shipments.items()},
                "labels": [self._public(label) for label in self.labels.values()],
                "create_attempts": dict(self.create_attempts),
                "create_count": self.create_count,
                "cancel_attempts": dict(self.cancel_attempts),
                "requests": dict(self.requests),
                "faults": dict(self.faults.counts),
                "ship_methods": list(self.ship_methods),
                "products": sorted(self.products),
                "stock": copy.deepcopy(self.stock),
            }

    # -- internals (callers hold the lock) ----------------------------------------------------

    def _next(self, kind: str) -> int:
        self._seq[kind] += 1
        return self._seq[kind]

    def _add_product(self, sku: str) -> None:
        now = _stamp(_now())
        self.products[sku] = {"product_id": self._next("product"), "sku": sku, "name": sku, "active": True,
                              "create_date": now, "modify_date": now, "aliases": []}

    @staticmethod
    def _service_codes(carrier: dict[str, Any]) -> set[str]:
        return {s["service_code"] for s in carrier["services"]}

    @staticmethod
    def _service(carrier: dict[str, Any], code: str) -> dict[str, Any]:
        # No `carrier_code` per service: the document types it as an se_id, which a real code
        # ("stamps_com") is not, and the adapter does not need it.
        return {"carrier_id": carrier["carrier_id"], "service_code": code,
                "name": code.replace("_", " ").title(), "domestic": True, "international": False, "is_multi_package_supported": True}

    def _carrier(self, cid: str, code: str, name: str, services: tuple[str, ...], primary: bool) -> dict[str, Any]:
        carrier = {
            "carrier_id": cid, "carrier_code": code, "account_number": f"ACCT{cid[3:]}", "requires_funded_amount": False,
            "balance": 0, "nickname": name, "friendly_name": name, "primary": primary,
            "has_multi_package_supporting_services": True, "supports_label_messages": True,
            "disabled_by_billing_plan": False, "services": [], "packages": [], "options": [],
        }
        carrier["services"] = [self._service(carrier, s) for s in services]
        return carrier

    def _count_request(self, method: str, path: str) -> None:
        # Ids collapse to a template, so counts read "GET /v2/shipments/{id}".
        endpoint = re.sub(r"/se-[a-z0-9-]+$", "/{id}", path)
        endpoint = re.sub(r"^/v2/shipments/external_shipment_id/.+$", "/v2/shipments/external_shipment_id/{id}", endpoint)
        with self._lock:
            self.requests[f"{method} {endpoint}"] += 1

    def _spend_call(self, limited: bool) -> tuple[int, int, int]:
        limit = self.faults.rate_limit_per_minute or DEFAULT_LIMIT
        calls, age = self._window.spend()
        reset = int(60 - age) + 1
        if not self.faults.rate_limit_per_minute:
            return DEFAULT_LIMIT, DEFAULT_LIMIT, reset  # no limit simulated: never make a client wait
        return limit, 0 if limited else max(0, limit - calls), reset

    def _rate_headers(self, status: int, headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
        """`X-Rate-Limit-Limit`, `-Remaining` and `-Reset` on every reply, faults included."""
        limit, remaining, reset = self._spend_call(status == 429)
        headers = [h for h in headers if not h[0].lower().startswith(b"x-rate-limit-")]
        return headers + [(b"x-rate-limit-limit", str(limit).encode()), (b"x-rate-limit-remaining", str(remaining).encode()),
                          (b"x-rate-limit-reset", str(reset).encode())]

    def _check_auth(self, request: Request) -> None:
        if request.headers.get("api-key", "") != self.api_key:
            raise ApiError(401, "unauthorized", "The API key is invalid. Please see https://www.shipstation.com/docs/api", "security")

    def _validate(self, entry: Any, index: int) -> None:
        where = f"shipments[{index}]"
        if not isinstance(entry, dict):
            raise ApiError(400, "invalid_object", f"{where} must be an object")
        to = entry.get("ship_to")
        if not isinstance(to, dict):
            raise ApiError(400, "field_value_required", f"{where}.ship_to is required")
        for field in ADDRESS_REQUIRED:
            if not str(to.get(field) or "").strip():
                raise ApiError(400, "field_value_required", f"{where}.ship_to.{field} is required")
        items = entry.get("items") or []
        if not isinstance(items, list) or not items:
            raise ApiError(400, "field_value_required", f"{where}.items: at least one item is required")
        for i, item in enumerate(items):
            if not isinstance(item.get("quantity"), int) or item["quantity"] < 1:
                raise ApiError(400, "invalid_field_value", f"{where}.items[{i}].quantity must be at least 1")

    def _resolve_service(self, entry: dict[str, Any]) -> tuple[str | None, str | None]:
        cid, code = entry.get("carrier_id"), entry.get("service_code")
        if cid is not None and not any(c["carrier_id"] == cid for c in self.carriers):
            raise ApiError(400, "invalid_identifier", f"carrier_id {cid} is not connected to this account")
        if code is None:
            return cid, None
        offering = [c for c in self.carriers if code in self._service_codes(c) and (cid is None or c["carrier_id"] == cid)]
        offering.sort(key=lambda c: not c["primary"])  # stable: the primary carrier, else the first listed
        if not offering:
            raise ApiError(400, "invalid_field_value", f"service_code {code} is not offered by " + (cid or "any connected carrier"))
        return offering[0]["carrier_id"], code

    def _create(self, entry: dict[str, Any]) -> dict[str, Any]:
        external = str(entry.get("external_shipment_id") or "")[:MAX_EXTERNAL_ID]  # ShipStation truncates silently
        if external:
            self.create_attempts[external] += 1
        if external and external in self.by_external:
            raise ApiError(400, "identifier_conflict", f"A shipment with external_shipment_id '{external}' already exists.")
        carrier_id, service_code = self._resolve_service(entry)
        now = _stamp(_now())
        sid = f"se-{self._next('shipment')}"
        self.create_count += 1
        ship_from = entry.get("ship_from") or dict(ORIGIN)
        packages = copy.deepcopy(entry.get("packages")) or [{"weight": {"value": 16.0, "unit": "ounce"}}]
        for package in packages:
            package.setdefault("package_code", "package")
            package["shipment_package_id"] = f"se-{self._next('package')}"
        shipment = {
            "shipment_id": sid,
            "external_shipment_id": external or sid,
            "shipment_number": external or sid,
            "carrier_id": carrier_id,
            "service_code": service_code,
            "created_at": now,
            "modified_at": now,
            "shipment_status": entry.get("shipment_status") or "pending",
            "ship_to": copy.deepcopy(entry["ship_to"]),
            "ship_from": copy.deepcopy(ship_from),
            "return_to": copy.deepcopy(ship_from),
            "warehouse_id": None if entry.get("ship_from") else SHIP_FROM_ID,
            "store_id": entry.get("store_id"),
            "confirmation": "none",
            "advanced_options": {},
            "insurance_provider": "none",
            "tags": [],
            "is_gift": bool(entry.get("is_gift")),
            "notes_for_gift": entry.get("notes_for_gift"),
            "notes_from_buyer": entry.get("notes_from_buyer"),
            "items": [{"name": i.get("name") or i.get("sku") or "", "sku": i.get("sku"), "quantity": i["quantity"],
                       **({"unit_price": i["unit_price"]} if i.get("unit_price") is not None else {})} for i in entry["items"]],
            "packages": packages,
            "total_weight": {"value": float(sum(p["weight"]["value"] for p in packages)), "unit": packages[0]["weight"]["unit"]},
            "_seq": self.create_count,
            "_created": time.monotonic(),
            "_alloc": [],  # (sku, inventory warehouse, quantity) committed by this order
        }
        for key in ("amount_paid", "shipping_paid", "tax_paid"):
            if entry.get(key) is not None:
                shipment[key] = copy.deepcopy(entry[key])
        for item in shipment["items"]:
            self._allocate(shipment, item["sku"], item["quantity"])
        self.shipments[sid] = shipment
        self.by_external[shipment["external_shipment_id"]] = sid
        return shipment

    def _allocate(self, shipment: dict[str, Any], sku: str | None, quantity: int) -> None:
        shelves = self.stock.get(sku or "", {})
        wh = next((w for w, q in shelves.items() if q["on_hand"] - q["allocated"] >= quantity), next(iter(shelves), None))
        if wh is not None:
            shelves[wh]["allocated"] += quantity
            shipment["_alloc"].append((sku, wh, quantity))

    def _ship(self, sid: str) -> list[dict[str, Any]]:
        shipment = self.shipments.get(sid)
        if shipment is None or shipment["shipment_status"] != "pending" or shipment.get("_child_of"):
            return []
        plan = ShipPlan.pick(self.plans, shipment["external_shipment_id"], shipment["_seq"], self.split_every, self.void_every)
        parts = [shipment] + [c for c in self.shipments.values() if c.get("_child_of") == sid and c["shipment_status"] == "pending"]
        if plan.split and len(parts) == 1:
            child = self._split(shipment)
            if child is not None:
                parts.append(child)
        bought: list[dict[str, Any]] = []
        if plan.void_first:
            first = self._label(shipment, plan.tracking)
            first.update(status="voided", voided=True, voided_at=_stamp(_now()))
            bought.append(first)
        for part in parts:
            label = self._label(part, plan.tracking)
            bought.append(label)
            part.update(shipment_status="label_purchased", modified_at=_stamp(_now()))
            self._emit_track(label)
        for sku, wh, quantity in shipment["_alloc"]:  # the parcels left: off the shelf
            q = self.stock[sku][wh]
            q["on_hand"], q["allocated"] = max(0, q["on_hand"] - quantity), max(0, q["allocated"] - quantity)
        return [self._public(label) for label in bought]

    def _split(self, shipment: dict[str, Any]) -> dict[str, Any] | None:
        """Split Ship: the second half of the items moves to a new shipment with its own id (and a
        generated external_shipment_id) that keeps the original's shipment_number."""
        parts = halves(shipment["items"], lambda item: item["quantity"], lambda item, q: dict(item, quantity=q))
        if len(parts) < 2:
            return None
        keep, move = parts
        sid = f"se-{self._next('shipment')}"
        child = copy.deepcopy({k: v for k, v in shipment.items() if k != "_alloc"})
        child.update(shipment_id=sid, external_shipment_id=sid, items=copy.deepcopy(move), created_at=_stamp(_now()),
                     modified_at=_stamp(_now()), _child_of=shipment["shipment_id"], _alloc=[])
        shipment["items"] = keep
        self.shipments[sid] = child
        self.by_external[sid] = sid
        return child

    def _label(self, shipment: dict[str, Any], tracking: str | None) -> dict[str, Any]:
        n = self._next("label")
        carrier = next((c for c in self.carriers if c["carrier_id"] == shipment.get("carrier_id")), self.carriers[0])
        service = shipment.get("service_code") or carrier["services"][0]["service_code"]
        number = tracking if tracking is not None else f"9400{n:018d}"
        now = _now()
        label = {
            "label_id": f"se-{n}",
            "status": "completed",
            "shipment_id": shipment["shipment_id"],
            "external_shipment_id": shipment["external_shipment_id"],
            "ship_date": now.strftime("%Y-%m-%dT00:00:00Z"),  # a `date`: midnight UTC, as ShipStation sets it
            "created_at": _stamp(now),
            "shipment_cost": {"currency": "usd", "amount": 7.58},
            "insurance_cost": {"currency": "usd", "amount": 0.0},
            "tracking_number": number,
            "is_return_label": False,
            "is_international": False,
            "carrier_id": carrier["carrier_id"],
            "carrier_code": carrier["carrier_code"],
            "service_code": service,
            "voided": False,
            "voided_at": None,
            "trackable": True,
            "packages": [{"package_id": self._next("package"), "package_code": "package", "tracking_number": number,
                          "weight": copy.deepcopy(shipment["packages"][0]["weight"])}],
        }
        self.labels[label["label_id"]] = label
        return label

    def _emit_track(self, label: dict[str, Any]) -> None:
        """A `track` event for a new label ("label created, not yet with the carrier") to every
        `track` webhook, with its custom headers."""
        body = {
            "resource_url": f"{PUBLIC_BASE}/v2/labels/{label['label_id']}/track",
            "resource_type": "TRACK_EVENT_V2",
            "data": {"tracking_number": label["tracking_number"], "status_code": "AC", "status_description": "Accepted",
                     "carrier_code": label["carrier_code"], "events": []},
        }
        for hook in self.webhooks.values():
            if hook["event"] == "track":
                self.hooks.post(hook["url"], "track", body, extra={h["key"]: h["value"] for h in hook.get("headers") or []})

    def close(self) -> None:
        self.hooks.close()

    @staticmethod
    def _public(record: dict[str, Any]) -> dict[str, Any]:
        """The record as the API shows it: private keys dropped, nulls omitted (as ShipStation
        omits unset optional fields)."""
        return {k: copy.deepcopy(v) for k, v in record.items() if not k.startswith("_") and v is not None}

    def _page(self, request: Request, key: str, records: list[Any], render: Callable[[Any], Any] | None = None,
              size_param: str = "page_size") -> Response:
        """One page of a paged list, with `links` that repeat the request's own parameters; only
        that page's records are rendered (`render`, default as they are)."""
        q = request.query_params
        try:
            page = int(q.get("page") or 1)
            size = int(q.get(size_param) or self.page_size)
        except ValueError:
            return ApiError(400, "invalid_field_value", "page and page_size must be integers").response()
        if page < 1 or size < 1:
            return ApiError(400, "invalid_field_value", "page and page_size must be at least 1").response()
        pages = (len(records) + size - 1) // size

        def link(n: int) -> dict[str, str]:
            return {"href": str(request.url.include_query_params(page=n))}

        links = {"first": link(1), "last": link(max(1, pages)), "prev": link(page - 1) if page > 1 else {},
                 "next": link(page + 1) if page < pages else {}}
        chunk = records[(page - 1) * size : page * size]
        if render is not None:
            chunk = [render(r) for r in chunk]
        return JSONResponse({key: chunk, "total": len(records), "page": page, "pages": pages, "links": links})

    def _auto_ship(self) -> None:
        if self.ship_after_s is None:
            return
        now = time.monotonic()
        for sid, shipment in list(self.shipments.items()):
            if now - shipment["_created"] >= self.ship_after_s:
                self._ship(sid)

    # -- API ----------------------------------------------------------------------------------

    @endpoint
    async def _list_carriers(self, request: Request) -> Response:
        with self._lock:
            carriers = copy.deepcopy(self.carriers)
        return JSONResponse({"carriers": carriers, "request_id": str(uuid.uuid4()), "errors": []})

    async def _get_warehouse(self, request: Request) -> Response:
        try:
            self._check_auth(request)
            warehouse = self.warehouses.get(request.path_params["warehouse_id"])
            if warehouse is None:
                raise ApiError(404, "invalid_identifier", f"warehouse {request.path_params['warehouse_id']} not found")
        except ApiError as exc:
            return exc.response()
        return JSONResponse(copy.deepcopy(warehouse))

    async def _create_shipments(self, request: Request) -> Response:
        try:
            self._check_auth(request)
            try:
                body = await request.json()
            except ValueError:
                raise ApiError(400, "request_body_required", "Body of request cannot be null.") from None
            entries = body.get("shipments") if isinstance(body, dict) else None
            if not isinstance(entries, list) or not entries:
                raise ApiError(400, "field_value_required", "shipments: at least one shipment is required")
            with self._lock:
                for i, entry in enumerate(entries):
                    self._validate(entry, i)
                created = [self._create(entry) for entry in entries]
                answer = [dict(self._public(s), errors=[]) for s in created]
        except ApiError as exc:
            return exc.response()
        return JSONResponse({"has_errors": False, "shipments": answer})

    async def _get_by_external_id(self, request: Request) -> Response:
        return self._shipment_reply(request, lambda: self.by_external.get(request.path_params["external_id"]))

    async def _get_shipment(self, request: Request) -> Response:
        return self._shipment_reply(request, lambda: request.path_params["shipment_id"])

    def _shipment_reply(self, request: Request, shipment_id: Callable[[], str | None]) -> Response:
        """One shipment by the id `shipment_id()` finds (under the lock), or a 404."""
        try:
            self._check_auth(request)
            with self._lock:
                sid = shipment_id()
                shipment = self.shipments.get(sid) if sid else None
                shipment = self._public(shipment) if shipment else None
            if shipment is None:
                raise ApiError(404, "invalid_identifier", "shipment not found")
        except ApiError as exc:
            return exc.response()
        return JSONResponse(shipment)

    @endpoint
    async def _cancel_shipment(self, request: Request) -> Response:
        sid = request.path_params["shipment_id"]
        with self._lock:
            shipment = self.shipments.get(sid)
            if shipment is None:
                raise ApiError(404, "invalid_identifier", f"shipment {sid} not found")
            self.cancel_attempts[sid] += 1
            status = shipment["shipment_status"]
            if status == "label_purchased" or any(lb["shipment_id"] == sid and lb["status"] == "completed" for lb in self.labels.values()):
                raise ApiError(400, "invalid_status", "Any label associated with the shipment needs to be voided first", "business_rules")
            if status != "cancelled":
                shipment.update(shipment_status="cancelled", modified_at=_stamp(_now()))
                for sku, wh, quantity in shipment["_alloc"]:  # nothing will leave: the stock is free again
                    q = self.stock[sku][wh]
                    q["allocated"] = max(0, q["allocated"] - quantity)
                shipment["_alloc"] = []
        return Response(status_code=204)

    # Fields an update may replace (the rest of a sent body is ignored, as read-only).
    UPDATABLE = ("carrier_id", "service_code", "requested_shipment_service", "external_order_id", "hold_until_date", "ship_by_date",
                 "store_id", "ship_to", "ship_from", "warehouse_id", "return_to", "confirmation", "customs", "advanced_options",
                 "insurance_provider", "packages", "items", "notes_from_buyer", "notes_for_gift", "is_gift", "amount_paid",
                 "shipping_paid", "tax_paid", "ship_date", "is_return", "order_source_code")

    @endpoint
    async def _update_shipment(self, request: Request) -> Response:
        sid = request.path_params["shipment_id"]
        try:
            body = await request.json()
        except ValueError:
            body = None
        with self._lock:
            shipment = self.shipments.get(sid)
            if shipment is None:
                raise ApiError(404, "invalid_identifier", f"shipment {sid} not found")
            self.update_attempts[sid] += 1
            status = shipment["shipment_status"]
            if status == "label_purchased" or any(lb["shipment_id"] == sid and lb["status"] == "completed" for lb in self.labels.values()):
                raise ApiError(400, "invalid_status", "A shipment with a label cannot be updated: void the label first", "business_rules")
            if status != "pending":
                raise ApiError(400, "invalid_status", f"A {status} shipment cannot be updated", "business_rules")
            if not isinstance(body, dict):
                raise ApiError(400, "request_body_required", "Body of request cannot be null.")
            external = body.get("external_shipment_id")
            if external is not None and external != shipment["external_shipment_id"]:
                raise ApiError(400, "invalid_field_value", "external_shipment_id cannot be changed")
            entry = {"ship_to": body.get("ship_to", shipment["ship_to"]), "items": body.get("items", shipment["items"])}
            self._validate(entry, 0)
            if "carrier_id" in body or "service_code" in body:
                carrier_id, service_code = self._resolve_service({"carrier_id": body.get("carrier_id", shipment["carrier_id"]),
                                                                  "service_code": body.get("service_code", shipment["service_code"])})
                shipment.update(carrier_id=carrier_id, service_code=service_code)
            for key in self.UPDATABLE:
                if key in body and key not in ("carrier_id", "service_code", "items"):
                    shipment[key] = copy.deepcopy(body[key])
            if "items" in body:
                for sku, wh, quantity in shipment["_alloc"]:  # the old items' stock is free again
                    q = self.stock[sku][wh]
                    q["allocated"] = max(0, q["allocated"] - quantity)
                shipment["_alloc"] = []
                shipment["items"] = [{"name": i.get("name") or i.get("sku") or "", "sku": i.get("sku"), "quantity": i["quantity"],
                                      **{k: copy.deepcopy(v) for k, v in i.items() if k not in ("name", "sku", "quantity") and v is not None}}
                                     for i in body["items"]]
                for item in shipment["items"]:
                    self._allocate(shipment, item["sku"], item["quantity"])
            shipment["modified_at"] = _stamp(_now())
            answer = self._public(shipment)
        return JSONResponse(answer)

    # -- webhooks ---------------------------------------------------------------------------

    @staticmethod
    def _hook_fields(body: Any, *, create: bool) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise ApiError(400, "request_body_required", "Body of request cannot be null.")
        out: dict[str, Any] = {}
        if create or "event" in body:
            if body.get("event") not in WEBHOOK_EVENTS:
                raise ApiError(400, "invalid_field_value", f"event must be one of {', '.join(WEBHOOK_EVENTS)}")
            out["event"] = body["event"]
        if create or "url" in body:
            url = body.get("url")
            if not isinstance(url, str) or not url.startswith(("https://", "http://")):
                raise ApiError(400, "invalid_field_value", "url must be an absolute URL")
            out["url"] = url
        if "headers" in body:
            headers = body["headers"]
            if not isinstance(headers, list) or not all(isinstance(h, dict) and isinstance(h.get("key"), str)
                                                        and isinstance(h.get("value"), str) for h in headers):
                raise ApiError(400, "invalid_field_value", "headers must be a list of {key, value}")
            out["headers"] = [{"key": h["key"], "value": h["value"]} for h in headers]
        return out

    @endpoint
    async def _list_webhooks(self, request: Request) -> Response:
        with self._lock:
            return JSONResponse(copy.deepcopy(list(self.webhooks.values())))

    @endpoint
    async def _create_webhook(self, request: Request) -> Response:
        try:
            body = await request.json()
        except ValueError:
            raise ApiError(400, "request_body_required", "Body of request cannot be null.") from None
        fields = self._hook_fields(body, create=True)
        with self._lock:
            if any(h["event"] == fields["event"] and h["url"] == fields["url"] for h in self.webhooks.values()):
                raise ApiError(409, "duplicate_webhook", f"a {fields['event']} webhook to this url already exists", "business_rules")
            hook = {"webhook_id": f"se-{self._next('webhook')}", "headers": [], **fields}
            self.webhooks[hook["webhook_id"]] = hook
            return JSONResponse(copy.deepcopy(hook))

    def _hook(self, request: Request) -> dict[str, Any]:
        hook = self.webhooks.get(request.path_params["webhook_id"])
        if hook is None:
            raise ApiError(404, "invalid_identifier", "webhook not found")
        return hook

    @endpoint
    async def _get_webhook(self, request: Request) -> Response:
        with self._lock:
            return JSONResponse(copy.deepcopy(self._hook(request)))

    @endpoint
    async def _update_webhook(self, request: Request) -> Response:
        try:
            body = await request.json()
        except ValueError:
            raise ApiError(400, "request_body_required", "Body of request cannot be null.") from None
        fields = self._hook_fields(body, create=False)
        fields.pop("event", None)  # update_webhook_request_body: url and headers only
        with self._lock:
            self._hook(request).update(fields)
        return Response(status_code=204)

    @endpoint
    async def _delete_webhook(self, request: Request) -> Response:
        with self._lock:
            self._hook(request)
            del self.webhooks[request.path_params["webhook_id"]]
        return Response(status_code=204)

    @endpoint
    async def _list_shipments(self, request: Request) -> Response:
        q = request.query_params
        with self._lock:
            found = [s for s in self.shipments.values()
                     if (not q.get("shipment_number") or s["shipment_number"] == q["shipment_number"])
                     and (not q.get("shipment_status") or s["shipment_status"] == q["shipment_status"])]
            found.sort(key=lambda s: s["created_at"], reverse=q.get("sort_dir", "desc") == "desc")
            return self._page(request, "shipments", found, self._public)

    @endpoint
    async def _list_labels(self, request: Request) -> Response:
        q = request.query_params
        start = _parse_time(q["created_at_start"]) if q.get("created_at_start") else None
        if q.get("created_at_start") and start is None:
            return ApiError(400, "invalid_field_value", "created_at_start must be a date-time").response()
        with self._lock:
            self._auto_ship()
            found = [label for label in self.labels.values()
                     if (start is None or _parse_time(label["created_at"]) >= start)
                     and (not q.get("shipment_id") or label["shipment_id"] == q["shipment_id"])
                     and (not q.get("label_status") or label["status"] == q["label_status"])]
            key = "modified_at" if q.get("sort_by") == "modified_at" else "created_at"
            found.sort(key=lambda lb: (lb.get(key) or lb["created_at"], lb["label_id"]), reverse=q.get("sort_dir", "desc") == "desc")
            return self._page(request, "labels", found, self._public)

    @endpoint
    async def _list_products(self, request: Request) -> Response:
        q = request.query_params
        with self._lock:
            found = [p for p in sorted(self.products.values(), key=lambda p: p["product_id"])
                     if (not q.get("sku") or p["sku"] == q["sku"]) and (q.get("active") is None or str(p["active"]).lower() == q["active"])]
            return self._page(request, "products", found, copy.deepcopy)

    @endpoint
    async def _list_inventory(self, request: Request) -> Response:
        q = request.query_params
        per_location = q.get("group_by") != "warehouse"  # one location per warehouse here
        with self._lock:
            shelves = [(sku, wh, s) for sku, by_warehouse in sorted(self.stock.items()) for wh, s in sorted(by_warehouse.items())
                       if (not q.get("sku") or sku == q["sku"]) and (not q.get("inventory_warehouse_id") or wh == q["inventory_warehouse_id"])]

            def row(shelf: tuple[str, str, dict[str, int]]) -> dict[str, Any]:
                sku, wh, s = shelf
                out = {"sku": sku, "on_hand": s["on_hand"], "allocated": s["allocated"], "available": s["on_hand"] - s["allocated"],
                       "average_cost": {"amount": 0.0, "currency": "usd"}, "inventory_warehouse_id": wh}
                return dict(out, inventory_location_id=f"{wh}-A1") if per_location else out

            # `limit` is the only size parameter /v2/inventory documents; its links add just `page`.
            return self._page(request, "inventory", shelves, row, size_param="limit")


def _no_signature(delivery: HookDelivery) -> dict[str, str]:
    """The sandbox does not sign (ShipStation's RSA-SHA256 scheme is not in its document)."""
    return {}


class ShipStationV2Kit(SandboxKit):
    """The ShipStation v2 sandbox as a `connector.sandbox.kits.WarehouseKit`."""

    name = "shipstation-v2"
    routes = {  # no "ack": the adapter makes no such call
        "create": ("POST", "/v2/shipments"),
        "find": ("GET", "/v2/shipments/external_shipment_id/"),
        "shipments": ("GET", "/v2/labels"),
        "stock": ("GET", "/v2/inventory"),
        "ship_methods": ("GET", "/v2/carriers"),
        "skus": ("GET", "/v2/products"),
        # The first PUT under /v2/shipments/: a cancel, or an update (Update Shipment) in the
        # tests that fault neither. Prefixes cannot tell "/{id}" from "/{id}/cancel".
        "cancel": ("PUT", "/v2/shipments/"),
    }

    def warehouse_config(self, base_url: str, workdir) -> dict[str, Any]:
        return {"adapter": "shipstation-v2", "base_url": base_url, "api_key": self.sandbox.api_key, "warehouse_id": SHIP_FROM_ID}

    def set_stock(self, sku: str, warehouse_id: str, available: int, on_hand: int | None = None) -> None:
        self.sandbox.set_stock(sku, warehouse_id, available, on_hand)

    def orders_created(self, reference: str) -> int:
        return self.sandbox.orders_created(reference)

    def warehouse_ids(self) -> list[str]:
        return list(self.sandbox.inventory_warehouses)

    def close(self) -> None:
        self.sandbox.close()


def kit(*, products, ship_methods, credential: str = "sandbox-api-key", **kw: Any) -> ShipStationV2Kit:
    """A ShipStation v2 sandbox kit (demo, bench, pipeline tests).

    ShipStation's ship methods are carrier service codes: names given in `ship_methods` that are
    not service codes (the demo's "Standard", ...) are replaced by the sandbox's default codes.
    """
    methods = tuple(m for m in ship_methods if SERVICE_CODE.match(m)) or DEFAULT_SHIP_METHODS
    kw = {**DEMO_PLAN, **kw}
    return ShipStationV2Kit(ShipStationV2Sandbox(api_key=credential, products=products, ship_methods=methods, **kw), methods, tuple(products))
