"""A loopback ShipStation (API v1): exactly the endpoints the ShipStation adapter uses.

Faithful where it matters to the connector:
- HTTP Basic with the API key and secret on every call (401 otherwise);
- `POST /orders/createorder` upserts by `orderKey`: an unknown key creates an order, a known one
  replaces it whole (`modifyDate` moves, `createDate` stays), and a shipped or cancelled order
  cannot be updated (400). Without an `orderKey` ShipStation makes one up, so every call is a new
  order. Re-posting an order with `orderStatus` "cancelled" is how v1 cancels: it never ships;
  re-posting it with a new `shipTo` or `items` is how v1 updates it (the order keeps its id). Validation errors come back in ASP.NET's `{"Message", "ModelState"}` shape;
- `GET /orders` with `orderNumber` as a "starts with" search, and no `orderKey` filter;
- `GET /shipments` (labels) filtered by `shipDateStart` read as a Pacific date, with
  `shipmentItems` only when `includeShipmentItems=true`; all dates Pacific, without an offset;
- an order ships on `ship_all()` / `ship()` (or, with `ship_after_s`, on the next shipments read):
  one label, two labels with the lines split, or a first label voided (`voided: true`) and
  re-shipped, as planned per order (`plan()`) or every Nth order (`split_every`, `void_every`);
- `GET /carriers`, `GET /carriers/listservices?carrierCode=`, `GET /stores/{storeId}`;
- paging by `page` and `pageSize` (<= 500) with `total`, `page`, `pages`;
- webhooks: `GET /webhooks`, `POST /webhooks/subscribe` (`target_url`, `event`, optional
  `store_id`), `DELETE /webhooks/{id}`; every order that ships posts `{resource_url,
  resource_type}` to each SHIP_NOTIFY subscriber of its store, unsigned, from a sender thread, to
  loopback URLs only (`hooks`);
- `X-Rate-Limit-Limit`, `-Remaining`, `-Reset` on every reply, faults included; a 429 when
  `faults.rate_limit_per_minute` is set and spent. Without it nothing is limited (the demo).

Where ShipStation's exact wording or strictness is not documented (an unknown carrier code or
store id on create), the sandbox answers a 400 with its own message.

The server runs in its own thread (SandboxServer), so every state change holds `self._lock`.
Control API (never faulted): GET /_sandbox/state, POST /_sandbox/faults, POST /_sandbox/ship.
"""

from __future__ import annotations

import base64
import copy
import math
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from connector.sandbox import common
from connector.sandbox.common import DEMO_PLAN, CallWindow, Edge, Planned, SandboxKit, ShipPlan, control_routes, endpoint, halves
from connector.sandbox.common import now_utc as _now
from connector.sandbox.faults import FaultMiddleware, Faults
from connector.sandbox.shipbob import HookDelivery, HookSender

WINDOW_LIMIT = 40  # ShipStation's documented budget per key and secret
MAX_PAGE_SIZE = 500
ORDER_STATUSES = ("awaiting_payment", "awaiting_shipment", "pending_fulfillment", "shipped", "on_hold", "cancelled")
FINAL_STATUSES = ("shipped", "cancelled")  # ShipStation refuses to update these
WEBHOOK_EVENTS = ("ORDER_NOTIFY", "ITEM_ORDER_NOTIFY", "SHIP_NOTIFY", "ITEM_SHIP_NOTIFY", "FULFILLMENT_SHIPPED", "FULFILLMENT_REJECTED")
PUBLIC_BASE = "https://ssapi.shipstation.com"  # what resource_url names (the sandbox does not know its own address)
DEFAULT_CARRIERS: dict[str, tuple[str, dict[str, str]]] = {
    "stamps_com": ("Stamps.com", {
        "usps_priority_mail": "USPS Priority Mail", "usps_ground_advantage": "USPS Ground Advantage",
        "usps_priority_mail_express": "USPS Priority Mail Express",
    }),
    "ups": ("UPS", {"ups_ground": "UPS® Ground", "ups_2nd_day_air": "UPS 2nd Day Air®", "ups_next_day_air": "UPS Next Day Air®"}),
    "fedex": ("FedEx", {"fedex_ground": "FedEx Ground®", "fedex_2day": "FedEx 2Day®", "fedex_standard_overnight": "FedEx Standard Overnight®"}),
}
DEFAULT_STORES = {310001: "UltraCart connector", 310002: "Manual Orders"}
DEFAULT_METHODS = ("stamps_com:usps_priority_mail", "ups:ups_ground", "fedex:fedex_2day")
SHIPMENT_ITEM_FIELDS = ("orderItemId", "lineItemKey", "sku", "name", "imageUrl", "weight", "quantity", "unitPrice",
                        "warehouseLocation", "options", "productId", "fulfillmentSku", "adjustment", "upc")


