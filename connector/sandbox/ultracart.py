"""A loopback UltraCart: the Fulfillment API subset the connector uses, the Order and Item API
reads around it, the merchant-side changes that happen after hand-off, and outgoing webhooks.

Faithful where it matters to the connector:
- Fulfillment API: the fetch returns the SAME first <= 100 queued orders until they are
  acknowledged, writes answer 204 with an empty body, the 100/100/500 limits come back as 400 with
  UltraCart's own UC-REST-ERROR messages;
- Order API: `GET /order/orders/{id}` (a missing order is a 400, not a 404), `POST
  /order/orders/batch` (<= 500 ids, unknown ids left out) and `POST /order/orders/query` (OrderQuery
  body, `_limit` <= 200 / `_offset`, `metadata.result_set` as in UltraCart's samples: `more: true`
  while more follow and left out on the last page). `_expand` is honoured: without an expansion an
  order keeps only its top-level fields (`item` brings `items`, `coupon` brings `coupons`, ...);
- Item API: `GET /item/items`, `_limit` <= 2000 / `_offset`, `_expand` (e.g. `kit_definition`);
- every error body is `{"error": {developer_message, user_message}, "metadata": {}}` with no
  `success` key, and every response carries an `X-UltraCart-Request-Id`. Paths are served both bare
  and under UltraCart's `/rest/v2` prefix, so a base URL copied from the real config works too.

The sandbox knows every order ever queued (after its acknowledgement too) plus an optional order
history, and an optional item catalog (`catalog=`, `history=`; samples.make_catalog and
samples.order_history build them). Mutations change a stored order as UltraCart would and fire the
matching webhook events: `reject`, `refund`, `edit_address`, `edit_items`, `hold`, `release_hold`,
`delete`, `set_stage`, `mark_shipped`; tracking posted to the shipments endpoint ships the order.
`ignore_acks = True` makes the DC queue keep returning orders after they were acknowledged.

Not documented by UltraCart, chosen here (keep in mind when a test depends on it): the wording of
the missing-order and over-limit messages of the Order/Item APIs, `_limit` over the maximum being
a 400 (not a silent cap), and mutated orders staying in the DC queue with their new state.

Webhooks (`.webhooks`, a `WebhookOutbox`): subscriptions with a URL, HTTP Basic credentials, the
events subscribed, `compress_events` and `maximum_events`; the body is
`{"events": [{"<event>": <order>}, ...]}`. A background thread delivers them, so the API never waits
on a receiver; each delivery's status is recorded, and deliveries can be held, dropped, released in
any order and sent again (lost and out-of-order webhooks are test scenarios).

A control API under `/_sandbox/` lets a test in another process do all of the above. The server
runs in its own thread, so every mutation holds `self._lock`.
"""

from __future__ import annotations

import base64
import gzip
import itertools
import json
import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from connector.sandbox.common import parse_time
from connector.sandbox.faults import FaultMiddleware, Faults
from connector.sandbox.samples import EST, make_catalog, order_history, order_item

API_VERSION = "2017-03-01"
FETCH_LIMIT = 100
LIMITS = {  # endpoint -> (max records, UltraCart's message)
    "ack": (100, "order_ids can not contain more than 100 records at a time"),
    "shipments": (100, "shipments can not contain more than 100 records at a time"),
    "inventory": (500, "inventories can not contain more than 500 records at a time"),
}
MAX_BATCH_ORDERS = 500
MAX_QUERY_LIMIT = 200
DEFAULT_QUERY_LIMIT = 100
MAX_ITEM_LIMIT = 2000
DEFAULT_ITEM_LIMIT = 100
ENDPOINTS = ("dcs", "fetch", "ack", "shipments", "inventory", "order", "orders_batch", "orders_query", "items", "webhooks")
# The API-key permission each endpoint needs (UltraCart's scopes: fulfillment, order, item, webhook).
PERMISSIONS = {"dcs": "fulfillment_read", "fetch": "fulfillment_read", "ack": "fulfillment_write", "shipments": "fulfillment_write",
               "inventory": "fulfillment_write", "order": "order_read", "orders_batch": "order_read", "orders_query": "order_read",
               "items": "item_read", "webhooks": "webhook_read"}

# Order API `_expand` name -> the top-level key it brings. Keys not listed here always come back.
ORDER_EXPANSIONS = {
    "affiliate": "affiliates", "auto_order": "auto_order", "billing": "billing", "buysafe": "buysafe",
    "channel_partner": "channel_partner", "checkout": "checkout", "coupon": "coupons",
    "customer_profile": "customer_profile", "digital_order": "digital_order", "edi": "edi",
    "fraud_score": "fraud_score", "gift": "gift", "gift_certificate": "gift_certificate", "internal": "internal",
    "item": "items", "linked_shipment": "linked_shipment", "marketing": "marketing", "payment": "payment",
    "point_of_sale": "point_of_sale", "properties": "properties", "quote": "quote", "salesforce": "salesforce",
    "shipping": "shipping", "summary": "summary", "taxes": "taxes", "utms": "utms",
}
# Sub-expansions: (parent key, child key) that only come back when named.
ORDER_SUB_EXPANSIONS = {
    "affiliate.ledger": ("affiliates", "ledger"),
    "payment.transaction": ("payment", "transactions"),
    "shipping.tracking_number_details": ("shipping", "tracking_number_details"),
}
# Item blocks that need an expansion of the same name (`shipping.distribution_centers` brings `shipping`).
ITEM_BLOCKS = frozenset({
    "accounting", "amember", "auto_order", "ccbill", "channel_partner_item_mappings", "chargeback", "checkout",
    "content", "digital_delivery", "ebay", "email_notifications", "enrollment123", "gift_certificate",
    "google_product_search", "identifiers", "instant_payment_notifications", "internal", "kit_definition",
    "options", "payment_processing", "physical", "pricing", "properties", "realtime_pricing", "related",
    "reporting", "restriction", "revguard", "reviews", "salesforce", "shipping", "tags", "tax",
    "third_party_email_marketing", "variant_items", "variations", "wishlist_member",
})
# OrderQuery: the fields the sandbox filters on, and the documented rest (refused here, not ignored,
# so a test never passes on a filter that was silently skipped).
QUERY_FILTERS = frozenset({"order_id", "current_stage", "item_id", "creation_date_begin", "creation_date_end",
                           "refund_date_begin", "refund_date_end"})
