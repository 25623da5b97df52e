"""A loopback ShipBob: exactly the Developer API (2026-01) endpoints the ShipBob adapter uses.

Faithful where it matters to the connector:
- Bearer token on every call (401 with no body otherwise); `shipbob_channel_id` required on create
  (400 when missing, 403 for a channel the token does not own); order reads scoped by that header;
- `reference_id` unique per account: a repeat is 422 `{"": ["Cannot insert order with existing
  ReferenceId"]}`; an unknown product reference with a name creates the product, an unknown
  `shipping_method` silently becomes a new Standard ship option (ShipBob's documented gotchas);
- an order gets a `Processing` shipment at once; it "ships" on a later shipments read (`GET /order`
  without an id filter) once `ship_after_s` has passed, or when `ship_all()` / `ship()` is called.
  Per order (deterministic by creation sequence or set with `plan()`): one shipment, two shipments
  with the lines split, or a first label voided (`Cancelled` with its tracking) and re-shipped;
- `is_tracking_uploaded` set by `shipment:batchUpdateTrackingUpload`, filtered by
  `IsTrackingUploaded` / `LastTrackingUpdateStartDate`;
- stock per fulfillment center from `inventory-level/locations`, cursor-paged with `next` links;
  creating an order commits stock, shipping it takes it off the shelf;
- `order/{id}:cancel` cancels an order and its shipments while the order is `Processing`,
  `Exception` or `ImportReview` and no shipment is picked, packed or shipped: 200 `Success` (stock
  released); a picked or packed shipment stays, so the answer is `Failure` (or `PartialSuccess`
  when another shipment was cancelled) with its reason; any other order status is a 422 (field ->
  messages, the sandbox's own wording). `pick()` marks a shipment picked or packed (ShipBob shows
  it in `status_details`);
- `x-remaining-calls` on every reply (faults included), `x-retry-after` on 429s.

The server runs in its own thread (SandboxServer), so every state change holds `self._lock`.
Control API (never faulted): GET /_sandbox/state, POST /_sandbox/faults, /_sandbox/ship,
/_sandbox/stock, /_sandbox/pick (`{"reference": ..., "packed": false}`).
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import ipaddress
import itertools
import json
import re
import threading
import time
import uuid
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

import httpx

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from connector.sandbox import common
from connector.sandbox.common import DEMO_PLAN, CallWindow, Edge, Planned, SandboxKit, ShipPlan, control_routes, endpoint, halves
from connector.sandbox.common import now_utc as _now
from connector.sandbox.common import parse_time as _parse_time
from connector.sandbox.common import stamp_ms as _stamp
from connector.sandbox.faults import FaultMiddleware, Faults

DUPLICATE_MESSAGE = "Cannot insert order with existing ReferenceId"
DEFAULT_FCS = {10: "Cicero (IL)", 11: "Moreno Valley (CA)"}
CANCELLABLE = ("Processing", "Exception", "ImportReview")  # order statuses a cancel may start from
PICK_STAGES = {"Picked": "The shipment has been picked", "Packed": "The shipment has been packed"}
WINDOW_LIMIT = 150  # ShipBob's documented budget, reported when no fault limit is set
WEBHOOK_TOPICS = frozenset({"order.shipped", "order.shipment.delivered", "order.shipment.exception", "order.shipment.on_hold",
                            "order.shipment.cancelled", "return.created", "return.updated", "return.completed",
                            "billing.charge.created", "billing.refund.created", "billing.credit.created"})  # Webhooks.Topics
SECRET_PATTERN = re.compile(r"^whsec_[a-zA-Z0-9+/]{32}$")


def loopback_url(url: str) -> bool:
    """Whether a webhook URL points at this machine (the sandboxes never post anywhere else)."""
    host = (urlsplit(url).hostname or "").strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass
class HookDelivery:
    """One webhook post: what was sent where, and how it went."""

    id: int
    msg_id: str  # `webhook-id`: the same when the delivery is repeated
    url: str
    topic: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)  # as sent (signature included)
    status: str = "pending"  # pending, delivered, failed, refused (not loopback)
    http_status: int | None = None
    repeat_of: int | None = None
    secret: str = field(default="", repr=False)  # what the subscription signs with (never shown)
    extra: dict[str, str] = field(default_factory=dict)  # the subscription's own headers


class HookSender:
    """Outgoing webhooks of a warehouse sandbox: `post` only queues, one sender thread posts in
    queue order (the API thread never waits on a receiver), to loopback URLs only, never via a
    proxy. `sign(delivery)` gives the vendor's headers (a signature) just before each attempt."""

    def __init__(self, name: str, sign: Callable[[HookDelivery], dict[str, str]]):
        self.name, self._sign = name, sign
        self._cond = threading.Condition()
        self._deliveries: dict[int, HookDelivery] = {}
        self._queue: deque[int] = deque()
        self._ids = itertools.count(1)
        self._thread: threading.Thread | None = None
        self._closed = False

    def post(self, url: str, topic: str, body: Any, secret: str = "", *, extra: dict[str, str] | None = None,
             msg_id: str = "", repeat_of: int | None = None) -> int:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        with self._cond:
            d = HookDelivery(next(self._ids), msg_id or f"msg_{uuid.uuid4().hex}", url, topic, raw, repeat_of=repeat_of,
                             secret=secret, extra=dict(extra or {}))
            self._deliveries[d.id] = d
            self._queue.append(d.id)
            self._start()
            self._cond.notify_all()
            return d.id

    def redeliver(self, delivery_id: int) -> int:
        """Send a delivery again with the same id (the vendor retrying)."""
        with self._cond:
            d = self._deliveries[int(delivery_id)]
        return self.post(d.url, d.topic, d.body, d.secret, extra=d.extra, msg_id=d.msg_id, repeat_of=d.id)

    def deliveries(self, topic: str | None = None) -> list[HookDelivery]:
        with self._cond:
            return [replace(d, headers=dict(d.headers), secret="", extra=dict(d.extra))
                    for d in self._deliveries.values() if topic is None or d.topic == topic]

    def wait(self, timeout: float = 10.0) -> list[HookDelivery]:
        """Wait until every delivery so far is settled; TimeoutError names those still pending."""
        with self._cond:
            if not self._cond.wait_for(lambda: all(d.status != "pending" for d in self._deliveries.values()), timeout):
                raise TimeoutError(f"{self.name} webhook deliveries still pending after {timeout} s")
        return self.deliveries()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _start(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._closed = False
            self._thread = threading.Thread(target=self._run, name=f"{self.name}-webhooks", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        with httpx.Client(trust_env=False, timeout=15.0) as http:  # never through a proxy from the environment
            while True:
                with self._cond:
                    self._cond.wait_for(lambda: self._closed or self._queue)
                    if self._closed:
                        return
                    d = self._deliveries[self._queue.popleft()]
                headers: dict[str, str] = {}
                if not loopback_url(d.url):
                    status, code = "refused", None
                else:
                    headers = {"Content-Type": "application/json", **d.extra, **self._sign(d)}
                    try:
                        code = http.post(d.url, content=d.body, headers=headers).status_code
                        status = "delivered" if 200 <= code < 300 else "failed"
                    except httpx.HTTPError:
                        status, code = "failed", None
                with self._cond:
                    d.status, d.http_status, d.headers = status, code, headers
                    self._cond.notify_all()


def shipbob_signature_headers(d: HookDelivery) -> dict[str, str]:
    """ShipBob's delivery headers (Standard Webhooks): id, timestamp, topic and, for a
    subscription made with a secret, `v1,` HMAC-SHA256 of `{id}.{timestamp}.{body}`."""
    stamp = str(int(time.time()))
    headers = {"webhook-id": d.msg_id, "webhook-timestamp": stamp, "x-webhook-topic": d.topic}
    if d.secret:
        key = base64.b64decode(d.secret.removeprefix("whsec_"))
        digest = hmac.new(key, f"{d.msg_id}.{stamp}.".encode() + d.body, hashlib.sha256).digest()
        headers["webhook-signature"] = "v1," + base64.b64encode(digest).decode()
    return headers


class ApiError(common.ApiError):
    """A ShipBob-style error reply (field -> messages, or no body for 401/403)."""


class ShipBobSandbox(Planned):
    """State of one simulated ShipBob account plus its ASGI app (`.app`) and faults (`.faults`)."""

    api_error = ApiError  # what @endpoint turns into a reply

    def __init__(
        self,
        token: str = "sandbox-token",
        channel_id: int = 1,
        products: list[str] | tuple[str, ...] = ("SKU-1", "SKU-2", "SKU-3"),
        ship_methods: list[str] | tuple[str, ...] = ("Standard", "Expedited", "2-Day"),
        fulfillment_centers: dict[int, str] | None = None,
        *,
        api_version: str = "2026-01",
        ship_after_s: float = 0.0,
        split_every: int = 0,  # every Nth order (by creation) ships in two shipments
        void_every: int = 0,  # every Nth order has its first label voided, then re-shipped
        faults: Faults | None = None,
    ):
        self.token = token
        self.channel_id = int(channel_id)
        self.api_version = api_version
        self.ship_after_s = ship_after_s
        self.split_every, self.void_every = split_every, void_every
        self.fulfillment_centers = dict(fulfillment_centers or DEFAULT_FCS)
        self._lock = threading.Lock()
        self._seq = {"order": 1000, "shipment": 500000, "product": 7000, "method": 40, "webhook": 12000}
        self.products: dict[str, dict[str, Any]] = {}  # by SKU
        for sku in dict.fromkeys(products):  # each once: `products` stays in id order (the listings rely on it)
            self._add_product(sku, sku)
        self.ship_methods: dict[str, dict[str, Any]] = {}
        for name in ship_methods:
            self._add_method(name)
        self.stock: dict[str, dict[int, dict[str, int]]] = {}  # sku -> fc -> quantities
        self._stock_order: list[str] = []  # the SKUs of `stock` in product id order (see _stock_skus)
        self.orders: dict[str, dict[str, Any]] = {}  # by reference_id
        self.create_attempts: dict[str, int] = defaultdict(int)
        self.create_count = 0
        self.cancel_attempts: dict[str, int] = defaultdict(int)  # cancel calls that reached an order, by reference
        self.plans: dict[str, ShipPlan] = {}
        self._created_at: dict[str, float] = {}
        self.requests: dict[str, int] = defaultdict(int)
        self._window = CallWindow()
        self.faults = faults or Faults()
        self.webhooks: dict[str, dict[str, Any]] = {}  # subscriptions by id (the secret kept, never listed)
        self.hooks = HookSender("shipbob", shipbob_signature_headers)
        v = "/" + api_version
        routes = [
            Route(f"{v}/channel", self._channels, methods=["GET"]),
            Route(f"{v}/order", self._create_order, methods=["POST"]),
            Route(f"{v}/order", self._list_orders, methods=["GET"]),
            Route(f"{v}/order/{{order_id}}:cancel", self._cancel_order, methods=["POST"]),
            Route(f"{v}/product", self._list_products, methods=["GET"]),
            Route(f"{v}/shipping-method", self._list_methods, methods=["GET"]),
            Route(f"{v}/shipment:batchUpdateTrackingUpload", self._tracking_uploaded, methods=["POST"]),
            Route(f"{v}/inventory-level/locations", self._inventory_locations, methods=["GET"]),
            Route(f"{v}/webhook", self._list_webhooks, methods=["GET"]),
            Route(f"{v}/webhook", self._create_webhook, methods=["POST"]),
            Route(f"{v}/webhook/{{hook_id}}", self._delete_webhook, methods=["DELETE"]),
            *control_routes(self, stock_entry=lambda e: (
                str(e["sku"]), int(e.get("fc_id", e.get("fulfillment_center_id"))), int(e["fulfillable"]), e.get("on_hand"))),
            Route("/_sandbox/pick", self._pick_control, methods=["POST"]),
        ]
        inner = Starlette(routes=routes)
        self.app = Edge(FaultMiddleware(inner, self.faults, retry_after_header="x-retry-after"), self._count_request, self._rate_headers)

    # -- Python-side API (tests, demo) --------------------------------------------------------

    def set_stock(self, sku: str, fc_id: int, fulfillable: int, on_hand: int | None = None) -> None:
        """Put stock on a fulfillment center's shelf (on-hand defaults to fulfillable)."""
        with self._lock:
            if fc_id not in self.fulfillment_centers:
                self.fulfillment_centers[fc_id] = f"FC {fc_id}"
            if sku not in self.products:
                self._add_product(sku, sku)
            on_hand = fulfillable if on_hand is None else on_hand
            self.stock.setdefault(sku, {})[fc_id] = {
                "fulfillable": fulfillable,
                "on_hand": on_hand,
                "committed": max(0, on_hand - fulfillable),
            }

    def ship_all(self) -> list[dict[str, Any]]:
        """Ship every order still waiting, whatever `ship_after_s` says; returns the new shipments."""
        with self._lock:
            return [s for ref in list(self.orders) for s in self._ship(ref)]

    def ship(self, reference: str) -> list[dict[str, Any]]:
        with self._lock:
            return self._ship(reference)

    def pick(self, reference: str, *, packed: bool = False) -> list[int]:
        """Mark the order's waiting shipments picked (or packed): they can no longer be
        cancelled. Returns their ids (empty: nothing waiting)."""
        stage = "Packed" if packed else "Picked"
        with self._lock:
            order = self.orders.get(reference)
            if order is None:
                return []
            marked = []
            for shipment in order["shipments"]:
                if shipment["status"] == "Processing":
                    shipment["status_details"] = [{"id": 1 if stage == "Picked" else 2, "name": stage, "description": PICK_STAGES[stage]}]
                    shipment["last_update_at"] = _stamp(_now())
                    marked.append(shipment["id"])
            return marked

    def hold(self, reference: str) -> list[int]:
        """Put the order's waiting shipments on hold (ShipBob's `OnHold`), telling the
        `order.shipment.on_hold` subscribers; returns their ids."""
        with self._lock:
            order = self.orders.get(reference)
            held = []
            for shipment in (order or {}).get("shipments", []):
                if shipment["status"] == "Processing":
                    shipment.update(status="OnHold", last_update_at=_stamp(_now()))
                    self._emit("order.shipment.on_hold", copy.deepcopy(shipment))
                    held.append(shipment["id"])
            return held

    def close(self) -> None:
        self.hooks.close()

    def tracking_uploaded(self) -> list[int]:
        with self._lock:
            return sorted(s["id"] for o in self.orders.values() for s in o["shipments"] if s["is_tracking_uploaded"])

    def state(self) -> dict[str, Any]:
        with self._lock:
            return {
                "orders": {ref: {"id": o["id"], "status": o["status"]} for ref, o in self.orders.items()},
                "create_attempts": dict(self.create_attempts),
                "create_count": self.create_count,
                "cancel_attempts": dict(self.cancel_attempts),
                "shipments": [copy.deepcopy(s) for o in self.orders.values() for s in o["shipments"]],
                "tracking_uploaded": sorted(
                    s["id"] for o in self.orders.values() for s in o["shipments"] if s["is_tracking_uploaded"]
                ),
                "requests": dict(self.requests),
                "faults": dict(self.faults.counts),
                "ship_methods": sorted(self.ship_methods),
                "products": sorted(self.products),
                "stock": {sku: {str(fc): q for fc, q in fcs.items()} for sku, fcs in self.stock.items()},
            }

    # -- internals (callers hold the lock) ----------------------------------------------------

    def _next(self, kind: str) -> int:
        self._seq[kind] += 1
        return self._seq[kind]

    def _add_product(self, sku: str, name: str) -> None:
        pid, vid = self._next("product"), self._next("product")
        self.products[sku] = {
            "id": pid,
            "name": name,
            "type": "Regular",
            "variants": [{"id": vid, "sku": sku, "name": name, "status": "Active", "inventory": {"inventory_id": vid, "on_hand_qty": 0}}],
        }

    def _add_method(self, name: str, active: bool = True) -> None:
        self.ship_methods[name] = {
            "id": self._next("method"),
            "name": name,
            "active": active,
            "default": False,
            "service_level": {"id": 1, "name": "Standard"},
        }

    def _count_request(self, method: str, path: str) -> None:
        endpoint = path.split("/", 2)[-1] if path.startswith("/" + self.api_version + "/") else path
        with self._lock:
            self.requests[f"{method} /{endpoint}"] += 1

    def _spend_call(self) -> int:
        limit = self.faults.rate_limit_per_minute or WINDOW_LIMIT
        calls, _ = self._window.spend()
        if not self.faults.rate_limit_per_minute:
            return WINDOW_LIMIT  # no limit simulated: never make a client wait
        return max(0, limit - calls)

    def _rate_headers(self, status: int, headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
        """`x-remaining-calls` on every reply (a 429 has none left)."""
        remaining = 0 if status == 429 else self._spend_call()
        headers = [h for h in headers if h[0].lower() != b"x-remaining-calls"]
        return [*headers, (b"x-remaining-calls", str(remaining).encode())]

    def _check_auth(self, request: Request) -> None:
        if request.headers.get("authorization", "") != f"Bearer {self.token}":
            raise ApiError(401)

    def _channel_header(self, request: Request, required: bool) -> int | None:
        raw = request.headers.get("shipbob_channel_id")
        if raw is None:
            if required:
                raise ApiError(400, {"shipbob_channel_id": ["The shipbob_channel_id header is required."]})
            return None
        if not raw.strip().isdigit():
            raise ApiError(400, {"shipbob_channel_id": [f"The value '{raw}' is not valid."]})
        if int(raw) != self.channel_id:
            raise ApiError(403)
        return int(raw)

    def _allocate(self, sku: str, quantity: int) -> int:
        """Commit stock for a new order; returns the FC that will ship it."""
        fcs = self.stock.get(sku, {})
        fc = next((f for f, q in fcs.items() if q["fulfillable"] >= quantity), next(iter(fcs), None))
        if fc is None:
            return next(iter(self.fulfillment_centers))
        q = fcs[fc]
        q["fulfillable"] = max(0, q["fulfillable"] - quantity)
        q["committed"] += quantity
        return fc

    def _ship(self, reference: str) -> list[dict[str, Any]]:
        order = self.orders.get(reference)
        if order is None or order["status"] != "Processing":
            return []
        plan = ShipPlan.pick(self.plans, reference, order["_seq"], self.split_every, self.void_every)
        pending = order["shipments"][0]  # the Processing shipment made at creation
        lines = [(p["reference_id"], p["quantity"], p["name"]) for p in order["_lines"]]
        groups = halves(lines, lambda line: line[1], lambda line, q: (line[0], q, line[2])) if plan.split else [lines]
        shipped: list[dict[str, Any]] = []
        label = 0

        def tracking_for() -> str:
            nonlocal label
            label += 1
            return plan.tracking if plan.tracking is not None else f"1ZSB{order['id']:08d}{label:02d}"

        if plan.void_first:
            self._complete(pending, order, lines, tracking_for(), status="Cancelled")
            shipped.append(pending)
            pending = None
        for group in groups:
            if pending is None:
                pending = self._new_shipment(order, group)
                order["shipments"].append(pending)
            self._complete(pending, order, group, tracking_for(), status="Completed")
            for sku, qty, _ in group:
                fc = self.stock.get(sku, {}).get(pending["location"]["id"])
                if fc:
                    fc["on_hand"] = max(0, fc["on_hand"] - qty)
                    fc["committed"] = max(0, fc["committed"] - qty)
            shipped.append(pending)
            pending = None
        order["status"] = "Fulfilled"
        self._emit("order.shipped", self._public(order))  # once all labels are printed, as ShipBob does
        return shipped

    def _new_shipment(self, order: dict[str, Any], lines: list[tuple[str, int, str]]) -> dict[str, Any]:
        now = _stamp(_now())
        fc = order["_fc"]
        return {
            "id": self._next("shipment"),
            "order_id": order["id"],
            "reference_id": order["reference_id"],
            "created_date": now,
            "last_update_at": now,
            "status": "Processing",
            "is_tracking_uploaded": False,
            "location": {"id": fc, "name": self.fulfillment_centers.get(fc, "")},
            "products": self._shipment_products(lines),
            "recipient": {"name": order["recipient"]["name"], "address": order["recipient"]["address"]},
            "require_signature": False,
            "ship_option": order["shipping_method"],
        }

    def _shipment_products(self, lines: list[tuple[str, int, str]]) -> list[dict[str, Any]]:
        out = []
        for sku, qty, name in lines:
            product = self.products[sku]
            variant = product["variants"][0]
            out.append(
                {
                    "id": product["id"],
                    "reference_id": sku,
                    "sku": sku,
                    "name": name,
                    "inventory_items": [
                        {"id": variant["id"], "name": name, "quantity": qty, "quantity_committed": qty, "is_dangerous_goods": False}
                    ],
                }
            )
        return out

    def _complete(self, shipment: dict[str, Any], order: dict[str, Any], lines, tracking: str, status: str) -> None:
        now = _now()
        shipment.update(
            status=status,
            products=self._shipment_products(lines),
            last_update_at=_stamp(now),
            last_tracking_update_at=_stamp(now),
            actual_fulfillment_date=_stamp(now),
            invoice_amount=7.5,
            invoice_currency_code="USD",
            tracking={
                "carrier": "UPS",
                "carrier_service": "UPS Ground",
                "tracking_number": tracking,
                "tracking_url": f"https://www.ups.com/track?tracknum={tracking.strip()}",
                "shipping_date": _stamp(now),
            },
        )

    def _emit(self, topic: str, payload: dict[str, Any]) -> None:
        """Queue `payload` for every enabled subscription to `topic` (the sender posts it)."""
        for sub in self.webhooks.values():
            if sub["enabled"] and topic in sub["topics"]:
                self.hooks.post(sub["url"], topic, payload, sub.get("_secret", ""))

    def _public(self, order: dict[str, Any]) -> dict[str, Any]:
        return copy.deepcopy({k: v for k, v in order.items() if not k.startswith("_")})

    # -- API handlers -------------------------------------------------------------------------

    @endpoint
    async def _channels(self, request: Request) -> Response:
        channel = {"id": self.channel_id, "name": "UltraCart connector", "application_name": "SMA", "scopes": ["orders_write"]}
        return JSONResponse({"items": [channel], "next": None, "prev": None})

    async def _create_order(self, request: Request) -> Response:
        try:
            self._check_auth(request)
            channel = self._channel_header(request, required=True)
            try:
                body = await request.json()
            except ValueError:
                raise ApiError(400, {"": ["A non-empty request body is required."]}) from None
            return JSONResponse(self._create(body, channel), status_code=201)
        except ApiError as exc:
            return exc.response()

    def _validate(self, body: Any) -> None:
        if not isinstance(body, dict):
            raise ApiError(400, {"": ["The request body must be a JSON object."]})
        errors: dict[str, list[str]] = {}
        for field in ("reference_id", "shipping_method"):
            if not str(body.get(field) or "").strip():
                errors[field] = [f"The {field} field is required."]
        if body.get("type") not in ("DTC", "DropShip", "B2B"):
            errors["type"] = ["The type field is required and must be DTC, DropShip or B2B."]
        recipient = body.get("recipient") or {}
        address = recipient.get("address") or {}
        if not str(recipient.get("name") or "").strip():
            errors["recipient.name"] = ["The name field is required."]
        for field in ("address1", "city", "country"):
            if not str(address.get(field) or "").strip():
                errors[f"recipient.address.{field}"] = [f"The {field} field is required."]
        items = body.get("products")
        if not isinstance(items, list) or not items:
            errors["products"] = ["The products field is required."]
        for i, item in enumerate(items or []):
            if not isinstance(item.get("quantity"), int) or item["quantity"] < 1:
                errors[f"products[{i}].quantity"] = ["Quantity must be greater than 0."]
            ref = item.get("reference_id")
            if not ref:
                errors[f"products[{i}].reference_id"] = ["The reference_id field is required."]
            elif ref not in self.products and not str(item.get("name") or "").strip():
                errors[f"products[{i}].name"] = ["Name is required when no product matches the reference_id."]
        if errors:
            raise ApiError(400, errors)

    def _create(self, body: Any, channel: int | None) -> dict[str, Any]:
        with self._lock:
            if isinstance(body, dict) and body.get("reference_id"):
                self.create_attempts[str(body["reference_id"])] += 1
            self._validate(body)
            ref = body["reference_id"]
            if ref in self.orders:
                raise ApiError(422, {"": [DUPLICATE_MESSAGE]})
            if body["shipping_method"] not in self.ship_methods:
                self._add_method(body["shipping_method"])  # ShipBob's gotcha: becomes Standard, no error
            lines = []
            for item in body["products"]:
                if item["reference_id"] not in self.products:
                    self._add_product(item["reference_id"], item["name"])  # and the product gotcha
                lines.append({"reference_id": item["reference_id"], "quantity": item["quantity"], "name": item.get("name") or item["reference_id"]})
            fc = self._allocate(lines[0]["reference_id"], lines[0]["quantity"])
            for line in lines[1:]:
                self._allocate(line["reference_id"], line["quantity"])
            self.create_count += 1
            order = {
                "id": self._next("order"),
                "reference_id": ref,
                "order_number": body.get("order_number") or ref,
                "type": body["type"],
                "status": "Processing",
                "created_date": _stamp(_now()),
                "purchase_date": body.get("purchase_date"),
                "channel": {"id": channel or self.channel_id, "name": "UltraCart connector"},
                "shipping_method": body["shipping_method"],
                "recipient": copy.deepcopy(body["recipient"]),
                "gift_message": body.get("gift_message"),
                "financials": body.get("financials") or {},
                "products": [
                    {"id": self.products[li["reference_id"]]["id"], "reference_id": li["reference_id"], "sku": li["reference_id"], "quantity": li["quantity"]}
                    for li in lines
                ],
                "shipments": [],
                "_lines": lines,
                "_seq": self.create_count,
                "_fc": fc,
            }
            order["shipments"].append(self._new_shipment(order, [(li["reference_id"], li["quantity"], li["name"]) for li in lines]))
            self.orders[ref] = order
            self._created_at[ref] = time.monotonic()
            return self._public(order)

    @endpoint
    async def _cancel_order(self, request: Request) -> Response:
        channel = self._channel_header(request, required=False)
        raw = request.path_params["order_id"]
        if not raw.isdigit():
            raise ApiError(400, {"orderId": [f"The value '{raw}' is not valid."]})
        with self._lock:
            order = next((o for o in self.orders.values() if o["id"] == int(raw)), None)
            if order is None or channel is not None and order["channel"]["id"] != channel:
                raise ApiError(404)
            self.cancel_attempts[order["reference_id"]] += 1
            if order["status"] not in CANCELLABLE:
                raise ApiError(422, {"": [f"Order {order['id']} is {order['status']} and cannot be canceled."]})
            results, kept = [], []
            for shipment in order["shipments"]:
                if shipment["status"] == "Cancelled":
                    continue
                stage = next((d["name"] for d in shipment.get("status_details") or [] if d.get("name") in PICK_STAGES), None)
                if shipment["status"] != "Processing" or stage:
                    why = f"Shipment is already {(stage or shipment['status']).lower()} and can no longer be canceled."
                    results.append({"shipment_id": shipment["id"], "action": "Cancel", "is_success": False, "reason": why})
                    kept.append(shipment)
                    continue
                shipment.update(status="Cancelled", last_update_at=_stamp(_now()))
                self._release(order, shipment)
                self._emit("order.shipment.cancelled", copy.deepcopy(shipment))
                results.append({"shipment_id": shipment["id"], "action": "Cancel", "is_success": True, "reason": None})
            done = sum(r["is_success"] for r in results)
            if not kept:
                order["status"] = "Cancelled"
            status = "Success" if not kept else "PartialSuccess" if done else "Failure"
            return JSONResponse({"order_id": order["id"], "order": self._public(order), "status": status, "canceled_shipment_results": results})

    def _release(self, order: dict[str, Any], shipment: dict[str, Any]) -> None:
        """A cancelled shipment's committed stock is fulfillable again."""
        for product in shipment["products"]:
            qty = sum(int(i.get("quantity") or 0) for i in product.get("inventory_items") or [])
            fc = self.stock.get(product["reference_id"], {}).get(shipment["location"]["id"])
            if fc and qty:
                fc["committed"] = max(0, fc["committed"] - qty)
                fc["fulfillable"] = min(fc["on_hand"], fc["fulfillable"] + qty)

    async def _pick_control(self, request: Request) -> Response:
        body = await request.json() if await request.body() else {}
        reference = body.get("reference") if isinstance(body, dict) else None
        if not reference:
            return JSONResponse({"error": "reference is required"}, status_code=400)
        return JSONResponse({"picked": self.pick(str(reference), packed=bool(body.get("packed")))})

    async def _list_orders(self, request: Request) -> Response:
        try:
            self._check_auth(request)
            channel = self._channel_header(request, required=False)
        except ApiError as exc:
            return exc.response()
        q = request.query_params
        refs = {r for r in (q.get("ReferenceIds") or "").split(",") if r}
        ids = {int(i) for i in (q.get("IDs") or "").split(",") if i.strip().isdigit()}
        try:
            page = max(1, int(float(q.get("Page") or 1)))
            limit = min(250, max(1, int(float(q.get("Limit") or 50))))
        except ValueError:
            return ApiError(400, {"Page": ["The value is not valid."]}).response()
        since = _parse_time(q["LastTrackingUpdateStartDate"]) if q.get("LastTrackingUpdateStartDate") else None
        uploaded = q.get("IsTrackingUploaded")
        with self._lock:
            if not refs and not ids:
                # A shipments poll: orders whose time has come leave the building now.
                now = time.monotonic()
                for ref in list(self.orders):
                    if now - self._created_at[ref] >= self.ship_after_s:
                        self._ship(ref)
            selected = []
            for order in self.orders.values():  # created in id order
                if refs and order["reference_id"] not in refs or ids and order["id"] not in ids:
                    continue
                if channel is not None and order["channel"]["id"] != channel:
                    continue
                labelled = [s for s in order["shipments"] if s.get("tracking")]
                if uploaded is not None:
                    fully = bool(labelled) and all(s["is_tracking_uploaded"] for s in labelled)
                    if fully != (uploaded.lower() == "true"):
                        continue
                if since is not None and not any(
                    (_parse_time(s["last_tracking_update_at"]) or since) >= since for s in labelled
                ):
                    continue
                selected.append(order)
            # Only the page asked for is copied out: a big account pages through thousands.
            return JSONResponse([self._public(o) for o in selected[(page - 1) * limit : page * limit]])

    def _cursor_page(self, request: Request, count: int, render: Callable[[int, int], list[Any]], size_param: str = "PageSize",
                     *, ends: bool = True) -> Response:
        """One page of a cursor-paged list of `count` records; `render(start, stop)` builds just
        that page's records (a catalogue of 100,000 SKUs is paged, never built whole)."""
        q = request.query_params
        try:
            size = min(250, max(1, int(q.get(size_param) or 50)))
            offset = int(base64.urlsafe_b64decode(q["Cursor"]).decode()) if q.get("Cursor") else 0
        except ValueError:
            return ApiError(400, {"": ["Invalid cursor or page size."]}).response()

        def link(at: int) -> str:
            cursor = base64.urlsafe_b64encode(str(at).encode()).decode()
            return str(request.url.include_query_params(**{size_param: size, "Cursor": cursor}))

        body = {
            "items": render(offset, offset + size),
            "first": None,
            "last": None,
            "next": link(offset + size) if offset + size < count else None,
            "prev": link(max(0, offset - size)) if offset else None,
        }
        if not ends:  # Webhooks.GetWebhookResponse has no first/last links
            del body["first"], body["last"]
        return JSONResponse(body)

    @endpoint
    async def _list_products(self, request: Request) -> Response:
        with self._lock:
            products = list(self.products.values())  # added in id order
            return self._cursor_page(request, len(products), lambda a, b: [copy.deepcopy(p) for p in products[a:b]])

    @endpoint
    async def _list_methods(self, request: Request) -> Response:
        q = request.query_params
        try:
            page = max(1, int(float(q.get("Page") or 1)))
            limit = min(250, max(1, int(float(q.get("Limit") or 50))))
        except ValueError:
            return ApiError(400, {"Page": ["The value is not valid."]}).response()
        with self._lock:
            methods = sorted(self.ship_methods.values(), key=lambda m: m["id"])[(page - 1) * limit : page * limit]
            return JSONResponse([copy.deepcopy(m) for m in methods])

    async def _tracking_uploaded(self, request: Request) -> Response:
        try:
            self._check_auth(request)
            body = await request.json()
        except ApiError as exc:
            return exc.response()
        except ValueError:
            return JSONResponse("A non-empty request body is required.", status_code=400)
        ids = body.get("shipment_ids") if isinstance(body, dict) else None
        if not isinstance(ids, list) or not all(isinstance(i, int) for i in ids):
            return JSONResponse("shipment_ids must be a list of shipment ids.", status_code=400)
        flag = bool(body.get("is_tracking_uploaded", False))  # an absent bool binds to false
        with self._lock:
            by_id = {s["id"]: s for o in self.orders.values() for s in o["shipments"]}
            results = []
            for sid in ids:
                if sid in by_id:
                    by_id[sid]["is_tracking_uploaded"] = flag
                    results.append({"isSuccess": True, "shipmentId": sid})
                else:
                    results.append({"isSuccess": False, "shipmentId": sid, "error": {"code": "NotFound", "message": f"Shipment {sid} not found"}})
        ok = sum(r["isSuccess"] for r in results)
        return JSONResponse({"results": results, "summary": {"failed": len(results) - ok, "successful": ok, "total": len(results)}})

    def _stock_skus(self) -> list[str]:
        """The SKUs with stock, in product id order (what ShipBob lists). Kept between calls:
        stock entries are only ever added, so a new one is the only reason to sort again."""
        if len(self._stock_order) != len(self.stock):
            self._stock_order = sorted(self.stock, key=lambda s: self.products[s]["id"])
        return self._stock_order

    def _inventory_item(self, sku: str) -> dict[str, Any]:
        variant = self.products[sku]["variants"][0]
        locations = [
            {
                "location_id": fc,
                "name": self.fulfillment_centers.get(fc, ""),
                "fulfillable_quantity": q["fulfillable"],
                "on_hand_quantity": q["on_hand"],
                "committed_quantity": q["committed"],
                "awaiting_quantity": 0,
                "internal_transfer_quantity": 0,
            }
            for fc, q in sorted(self.stock[sku].items())
        ]
        return {"inventory_id": variant["id"], "name": variant["name"], "sku": sku, "locations": locations}

    @endpoint
    async def _inventory_locations(self, request: Request) -> Response:
        with self._lock:
            skus = self._stock_skus()
            return self._cursor_page(request, len(skus), lambda a, b: [self._inventory_item(sku) for sku in skus[a:b]])


    # -- webhooks ---------------------------------------------------------------------------

    @endpoint
    async def _list_webhooks(self, request: Request) -> Response:
        with self._lock:
            subs = [{k: v for k, v in sub.items() if not k.startswith("_")} for sub in self.webhooks.values()]
        return self._cursor_page(request, len(subs), lambda a, b: subs[a:b], size_param="RecordsPerPage", ends=False)

    @endpoint
    async def _create_webhook(self, request: Request) -> Response:
        try:
            body = await request.json()
        except ValueError:
            raise ApiError(400, {"": ["A non-empty request body is required."]}) from None
        if not isinstance(body, dict):
            raise ApiError(422, {"": ["The request body must be a JSON object."]})
        errors: dict[str, list[str]] = {}
        topics = body.get("topics")
        if not isinstance(topics, list) or not topics or not all(isinstance(t, str) for t in topics):
            errors["topics"] = ["At least one topic is required."]
        elif set(topics) - WEBHOOK_TOPICS:
            errors["topics"] = [f"Unknown topic(s): {', '.join(sorted(set(topics) - WEBHOOK_TOPICS))}."]
        url = body.get("url")
        if not isinstance(url, str) or not url.startswith(("https://", "http://")):  # ShipBob wants https; loopback tests use http
            errors["url"] = ["The url must be an absolute https URL."]
        secret = body.get("secret")
        if secret is not None and (not isinstance(secret, str) or not SECRET_PATTERN.match(secret)):
            errors["secret"] = ["The secret must match ^whsec_[a-zA-Z0-9+/]{32}$."]
        if errors:
            raise ApiError(422, errors)
        with self._lock:
            hook_id = str(self._next("webhook"))
            sub = {"id": hook_id, "url": url, "topics": list(dict.fromkeys(topics)), "enabled": True,
                   "description": body.get("description"), "created_at": _stamp(_now()), "_secret": secret or ""}
            self.webhooks[hook_id] = sub
            shown = {k: v for k, v in sub.items() if not k.startswith("_") and k != "enabled"}
        return JSONResponse({**shown, **({"secret": secret} if secret else {})})

    @endpoint
    async def _delete_webhook(self, request: Request) -> Response:
        with self._lock:
            self.webhooks.pop(request.path_params["hook_id"], None)
        return Response(status_code=204)


class ShipBobKit(SandboxKit):
    """The ShipBob sandbox as a `connector.sandbox.kits.WarehouseKit`."""

    name = "shipbob"

    def __init__(self, sandbox: ShipBobSandbox, skus: tuple[str, ...] = ()):
        super().__init__(sandbox, tuple(sandbox.ship_methods), skus)
        v = "/" + sandbox.api_version
        self.routes = {
            "create": ("POST", f"{v}/order"),
            "find": ("GET", f"{v}/order"),
            "shipments": ("GET", f"{v}/order"),
            "ack": ("POST", f"{v}/shipment:batchUpdateTrackingUpload"),
            "stock": ("GET", f"{v}/inventory-level/locations"),
            "skus": ("GET", f"{v}/product"),
            "ship_methods": ("GET", f"{v}/shipping-method"),
            "cancel": ("POST", f"{v}/order/"),  # order/{id}:cancel, the one POST under order/
        }

    def warehouse_config(self, base_url: str, workdir) -> dict[str, Any]:
        return {"adapter": "shipbob", "base_url": base_url, "token": self.sandbox.token, "channel_id": self.sandbox.channel_id}

    def set_stock(self, sku: str, warehouse_id: str, available: int, on_hand: int | None = None) -> None:
        self.sandbox.set_stock(sku, int(warehouse_id), available, on_hand)

    def orders_created(self, reference: str) -> int:
        # Like ShipBob, the sandbox refuses a second order with the same reference (422), so this
        # is 0 or 1; `create_count` also shows no second create succeeded under another key.
        with self.sandbox._lock:
            return sum(1 for o in self.sandbox.orders.values() if o["reference_id"] == reference)

    def warehouse_ids(self) -> list[str]:
        return [str(fc) for fc in self.sandbox.fulfillment_centers]

    def close(self) -> None:
        self.sandbox.close()


def kit(*, products, ship_methods, credential: str = "sandbox-token", **kw: Any) -> ShipBobKit:
    """A ShipBob sandbox kit (demo, bench, pipeline tests)."""
    kw = {**DEMO_PLAN, **kw}
    return ShipBobKit(ShipBobSandbox(token=credential, channel_id=1, products=products, ship_methods=ship_methods, **kw), tuple(products))