# ShipStation keeps every date in US Pacific time without an offset. The sandbox has its own
# clock code (never the adapter's), so a mistake in the adapter's conversion shows as a mismatch.
PACIFIC = ZoneInfo("America/Los_Angeles")


def pacific_stamp(moment: datetime) -> str:
    """How ShipStation writes a moment: Pacific wall time with seven fraction digits."""
    local = moment.astimezone(PACIFIC)
    return f"{local:%Y-%m-%dT%H:%M:%S}.{local.microsecond:06d}0"


def pacific_day(moment: datetime) -> str:
    return moment.astimezone(PACIFIC).date().isoformat()


def read_pacific(text: str | None) -> datetime | None:
    """A date or date-time as ShipStation reads one (Pacific unless it has an offset); None if
    it is not one."""
    try:
        moment = datetime.fromisoformat(str(text or "").strip())
    except ValueError:
        return None
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=PACIFIC).astimezone(UTC)


class ApiError(common.ApiError):
    """A ShipStation-style error reply: ASP.NET's `{"Message", ...}`, plain text, or no body."""


def _invalid(model_state: dict[str, list[str]]) -> ApiError:
    return ApiError(400, {"Message": "The request is invalid.", "ModelState": model_state})


class ShipStationSandbox(Planned):
    """State of one simulated ShipStation account plus its ASGI app (`.app`) and faults (`.faults`)."""

    api_error = ApiError  # what @endpoint turns into a reply

    def __init__(
        self,
        api_key: str = "sandbox-key",
        api_secret: str = "sandbox-secret",
        products: list[str] | tuple[str, ...] = ("SKU-1", "SKU-2", "SKU-3"),
        carriers: dict[str, tuple[str, dict[str, str]]] | None = None,
        stores: dict[int, str] | None = None,
        *,
        warehouse_ids: tuple[int, ...] = (90001,),
        ship_after_s: float | None = None,  # None: orders ship only when told (ship_all / ship)
        split_every: int = 0,  # every Nth order (by creation) ships in two labels
        void_every: int = 0,  # every Nth order has its first label voided, then re-shipped
        faults: Faults | None = None,
    ):
        self.api_key, self.api_secret = api_key, api_secret
        self.products = list(products)  # ShipStation takes any SKU; kept for the state view only
        self.carriers = copy.deepcopy(carriers if carriers is not None else DEFAULT_CARRIERS)
        self.stores = dict(stores or DEFAULT_STORES)
        self.warehouse_ids = tuple(warehouse_ids)
        self.ship_after_s = ship_after_s
        self.split_every, self.void_every = split_every, void_every
        self._lock = threading.Lock()
        self._seq = {"order": 5_000_000, "item": 9_000_000, "shipment": 70_000_000, "webhook": 40_000, "batch": 80_000}
        self.webhooks: dict[int, dict[str, Any]] = {}  # by WebHookID
        self.hooks = HookSender("shipstation", _unsigned)
        self.orders: dict[int, dict[str, Any]] = {}  # by orderId
        self.by_key: dict[str, int] = {}  # orderKey -> orderId
        self.labels: list[dict[str, Any]] = []  # every shipment (label), voided ones included
        self.create_attempts: dict[str, int] = defaultdict(int)  # createorder calls by orderKey
        self.create_count = 0  # orders created (not updates)
        self.update_count = 0
        self.plans: dict[str, ShipPlan] = {}
        self._created_at: dict[int, float] = {}
        self.requests: dict[str, int] = defaultdict(int)
        self._window = CallWindow()
        self.faults = faults or Faults()
        routes = [
            Route("/orders/createorder", self._create_order, methods=["POST"]),
            Route("/orders", self._list_orders, methods=["GET"]),
            Route("/shipments", self._list_shipments, methods=["GET"]),
            Route("/carriers", self._list_carriers, methods=["GET"]),
            Route("/carriers/listservices", self._list_services, methods=["GET"]),
            Route("/stores/{store_id}", self._get_store, methods=["GET"]),
            Route("/webhooks", self._list_webhooks, methods=["GET"]),
            Route("/webhooks/subscribe", self._subscribe, methods=["POST"]),
            Route("/webhooks/{hook_id}", self._unsubscribe, methods=["DELETE"]),
            *control_routes(self, reference_keys=("order_key", "reference")),  # v1 keeps no stock
        ]
        inner = Starlette(routes=routes)
        self.app = Edge(FaultMiddleware(inner, self.faults, retry_after_header="X-Rate-Limit-Reset"), self._count_request,
                        self._rate_headers)

    # -- Python-side API (tests, demo) --------------------------------------------------------

    def add_method(self, carrier: str, service: str, name: str = "") -> None:
        """Connect a carrier (if new) and give it a service."""
        with self._lock:
            entry = self.carriers.setdefault(carrier, (carrier.replace("_", " ").title(), {}))
            entry[1][service] = name or service.replace("_", " ").title()

    def ship_all(self) -> list[dict[str, Any]]:
        """Ship every order awaiting shipment; returns the new labels."""
        with self._lock:
            return [label for oid in list(self.orders) for label in self._ship(oid)]

    def ship(self, order_key: str) -> list[dict[str, Any]]:
        with self._lock:
            oid = self.by_key.get(order_key)
            return self._ship(oid) if oid is not None else []

    def order(self, order_key: str) -> dict[str, Any] | None:
        with self._lock:
            oid = self.by_key.get(order_key)
            return copy.deepcopy(self.orders[oid]) if oid is not None else None

    def state(self) -> dict[str, Any]:
        with self._lock:
            return {
                "orders": {o["orderKey"]: {"orderId": o["orderId"], "orderNumber": o["orderNumber"], "orderStatus": o["orderStatus"]}
                           for o in self.orders.values()},
                "create_attempts": dict(self.create_attempts),
                "create_count": self.create_count,
                "update_count": self.update_count,
                "shipments": [copy.deepcopy(s) for s in self.labels],
                "requests": dict(self.requests),
                "faults": dict(self.faults.counts),
                "carriers": {code: sorted(services) for code, (_, services) in self.carriers.items()},
                "stores": {str(k): v for k, v in self.stores.items()},
            }

    # -- internals (callers hold the lock) ----------------------------------------------------

    def _next(self, kind: str) -> int:
        self._seq[kind] += 1
        return self._seq[kind]

    def _limit(self) -> int:
        return self.faults.rate_limit_per_minute or WINDOW_LIMIT

    def _count_request(self, method: str, path: str) -> None:
        with self._lock:
            self.requests[f"{method} {path}"] += 1

    def _spend_call(self) -> tuple[int, int]:
        """(remaining, seconds until the window frees a call) after counting this call."""
        calls, age = self._window.spend()
        if not self.faults.rate_limit_per_minute:
            return WINDOW_LIMIT, 60  # no limit simulated: never make a client wait
        return max(0, self.faults.rate_limit_per_minute - calls), max(1, math.ceil(60.0 - age))

    def _rate_headers(self, status: int, headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
        """ShipStation's rate headers on every reply; a 429 from the faults keeps the reset it was given."""
        names = {h[0].lower() for h in headers}
        if status == 429:
            remaining, reset = 0, None
        else:
            remaining, reset = self._spend_call()
        ours = {b"x-rate-limit-limit", b"x-rate-limit-remaining"}
        extra = [(b"x-rate-limit-limit", str(self._limit()).encode()), (b"x-rate-limit-remaining", str(remaining).encode())]
        if reset is not None or b"x-rate-limit-reset" not in names:
            ours.add(b"x-rate-limit-reset")
            extra.append((b"x-rate-limit-reset", str(reset if reset is not None else 60).encode()))
        return [h for h in headers if h[0].lower() not in ours] + extra

    def _check_auth(self, request: Request) -> None:
        expected = base64.b64encode(f"{self.api_key}:{self.api_secret}".encode()).decode()
        if request.headers.get("authorization", "") != f"Basic {expected}":
            raise ApiError(401, "401 Unauthorized")

    def _validate(self, body: Any) -> None:
        if not isinstance(body, dict):
            raise ApiError(400, {"Message": "The request is invalid.", "ModelState": {"apiOrder": ["An order object is required."]}})
        errors: dict[str, list[str]] = {}
        for field in ("orderNumber", "orderDate", "orderStatus"):
            if not str(body.get(field) or "").strip():
                errors[f"apiOrder.{field}"] = [f"The {field} field is required."]
        if body.get("orderStatus") and body["orderStatus"] not in ORDER_STATUSES:
            errors["apiOrder.orderStatus"] = [f"'{body['orderStatus']}' is not a valid order status."]
        if body.get("orderDate") and read_pacific(body["orderDate"]) is None:
            errors["apiOrder.orderDate"] = ["The orderDate field is not a valid date."]
        for field in ("billTo", "shipTo"):
            if not isinstance(body.get(field), dict):
                errors[f"apiOrder.{field}"] = [f"The {field} field is required."]
        for i, item in enumerate(body.get("items") or []):
            if not isinstance(item.get("quantity"), int) or item["quantity"] < 1:
                errors[f"apiOrder.items[{i}].quantity"] = ["The quantity must be a whole number greater than 0."]
        if errors:
            raise _invalid(errors)
        carrier, service = body.get("carrierCode"), body.get("serviceCode")
        if carrier and carrier not in self.carriers:
            raise ApiError(400, {"Message": f"Invalid carrierCode '{carrier}': no such carrier is connected to this account."})
        if service and (not carrier or service not in self.carriers[carrier][1]):
            raise ApiError(400, {"Message": f"Invalid serviceCode '{service}' for carrier '{carrier}'."})
        store = (body.get("advancedOptions") or {}).get("storeId")
        if store is not None and store not in self.stores:
            raise ApiError(400, {"Message": f"Invalid storeId {store}."})

    def _upsert(self, body: Any) -> dict[str, Any]:
        with self._lock:
            key = str(body.get("orderKey") or "") if isinstance(body, dict) else ""
            if key:
                self.create_attempts[key] += 1
            self._validate(body)
            now = pacific_stamp(_now())
            existing = self.orders.get(self.by_key[key]) if key in self.by_key else None
            if existing is not None and existing["orderStatus"] in FINAL_STATUSES:
                raise ApiError(400, {
                    "Message": "An error has occurred.",
                    "ExceptionMessage": f"Order {existing['orderNumber']} is {existing['orderStatus']} and can no longer be updated.",
                })
            if existing is None:
                key = key or str(uuid.uuid4())  # ShipStation's own key: every keyless call is a new order
                oid = self._next("order")
                order: dict[str, Any] = {"orderId": oid, "orderKey": key, "createDate": now, "customerId": 40_000 + oid % 1000}
                self.create_count += 1
                order["_seq"] = self.create_count
                self._created_at[oid] = time.monotonic()
            else:
                order = existing  # no partial update: every writable field is replaced
                self.update_count += 1
            advanced = dict(body.get("advancedOptions") or {})
            advanced.setdefault("warehouseId", self.warehouse_ids[0])
            # Like ShipStation, an API order without a store lands in the "Manual Orders" store.
            advanced.setdefault("storeId", next((k for k, v in self.stores.items() if v == "Manual Orders"), next(iter(self.stores))))
            order.update(
                orderNumber=body["orderNumber"],
                orderDate=body["orderDate"],
                modifyDate=now,
                paymentDate=body.get("paymentDate"),
                shipByDate=body.get("shipByDate"),
                orderStatus=body["orderStatus"],
                customerUsername=body.get("customerUsername"),
                customerEmail=body.get("customerEmail"),
                billTo=copy.deepcopy(body["billTo"]),
                shipTo=copy.deepcopy(body["shipTo"]),
                items=[self._item(i, now) for i in body.get("items") or []],
                orderTotal=body.get("amountPaid") or 0.0,
                amountPaid=body.get("amountPaid"),
                taxAmount=body.get("taxAmount"),
                shippingAmount=body.get("shippingAmount"),
                customerNotes=body.get("customerNotes"),
                internalNotes=body.get("internalNotes"),
                gift=bool(body.get("gift")),
                giftMessage=body.get("giftMessage"),
                paymentMethod=body.get("paymentMethod"),
                requestedShippingService=body.get("requestedShippingService"),
                carrierCode=body.get("carrierCode"),
                serviceCode=body.get("serviceCode"),
                packageCode=body.get("packageCode"),
                confirmation=body.get("confirmation") or "none",
                shipDate=None,
                holdUntilDate=body.get("holdUntilDate"),
                weight=body.get("weight") or {"value": 0, "units": "ounces"},
                dimensions=body.get("dimensions"),
                insuranceOptions=body.get("insuranceOptions") or {"provider": None, "insureShipment": False, "insuredValue": 0},
                internationalOptions=body.get("internationalOptions") or {"contents": None, "customsItems": None},
                advancedOptions=advanced,
                tagIds=body.get("tagIds"),
                externallyFulfilled=False,
            )
            self.orders[order["orderId"]] = order
            self.by_key[order["orderKey"]] = order["orderId"]
            return self._public(order)

    def _item(self, item: dict[str, Any], now: str) -> dict[str, Any]:
        return {
            "orderItemId": self._next("item"),
            "lineItemKey": item.get("lineItemKey"),
            "sku": item.get("sku"),
            "name": item.get("name") or item.get("sku"),
            "imageUrl": item.get("imageUrl"),
            "weight": item.get("weight"),
            "quantity": item["quantity"],
            "unitPrice": item.get("unitPrice"),
            "taxAmount": item.get("taxAmount"),
            "shippingAmount": item.get("shippingAmount"),
            "warehouseLocation": item.get("warehouseLocation"),
            "options": item.get("options") or [],
            "productId": None,
            "fulfillmentSku": item.get("fulfillmentSku"),
            "adjustment": bool(item.get("adjustment")),
            "upc": item.get("upc"),
            "createDate": now,
            "modifyDate": now,
        }

    def _ship(self, oid: int) -> list[dict[str, Any]]:
        order = self.orders.get(oid)
        if order is None or order["orderStatus"] != "awaiting_shipment":
            return []
        plan = ShipPlan.pick(self.plans, order["orderKey"], order["_seq"], self.split_every, self.void_every)
        lines = [i for i in order["items"] if i["quantity"] > 0]
        groups = halves(lines, lambda item: item["quantity"], lambda item, q: dict(item, quantity=q)) if plan.split else [lines]
        made: list[dict[str, Any]] = []

        def tracking_for(n: int) -> str:
            return plan.tracking if plan.tracking is not None else f"1ZSS{oid:010d}{n:02d}"

        if plan.void_first:
            voided = self._label(order, lines, tracking_for(1))
            voided.update(voided=True, voidDate=pacific_stamp(_now()))
            made.append(voided)
        for group in groups:
            made.append(self._label(order, group, tracking_for(len(made) + 1)))
        self.labels += made
        order.update(orderStatus="shipped", shipDate=made[-1]["shipDate"], modifyDate=pacific_stamp(_now()))
        self._notify(order)
        return copy.deepcopy(made)

    def _notify(self, order: dict[str, Any]) -> None:
        """SHIP_NOTIFY to every subscriber of the order's store (or of every store)."""
        store = order["advancedOptions"].get("storeId")
        batch = self._next("batch")
        body = {"resource_url": f"{PUBLIC_BASE}/shipments?storeID={store or ''}&batchId={batch}&includeShipmentItems=False",
                "resource_type": "SHIP_NOTIFY"}
        for hook in self.webhooks.values():
            if hook["HookType"] == "SHIP_NOTIFY" and hook["Active"] and hook["StoreID"] in (None, store):
                self.hooks.post(hook["Url"], "SHIP_NOTIFY", body)

    def close(self) -> None:
        self.hooks.close()

    def _label(self, order: dict[str, Any], items: list[dict[str, Any]], tracking: str) -> dict[str, Any]:
        now = _now()
        return {
            "shipmentId": self._next("shipment"),
            "orderId": order["orderId"],
            "orderKey": order["orderKey"],
            "userId": "8f2b6a1e-sandbox",
            "customerEmail": order.get("customerEmail"),
            "orderNumber": order["orderNumber"],
            "createDate": pacific_stamp(now),
            "shipDate": pacific_day(now),
            "shipmentCost": 7.5,
            "insuranceCost": 0.0,
            "trackingNumber": tracking,
            "isReturnLabel": False,
            "batchNumber": None,
            "carrierCode": order.get("carrierCode") or "ups",
            "serviceCode": order.get("serviceCode") or "ups_ground",
            "packageCode": "package",
            "confirmation": "none",
            "warehouseId": order["advancedOptions"].get("warehouseId"),
            "voided": False,
            "voidDate": None,
            "marketplaceNotified": False,
            "notifyErrorMessage": None,
            "shipTo": copy.deepcopy(order["shipTo"]),
            "weight": copy.deepcopy(order.get("weight")),
            "dimensions": None,
            "insuranceOptions": {"provider": None, "insureShipment": False, "insuredValue": 0},
            "advancedOptions": {"storeId": order["advancedOptions"].get("storeId")},
            "shipmentItems": [
                {k: i[k] for k in SHIPMENT_ITEM_FIELDS} for i in items
            ],
            "labelData": None,
            "formData": None,
        }

    @staticmethod
    def _public(order: dict[str, Any]) -> dict[str, Any]:
        return copy.deepcopy({k: v for k, v in order.items() if not k.startswith("_")})

    @staticmethod
    def _paging(request: Request) -> tuple[int, int]:
        q = request.query_params
        try:
            page = int(q.get("page") or 1)
            size = int(q.get("pageSize") or 100)
        except ValueError:
            raise _invalid({"page": ["The value is not valid."]}) from None
        if page < 1 or not 1 <= size <= MAX_PAGE_SIZE:
            raise _invalid({"pageSize": [f"pageSize must be between 1 and {MAX_PAGE_SIZE}."]})
        return page, size

    @staticmethod
    def _page_of(key: str, records: list[dict[str, Any]], page: int, size: int,
                 render: Callable[[dict[str, Any]], dict[str, Any]]) -> dict[str, Any]:
        """One page of `records`; only its own records are rendered (copied out)."""
        return {key: [render(r) for r in records[(page - 1) * size : page * size]], "total": len(records), "page": page,
                "pages": math.ceil(len(records) / size) if records else 0}

    # -- API handlers -------------------------------------------------------------------------

    async def _create_order(self, request: Request) -> Response:
        try:
            self._check_auth(request)
            try:
                body = await request.json()
            except ValueError:
                raise ApiError(400, {"Message": "The request entity's media type is not supported or the body is empty."}) from None
            return JSONResponse(self._upsert(body))
        except ApiError as exc:
            return exc.response()

    async def _list_orders(self, request: Request) -> Response:
        try:
            self._check_auth(request)
            page, size = self._paging(request)
        except ApiError as exc:
            return exc.response()
        q = request.query_params
        number, status, store = q.get("orderNumber"), q.get("orderStatus"), q.get("storeId")
        with self._lock:
            found = [
                o for o in self.orders.values()  # created in orderId order
                if (not number or o["orderNumber"].startswith(number))
                and (not status or o["orderStatus"] == status)
                and (not store or str(o["advancedOptions"].get("storeId")) == store)
            ]
            return JSONResponse(self._page_of("orders", found, page, size, self._public))

    async def _list_shipments(self, request: Request) -> Response:
        try:
            self._check_auth(request)
            page, size = self._paging(request)
            q = request.query_params
            ship_start = self._date_param(q.get("shipDateStart"), "shipDateStart")
            ship_end = self._date_param(q.get("shipDateEnd"), "shipDateEnd")
            create_start = read_pacific(q["createDateStart"]) if q.get("createDateStart") else None
        except ApiError as exc:
            return exc.response()
        with_items = (q.get("includeShipmentItems") or "").lower() == "true"
        store, number = q.get("storeId"), q.get("orderNumber")
        with self._lock:
            if self.ship_after_s is not None:
                # A shipments poll: orders whose time has come leave the building now.
                now = time.monotonic()
                for oid in list(self.orders):
                    if now - self._created_at.get(oid, now) >= self.ship_after_s:
                        self._ship(oid)
            found = []
            for label in self.labels:
                shipped = date.fromisoformat(label["shipDate"])
                if ship_start and shipped < ship_start or ship_end and shipped > ship_end:
                    continue
                if create_start and (read_pacific(label["createDate"]) or create_start) < create_start:
                    continue
                if store and str(label["advancedOptions"].get("storeId")) != store or number and label["orderNumber"] != number:
                    continue
                found.append(label)

            def render(label: dict[str, Any]) -> dict[str, Any]:
                record = copy.deepcopy(label)
                if not with_items:
                    record["shipmentItems"] = None
                return record

            return JSONResponse(self._page_of("shipments", found, page, size, render))

    @staticmethod
    def _date_param(value: str | None, name: str) -> date | None:
        if not value:
            return None
        try:
            return date.fromisoformat(value.strip()[:10])
        except ValueError:
            raise _invalid({name: [f"The value '{value}' is not valid for {name}."]}) from None

    @endpoint
    async def _list_carriers(self, request: Request) -> Response:
        with self._lock:
            carriers = [
                {"name": name, "code": code, "accountNumber": f"ACCT-{i:04d}", "requiresFundedAccount": code == "stamps_com",
                 "balance": 100.0 if code == "stamps_com" else 0.0, "nickname": None, "shippingProviderId": 100 + i, "primary": True}
                for i, (code, (name, _)) in enumerate(self.carriers.items())
            ]
        return JSONResponse(carriers)

    @endpoint
    async def _list_services(self, request: Request) -> Response:
        code = request.query_params.get("carrierCode") or ""
        with self._lock:
            if code not in self.carriers:
                return ApiError(400, {"Message": f"Carrier '{code}' is not connected to this account."}).response()
            services = [{"carrierCode": code, "code": s, "name": name, "domestic": True, "international": False}
                        for s, name in self.carriers[code][1].items()]
        return JSONResponse(services)

    @endpoint
    async def _get_store(self, request: Request) -> Response:
        raw = request.path_params["store_id"]
        store = int(raw) if raw.isdigit() else None
        with self._lock:
            if store not in self.stores:
                return ApiError(404, {"Message": f"No store found with id {raw}."}).response()
            return JSONResponse({"storeId": store, "storeName": self.stores[store], "marketplaceId": 0,
                                 "marketplaceName": "ShipStation", "accountName": None, "active": True})


    # -- webhooks ---------------------------------------------------------------------------

    @endpoint
    async def _list_webhooks(self, request: Request) -> Response:
        with self._lock:
            return JSONResponse({"webhooks": [copy.deepcopy(h) for h in self.webhooks.values()]})

    @endpoint
    async def _subscribe(self, request: Request) -> Response:
        try:
            body = await request.json()
        except ValueError:
            raise _invalid({"": ["The request body is not valid JSON."]}) from None
        if not isinstance(body, dict):
            raise _invalid({"": ["The request body must be an object."]})
        errors: dict[str, list[str]] = {}
        url = body.get("target_url")
        if not isinstance(url, str) or not url.startswith(("https://", "http://")):
            errors["target_url"] = ["The target_url field is required."]
        if body.get("event") not in WEBHOOK_EVENTS:
            errors["event"] = [f"The event must be one of {', '.join(WEBHOOK_EVENTS)}."]
        store = body.get("store_id")
        if store is not None and (not isinstance(store, int) or store not in self.stores):
            errors["store_id"] = [f"No store found with id {store}."]
        if errors:
            raise _invalid(errors)
        with self._lock:
            hook_id = self._next("webhook")
            self.webhooks[hook_id] = {"IsLabelAPIHook": False, "WebHookID": hook_id, "SellerID": 1, "StoreID": store,
                                      "HookType": body["event"], "MessageFormat": "Json", "Url": url,
                                      "Name": str(body.get("friendly_name") or ""), "Active": True}
        return JSONResponse({"id": hook_id}, status_code=201)

    @endpoint
    async def _unsubscribe(self, request: Request) -> Response:
        raw = request.path_params["hook_id"]
        with self._lock:
            if not raw.isdigit() or self.webhooks.pop(int(raw), None) is None:
                raise ApiError(404, {"Message": f"No webhook found with id {raw}."})
        return Response(status_code=200)


def _unsigned(delivery: HookDelivery) -> dict[str, str]:
    """ShipStation v1 deliveries carry no signature."""
    return {}


class ShipStationKit(SandboxKit):
    """The ShipStation sandbox as a `connector.sandbox.kits.WarehouseKit`.

    Ship methods are ShipStation's `carrierCode:serviceCode`; generic names handed to `kit()`
    (the demo's "Standard", ...) mean nothing to ShipStation and are replaced by real codes.
    """

    name = "shipstation"
    routes = {
        "create": ("POST", "/orders/createorder"),
        "find": ("GET", "/orders"),
        "shipments": ("GET", "/shipments"),
        "ship_methods": ("GET", "/carriers"),
        "cancel": ("POST", "/orders/createorder"),  # v1 cancels by re-posting the order as cancelled
        "update": ("POST", "/orders/createorder"),  # and updates an address or items the same way
    }

    def __init__(self, sandbox: ShipStationSandbox, ship_methods: tuple[str, ...], store_id: int | None, skus: tuple[str, ...] = ()):
        super().__init__(sandbox, ship_methods, skus)
        self.store_id = store_id

    def warehouse_config(self, base_url: str, workdir) -> dict[str, Any]:
        config: dict[str, Any] = {
            "adapter": "shipstation", "base_url": base_url,
            "api_key": self.sandbox.api_key, "api_secret": self.sandbox.api_secret,
            # The sandbox limits nothing unless its faults say so; 40/min would make the demo
            # wait minutes for no lesson.
            "rate_per_minute": 1200,
        }
        if self.store_id is not None:
            config["store_id"] = self.store_id
        return config

    def set_stock(self, sku: str, warehouse_id: str, available: int, on_hand: int | None = None) -> None:
        """ShipStation v1 keeps no stock: nothing to set."""

    def orders_created(self, reference: str) -> int:
        # orderKey is unique by construction in ShipStation (an upsert key), so count orders
        # by order number too: a keyless resend would show up as a second order there.
        number = reference.split("-", 1)[-1]
        with self.sandbox._lock:
            return sum(1 for o in self.sandbox.orders.values() if o["orderKey"] == reference or o["orderNumber"] == number)

    def warehouse_ids(self) -> list[str]:
        return [str(w) for w in self.sandbox.warehouse_ids]

    def close(self) -> None:
        self.sandbox.close()


def kit(*, products, ship_methods, credential: str = "sandbox-secret", store_id: int | None = 310001, **kw: Any) -> ShipStationKit:
    """A ShipStation sandbox kit (demo, bench, pipeline tests). `credential` becomes the secret."""
    kw = {**DEMO_PLAN, **kw}
    sandbox = ShipStationSandbox(api_key=f"key-{credential}", api_secret=credential, products=products, **kw)
    methods = tuple(m for m in ship_methods if ":" in m) or DEFAULT_METHODS
    for method in methods:
        carrier, _, service = method.partition(":")
        if carrier not in sandbox.carriers or service not in sandbox.carriers[carrier][1]:
            sandbox.add_method(carrier, service)
    return ShipStationKit(sandbox, methods, store_id, tuple(products))
