"""UltraCart's Fulfillment API (the distribution-center API) for one merchant and DC, plus the
Order and Item API reads the engine needs around it: re-reading orders after hand-off, order
history and the item catalog for onboarding.

Thin on purpose: paths, headers, body shapes and limits live here; timeouts, retries, the rate
limiter, redaction and the status -> error class table live in `adapters.http.HttpClient`.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import httpx

from adapters.http import DEFAULT_LIMITERS, HttpClient, Limiters, OnCall
from adapters.ultracart.catalog import CatalogItem, parse_item
from connector.domain import DistributionCenter
from connector.errors import ConfigurationError, ErrorClass, PermanentError, VendorError, error_for
from connector.redact import Redactor

VENDOR = "ultracart"
API_VERSION = "2017-03-01"
DEFAULT_BASE_URL = "https://secure.ultracart.com/rest/v2"
MAX_ACKS = 100
MAX_SHIPMENTS = 100
MAX_INVENTORY = 500
MAX_BATCH_ORDERS = 500  # POST /order/orders/batch
MAX_QUERY_PAGE = 200  # POST /order/orders/query `_limit`
MAX_ITEM_PAGE = 2000  # GET /item/items `_limit`

# Everything `parse_order` reads, as Order API expansions (the names are singular: `item` brings
# `items`, `coupon` brings `coupons`). Without an expansion an order has little more than its id,
# stage and creation date. Top-level fields (refund_dts, reject_dts, currency_code, ...) need none.
ORDER_EXPAND = "billing,checkout,coupon,customer_profile,gift,internal,item,payment,shipping,summary"
# What onboarding needs of an item besides its top-level SKU, description and kit flag.
ITEM_EXPAND = "kit_definition"

_SHIPMENT_KEYS = ("order_id", "tracking_numbers", "shipping_cost", "fulfillment_fee", "package_cost")
# The fetch sends no body, so a 400 on it that names the distribution center means the DC code is
# unknown or not ours: a config problem that pauses the service, not one bad record. (On writes the
# same words may be about one record, so they stay permanent there.)
_DC_PROBLEM = re.compile(r"distribution[ _]?center", re.IGNORECASE)
# UltraCart answers a missing order with a 400 (not 404) whose words say so ("... It does not exist.").
# Any other 400 on a read by id (a bad expansion, say) is a real error and is raised.
_MISSING = re.compile(r"does not exist|not found|no such order|unknown order|invalid order id", re.IGNORECASE)
# The Order and Item APIs need permissions a fulfillment-only key may lack.
_PERMISSION = {"order": "order_read", "item": "item_read", "webhook": "webhook_read"}


def error_message(response: httpx.Response) -> str:
    """UltraCart's readable message: the UC-REST-ERROR header, else the ErrorResponse body."""
    header = response.headers.get("UC-REST-ERROR", "").strip()
    if header:
        return header
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        err = body["error"]
        for key in ("developer_message", "user_message"):
            if isinstance(err.get(key), str) and err[key].strip():
                return err[key].strip()
    text = response.text.strip()[:500] if response.content else ""
    return text or response.reason_phrase or f"HTTP {response.status_code}"


def _order_ids(order_ids: Iterable[str]) -> list[str]:
    if isinstance(order_ids, str):
        raise ValueError("order_ids must be a list of order ids, not one string")
    ids: list[str] = []
    for order_id in order_ids:
        if not isinstance(order_id, str) or not order_id.strip():
            raise ValueError(f"order ids must be non-blank strings, got {order_id!r}")
        ids.append(order_id)
    return list(dict.fromkeys(ids))  # asking twice for one order only costs a slot


def _query_time(moment: datetime, what: str) -> str:
    """An OrderQuery date: ISO 8601 with milliseconds and an offset (`2018-12-03T14:27:10.312-05:00`)."""
    if not isinstance(moment, datetime):
        raise ValueError(f"{what} must be a datetime, got {moment!r}")
    if moment.tzinfo is None or moment.utcoffset() is None:
        # UltraCart would read a bare time in the merchant's zone; hours off is worse than an error.
        raise ValueError(f"{what} must carry a time zone, got {moment.isoformat()}")
    return moment.isoformat(timespec="milliseconds")


def _number(value: Any, what: str) -> int | float:
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise ValueError(f"{what} must be a number, got {value!r}")
    # JSON has no Decimal; whole numbers go as integers so quantities stay exact.
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