QUERY_DOCUMENTED = frozenset({
    "payment_method", "email", "cc_email", "phone", "first_name", "last_name", "company", "city", "state_region",
    "postal_code", "country_code", "rma", "purchase_order_number", "channel_partner_code",
    "channel_partner_order_id", "customer_profile_oid", "total", "storefront_host_name",
    "screen_branding_theme_code", *(f"custom_field_{i}" for i in range(1, 11)), "payment_date_begin",
    "payment_date_end", "shipment_date_begin", "shipment_date_end", "shipped_on_date_begin", "shipped_on_date_end",
})
SHIPPING_FIELDS = frozenset({
    "first_name", "last_name", "company", "title", "address1", "address2", "city", "state_region", "postal_code",
    "country_code", "day_phone", "day_phone_e164", "evening_phone", "evening_phone_e164", "ship_to_residential",
    "lift_gate", "shipping_method", "special_instructions", "ship_on_date", "delivery_date",
})
# The order and fulfillment events UltraCart documents (sdk_samples insertWebhook), plus item events.
WEBHOOK_EVENTS = frozenset({
    "fulfillment_hold", "fulfillment_transmit", "order_create", "order_update", "order_delete",
    "order_stage_change", "order_payment_process", "order_payment_failed", "order_refund", "order_reject",
    "order_ship", "order_ship_expected", "order_ship_out_for_delivery", "order_ship_delivered",
    "item_create", "item_update", "item_delete",
})
COMPLETED = "Completed Order"
SHIPPING_DEPARTMENT = "Shipping Department"


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


# ---------------------------------------------------------------------------------------------
# Expansions


def _copy(value: Any) -> Any:
    """A deep copy of JSON data without Python recursion (a 600-deep order must not break the
    simulator: the connector is what is being tested)."""
    return json.loads(json.dumps(value))


def expand_order(order: dict[str, Any], expand: str | None) -> dict[str, Any]:
    """A copy of `order` as the Order API returns it for this `_expand` (None: everything)."""
    if expand is None:
        return _copy(order)
    names = {n.strip() for n in expand.split(",") if n.strip()}
    dropped = {key for name, key in ORDER_EXPANSIONS.items() if name not in names}
    out = {k: _copy(v) for k, v in order.items() if k not in dropped}
    for name, (parent, child) in ORDER_SUB_EXPANSIONS.items():
        if name in names or parent not in out:
            continue
        for block in out[parent] if isinstance(out[parent], list) else [out[parent]]:
            if isinstance(block, dict):
                block.pop(child, None)
    return out


def expand_item(item: dict[str, Any], expand: str | None) -> dict[str, Any]:
    """A copy of `item` as the Item API returns it for this `_expand` (None or "": no blocks)."""
    names = {n.strip().split(".", 1)[0] for n in (expand or "").split(",") if n.strip()}
    return {k: _copy(v) for k, v in item.items() if k not in ITEM_BLOCKS or k in names}


# ---------------------------------------------------------------------------------------------
# Webhooks


@dataclass(frozen=True)
class WebhookSubscription:
    """One UltraCart webhook: where deliveries go, how they authenticate and what they carry."""

    oid: int
    url: str
    events: frozenset[str]
    username: str = ""
    password: str = ""
    compress_events: bool = False  # `events` is then base64 of gzipped JSON
    maximum_events: int = 10  # events per delivery (UltraCart's minimum setting is 10)
    expansion: str | None = None  # `_expand` for the order in each event; None: the whole order
    timeout_s: float = 30.0  # UltraCart waits 30 s for an answer

    def public(self) -> dict[str, Any]:
        """What the control API shows: no password."""
        return {**asdict(self), "events": sorted(self.events), "password": "***" if self.password else ""}


FINAL = frozenset({"delivered", "failed", "dropped"})


