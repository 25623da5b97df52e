"""ShipBob as a warehouse: orders in, shipments and stock out, over the Developer API (2026-01).

Every path, parameter and body field here was checked against ShipBob's 2026-01 OpenAPI document
(`../shared/specs/shipbob-2026-01-openapi.json`); the adapter tests validate each request against it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlsplit

import httpx

from adapters.base import AdapterContext, Capabilities
from adapters.http import HttpClient, limiter_for, parse_retry_after
from adapters.shipbob import mapping
from adapters.shipbob.config import ShipBobConfig
from connector.domain import CreateResult, Shipment, StockLevel, WarehouseOrder
from connector.errors import ConfigurationError, PermanentError

PAGE_LIMIT = 250  # the largest page every list endpoint we use accepts
MAX_PAGES = 1000  # a guard against a server that keeps handing out the same `next`
ACK_BATCH = 100  # ShipBob documents no maximum for batchUpdateTrackingUpload; stay modest


def _retry_after(response: httpx.Response) -> float | None:
    return parse_retry_after(response.headers.get("x-retry-after") or response.headers.get("Retry-After"))


def _rate_headers(response: httpx.Response) -> tuple[int | None, float | None]:
    # x-remaining-calls counts down ShipBob's sliding window; at 0 the limiter waits
    # x-retry-after (or its own short default when ShipBob does not say).
    try:
        remaining = int(response.headers["x-remaining-calls"])
    except (KeyError, ValueError):
        return None, None
    return remaining, _retry_after(response)


def _error_message(response: httpx.Response) -> str:
    try:
        return mapping.error_text(response.json())[:1000]
    except ValueError:
        return (response.text or response.reason_phrase or f"HTTP {response.status_code}")[:1000]


class ShipBobAdapter:
    """Creates orders in ShipBob by reference and reads back shipments and per-FC stock.

    Idempotency: `reference_id` is unique per ShipBob account, so a repeated create answers 422
    "existing ReferenceId"; the adapter then looks the order up and returns it as `already_existed`.
    Shipment acknowledgement uses ShipBob's own outbox flag (`is_tracking_uploaded`).
    """

    name: ClassVar[str] = "shipbob"
    Config: ClassVar[type[ShipBobConfig]] = ShipBobConfig
    capabilities: ClassVar[Capabilities] = Capabilities(
        inventory=True, shipment_ack=True, cancel=False, bulk_create=False, sku_catalog=True, ship_method_catalog=True
    )

    def __init__(self, config: ShipBobConfig | dict[str, Any], context: AdapterContext):
        self.config = config if isinstance(config, ShipBobConfig) else ShipBobConfig.model_validate(config)
        self.context = context
        self.channel_id = int(str(self.config.channel_id).strip())
        self._prefix = f"{context.merchant}-"  # our references: order_reference(merchant, order id)
        self._v = "/" + self.config.api_version.strip("/")

        self.http = HttpClient(
            "shipbob",
            self.config.base_url,
            headers={
                "Authorization": f"Bearer {self.config.token}",
                # Required on creates; on reads it scopes orders to this channel, so shipments of
                # the merchant's other channels (a Shopify store) are never read or acknowledged.
                "shipbob_channel_id": str(self.channel_id),
            },
            request_id_header="",  # ShipBob documents no request id header
            limiter=limiter_for("shipbob", self.config.token, self.config.rate_per_minute),
            error_message=_error_message,
            retry_after=_retry_after,
            rate_headers=_rate_headers,
            redactor=context.redactor,
            on_call=context.on_call,
            transport=context.transport,
        )

    # -- setup --------------------------------------------------------------------------------

    async def check(self) -> str:
        """Token valid and channel visible to it: `GET /{ver}/channel`."""
        channels: list[dict[str, Any]] = []
        try:
            async for page in self._cursor_pages(f"{self._v}/channel", {"RecordsPerPage": 50}):
                channels += page
        except PermanentError as exc:
            if exc.status == 404:  # the version segment is wrong
                raise ConfigurationError(
                    f"api_version {self.config.api_version!r} not served: {exc.message}", vendor="shipbob", status=404
                ) from exc
            raise
        mine = next((c for c in channels if c.get("id") == self.channel_id), None)
        if mine is None:
            known = ", ".join(f"{c.get('id')} ({c.get('name')})" for c in channels) or "none"
            raise ConfigurationError(f"channel {self.channel_id} is not one of this token's channels: {known}", vendor="shipbob")
        return f"ShipBob {self.config.api_version} at {self.config.base_url}, channel {self.channel_id} ({mine.get('name') or '?'})"

    # -- orders -------------------------------------------------------------------------------

    async def create_order(self, order: WarehouseOrder) -> CreateResult:
        """`POST /{ver}/order`; a timeout or 5xx raises InDoubtError (resolved by find_order)."""
        try:
            response = await self.http.request(
                "POST", f"{self._v}/order", json=mapping.order_body(order), idempotent=False, ok=(200, 201)
            )
        except PermanentError as exc:
            if exc.status != 422 or not mapping.is_duplicate_reference(exc.message):
                raise
            found = await self.find_order(order.reference)
            if found is None:
                # ShipBob holds the reference account-wide, but not in our channel.
                raise PermanentError(
                    f"reference {order.reference} already exists in ShipBob outside channel {self.channel_id}: {exc.message}",
                    vendor="shipbob",
                    status=422,
                ) from exc
            return found.model_copy(update={"already_existed": True})
        created = response.json() if response.content else {}
        if isinstance(created, dict) and created.get("id") is not None:
            return CreateResult(warehouse_order_id=str(created["id"]), reference=order.reference)
        found = await self.find_order(order.reference)  # a 201 without a body: ask
        if found is None:
            raise PermanentError(f"ShipBob accepted {order.reference} but does not list it", vendor="shipbob")
        return found

    async def find_order(self, reference: str) -> CreateResult | None:
        """`GET /{ver}/order?ReferenceIds=<reference>` (the filter is comma separated: exact match kept)."""
        response = await self.http.request("GET", f"{self._v}/order", params={"ReferenceIds": reference})
        for order in response.json() or []:
            if order.get("reference_id") == reference and order.get("id") is not None:
                return CreateResult(warehouse_order_id=str(order["id"]), reference=reference)
        return None

    # -- catalogues ---------------------------------------------------------------------------

    async def known_skus(self) -> set[str]:
        """Every variant SKU (`GET /{ver}/product`, cursor-paged by `next`)."""
        skus: set[str] = set()
        async for page in self._cursor_pages(f"{self._v}/product", {"PageSize": str(PAGE_LIMIT)}):
            for product in page:
                skus |= mapping.variant_skus(product)
        return skus

    async def known_ship_methods(self) -> set[str]:
        """Names of the merchant's active ship options (`GET /{ver}/shipping-method`).

        ShipBob maps an unknown `shipping_method` to a new Standard option without any error,
        so the engine holds orders whose method is not in this set.
        """
        names: set[str] = set()
        async for page in self._numbered_pages(f"{self._v}/shipping-method", {}):
            names |= {m["name"].strip() for m in page if (m.get("name") or "").strip() and m.get("active", True)}
        return names

    # -- shipments ----------------------------------------------------------------------------

    async def shipments_since(self, since: datetime) -> list[Shipment]:
        """Shipments of this channel's orders whose tracking is not yet marked uploaded."""
        params = {"IsTrackingUploaded": "false", "LastTrackingUpdateStartDate": mapping.iso(since)}
        shipments: list[Shipment] = []
        async for page in self._numbered_pages(f"{self._v}/order", params):
            for order in page:
                channel = (order.get("channel") or {}).get("id")
                if channel is not None and channel != self.channel_id:
                    continue  # belt and braces: never report another channel's parcels
                if not str(order.get("reference_id") or "").startswith(self._prefix):
                    continue  # another merchant (or sender) on the same account and channel
                shipments += mapping.shipments_of(order)
        return shipments

    async def acknowledge_shipments(self, shipments: list[Shipment]) -> None:
        """`POST /{ver}/shipment:batchUpdateTrackingUpload`: they drop out of the next reads.

        Raises PermanentError naming the shipments ShipBob refused (the others are marked).
        """
        ids = sorted({int(s.shipment_id) for s in shipments if s.shipment_id.isdigit()})
        failures: list[str] = []
        for start in range(0, len(ids), ACK_BATCH):
            batch = ids[start : start + ACK_BATCH]
            # Setting a flag is idempotent: 5xx may be retried in-call.
            response = await self.http.request(
                "POST",
                f"{self._v}/shipment:batchUpdateTrackingUpload",
                json={"shipment_ids": batch, "is_tracking_uploaded": True},
                idempotent=True,
            )
            body = response.json() if response.content else {}
            for result in (body or {}).get("results") or []:
                if result.get("isSuccess") is False:
                    error = result.get("error") or {}
                    failures.append(f"{result.get('shipmentId')}: {error.get('message') or error.get('code') or 'refused'}")
        if failures:
            raise PermanentError("tracking-uploaded flag refused for " + "; ".join(failures), vendor="shipbob")

    # -- stock --------------------------------------------------------------------------------

    async def stock_levels(self) -> list[StockLevel]:
        """Per fulfillment center (`GET /{ver}/inventory-level/locations`, cursor-paged)."""
        levels: list[StockLevel] = []
        async for page in self._cursor_pages(f"{self._v}/inventory-level/locations", {"PageSize": str(PAGE_LIMIT)}):
            for item in page:
                levels += mapping.stock_levels_of(item)
        return levels

    async def aclose(self) -> None:
        await self.http.aclose()

    # -- paging -------------------------------------------------------------------------------

    async def _cursor_pages(self, path: str, params: dict[str, Any]) -> AsyncIterator[list[dict[str, Any]]]:
        """Pages of `{items, next}` responses. `next` is a URL whose query (cursor included) is
        replayed on our own base URL, so a sandbox or proxy host in it does not matter."""
        seen: set[tuple] = set()
        for _ in range(MAX_PAGES):
            response = await self.http.request("GET", path, params=params)
            body = response.json() or {}
            yield body.get("items") or []
            link = body.get("next")
            if not link:
                return
            params = dict(parse_qsl(urlsplit(link).query, keep_blank_values=True))
            key = tuple(sorted(params.items()))
            if key in seen:
                return
            seen.add(key)

    async def _numbered_pages(self, path: str, params: dict[str, Any]) -> AsyncIterator[list[dict[str, Any]]]:
        """Pages of bare-array responses (`Page` from 1, `Limit`); a short page is the last."""
        seen_first: Any = None
        for page in range(1, MAX_PAGES + 1):
            response = await self.http.request("GET", path, params={**params, "Page": page, "Limit": PAGE_LIMIT})
            items = response.json() or []
            # A server that ignores Page returns page 1 again: stop rather than loop.
            if page > 1 and items and items[0] == seen_first:
                return
            seen_first = items[0] if items else None
            yield items
            if len(items) < PAGE_LIMIT:
                return