class UltraCartClient:
    """The cart adapter for one merchant's distribution center (implements `CartAdapter`)."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        distribution_center: str,
        *,
        on_call: OnCall | None = None,
        redactor: Redactor | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        rate_per_minute: float | None = None,
        limiters: Limiters | None = None,
    ):
        if not distribution_center.strip():
            raise ValueError("distribution_center is required")
        self.distribution_center = distribution_center
        if redactor is None:
            redactor = Redactor([api_key])
        else:
            redactor.add(api_key)  # the key must never reach the event log, whoever built the redactor
        self.http = HttpClient(
            VENDOR,
            base_url or DEFAULT_BASE_URL,
            headers={
                "x-ultracart-simple-key": api_key,
                "X-UltraCart-Api-Version": API_VERSION,
                "Content-Type": "application/json",
            },
            request_id_header="X-UltraCart-Request-Id",
            # One limiter per credential, shared by every client using the key (several DCs).
            limiter=(limiters or DEFAULT_LIMITERS).get(VENDOR, api_key, rate_per_minute),
            error_message=error_message,
            redactor=redactor,
            on_call=on_call,
            transport=transport,
        )
        self._dc_path = f"/fulfillment/distribution_centers/{quote(distribution_center, safe='')}"

    async def __aenter__(self) -> UltraCartClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.http.aclose()

    @staticmethod
    def _json(response: httpx.Response, key: str) -> list:
        """The list under `key` of a 200 body; a body we cannot read is UltraCart's fault (retry)."""
        request_id = response.headers.get("X-UltraCart-Request-Id", "")
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict) and body.get("success") is False:
            raise error_for(
                ErrorClass.permanent, error_message(response), vendor=VENDOR, status=response.status_code, request_id=request_id
            )
        value = body.get(key) if isinstance(body, dict) else None
        if value is None and isinstance(body, dict):
            return []  # an empty queue may omit the list
        if not isinstance(value, list):
            raise error_for(
                ErrorClass.transient,
                f"unreadable response: expected a JSON object with a '{key}' array",
                vendor=VENDOR,
                status=response.status_code,
                request_id=request_id,
            )
        return value

    async def distribution_centers(self) -> list[DistributionCenter]:
        """The DCs this key may use (also the cheap credential check for `connector check`)."""
        response = await self.http.request("GET", "/fulfillment/distribution_centers")
        centers = []
        for dc in self._json(response, "distribution_centers"):
            if isinstance(dc, dict) and dc.get("code"):
                centers.append(DistributionCenter(code=str(dc["code"]), name=str(dc.get("name") or "")))
        return centers

    async def fetch_orders(self) -> list[dict[str, Any]]:
        """Up to 100 queued orders, raw. The same ones come back until they are acknowledged."""
        try:
            response = await self.http.request("GET", f"{self._dc_path}/orders")
        except PermanentError as exc:
            if exc.status == 400 and _DC_PROBLEM.search(exc.message):
                raise error_for(
                    ErrorClass.configuration,
                    f"distribution center {self.distribution_center!r}: {exc.message}",
                    vendor=VENDOR,
                    status=exc.status,
                    request_id=exc.request_id,
                ) from exc
            raise
        orders = self._json(response, "orders")
        # Parsing happens per order later, so one bad order never hides the others. A non-object
        # entry has no id to store or acknowledge, so there is nothing to keep of it.
        return [o for o in orders if isinstance(o, dict)]

    async def acknowledge(self, order_ids: list[str]) -> None:
        """Remove these orders from the DC's queue ("received", not "shipped"). At most 100."""
        ids = list(order_ids)
        if len(ids) > MAX_ACKS:
            raise ValueError(f"UltraCart acknowledges at most {MAX_ACKS} orders per call, got {len(ids)}")
        for order_id in ids:
            if not isinstance(order_id, str) or not order_id.strip():
                raise ValueError(f"order ids must be non-blank strings, got {order_id!r}")
        if not ids:
            return
        await self.http.request("PUT", f"{self._dc_path}/acknowledgements", json=ids, idempotent=True)

    async def post_shipments(self, shipments: list[Mapping[str, Any]]) -> None:
        """Store tracking and costs and mark the orders shipped for this DC. At most 100."""
        if len(shipments) > MAX_SHIPMENTS:
            raise ValueError(f"UltraCart takes at most {MAX_SHIPMENTS} shipments per call, got {len(shipments)}")
        body = [self._shipment(s) for s in shipments]
        if not body:
            return
        # Not retried in the call: UltraCart has no idempotency key and a second post may e-mail the
        # customer twice, so a lost answer is in doubt and the caller reads the orders before posting again.
        await self.http.request("POST", f"{self._dc_path}/shipments", json=body, idempotent=False)

    @staticmethod
    def _shipment(record: Mapping[str, Any]) -> dict[str, Any]:
        unknown = set(record) - set(_SHIPMENT_KEYS)
        if unknown:
            raise ValueError(f"unknown shipment fields {sorted(unknown)}; allowed: {', '.join(_SHIPMENT_KEYS)}")
        order_id = record.get("order_id")
        if not isinstance(order_id, str) or not order_id.strip():
            raise ValueError(f"shipment order_id must be a non-blank string, got {order_id!r}")
        tracking = record.get("tracking_numbers") or []
        if isinstance(tracking, str) or not isinstance(tracking, Iterable):
            raise ValueError(f"tracking_numbers must be a list of strings, got {tracking!r}")
        out: dict[str, Any] = {
            "order_id": order_id,
            # Blank entries mirror UltraCart's own [""] and mean nothing to a customer.
            "tracking_numbers": [str(t).strip() for t in tracking if str(t).strip()],
        }
        for key in ("shipping_cost", "fulfillment_fee", "package_cost"):
            # An absent cost stays absent: sending 0 would overwrite what the merchant recorded.
            if record.get(key) is not None:
                out[key] = _number(record[key], key)
        return out

    async def post_inventory(self, items: list[Mapping[str, Any]]) -> None:
        """Set the sellable quantity of items at this DC: `{"itemId": sku, "quantity": n}`. At most 500."""
        if len(items) > MAX_INVENTORY:
            raise ValueError(f"UltraCart takes at most {MAX_INVENTORY} inventory records per call, got {len(items)}")
        body = []
        for item in items:
            # The wire name is camelCase; accept the snake_case spelling callers reach for.
            sku = item.get("itemId", item.get("item_id"))
            if not isinstance(sku, str) or not sku.strip():
                raise ValueError(f"inventory itemId must be a non-blank string, got {sku!r}")
            quantity = _number(item.get("quantity"), f"quantity of {sku}")
            if quantity < 0:
                raise ValueError(f"quantity of {sku} must not be negative, got {quantity}")
            body.append({"itemId": sku, "quantity": quantity})
        if not body:
            return
        await self.http.request("POST", f"{self._dc_path}/inventory", json=body, idempotent=True)

    # -- the Order and Item APIs (reads; same credential, limiter and error table) ----------------

    @staticmethod
    def _object(response: httpx.Response, what: str) -> dict[str, Any]:
        """A 200 body as a JSON object; `success: false` is permanent, an unreadable body transient."""
        request_id = response.headers.get("X-UltraCart-Request-Id", "")
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise error_for(ErrorClass.transient, f"{what}: unreadable response, expected a JSON object",
                            vendor=VENDOR, status=response.status_code, request_id=request_id)
        if body.get("success") is False:
            raise error_for(ErrorClass.permanent, f"{what}: {error_message(response)}",
                            vendor=VENDOR, status=response.status_code, request_id=request_id)
        return body

    @staticmethod
    def _records(body: dict[str, Any], key: str, what: str, response: httpx.Response) -> list[dict[str, Any]]:
        value = body.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            raise error_for(ErrorClass.transient, f"{what}: unreadable response, '{key}' is not an array",
                            vendor=VENDOR, status=response.status_code,
                            request_id=response.headers.get("X-UltraCart-Request-Id", ""))
        return [v for v in value if isinstance(v, dict)]

    async def _read(self, api: str, what: str, method: str, path: str, **kw: Any) -> httpx.Response:
        """One read of the Order or Item API. Its errors say which read failed (UltraCart's own
        message follows), and a refused credential names the permission it lacks."""
        try:
            return await self.http.request(method, path, idempotent=True, **kw)
        except VendorError as exc:
            message = f"{what}: {exc.message}"
            if isinstance(exc, ConfigurationError) and exc.status in (401, 403):
                message += f" (the API key needs the {_PERMISSION[api]} permission)"
            raise error_for(exc.error_class, message, vendor=exc.vendor or VENDOR, status=exc.status,
                            request_id=exc.request_id, retry_after=exc.retry_after, not_sent=exc.not_sent) from exc

    async def get_order(self, order_id: str, *, expand: str = ORDER_EXPAND) -> dict[str, Any] | None:
        """One order, raw, expanded for `parse_order`; None when UltraCart says it does not exist."""
        (order_id,) = _order_ids([order_id])
        what = f"order {order_id}"
        try:
            response = await self._read("order", what, "GET", f"/order/orders/{quote(order_id, safe='')}",
                                        params={"_expand": expand})
        except PermanentError as exc:
            if exc.status in (400, 404) and _MISSING.search(exc.message):
                return None
            raise
        order = self._object(response, what).get("order")
        if order is None:
            return None
        if not isinstance(order, dict):
            raise error_for(ErrorClass.transient, f"{what}: unreadable response, 'order' is not an object",
                            vendor=VENDOR, status=response.status_code,
                            request_id=response.headers.get("X-UltraCart-Request-Id", ""))
        return order

    async def get_orders(self, order_ids: Iterable[str], *, expand: str = ORDER_EXPAND) -> list[dict[str, Any]]:
        """These orders, raw, in calls of at most 500. Ids UltraCart does not know are simply absent."""
        ids = _order_ids(order_ids)
        orders: list[dict[str, Any]] = []
        for start in range(0, len(ids), MAX_BATCH_ORDERS):
            chunk = ids[start : start + MAX_BATCH_ORDERS]
            what = f"orders batch of {len(chunk)}"
            # `origin`: the live order, not the search cache, because callers ask what changed.
            response = await self._read("order", what, "POST", "/order/orders/batch", params={"_expand": expand},
                                        json={"order_ids": chunk, "query_target": "origin"})
            orders += self._records(self._object(response, what), "orders", what, response)
        return orders

    async def query_order_pages(self, created_from: datetime, created_to: datetime, *, expand: str = ORDER_EXPAND,
                                page_size: int = MAX_QUERY_PAGE) -> AsyncIterator[list[dict[str, Any]]]:
        """Orders created in [created_from, created_to], raw, one page (<= 200) at a time."""
        if not 1 <= page_size <= MAX_QUERY_PAGE:
            raise ValueError(f"page_size must be 1..{MAX_QUERY_PAGE}, got {page_size}")
        query = {
            "creation_date_begin": _query_time(created_from, "created_from"),
            "creation_date_end": _query_time(created_to, "created_to"),
            "query_target": "origin",
        }
        if created_from > created_to:
            raise ValueError(f"created_from {query['creation_date_begin']} is after created_to {query['creation_date_end']}")
        offset = 0
        while True:
            what = f"orders query at offset {offset}"
            response = await self._read("order", what, "POST", "/order/orders/query", json=query,
                                        params={"_limit": page_size, "_offset": offset, "_expand": expand})
            body = self._object(response, what)
            page = self._records(body, "orders", what, response)
            yield page
            metadata = body.get("metadata")
            result_set = metadata.get("result_set") if isinstance(metadata, dict) else None
            if not isinstance(result_set, dict) or result_set.get("more") is not True:
                return
            count = len(body.get("orders") or [])
            if count == 0:
                raise error_for(ErrorClass.transient, f"{what}: UltraCart says more orders follow but sent none",
                                vendor=VENDOR, status=response.status_code,
                                request_id=response.headers.get("X-UltraCart-Request-Id", ""))
            next_offset = result_set.get("next_offset")
            # Trust next_offset only when it moves forward: a stuck offset would loop for ever.
            if isinstance(next_offset, int) and not isinstance(next_offset, bool) and next_offset > offset:
                offset = next_offset
            else:
                offset += count

    async def query_orders(self, created_from: datetime, created_to: datetime, *,
                           expand: str = ORDER_EXPAND) -> list[dict[str, Any]]:
        """Every order created in [created_from, created_to], raw (all pages of `query_order_pages`)."""
        orders: list[dict[str, Any]] = []
        async for page in self.query_order_pages(created_from, created_to, expand=expand):
            orders += page
        return orders

    async def item_pages(self, *, expand: str = ITEM_EXPAND, page_size: int = MAX_ITEM_PAGE) -> AsyncIterator[list[dict[str, Any]]]:
        """The merchant's item catalog, raw, one page (<= 2000) at a time."""
        if not 1 <= page_size <= MAX_ITEM_PAGE:
            raise ValueError(f"page_size must be 1..{MAX_ITEM_PAGE}, got {page_size}")
        offset = 0
        while True:
            what = f"items at offset {offset}"
            response = await self._read("item", what, "GET", "/item/items",
                                        params={"_limit": page_size, "_offset": offset, "_expand": expand})
            body = self._object(response, what)
            count = len(body.get("items") or []) if isinstance(body.get("items"), list) else 0
            yield self._records(body, "items", what, response)
            # The documented rule: a full page means there may be more.
            if count < page_size:
                return
            offset += count

    async def items(self) -> list[CatalogItem]:
        """The merchant's catalog: SKU, description, kit flag and kit components of every item.

        An entry without a merchant_item_id is left out: no order line can name it.
        """
        catalog: list[CatalogItem] = []
        async for page in self.item_pages():
            catalog += [item for item in map(parse_item, page) if item is not None]
        return catalog

    async def webhooks(self) -> list[dict[str, Any]]:
        """The merchant's webhooks (`GET /webhook/webhooks`), raw: url, authentication, events."""
        what = "webhooks"
        response = await self._read("webhook", what, "GET", "/webhook/webhooks")
        return self._records(self._object(response, what), "webhooks", what, response)


__all__ = ["UltraCartClient", "error_message", "API_VERSION", "DEFAULT_BASE_URL", "ITEM_EXPAND", "ORDER_EXPAND"]