@dataclass
class WebhookDelivery:
    """One POST the sandbox made or will make, and what became of it.

    status: `pending` (queued for the sender), `held` (kept back until released or dropped),
    `dropped` (lost: never sent), `delivered` (the receiver answered 2xx) or `failed` (any other
    answer, or none: `http_status` and `error` say which).
    """

    id: int
    webhook_oid: int
    events: list[tuple[str, str]]  # (event name, order id), in body order
    body: bytes = field(repr=False)
    status: str = "pending"
    http_status: int | None = None
    error: str = ""
    repeat_of: int | None = None
    sent_seq: int | None = None  # the order in which deliveries actually went out (1, 2, ...)

    @property
    def event_names(self) -> list[str]:
        return [name for name, _ in self.events]

    def public(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("body")
        out["events"] = [list(e) for e in self.events]
        return out


class WebhookOutbox:
    """The sandbox's outgoing webhooks: subscriptions, deliveries and one sender thread.

    `emit` only records and queues, so the API thread never waits on a receiver. The sender posts
    deliveries one at a time, in queue order (as one UltraCart webhook does).
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._subscriptions: dict[int, WebhookSubscription] = {}
        self._wanted: frozenset[str] = frozenset()  # every event some subscription takes
        self._deliveries: dict[int, WebhookDelivery] = {}
        self._queue: deque[int] = deque()
        self._holding = False
        self._oids = itertools.count(1)
        self._ids = itertools.count(1)
        self._sent = itertools.count(1)
        self._thread: threading.Thread | None = None
        self._closed = False

    # -- subscriptions ------------------------------------------------------------------------

    def subscribe(self, url: str, *, events: Iterable[str] = ("fulfillment_transmit",), username: str = "",
                  password: str = "", compress_events: bool = False, maximum_events: int = 10,
                  expansion: str | None = None, timeout_s: float = 30.0) -> WebhookSubscription:
        """Add a webhook. Unknown event names are refused (a typo would silently never fire)."""
        names = frozenset([events] if isinstance(events, str) else events)
        unknown = sorted(names - WEBHOOK_EVENTS)
        if unknown:
            raise ValueError(f"unknown webhook event(s) {', '.join(unknown)}; known: {', '.join(sorted(WEBHOOK_EVENTS))}")
        if not names:
            raise ValueError("a webhook needs at least one event")
        if not str(url).startswith(("http://", "https://")):
            raise ValueError(f"webhook url must be http(s), got {url!r}")
        if int(maximum_events) < 1:
            raise ValueError("maximum_events must be at least 1")
        with self._cond:
            sub = WebhookSubscription(next(self._oids), str(url), names, username, password, bool(compress_events),
                                      int(maximum_events), expansion, float(timeout_s))
            self._subscriptions[sub.oid] = sub
            self._subscribed()
            self._start()
        return sub

    def unsubscribe(self, oid: int) -> None:
        with self._cond:
            self._subscriptions.pop(oid, None)
            self._subscribed()

    @property
    def subscriptions(self) -> list[WebhookSubscription]:
        with self._cond:
            return list(self._subscriptions.values())

    def failures(self, oid: int) -> int:
        """Failed deliveries of this webhook since its last delivered one (UltraCart's consecutive_failures)."""
        with self._cond:
            count = 0
            for d in sorted((d for d in self._deliveries.values() if d.webhook_oid == oid and d.sent_seq), key=lambda d: d.sent_seq):
                count = 0 if d.status == "delivered" else count + 1
            return count

    def wants(self, event: str) -> bool:
        # No lock: the set is replaced whole, never changed in place (the API asks this per order).
        return event in self._wanted

    def _subscribed(self) -> None:
        self._wanted = frozenset(e for s in self._subscriptions.values() for e in s.events)

    # -- emitting -----------------------------------------------------------------------------

    def emit(self, events: Iterable[tuple[str, dict[str, Any]]]) -> list[int]:
        """Record deliveries for these (event, order) pairs; returns the new delivery ids.

        Each subscription gets the events it subscribed to, at most `maximum_events` per delivery,
        with the order as it is now (a later change does not alter a delivery already made).
        """
        events = list(events)
        made = []
        with self._cond:
            for sub in self._subscriptions.values():
                mine = [(name, order) for name, order in events if name in sub.events]
                for start in range(0, len(mine), sub.maximum_events):
                    chunk = mine[start : start + sub.maximum_events]
                    made.append(self._add(sub, [(n, str(o.get("order_id", ""))) for n, o in chunk], self._body(sub, chunk)))
            self._cond.notify_all()
        return made

    @staticmethod
    def _body(sub: WebhookSubscription, chunk: list[tuple[str, dict[str, Any]]]) -> bytes:
        events = [{name: expand_order(order, sub.expansion)} for name, order in chunk]
        if sub.compress_events:
            packed = base64.b64encode(gzip.compress(json.dumps(events).encode())).decode("ascii")
            return json.dumps({"events": packed}).encode()
        return json.dumps({"events": events}).encode()

    def _add(self, sub: WebhookSubscription, events: list[tuple[str, str]], body: bytes, repeat_of: int | None = None,
             hold: bool | None = None) -> int:
        delivery = WebhookDelivery(next(self._ids), sub.oid, events, body, repeat_of=repeat_of)
        self._deliveries[delivery.id] = delivery
        if self._holding if hold is None else hold:
            delivery.status = "held"
        else:
            self._queue.append(delivery.id)
        return delivery.id

    # -- lost, late and repeated deliveries ---------------------------------------------------

    def hold(self) -> None:
        """From now on, new deliveries are kept back (`held`) until `release` or `drop`."""
        with self._cond:
            self._holding = True

    def resume(self) -> None:
        """New deliveries go out again; those already held stay held until released or dropped."""
        with self._cond:
            self._holding = False

    def release(self, ids: Iterable[int] | None = None) -> list[int]:
        """Send held deliveries, in the order given (default: all, oldest first)."""
        with self._cond:
            chosen = self._held(ids)
            for delivery in chosen:
                delivery.status = "pending"
                self._queue.append(delivery.id)
            self._cond.notify_all()
            return [d.id for d in chosen]

    def drop(self, ids: Iterable[int] | None = None) -> list[int]:
        """Lose held deliveries (default: all): they are never sent."""
        with self._cond:
            chosen = self._held(ids)
            for delivery in chosen:
                delivery.status = "dropped"
            self._cond.notify_all()
            return [d.id for d in chosen]

    def _held(self, ids: Iterable[int] | None) -> list[WebhookDelivery]:
        if ids is None:
            return [d for d in self._deliveries.values() if d.status == "held"]
        chosen = []
        for i in ids:
            delivery = self._deliveries.get(int(i))
            if delivery is None:
                raise KeyError(f"no webhook delivery {i}")
            if delivery.status != "held":
                raise ValueError(f"webhook delivery {i} is {delivery.status}, not held")
            chosen.append(delivery)
        return chosen

    def redeliver(self, delivery_id: int) -> int:
        """Send a delivery's body again (UltraCart retrying, or a reflow); returns the new id."""
        with self._cond:
            original = self._deliveries.get(int(delivery_id))
            if original is None:
                raise KeyError(f"no webhook delivery {delivery_id}")
            sub = self._subscriptions.get(original.webhook_oid)
            if sub is None:
                raise ValueError(f"webhook {original.webhook_oid} of delivery {delivery_id} was removed")
            new = self._add(sub, list(original.events), original.body, repeat_of=original.id, hold=False)
            self._cond.notify_all()
            return new

    # -- looking -------------------------------------------------------------------------------

    def deliveries(self, *, event: str | None = None, order_id: str | None = None,
                   status: str | None = None) -> list[WebhookDelivery]:
        """Copies of the deliveries so far (oldest first), optionally only those carrying an event/order."""
        with self._cond:
            return [replace(d, events=list(d.events)) for d in self._deliveries.values()
                    if (event is None or event in d.event_names)
                    and (order_id is None or any(o == order_id for _, o in d.events))
                    and (status is None or d.status == status)]

    def delivery(self, delivery_id: int) -> WebhookDelivery:
        with self._cond:
            d = self._deliveries[int(delivery_id)]
            return replace(d, events=list(d.events))

    def wait(self, ids: Iterable[int] | None = None, timeout: float = 10.0) -> list[WebhookDelivery]:
        """Wait until these deliveries (default: every one so far) are settled: delivered, failed,
        dropped, or held. Raises TimeoutError naming the ones still pending."""
        with self._cond:
            wanted = list(self._deliveries) if ids is None else [int(i) for i in ids]
            missing = [i for i in wanted if i not in self._deliveries]
            if missing:
                raise KeyError(f"no webhook deliveries {missing}")

            def settled() -> bool:
                return all(self._deliveries[i].status != "pending" for i in wanted if i in self._deliveries)

            if not self._cond.wait_for(settled, timeout):
                pending = [i for i in wanted if self._deliveries[i].status == "pending"]
                raise TimeoutError(f"webhook deliveries {pending} still pending after {timeout} s")
            return [replace(self._deliveries[i], events=list(self._deliveries[i].events)) for i in wanted if i in self._deliveries]

    # -- sending -------------------------------------------------------------------------------

    def _start(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._closed = False
            self._thread = threading.Thread(target=self._run, name="ultracart-webhooks", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        with httpx.Client(trust_env=False) as http:  # a proxy from the environment must not see loopback hooks
            while True:
                with self._cond:
                    self._cond.wait_for(lambda: self._closed or self._queue)
                    if self._closed:
                        return
                    delivery = self._deliveries.get(self._queue.popleft())
                    if delivery is None or delivery.status != "pending":
                        continue  # cleared by reset, or dropped meanwhile
                    sub = self._subscriptions.get(delivery.webhook_oid)
                    body = delivery.body
                status, error = None, ""
                if sub is None:
                    error = "webhook removed before delivery"
                else:
                    auth = (sub.username, sub.password) if sub.username or sub.password else None
                    try:
                        reply = http.post(sub.url, content=body, auth=auth, timeout=sub.timeout_s,
                                          headers={"Content-Type": "application/json", "User-Agent": "UltraCart-Sandbox-Webhook"})
                        status = reply.status_code
                        if not 200 <= status < 300:
                            error = reply.text[:500]
                    except httpx.HTTPError as exc:
                        error = f"{type(exc).__name__}: {exc}"
                with self._cond:
                    delivery.http_status = status
                    delivery.error = error
                    delivery.status = "delivered" if status is not None and 200 <= status < 300 else "failed"
                    delivery.sent_seq = next(self._sent)
                    self._cond.notify_all()

    def reset(self) -> None:
        """Forget subscriptions and deliveries (the sender thread keeps running)."""
        with self._cond:
            self._subscriptions.clear()
            self._subscribed()
            self._deliveries.clear()
            self._queue.clear()
            self._holding = False
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5)


# ---------------------------------------------------------------------------------------------
# The sandbox


def _dts(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


def _quantity(value: Any) -> Decimal:
    try:
        number = Decimal(str(value))
    except (ArithmeticError, ValueError, TypeError):
        return Decimal(0)
    return number if number.is_finite() else Decimal(0)


def _number(value: Decimal) -> int | float:
    return int(value) if value == value.to_integral_value() else float(value)


def _money(value: Decimal) -> dict[str, Any]:
    value = value.quantize(Decimal("0.01"))
    return {"value": float(value), "localized": float(value), "localized_formatted": f"${value:,.2f}", "currency_code": "USD"}


def _created(order: dict[str, Any]) -> datetime | None:
    value = order.get("creation_dts")
    return parse_time(value) if isinstance(value, str) else None


class UltraCartSandbox:
    """State of one simulated UltraCart merchant plus its ASGI app (`.app`), faults (`.faults`) and
    outgoing webhooks (`.webhooks`)."""

    def __init__(self, api_key: str = "sandbox-key", merchant_id: str = "DEMO", distribution_centers=("DFLT",), *,
                 catalog: Iterable[dict] | None = None, history: Iterable[dict] | None = None):
        self.api_key = api_key
        self.merchant_id = merchant_id
        self.distribution_centers = tuple(distribution_centers)
        self.faults = Faults()
        self.webhooks = WebhookOutbox()
        self._lock = threading.Lock()
        self._initial_catalog = _copy(list(catalog or ()))
        self._initial_history = _copy(list(history or ()))
        self.reset()
        routes = [
            Route("/fulfillment/distribution_centers", self._dcs, methods=["GET"]),
            Route("/fulfillment/distribution_centers/{dc}/orders", self._fetch, methods=["GET"]),
            Route("/fulfillment/distribution_centers/{dc}/acknowledgements", self._ack, methods=["PUT"]),
            Route("/fulfillment/distribution_centers/{dc}/shipments", self._shipments, methods=["POST"]),
            Route("/fulfillment/distribution_centers/{dc}/inventory", self._inventory, methods=["POST"]),
            Route("/order/orders/batch", self._orders_batch, methods=["POST"]),
            Route("/order/orders/query", self._orders_query, methods=["POST"]),
            Route("/order/orders/{order_id}", self._order, methods=["GET"]),
            Route("/item/items", self._items, methods=["GET"]),
            Route("/webhook/webhooks", self._webhook_list, methods=["GET"]),
            Route("/_sandbox/orders", self._control_orders, methods=["POST"]),
            Route("/_sandbox/orders/{order_id}/{action}", self._control_mutate, methods=["POST"]),
            Route("/_sandbox/history", self._control_history, methods=["POST"]),
            Route("/_sandbox/catalog", self._control_catalog, methods=["POST"]),
            Route("/_sandbox/settings", self._control_settings, methods=["POST"]),
            Route("/_sandbox/webhooks", self._control_webhooks, methods=["GET", "POST"]),
            Route("/_sandbox/webhooks/{oid:int}", self._control_unsubscribe, methods=["DELETE"]),
            Route("/_sandbox/webhooks/{action}", self._control_webhook_action, methods=["POST"]),
            Route("/_sandbox/state", self._control_state, methods=["GET"]),
            Route("/_sandbox/faults", self._control_faults, methods=["POST"]),
            Route("/_sandbox/reset", self._control_reset, methods=["POST"]),
        ]
        self.app = _Edge(FaultMiddleware(Starlette(routes=routes), self.faults))

    # -- Python-side API ------------------------------------------------------------------------

    def reset(self) -> None:
        """Empty queues, records, counters, faults and webhooks; the catalog and history go back to
        what the constructor was given (the Faults object itself is kept: the app holds it)."""
        with self._lock:
            self._queues: dict[str, dict[str, dict]] = {dc: {} for dc in self.distribution_centers}
            # Every order the merchant has: history, and every order ever queued (acked or not).
            # A queued order and its entry here are the same dict until it is queued again elsewhere.
            self._orders: dict[str, dict] = {str(o["order_id"]): _copy(o) for o in self._initial_history}
            self._catalog: list[dict] = _copy(self._initial_catalog)
            self._acknowledged: list[str] = []
            self._shipment_posts: list[list[dict]] = []
            self._inventory_posts: list[list[dict]] = []
            self.requests: dict[str, int] = dict.fromkeys(ENDPOINTS, 0)
            self.ignore_acks = False  # True: acknowledgements are answered 204 but change nothing
            self.denied_permissions: set[str] = set()  # API-key permissions this key lacks (403 on their endpoints)
            self.clock: Callable[[], datetime] = lambda: datetime.now(EST)  # merchant time of changes; tests may pin it
            defaults = {k: v for k, v in Faults().snapshot().items() if k not in ("counts", "script")}
            self.faults.update(defaults)
            self.faults.script.clear()
            self.faults.counts.clear()
        self.webhooks.reset()

    def close(self) -> None:
        """Stop the webhook sender thread (the HTTP server is the caller's)."""
        self.webhooks.close()

    def queue(self, dc: str, orders: list[dict]) -> None:
        """Put orders in a DC's queue, in order. A re-queued id keeps its place and takes the new body.
        Fires `fulfillment_transmit` for each (UltraCart pushes what it queues for the DC)."""
        with self._lock:
            queue = self._queue_of(dc)
            for order in orders:
                if not isinstance(order, dict) or not order.get("order_id"):
                    raise ValueError("every queued order needs an order_id")
            fresh = []
            for order in orders:
                body = _copy(order)
                queue[str(order["order_id"])] = self._orders[str(order["order_id"])] = body
                fresh.append(body)
            if self.webhooks.wants("fulfillment_transmit"):
                self.webhooks.emit(("fulfillment_transmit", o) for o in fresh)

    def queued(self, dc: str) -> list[str]:
        with self._lock:
            return list(self._queue_of(dc))

    def add_history(self, orders: Iterable[dict]) -> None:
        """Orders the merchant already has (not queued for any DC): the Order API serves them."""
        with self._lock:
            for order in orders:
                if not isinstance(order, dict) or not order.get("order_id"):
                    raise ValueError("every history order needs an order_id")
                self._orders[str(order["order_id"])] = _copy(order)

    def set_catalog(self, items: Iterable[dict]) -> None:
        """Replace the item catalog the Item API serves (raw UltraCart Items, e.g. samples.make_catalog())."""
        items = _copy(list(items))
        if not all(isinstance(i, dict) and i.get("merchant_item_id") is not None for i in items):
            raise ValueError("every catalog item needs a merchant_item_id")
        with self._lock:
            self._catalog = items

    def order(self, order_id: str) -> dict | None:
        """The stored order as it is now (a copy), or None."""
        with self._lock:
            order = self._orders.get(order_id)
            return _copy(order) if order is not None else None

    @property
    def acknowledged(self) -> list[str]:
        """Every id received in acknowledgements, in order, repeats included (so double acks show)."""
        with self._lock:
            return list(self._acknowledged)

    @property
    def shipment_posts(self) -> list[list[dict]]:
        with self._lock:
            return _copy(self._shipment_posts)

    @property
    def inventory_posts(self) -> list[list[dict]]:
        with self._lock:
            return _copy(self._inventory_posts)

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
            state = {
                "queued": {dc: list(q) for dc, q in self._queues.items()},
                "acknowledged": list(self._acknowledged),
                "shipment_posts": _copy(self._shipment_posts),
                "inventory_posts": _copy(self._inventory_posts),
                "requests": dict(self.requests),
                "faults": dict(self.faults.counts),
                "orders": len(self._orders),
                "catalog": len(self._catalog),
                "ignore_acks": self.ignore_acks,
            }
        state["webhooks"] = {"subscriptions": [s.public() for s in self.webhooks.subscriptions],
                             "deliveries": [d.public() for d in self.webhooks.deliveries()]}
        return state

    def _queue_of(self, dc: str) -> dict[str, dict]:
        if dc not in self._queues:
            raise KeyError(f"unknown distribution center {dc!r}")
        return self._queues[dc]

    # -- mutations: what the merchant (or UltraCart) does to an order after it was placed ----------

    def _copies(self, order_id: str) -> list[dict]:
        """The stored order and every distinct queued copy of it (call with the lock held)."""
        if order_id not in self._orders:
            raise KeyError(f"unknown order {order_id!r}")
        copies = {id(self._orders[order_id]): self._orders[order_id]}
        for queue in self._queues.values():
            if order_id in queue:
                copies.setdefault(id(queue[order_id]), queue[order_id])
        return list(copies.values())

    def _mutate(self, order_id: str, change: Callable[[dict], list[str]], *, snapshot: bool = True) -> dict | None:
        """Apply `change` to the order (and its queued copies) and emit the events it returns.
        Returns a copy of the changed order (None with `snapshot=False` and nobody listening:
        copying every shipped order would slow the shipments endpoint several times over)."""
        with self._lock:
            return self._mutate_locked(order_id, change, snapshot)

    def _mutate_locked(self, order_id: str, change: Callable[[dict], list[str]], snapshot: bool) -> dict | None:
        copies = self._copies(order_id)
        events = change(copies[0])  # the stored order first: it validates, and says what fired
        for other in copies[1:]:
            change(other)
        heard = [name for name in events if self.webhooks.wants(name)]
        if not (snapshot or heard):
            return None
        after = _copy(copies[0])
        if heard:
            self.webhooks.emit((name, after) for name in heard)
        return after

    @staticmethod
    def _stage(order: dict, stage: str, at: str) -> list[str]:
        before = order.get("current_stage") or ""
        if before == stage:
            return []
        order["current_stage"] = stage
        order.setdefault("current_stage_histories", []).append({"before_stage": before, "after_stage": stage, "transition_dts": at})
        return ["order_stage_change"]

    def reject(self, order_id: str, reason: str = "") -> dict:
        """The merchant rejects (cancels) the order: stage Rejected, reject_dts, reject_reason.
        Fires order_reject and order_stage_change."""
        at = _dts(self.clock())

        def change(order: dict) -> list[str]:
            order["reject_dts"] = at
            order["reject_reason"] = reason
            return ["order_reject", *self._stage(order, "Rejected", at)]

        return self._mutate(order_id, change)

    def refund(self, order_id: str, reason: str = "", items: Mapping[str, float] | None = None) -> dict:
        """Refund all of it (`items=None`) or `{sku: quantity}`: refund_dts, refund_reason, each
        line's quantity_refunded and total_refunded (quantities stay: UltraCart keeps refunded units
        on the line). A full refund sets payment_status Refunded. Fires order_refund."""
        at = _dts(self.clock())
        wanted = None if items is None else {str(k): _quantity(v) for k, v in items.items()}

        def change(order: dict) -> list[str]:
            lines = [i for i in order.get("items") or [] if isinstance(i, dict)]
            if wanted is None:
                plan = {id(line): _quantity(line.get("quantity")) - _quantity(line.get("quantity_refunded")) for line in lines}
            else:
                plan = {}
                for sku, quantity in wanted.items():
                    if quantity <= 0:
                        raise ValueError(f"refund quantity of {sku} must be positive")
                    matching = [line for line in lines if line.get("merchant_item_id") == sku]
                    if not matching and order is self._orders.get(order_id):
                        raise ValueError(f"order {order_id} has no line with SKU {sku!r}")
                    left = quantity
                    for line in matching:
                        room = _quantity(line.get("quantity")) - _quantity(line.get("quantity_refunded"))
                        take = min(room, left)
                        if take > 0:
                            plan[id(line)] = take
                            left -= take
                    if left > 0 and order is self._orders.get(order_id):
                        raise ValueError(f"order {order_id} has fewer than {quantity} unrefunded units of {sku!r}")
            refunded = Decimal(0)
            for line in lines:
                take = plan.get(id(line), Decimal(0))
                if take <= 0:
                    line.setdefault("quantity_refunded", 0)
                    continue
                line["quantity_refunded"] = _number(_quantity(line.get("quantity_refunded")) + take)
                cost = line.get("cost", {}).get("value") if isinstance(line.get("cost"), dict) else None
                amount = _quantity(cost) * take
                previous = line.get("total_refunded", {}).get("value", 0) if isinstance(line.get("total_refunded"), dict) else 0
                line["total_refunded"] = _money(_quantity(previous) + amount)
                refunded += amount
            order["refund_dts"] = at
            order["refund_reason"] = reason
            summary = order.setdefault("summary", {})
            previous = summary.get("total_refunded", {}).get("value", 0) if isinstance(summary.get("total_refunded"), dict) else 0
            summary["total_refunded"] = _money(_quantity(previous) + refunded)
            if all(_quantity(line.get("quantity_refunded")) >= _quantity(line.get("quantity")) for line in lines):
                order.setdefault("payment", {})["payment_status"] = "Refunded"
            return ["order_refund"]

        return self._mutate(order_id, change)

    def edit_address(self, order_id: str, **fields: Any) -> dict:
        """Change shipping fields (OrderShipping names: address1, city, state_region, ...). Fires order_update."""
        unknown = sorted(set(fields) - SHIPPING_FIELDS)
        if unknown or not fields:
            raise ValueError(f"edit_address takes OrderShipping fields ({', '.join(sorted(SHIPPING_FIELDS))}); got {unknown or 'none'}")

        def change(order: dict) -> list[str]:
            order.setdefault("shipping", {}).update(_copy(fields))
            return ["order_update"]

        return self._mutate(order_id, change)

    def edit_items(self, order_id: str, *, quantities: Mapping[str, float | None] | None = None,
                   add: Iterable[tuple] = (), remove: Iterable[str] = ()) -> dict:
        """Edit the lines: set `quantities` by SKU (None sends `quantity: null`), `add` lines as
        (sku, qty) or (sku, qty, {extra fields}), `remove` lines by SKU. Fires order_update."""
        quantities, add, remove = dict(quantities or {}), [tuple(a) for a in add], list(remove)
        if not (quantities or add or remove):
            raise ValueError("edit_items needs quantities, add or remove")

        def change(order: dict) -> list[str]:
            lines = order.setdefault("items", [])
            skus = {line.get("merchant_item_id") for line in lines if isinstance(line, dict)}
            missing = sorted(set(quantities) - skus | set(remove) - skus)
            if missing and order is self._orders.get(order_id):
                raise ValueError(f"order {order_id} has no line with SKU(s) {', '.join(map(repr, missing))}")
            for line in lines:
                if isinstance(line, dict) and line.get("merchant_item_id") in quantities:
                    line["quantity"] = quantities[line["merchant_item_id"]]
            lines[:] = [line for line in lines if not (isinstance(line, dict) and line.get("merchant_item_id") in remove)]
            dc = next((line.get("distribution_center_code") for line in lines if isinstance(line, dict)), None) or "DFLT"
            index = max((line.get("item_index") or 0 for line in lines if isinstance(line, dict)), default=0)
            for sku, quantity, *extra in add:
                index += 1
                lines.append(order_item(sku, quantity, index, dc, **(extra[0] if extra else {})))
            return ["order_update"]

        return self._mutate(order_id, change)

    def hold(self, order_id: str) -> dict:
        """Hold the order for review: stage Hold. Fires fulfillment_hold and order_stage_change."""
        at = _dts(self.clock())
        return self._mutate(order_id, lambda order: ["fulfillment_hold", *self._stage(order, "Hold", at)])

    def release_hold(self, order_id: str) -> dict:
        """Back to the stage it had before the hold (else Shipping Department). Fires order_stage_change."""
        at = _dts(self.clock())

        def change(order: dict) -> list[str]:
            if order.get("current_stage") != "Hold":
                raise ValueError(f"order {order_id} is not on hold (stage {order.get('current_stage')!r})")
            before = next((h.get("before_stage") for h in reversed(order.get("current_stage_histories") or [])
                           if isinstance(h, dict) and h.get("after_stage") == "Hold"), None)
            return self._stage(order, before or SHIPPING_DEPARTMENT, at)

        return self._mutate(order_id, change)

    def set_stage(self, order_id: str, stage: str) -> dict:
        """Move the order to any stage (unknown ones too: UltraCart adds stages). Fires order_stage_change."""
        if not isinstance(stage, str) or not stage:
            raise ValueError("stage must be a non-empty string")
        at = _dts(self.clock())
        return self._mutate(order_id, lambda order: self._stage(order, stage, at))

    def mark_shipped(self, order_id: str, tracking_numbers: Iterable[str] = ()) -> dict:
        """Ship it outside the DC API: stage Completed Order, shipping_date, items' shipped_dts,
        tracking numbers added. Fires order_ship and order_stage_change."""
        at = _dts(self.clock())
        tracking = [str(t) for t in tracking_numbers]
        return self._mutate(order_id, lambda order: self._ship(order, tracking, at))

    def _ship(self, order: dict, tracking: list[str], at: str) -> list[str]:
        shipping = order.setdefault("shipping", {})
        known = [t for t in shipping.get("tracking_numbers") or [] if t]
        shipping["tracking_numbers"] = known + [t for t in tracking if t and t not in known]
        shipping.setdefault("shipping_date", at)
        for line in order.get("items") or []:
            if isinstance(line, dict):
                line.setdefault("shipped_dts", at)
        return ["order_ship", *self._stage(order, COMPLETED, at)]

    def delete(self, order_id: str) -> dict:
        """Delete the order: gone from the Order API and every DC queue. Fires order_delete."""
        with self._lock:
            copies = self._copies(order_id)
            snapshot = _copy(copies[0])
            del self._orders[order_id]
            for queue in self._queues.values():
                queue.pop(order_id, None)
            self.webhooks.emit([("order_delete", snapshot)])
        return snapshot

    MUTATIONS = ("reject", "refund", "edit_address", "edit_items", "hold", "release_hold", "delete", "set_stage", "mark_shipped")

    # -- request checks, in UltraCart's order: credentials, version, DC, body -------------------

    def _check(self, request: Request, endpoint: str, dc: str | None = None) -> None:
        with self._lock:
            self.requests[endpoint] += 1
        if request.headers.get("x-ultracart-simple-key") != self.api_key:
            raise SandboxError(401, "Invalid or missing API credentials (x-ultracart-simple-key)")
        if PERMISSIONS[endpoint] in self.denied_permissions:
            raise SandboxError(403, f"Permission denied: this API key does not have {PERMISSIONS[endpoint]}")
        version = request.headers.get("x-ultracart-api-version")
        if version != API_VERSION:
            raise SandboxError(400, f"Missing or unsupported X-UltraCart-Api-Version header {version!r}; use {API_VERSION}")
        if dc is not None and dc not in self._queues:
            raise SandboxError(400, f"Invalid distribution center code {dc!r} for merchant {self.merchant_id}")

    async def _records(self, request: Request, endpoint: str) -> list:
        body = await self._json(request)
        if not isinstance(body, list):
            raise SandboxError(400, "Request body must be a JSON array")
        limit, message = LIMITS[endpoint]
        if len(body) > limit:
            raise SandboxError(400, message)
        return body

    @staticmethod
    async def _json(request: Request) -> Any:
        try:
            return json.loads(await request.body())
        except ValueError as exc:
            raise SandboxError(400, f"Invalid JSON in request body: {exc}") from None

    @staticmethod
    def _page_params(request: Request, default: int, maximum: int) -> tuple[int, int]:
        values = []
        for name, fallback in (("_limit", default), ("_offset", 0)):
            raw = request.query_params.get(name)
            try:
                value = fallback if raw is None else int(raw)
            except ValueError:
                raise SandboxError(400, f"Invalid {name} value {raw!r}: must be an integer") from None
            values.append(value)
        limit, offset = values
        if not 1 <= limit <= maximum:
            raise SandboxError(400, f"_limit must be between 1 and {maximum}, got {limit}")
        if offset < 0:
            raise SandboxError(400, f"_offset must not be negative, got {offset}")
        return limit, offset

    @staticmethod
    def _result_set(count: int, offset: int, limit: int, total: int) -> dict[str, Any]:
        more = offset + count < total
        result_set: dict[str, Any] = {"count": count, "offset": offset, "limit": limit,
                                      "next_offset": offset + count if more else 0, "total_records": total}
        if more:
            result_set["more"] = True  # UltraCart's replies leave `more` out when it is false
        return {"result_set": result_set}

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
            orders = [_copy(o) for o in list(self._queues[dc].values())[:FETCH_LIMIT]]
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
            if not self.ignore_acks:
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
        at = _dts(self.clock())
        # One lock for the whole post: a test thread polling the sandbox must not be able to
        # wedge itself between the records of one request.
        with self._lock:
            self._shipment_posts.append(records)
            for record in records:
                if str(record["order_id"]) in self._orders:
                    tracking = [str(t) for t in record.get("tracking_numbers") or [] if isinstance(t, str | int)]
                    self._mutate_locked(str(record["order_id"]), lambda order, tracking=tracking: self._ship(order, tracking, at),
                                        snapshot=False)
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

    # -- the Order API --------------------------------------------------------------------------

    async def _order(self, request: Request) -> Response:
        order_id = request.path_params["order_id"]
        try:
            self._check(request, "order")
            with self._lock:
                order = self._orders.get(order_id)
                body = expand_order(order, request.query_params.get("_expand", "")) if order is not None else None
            if body is None:
                raise SandboxError(400, f"Server side object 'order' {order_id} could not be retrieved. It does not exist.")
        except SandboxError as exc:
            return exc.response()
        return JSONResponse({"order": body, "success": True, "metadata": {"payload_name": "order"}})

    async def _orders_batch(self, request: Request) -> Response:
        try:
            self._check(request, "orders_batch")
            body = await self._json(request)
            if not isinstance(body, dict):
                raise SandboxError(400, "Request body must be an OrderQueryBatch object")
            ids = body.get("order_ids")
            if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
                raise SandboxError(400, "order_ids must be an array of strings")
            if len(ids) > MAX_BATCH_ORDERS:
                raise SandboxError(400, f"order_ids can not contain more than {MAX_BATCH_ORDERS} records at a time")
            if body.get("query_target", "origin") not in ("origin", "cache"):
                raise SandboxError(400, f"Invalid query_target {body.get('query_target')!r}: use origin or cache")
        except SandboxError as exc:
            return exc.response()
        expand = request.query_params.get("_expand", "")
        with self._lock:
            orders = [expand_order(self._orders[i], expand) for i in dict.fromkeys(ids) if i in self._orders]
        metadata = self._result_set(len(orders), 0, MAX_BATCH_ORDERS, len(orders)) | {"payload_name": "orders"}
        return JSONResponse({"orders": orders, "success": True, "metadata": metadata})

    async def _orders_query(self, request: Request) -> Response:
        try:
            self._check(request, "orders_query")
            limit, offset = self._page_params(request, DEFAULT_QUERY_LIMIT, MAX_QUERY_LIMIT)
            query = await self._json(request)
            if not isinstance(query, dict):
                raise SandboxError(400, "Request body must be an OrderQuery object")
            match = self._query_filter(query)
        except SandboxError as exc:
            return exc.response()
        expand = request.query_params.get("_expand", "")
        with self._lock:
            found = [o for o in self._orders.values() if match(o)]
            found.sort(key=lambda o: (_created(o) or datetime.min.replace(tzinfo=EST), str(o.get("order_id"))))
            page = [expand_order(o, expand) for o in found[offset : offset + limit]]
        metadata = self._result_set(len(page), offset, limit, len(found)) | {"payload_name": "orders"}
        return JSONResponse({"orders": page, "success": True, "metadata": metadata})

    @staticmethod
    def _query_filter(query: dict[str, Any]) -> Callable[[dict], bool]:
        criteria = {k: v for k, v in query.items() if k != "query_target" and v not in (None, "")}
        unsupported = sorted(set(criteria) & QUERY_DOCUMENTED)
        if unsupported:
            raise SandboxError(400, f"the sandbox does not filter on {', '.join(unsupported)} (it would be ignored silently)")
        unknown = sorted(set(criteria) - QUERY_FILTERS)
        if unknown:
            raise SandboxError(400, f"Unrecognized OrderQuery field(s) {', '.join(unknown)}")
        if not criteria:
            raise SandboxError(400, "At least one query criteria must be specified")
        if query.get("query_target", "origin") not in ("origin", "cache"):
            raise SandboxError(400, f"Invalid query_target {query.get('query_target')!r}: use origin or cache")
        bounds = {}
        for key in ("creation_date_begin", "creation_date_end", "refund_date_begin", "refund_date_end"):
            if key in criteria:
                moment = parse_time(criteria[key]) if isinstance(criteria[key], str) else None
                if moment is None:
                    raise SandboxError(400, f"Invalid date {criteria[key]!r} for {key}")
                bounds[key] = moment

        def within(value: Any, begin: str, end: str) -> bool:
            moment = parse_time(value) if isinstance(value, str) else None
            if moment is None:
                return False
            return (begin not in bounds or moment >= bounds[begin]) and (end not in bounds or moment <= bounds[end])

        def match(order: dict) -> bool:
            if "order_id" in criteria and order.get("order_id") != criteria["order_id"]:
                return False
            if "current_stage" in criteria and order.get("current_stage") != criteria["current_stage"]:
                return False
            if "item_id" in criteria and not any(isinstance(i, dict) and i.get("merchant_item_id") == criteria["item_id"]
                                                 for i in order.get("items") or []):
                return False
            if {"creation_date_begin", "creation_date_end"} & set(bounds) and not within(
                    order.get("creation_dts"), "creation_date_begin", "creation_date_end"):
                return False
            if {"refund_date_begin", "refund_date_end"} & set(bounds) and not within(
                    order.get("refund_dts"), "refund_date_begin", "refund_date_end"):
                return False
            return True

        return match

    # -- the Item API ---------------------------------------------------------------------------

    async def _items(self, request: Request) -> Response:
        try:
            self._check(request, "items")
            limit, offset = self._page_params(request, DEFAULT_ITEM_LIMIT, MAX_ITEM_LIMIT)
            since = request.query_params.get("_since")
            since_at = parse_time(since) if since else None
            if since and since_at is None:
                raise SandboxError(400, f"Invalid _since date {since!r}")
        except SandboxError as exc:
            return exc.response()
        params, expand = request.query_params, request.query_params.get("_expand", "")
        with self._lock:
            found = [i for i in self._catalog
                     if ("parent_category_id" not in params or str(i.get("parent_category_id", 0)) == params["parent_category_id"])
                     and ("parent_category_path" not in params or i.get("parent_category_path", "/") == params["parent_category_path"])
                     and (since_at is None or (parse_time(str(i.get("last_modified_dts", ""))) or since_at) >= since_at)]
            page = [expand_item(i, expand) for i in found[offset : offset + limit]]
        metadata = self._result_set(len(page), offset, limit, len(found)) | {"payload_name": "items"}
        return JSONResponse({"items": page, "success": True, "metadata": metadata})

    # -- the Webhook API (read) -----------------------------------------------------------------

    async def _webhook_list(self, request: Request) -> Response:
        """The subscriptions as UltraCart's Webhook model (the basic password is never echoed)."""
        try:
            self._check(request, "webhooks")
        except SandboxError as exc:
            return exc.response()
        hooks = [{"webhook_oid": sub.oid, "webhook_url": sub.url, "api_version": API_VERSION,
                  "authentication_type": "basic" if sub.username else "none", "basic_username": sub.username,
                  "compress_events": sub.compress_events, "maximum_events": sub.maximum_events, "disabled": False,
                  "consecutive_failures": self.webhooks.failures(sub.oid),
                  "event_categories": [{"event_category": "order", "events": [
                      {"event_name": name, "subscribed": True, "expansion": sub.expansion or ""} for name in sorted(sub.events)]}]}
                 for sub in self.webhooks.subscriptions]
        return JSONResponse({"webhooks": hooks, "success": True, "metadata": self._result_set(len(hooks), 0, len(hooks), len(hooks))})

    # -- the control API (never faulted) --------------------------------------------------------

    @staticmethod
    async def _body(request: Request) -> Any:
        raw = await request.body()
        return json.loads(raw) if raw.strip() else {}

    @staticmethod
    def _control_error(exc: Exception) -> Response:
        status = 404 if isinstance(exc, KeyError) else 400
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        return JSONResponse({"error": message}, status_code=status)

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

    async def _control_mutate(self, request: Request) -> Response:
        """POST /_sandbox/orders/{order_id}/{action} with the action's keyword arguments as JSON."""
        action = request.path_params["action"]
        if action not in self.MUTATIONS:
            return JSONResponse({"error": f"unknown action {action!r}; known: {', '.join(self.MUTATIONS)}"}, status_code=404)
        try:
            kwargs = await self._body(request)
            if not isinstance(kwargs, dict):
                raise ValueError("the body must be a JSON object of keyword arguments")
            if action == "edit_items" and "add" in kwargs:
                kwargs["add"] = [tuple(a) for a in kwargs["add"]]
            order = getattr(self, action)(request.path_params["order_id"], **kwargs)
        except (KeyError, ValueError, TypeError) as exc:
            return self._control_error(exc)
        return JSONResponse({"order": order})

    async def _control_history(self, request: Request) -> Response:
        """A list of orders, or `{"orders": [...]}`, or samples.order_history keyword arguments."""
        try:
            body = await self._body(request)
            if isinstance(body, dict) and "orders" not in body:
                if isinstance(body.get("end"), str):
                    body["end"] = parse_time(body["end"])
                body = order_history(**body)
            self.add_history(body["orders"] if isinstance(body, dict) else body)
        except (KeyError, ValueError, TypeError) as exc:
            return self._control_error(exc)
        with self._lock:
            return JSONResponse({"orders": len(self._orders)})

    async def _control_catalog(self, request: Request) -> Response:
        """A list of items, or `{"items": [...]}`, or samples.make_catalog keyword arguments."""
        try:
            body = await self._body(request)
            if isinstance(body, dict) and "items" not in body:
                body = make_catalog(**body)
            self.set_catalog(body["items"] if isinstance(body, dict) else body)
        except (KeyError, ValueError, TypeError) as exc:
            return self._control_error(exc)
        with self._lock:
            return JSONResponse({"catalog": len(self._catalog)})

    async def _control_settings(self, request: Request) -> Response:
        try:
            body = await self._body(request)
            unknown = sorted(set(body) - {"ignore_acks", "denied_permissions"}) if isinstance(body, dict) else ["(not an object)"]
            if unknown:
                raise ValueError(f"unknown setting(s) {', '.join(unknown)}; known: ignore_acks, denied_permissions")
            denied = set(body.get("denied_permissions") or ())
            if denied - set(PERMISSIONS.values()):
                raise ValueError(f"unknown permission(s) {', '.join(sorted(denied - set(PERMISSIONS.values())))}")
        except ValueError as exc:
            return self._control_error(exc)
        with self._lock:
            if "ignore_acks" in body:
                self.ignore_acks = bool(body["ignore_acks"])
            if "denied_permissions" in body:
                self.denied_permissions = denied
            return JSONResponse({"ignore_acks": self.ignore_acks, "denied_permissions": sorted(self.denied_permissions)})

    async def _control_webhooks(self, request: Request) -> Response:
        """GET: subscriptions and deliveries; POST: subscribe (WebhookOutbox.subscribe arguments)."""
        if request.method == "POST":
            try:
                body = await self._body(request)
                if not isinstance(body, dict):
                    raise ValueError("the body must be a JSON object")
                sub = self.webhooks.subscribe(**body)
            except (ValueError, TypeError) as exc:
                return self._control_error(exc)
            return JSONResponse(sub.public())
        return JSONResponse({"subscriptions": [s.public() for s in self.webhooks.subscriptions],
                             "deliveries": [d.public() for d in self.webhooks.deliveries()]})

    async def _control_unsubscribe(self, request: Request) -> Response:
        self.webhooks.unsubscribe(request.path_params["oid"])
        return Response(status_code=204)

    async def _control_webhook_action(self, request: Request) -> Response:
        """hold `{"hold": true|false}`, release / drop `{"ids": [...]}` (default all held), redeliver `{"id": n}`."""
        action = request.path_params["action"]
        try:
            body = await self._body(request)
            if action == "hold":
                (self.webhooks.hold if body.get("hold", True) else self.webhooks.resume)()
                return JSONResponse({"hold": bool(body.get("hold", True))})
            if action in ("release", "drop"):
                return JSONResponse({action: getattr(self.webhooks, action)(body.get("ids"))})
            if action == "redeliver":
                return JSONResponse({"redeliver": self.webhooks.redeliver(body["id"])})
        except (KeyError, ValueError, TypeError, AttributeError) as exc:
            return self._control_error(exc)
        return JSONResponse({"error": f"unknown webhook action {action!r}; known: hold, release, drop, redeliver"}, status_code=404)

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
