"""Extensiv 3PL Warehouse Manager (formerly 3PL Central) as a warehouse, over its REST API.

Extensiv publishes no machine-readable spec (its reference is gated); every path, parameter and
field here comes from the research notes (`../shared/research/wms-and-peers.md` A.6: the Singer
`tap-3plcentral` and Airbyte `source-tplcentral` clients, public integration write-ups), and the
adapter tests assert those request shapes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any, ClassVar

import httpx

from adapters.base import Capabilities
from adapters.extensiv import mapping
from adapters.extensiv.auth import TokenSource, basic_auth
from adapters.extensiv.config import ExtensivConfig
from adapters.http import PageNumbers
from adapters.kit import VendorAdapter
from connector.domain import CreateResult, Shipment, StockLevel, WarehouseOrder
from connector.errors import ConfigurationError, PermanentError

HAL_JSON = "application/hal+json"
ORDERS_PAGE = 100  # orders come with every detail: keep pages modest
ITEMS_PAGE = 100
STOCK_PAGE = 500
READ_PASSES = 3  # re-reads of a shipments window whose pages shifted under us
# Extensiv keeps its dates in server/warehouse time without an offset. Reading this much further
# back than asked covers any US time zone; orders read twice are absorbed by their shipment ids.
CLOCK_SLACK = timedelta(hours=12)


class ExtensivAdapter(VendorAdapter):
    """Creates orders in one Extensiv customer and facility by reference; reads back the parcels
    of closed orders and the customer's stock per facility.

    Idempotency: Extensiv does not promise that `referenceNum` is unique (a per-customer option),
    so every create first looks the reference up (`GET /orders?rql=...ReferenceNum=="..."`) and
    a found order is returned as `already_existed`; a refusal naming the reference is looked up
    the same way. Extensiv has no "tracking uploaded" flag: shipments are read incrementally by
    `ReadOnly.LastModifiedDate` and the engine keeps each parcel once by its id.

    Only the merchant's own orders (`AdapterContext.owns`) are reported: the same Extensiv
    customer usually has orders from other channels, which are not ours to post to UltraCart.
    """

    name: ClassVar[str] = "extensiv"
    Config: ClassVar[type[ExtensivConfig]] = ExtensivConfig
    capabilities: ClassVar[Capabilities] = Capabilities(inventory=True, sku_catalog=True)
    config: ExtensivConfig  # Extensiv documents no request id header

    def __init__(self, config: ExtensivConfig | dict[str, Any], context):
        super().__init__(config, context)
        self.customer_id = int(str(self.config.customer_id).strip())
        self.facility_id = int(str(self.config.facility_id).strip())
        # Tokens come from the same host with the client's Basic credentials, on the same budget.
        auth_http = self.http_client({"Accept": "application/json", "Authorization": basic_auth(self.config.client_id, self.config.client_secret)})
        self.tokens = TokenSource(auth_http, self.config, redactor=context.redactor)

    def auth_headers(self) -> dict[str, str]:
        return {"Accept": HAL_JSON, "Content-Type": f"{HAL_JSON}; charset=utf-8"}  # the Bearer token is set per call

    def rate_key(self) -> str:
        return f"{self.config.client_id}:{self.config.tpl_key}"  # one budget per Extensiv login, token calls included

    def error_text(self, body: Any) -> str:
        return mapping.error_text(body)

    # -- the one way every API call goes ------------------------------------------------------

    async def call(self, method: str, path: str, **kw: Any) -> httpx.Response:
        """One API call with a current token; a 401 (token revoked or expired early) fetches a
        new token and sends once more. A 401 means Extensiv did nothing, so a create is safe too."""
        token = await self.tokens.token()
        self.http.client.headers["Authorization"] = f"Bearer {token}"
        try:
            return await self.http.request(method, path, **kw)
        except ConfigurationError as exc:
            if exc.status != 401:
                raise
        token = await self.tokens.refresh(token)
        self.http.client.headers["Authorization"] = f"Bearer {token}"
        return await self.http.request(method, path, **kw)

    def _pages(self, path: str, params: dict[str, Any], size: int, field: str = "ResourceList") -> AsyncIterator[list[dict[str, Any]]]:
        """Pages by `pgnum` (from 1) and `pgsiz` until `TotalResults` records were offered."""
        paging = PageNumbers(self.name, items=lambda body: mapping.collection(body or {}, field), page_param="pgnum", size=size,
                             size_param="pgsiz", total=lambda body: mapping.pick(body, "TotalResults"))
        return self.pages(paging, path, params)

    # -- setup --------------------------------------------------------------------------------

    async def check(self) -> str:
        """A token, then `GET /customers/{id}`: the customer is visible and uses the facility."""
        try:
            response = await self.call("GET", f"/customers/{self.customer_id}")
        except PermanentError as exc:
            if exc.status == 404:
                raise ConfigurationError(f"customer {self.customer_id} is not visible to this login", vendor="extensiv", status=404) from exc
            raise
        customer = response.json() or {}
        facilities = {
            str(mapping.pick(f, "Id")): str(mapping.pick(f, "Name", default=""))
            for f in mapping.pick(customer, "Facilities", default=[]) or []
        }
        if facilities and str(self.facility_id) not in facilities:
            known = ", ".join(f"{i} ({n})" for i, n in facilities.items())
            raise ConfigurationError(
                f"facility {self.facility_id} is not one of customer {self.customer_id}'s facilities: {known}", vendor="extensiv"
            )
        name = mapping.pick(customer, "CompanyInfo", "CompanyName", default="?")
        return (
            f"Extensiv 3PL Warehouse Manager at {self.config.base_url}, customer {self.customer_id} ({name}), "
            f"facility {self.facility_id} ({facilities.get(str(self.facility_id), '?')})"
        )

    # -- orders -------------------------------------------------------------------------------

    async def create_request(self, order: WarehouseOrder) -> dict[str, Any]:
        """The `POST /orders` body create_order sends."""
        try:
            return mapping.order_body(order, self.customer_id, self.facility_id)
        except mapping.BadShipMethod as exc:
            raise PermanentError(str(exc), vendor="extensiv") from None

    async def create_order(self, order: WarehouseOrder) -> CreateResult:
        """Look the reference up, then `POST /orders`; a timeout or 5xx raises InDoubtError."""
        try:
            body = mapping.order_body(order, self.customer_id, self.facility_id)
        except mapping.BadShipMethod as exc:
            raise PermanentError(str(exc), vendor="extensiv") from None
        existing = await self.already_there(order.reference)
        if existing is not None:
            return existing
        try:
            response = await self.call("POST", "/orders", json=body, idempotent=False, ok=(200, 201))
        except PermanentError as exc:
            if exc.status not in (400, 409) or not mapping.is_duplicate_reference(exc.message):
                raise
            found = await self.already_there(order.reference)  # created by a racing worker
            if found is None:
                raise
            return found
        created = response.json() if response.content else {}
        oid = mapping.order_id(created) if isinstance(created, dict) else ""
        if not oid:
            # Some answers carry only `Location: /orders/{id}`.
            location = response.headers.get("Location", "").rstrip("/")
            oid = location.rsplit("/", 1)[-1] if location.rsplit("/", 1)[-1].isdigit() else ""
        if oid:
            return CreateResult(warehouse_order_id=oid, reference=order.reference)
        return await self.accepted(order.reference)

    async def find_order(self, reference: str) -> CreateResult | None:
        """`GET /orders?rql=ReadOnly.CustomerIdentifier.Id==C;ReferenceNum=="<reference>"`.

        Any facility counts (the warehouse may move an order); an exact match is required, and a
        live order is preferred to a cancelled one bearing the same reference.
        """
        rql = f"ReadOnly.CustomerIdentifier.Id=={self.customer_id};ReferenceNum=={mapping.rql_string(reference)}"
        matches: list[dict[str, Any]] = []
        async for page in self._pages("/orders", {"rql": rql}, ORDERS_PAGE):
            matches += [o for o in page if str(mapping.pick(o, "ReferenceNum", default="")).strip() == reference and mapping.order_id(o)]
        if not matches:
            return None
        matches.sort(key=lambda o: (mapping.status(o) == mapping.STATUS_CANCELED, int(mapping.order_id(o)) if mapping.order_id(o).isdigit() else 0))
        return CreateResult(warehouse_order_id=mapping.order_id(matches[0]), reference=reference)

    # -- catalogues ---------------------------------------------------------------------------

    async def known_skus(self) -> set[str]:
        """The customer's active items (`GET /customers/{id}/items`); Extensiv refuses unknown SKUs."""
        skus: set[str] = set()
        async for page in self._pages(f"/customers/{self.customer_id}/items", {}, ITEMS_PAGE):
            skus |= mapping.active_skus(page)
        return skus

    async def known_ship_methods(self) -> None:
        """Extensiv offers no public list of carriers and services: the value format is checked at
        create time (see `mapping.routing`)."""
        return None

    # -- shipments ----------------------------------------------------------------------------

    async def shipments_since(self, since: datetime) -> list[Shipment]:
        """Parcels of our closed orders modified since `since` (minus CLOCK_SLACK)."""
        shipments: list[Shipment] = []
        for order in await self._closed_orders_since(since - CLOCK_SLACK):
            reference = str(mapping.pick(order, "ReferenceNum", default="")).strip()
            if self.context.owns(reference):
                shipments += mapping.shipments_of(order)
        return shipments

    async def _closed_orders_since(self, since: datetime) -> list[dict[str, Any]]:
        rql = ";".join(
            (
                f"ReadOnly.CustomerIdentifier.Id=={self.customer_id}",
                f"ReadOnly.FacilityIdentifier.Id=={self.facility_id}",
                "ReadOnly.IsClosed==true",
                f"ReadOnly.LastModifiedDate=ge={mapping.rql_time(since)}",
            )
        )
        params = {"rql": rql, "sort": "ReadOnly.LastModifiedDate", "detail": "All"}
        orders: dict[str, dict[str, Any]] = {}
        for _ in range(READ_PASSES):
            orders.clear()
            shifted = False
            async for page in self._pages("/orders", params, ORDERS_PAGE):
                for order in page:
                    oid = mapping.order_id(order)
                    # An order modified while we page moves to the end of the sort: it shows up
                    # twice, and the records behind it slid one place back, so one of them may
                    # have been skipped at a page boundary. Read the window again.
                    shifted |= oid in orders
                    orders[oid] = order
            if not shifted:
                break
        return list(orders.values())

    # -- stock --------------------------------------------------------------------------------

    async def stock_levels(self) -> list[StockLevel]:
        """`GET /inventory/stocksummaries?customerid=C`: every facility of the customer (choose
        them with `[merchants.inventory] warehouses`), `Available` never `OnHand`."""
        rows: list[dict[str, Any]] = []
        async for page in self._pages("/inventory/stocksummaries", {"customerid": self.customer_id}, STOCK_PAGE, field="Summaries"):
            rows += page
        return mapping.stock_levels_of(rows)

    async def aclose(self) -> None:
        await self.http.aclose()
        await self.tokens.http.aclose()
