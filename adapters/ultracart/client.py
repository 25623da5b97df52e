"""UltraCart's Fulfillment API (the distribution-center API) for one merchant and DC.

Thin on purpose: paths, headers, body shapes and limits live here; timeouts, retries, the rate
limiter, redaction and the status -> error class table live in `adapters.http.HttpClient`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import httpx

from adapters.http import HttpClient, OnCall, limiter_for
from connector.domain import DistributionCenter
from connector.errors import ErrorClass, PermanentError, error_for
from connector.redact import Redactor

VENDOR = "ultracart"
API_VERSION = "2017-03-01"
DEFAULT_BASE_URL = "https://secure.ultracart.com/rest/v2"
MAX_ACKS = 100
MAX_SHIPMENTS = 100
MAX_INVENTORY = 500

_SHIPMENT_KEYS = ("order_id", "tracking_numbers", "shipping_cost", "fulfillment_fee", "package_cost")
# The fetch sends no body, so a 400 on it that names the distribution center means the DC code is
# unknown or not ours: a config problem that pauses the service, not one bad record. (On writes the
# same words may be about one record, so they stay permanent there.)
_DC_PROBLEM = re.compile(r"distribution[ _]?center", re.IGNORECASE)


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
            limiter=limiter_for(VENDOR, api_key, rate_per_minute),
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
        # Posting the same tracking again is harmless, so a 5xx is retried rather than left in doubt.
        await self.http.request("POST", f"{self._dc_path}/shipments", json=body, idempotent=True)

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


__all__ = ["UltraCartClient", "error_message", "API_VERSION", "DEFAULT_BASE_URL"]
