"""ShipStation as a warehouse: orders in, labels (shipments) out, over the legacy v1 API.

ShipStation publishes no machine-readable v1 document; paths, parameters and shapes here follow
its v1 documentation as summarised in the research notes (section A.2), and the adapter tests
check every request against those facts.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any, ClassVar

import httpx

from adapters.base import AdapterContext, Capabilities
from adapters.http import HttpClient, limiter_for, parse_retry_after
from adapters.shipstation import mapping, pacific
from adapters.shipstation.config import ShipStationConfig
from connector.domain import CreateResult, Shipment, StockLevel, WarehouseOrder
from connector.errors import ConfigurationError, PermanentError

PAGE_SIZE = 500  # ShipStation's maximum for every list endpoint
MAX_PAGES = 200  # a guard against a server that never reports the last page
CATALOG_TTL_S = 600.0  # carriers and services change rarely; they cost 1 + one call per carrier


def _reset_after(response: httpx.Response) -> float | None:
    # ShipStation says when its window reopens in X-Rate-Limit-Reset (seconds); a proxy may add
    # a standard Retry-After.
    return parse_retry_after(response.headers.get("Retry-After") or response.headers.get("X-Rate-Limit-Reset"))


def _rate_headers(response: httpx.Response) -> tuple[int | None, float | None]:
    # X-Rate-Limit-Remaining counts down the key's 40 per minute, shared with every other user of
    # the key; at 0 the limiter holds every call until X-Rate-Limit-Reset has passed.
    try:
        remaining = int(response.headers["X-Rate-Limit-Remaining"])
    except (KeyError, ValueError):
        return None, None
    return remaining, _reset_after(response)


def _error_message(response: httpx.Response) -> str:
    try:
        return mapping.error_text(response.json())[:1000]
    except ValueError:
        return (response.text.strip() or response.reason_phrase or f"HTTP {response.status_code}")[:1000]


class ShipStationAdapter:
    """Creates orders in ShipStation by `orderKey` and reads back their labels as shipments.

    Exactly once: `POST /orders/createorder` upserts by `orderKey` (our reference), so no resend
    can make a second order. But an upsert replaces the whole order (v1 has no partial update),
    which would wipe what the warehouse changed (a hold, a service, weights) and cannot touch an
    order already shipped or cancelled. So every create first looks the reference up
    (`GET /orders?orderNumber=`, exact `orderKey` match) and only sends when it is absent: two
    calls per order, which at 40 per minute is about 20 orders a minute. Should the order appear
    between lookup and send (another process), ShipStation's answer shows it was an update
    (`modifyDate` != `createDate`) and it is reported as `already_existed`.

    No inventory (v1 has no stock endpoint) and no shipment acknowledgement (nothing to mark);
    SKUs are not checked (ShipStation takes any SKU). Ship methods are ShipStation's
    `carrierCode:serviceCode`, validated against `GET /carriers` and `/carriers/listservices`.
    """

    name: ClassVar[str] = "shipstation"
    Config: ClassVar[type[ShipStationConfig]] = ShipStationConfig
    capabilities: ClassVar[Capabilities] = Capabilities(
        inventory=False, shipment_ack=False, cancel=False, bulk_create=False, sku_catalog=False, ship_method_catalog=True
    )

    def __init__(self, config: ShipStationConfig | dict[str, Any], context: AdapterContext):
        self.config = config if isinstance(config, ShipStationConfig) else ShipStationConfig.model_validate(config)
        self.context = context
        self.merchant = context.merchant
        self._catalog: tuple[float, set[str]] | None = None
        self.http = HttpClient(
            "shipstation",
            self.config.base_url,
            headers={"Authorization": f"Basic {self.config.basic_token()}"},
            request_id_header="",  # ShipStation v1 documents no request id header
            # The budget is per key+secret, shared by every merchant and process using them.
            limiter=limiter_for("shipstation", f"{self.config.api_key}:{self.config.api_secret}", self.config.rate_per_minute),
            error_message=_error_message,
            retry_after=_reset_after,
            rate_headers=_rate_headers,
            redactor=context.redactor,
            on_call=context.on_call,
            transport=context.transport,
        )

    # -- setup --------------------------------------------------------------------------------

    async def check(self) -> str:
        """Key and secret valid (`GET /carriers`) and, when configured, the store exists."""
        carriers = await self._carriers()
        text = f"ShipStation v1 at {self.config.base_url}, carriers: {', '.join(carriers) or 'none connected'}"
        if self.config.store_id is not None:
            try:
                store = (await self.http.request("GET", f"/stores/{self.config.store_id}")).json() or {}
            except PermanentError as exc:
                raise ConfigurationError(
                    f"store_id {self.config.store_id} is not a store of this account: {exc.message}", vendor="shipstation", status=exc.status
                ) from exc
            text += f"; store {self.config.store_id} ({store.get('storeName') or '?'})"
        return text

    # -- orders -------------------------------------------------------------------------------

    async def create_order(self, order: WarehouseOrder) -> CreateResult:
        """Look up, then `POST /orders/createorder`; a timeout or 5xx raises InDoubtError."""
        found = await self.find_order(order.reference)
        if found is not None:
            return found.model_copy(update={"already_existed": True})
        response = await self.http.request(
            "POST",
            "/orders/createorder",
            json=mapping.order_body(order, store_id=self.config.store_id),
            idempotent=False,
            ok=(200, 201),
        )
        created = response.json() if response.content else {}
        if not isinstance(created, dict) or created.get("orderId") is None:
            found = await self.find_order(order.reference)  # an answer without the order: ask
            if found is None:
                raise PermanentError(f"ShipStation accepted {order.reference} but does not list it", vendor="shipstation")
            return found
        if (created.get("orderKey") or order.reference) != order.reference:
            raise PermanentError(
                f"ShipStation answered {order.reference} with another order's key {created.get('orderKey')!r}", vendor="shipstation"
            )
        return CreateResult(warehouse_order_id=str(created["orderId"]), reference=order.reference, already_existed=mapping.was_updated(created))

    async def find_order(self, reference: str) -> CreateResult | None:
        """`GET /orders?orderNumber=<cart order id>` (a "starts with" search), exact `orderKey` kept.

        v1 cannot filter by `orderKey`; the order number is the cart's order id, recovered from
        the reference. Any status counts: a shipped or cancelled order exists all the same.
        """
        params = {"orderNumber": mapping.lookup_number(reference, self.merchant)}
        async for page in self._pages("/orders", "orders", params):
            for record in page:
                if record.get("orderKey") == reference and record.get("orderId") is not None:
                    return CreateResult(warehouse_order_id=str(record["orderId"]), reference=reference)
        return None

    # -- catalogues ---------------------------------------------------------------------------

    async def known_skus(self) -> set[str] | None:
        """None: ShipStation takes any SKU on an order (its product list is built from orders)."""
        return None

    async def known_ship_methods(self) -> set[str]:
        """Every `carrierCode:serviceCode` of the account's carriers, and each bare `carrierCode`.

        Kept for CATALOG_TTL_S: the budget is small and the list rarely changes.
        """
        if self._catalog is not None and time.monotonic() - self._catalog[0] < CATALOG_TTL_S:
            return set(self._catalog[1])
        methods: set[str] = set()
        for carrier in await self._carriers():
            methods.add(carrier)
            response = await self.http.request("GET", "/carriers/listservices", params={"carrierCode": carrier})
            for service in response.json() or []:
                code = (service.get("code") or "").strip()
                if code:
                    methods.add(mapping.method_name(carrier, code))
        self._catalog = (time.monotonic(), methods)
        return set(methods)

    async def _carriers(self) -> list[str]:
        response = await self.http.request("GET", "/carriers")
        codes = [(c.get("code") or "").strip() for c in response.json() or []]
        return list(dict.fromkeys(c for c in codes if c))

    # -- shipments ----------------------------------------------------------------------------

    async def shipments_since(self, since: datetime) -> list[Shipment]:
        """This merchant's labels shipping on or after `since`'s date in Pacific time.

        `shipDateStart` is a date and ShipStation reads it in Pacific time, so the window starts
        at the Pacific date of `since` (a UTC date would be a day late every evening). Whole days
        are re-read; the engine stores each shipment once.
        """
        params: dict[str, Any] = {"shipDateStart": pacific.pacific_date(since), "includeShipmentItems": "true"}
        if self.config.store_id is not None:
            params["storeId"] = self.config.store_id
        shipments: list[Shipment] = []
        async for page in self._pages("/shipments", "shipments", params):
            for record in page:
                found = mapping.shipment(record, self.merchant)
                if found is not None:
                    shipments.append(found)
        return shipments

    async def acknowledge_shipments(self, shipments: list[Shipment]) -> None:
        """Nothing to do: ShipStation v1 has no "tracking delivered" flag (capability off)."""
        return None

    # -- stock --------------------------------------------------------------------------------

    async def stock_levels(self) -> list[StockLevel]:
        raise NotImplementedError("ShipStation v1 has no inventory endpoint (capability `inventory` is off)")

    async def aclose(self) -> None:
        await self.http.aclose()

    # -- paging -------------------------------------------------------------------------------

    async def _pages(self, path: str, key: str, params: dict[str, Any]) -> AsyncIterator[list[dict[str, Any]]]:
        """Pages of `{<key>: [...], total, page, pages}` (`page` from 1, `pageSize` <= 500)."""
        for page in range(1, MAX_PAGES + 1):
            response = await self.http.request("GET", path, params={**params, "page": page, "pageSize": PAGE_SIZE})
            body = response.json() or {}
            records = body.get(key) or []
            yield records
            try:
                pages = int(body.get("pages") or 0)
            except (TypeError, ValueError):
                pages = 0
            # Without a page count, a short page is the last.
            if (pages and page >= pages) or (not pages and len(records) < PAGE_SIZE):
                return
