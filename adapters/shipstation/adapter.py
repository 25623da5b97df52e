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

from adapters.base import Capabilities
from adapters.http import PageNumbers
from adapters.kit import VendorAdapter
from adapters.shipstation import mapping
from adapters.shipstation.config import ShipStationConfig
from connector.domain import CancelOutcome, CancelResult, CreateResult, Shipment, WarehouseOrder
from connector.errors import ConfigurationError, InDoubtError, PermanentError

PAGE_SIZE = 500  # ShipStation's maximum for every list endpoint
CATALOG_TTL_S = 600.0  # carriers and services change rarely; they cost 1 + one call per carrier


class ShipStationAdapter(VendorAdapter):
    """Creates orders in ShipStation by `orderKey` and reads back their labels as shipments.

    Exactly once: `POST /orders/createorder` upserts by `orderKey` (our reference), so no resend
    can make a second order. But an upsert replaces the whole order (v1 has no partial update),
    which would wipe what the warehouse changed (a hold, a service, weights) and cannot touch an
    order already shipped or cancelled. So every create first looks the reference up
    (`GET /orders?orderNumber=`, exact `orderKey` match) and only sends when it is absent: two
    calls per order, which at 40 per minute is about 20 orders a minute. Should the order appear
    between lookup and send (another process), ShipStation's answer shows it was an update
    (`modifyDate` != `createDate`) and it is reported as `already_existed`.

    Cancel: v1 has no cancel call; the order is re-posted as ShipStation holds it with
    `orderStatus` "cancelled", which ShipStation allows while it is awaiting payment or shipment
    or on hold (`cancel_order`).

    Update (an address or item edit after hand-off, `update_order`): the same re-post, with the
    new ship-to address and/or items in the order ShipStation holds, under the same rule.

    Webhooks: one `SHIP_NOTIFY` subscription (`POST /webhooks/subscribe`, limited to `store_id`
    when set) to the connector's secret URL. v1 neither signs deliveries nor sends custom
    headers, so the secret path token is the only authentication; a delivery's `resource_url`
    is never fetched, it only starts the usual shipments read.

    No inventory (v1 has no stock endpoint) and no shipment acknowledgement (nothing to mark);
    SKUs are not checked (ShipStation takes any SKU). Ship methods are ShipStation's
    `carrierCode:serviceCode`, validated against `GET /carriers` and `/carriers/listservices`.
    """

    name: ClassVar[str] = "shipstation"
    Config: ClassVar[type[ShipStationConfig]] = ShipStationConfig
    capabilities: ClassVar[Capabilities] = Capabilities(cancel=True, ship_method_catalog=True, webhooks=True,
                                                           update_address=True, update_lines=True)
    # ShipStation v1 documents no request id header. X-Rate-Limit-Remaining counts down the key's
    # 40 per minute, shared with every other user of the key; at 0 the limiter holds every call
    # until X-Rate-Limit-Reset (seconds) has passed. A proxy may add a standard Retry-After.
    retry_after_headers = ("Retry-After", "X-Rate-Limit-Reset")
    rate_remaining_header = "X-Rate-Limit-Remaining"
    config: ShipStationConfig

    def __init__(self, config: ShipStationConfig | dict[str, Any], context):
        super().__init__(config, context)
        self._catalog: tuple[float, set[str]] | None = None

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Basic {self.config.basic_token()}"}

    def rate_key(self) -> str:
        return f"{self.config.api_key}:{self.config.api_secret}"  # per key and secret, whoever uses them

    def error_text(self, body: Any) -> str:
        return mapping.error_text(body)

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

    async def create_request(self, order: WarehouseOrder) -> dict[str, Any]:
        """The `POST /orders/createorder` body create_order sends."""
        return mapping.order_body(order, store_id=self.config.store_id)

    async def create_order(self, order: WarehouseOrder) -> CreateResult:
        """Look up, then `POST /orders/createorder`; a timeout or 5xx raises InDoubtError."""
        found = await self.already_there(order.reference)
        if found is not None:
            return found
        response = await self.http.request(
            "POST",
            "/orders/createorder",
            json=mapping.order_body(order, store_id=self.config.store_id),
            idempotent=False,
            ok=(200, 201),
        )
        created = response.json() if response.content else {}
        if not isinstance(created, dict) or created.get("orderId") is None:
            return await self.accepted(order.reference)  # an answer without the order: ask
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
        record = await self._order_record(reference)
        if record is None:
            return None
        status = str(record.get("orderStatus") or "")
        return CreateResult(warehouse_order_id=str(record["orderId"]), reference=reference, status=status,
                            cancelled=status == mapping.CANCELLED)

    async def _order_record(self, reference: str) -> dict[str, Any] | None:
        """The ShipStation order whose `orderKey` is our reference, as `GET /orders` lists it."""
        params = {"orderNumber": mapping.lookup_number(reference, self.context.merchant)}
        async for page in self._pages("/orders", "orders", params):
            for record in page:
                if record.get("orderKey") == reference and record.get("orderId") is not None:
                    return record
        return None

    async def cancel_order(self, reference: str) -> CancelResult:
        """Re-post the order (`POST /orders/createorder`, same `orderKey`) with `orderStatus`
        "cancelled": v1's only way to cancel.

        - already `cancelled`: `cancelled`, nothing sent;
        - `shipped` (a label was bought), or `pending_fulfillment` (handed to a fulfillment
          provider), or any status ShipStation does not let createorder update: `too_late`,
          nothing sent;
        - awaiting payment or shipment, or on hold: re-posted; the answer must show it cancelled.
          A refusal (400) is read again: `cancelled` if it is by now, `too_late` in ShipStation's
          words if it can no longer be updated (a label bought meanwhile), else raised;
        - no answer (timeout, dropped connection, 5xx): `unknown`, never re-sent in the call
          (a resend is harmless here, but the engine looks the order up first anyway).

        A reference ShipStation does not have raises PermanentError: re-posting it would create
        a cancelled order, and "nothing to cancel" could hide an order that still ships.
        """
        record = await self._order_record(reference)
        if record is None:
            raise PermanentError(f"ShipStation has no order with orderKey {reference}: nothing was cancelled", vendor=self.name, status=404)
        order_id = str(record["orderId"])
        status = str(record.get("orderStatus") or "")
        if status == mapping.CANCELLED:
            return CancelResult(outcome=CancelOutcome.cancelled, reference=reference, warehouse_order_id=order_id,
                                reason=f"ShipStation order {order_id} was already cancelled")
        if status not in mapping.UPDATABLE_STATUSES:
            return CancelResult(outcome=CancelOutcome.too_late, reference=reference, warehouse_order_id=order_id,
                                reason=f"ShipStation order {order_id} is {status or 'of unknown status'}: only orders awaiting "
                                       "payment or shipment, or on hold, can be updated")
        try:
            response = await self.http.request("POST", "/orders/createorder", json=mapping.cancel_body(record), idempotent=False, ok=(200, 201))
        except InDoubtError as exc:
            return CancelResult(outcome=CancelOutcome.unknown, reference=reference, warehouse_order_id=order_id, reason=str(exc))
        except PermanentError as exc:
            if exc.status != 400:
                raise
            again = await self._order_record(reference)
            now = str((again or {}).get("orderStatus") or "")
            if now == mapping.CANCELLED:
                return CancelResult(outcome=CancelOutcome.cancelled, reference=reference, warehouse_order_id=order_id,
                                    reason=f"ShipStation order {order_id} is cancelled")
            if again is not None and now not in mapping.UPDATABLE_STATUSES:
                return CancelResult(outcome=CancelOutcome.too_late, reference=reference, warehouse_order_id=order_id,
                                    reason=f"ShipStation order {order_id} is {now}: {exc.message}")
            raise
        answer = response.json() if response.content else {}
        answer = answer if isinstance(answer, dict) else {}
        if not answer.get("orderStatus"):  # an answer without the order: ask
            answer = await self._order_record(reference) or {}
        if answer.get("orderStatus") == mapping.CANCELLED and answer.get("orderKey") in (None, reference):
            return CancelResult(outcome=CancelOutcome.cancelled, reference=reference, warehouse_order_id=order_id,
                                reason=f"ShipStation cancelled order {order_id}")
        raise PermanentError(f"ShipStation answered the cancel of order {order_id} with status {answer.get('orderStatus')!r}, "
                             "not cancelled", vendor=self.name, status=response.status_code)

    async def update_order(self, order: WarehouseOrder, warehouse_order_id: str, *, address: bool, lines: bool) -> str:
        """Re-post the order (`POST /orders/createorder`, same `orderKey`) as ShipStation holds
        it, with `order`'s ship-to address (`address`) and/or items (`lines`).

        Only while it is awaiting payment or shipment, or on hold: a shipped, cancelled or
        `pending_fulfillment` order raises PermanentError naming its status, nothing sent. A
        refusal (400) raises PermanentError in ShipStation's words, with the status it has by
        then. Idempotent: the same update again re-posts the same values. No answer (timeout,
        5xx) raises InDoubtError; a resend is harmless (an upsert of the same order).
        """
        reference = order.reference
        record = await self._order_record(reference)
        if record is None:
            raise PermanentError(f"ShipStation has no order with orderKey {reference}: nothing was updated", vendor=self.name, status=404)
        order_id = str(record["orderId"])
        if warehouse_order_id and order_id != str(warehouse_order_id):
            raise PermanentError(f"ShipStation's order for {reference} is {order_id}, not {warehouse_order_id}: nothing was updated",
                                 vendor=self.name)
        status = str(record.get("orderStatus") or "")
        if status not in mapping.UPDATABLE_STATUSES:
            raise PermanentError(f"ShipStation order {order_id} is {status or 'of unknown status'}: only orders awaiting payment "
                                 "or shipment, or on hold, can be updated", vendor=self.name)
        body = mapping.update_body(record, order, ship_to=address, lines=lines)
        try:
            response = await self.http.request("POST", "/orders/createorder", json=body, idempotent=False, ok=(200, 201))
        except PermanentError as exc:
            if exc.status != 400:
                raise
            again = await self._order_record(reference)
            now = str((again or {}).get("orderStatus") or "")
            raise PermanentError(f"ShipStation refused the update of order {order_id} (now {now or 'not listed'}): {exc.message}",
                                 vendor=self.name, status=400) from exc
        answer = response.json() if response.content else {}
        answer = answer if isinstance(answer, dict) else {}
        if not answer.get("orderId"):  # an answer without the order: ask
            answer = await self._order_record(reference) or {}
        if answer.get("orderKey") not in (None, reference):
            raise PermanentError(f"ShipStation answered the update of {reference} with another order's key {answer.get('orderKey')!r}",
                                 vendor=self.name)
        done = []
        if address:
            if not mapping.same_ship_to(body["shipTo"], answer.get("shipTo")):
                raise PermanentError(f"ShipStation answered the update of order {order_id} without the new ship-to address", vendor=self.name)
            done.append("ship-to address")
        if lines:
            if mapping.item_quantities(answer.get("items")) != mapping.item_quantities(body["items"]):
                raise PermanentError(f"ShipStation answered the update of order {order_id} without the new items", vendor=self.name)
            done.append("items")
        return f"ShipStation order {order_id}: {' and '.join(done) or 'nothing'} re-posted"

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
        params: dict[str, Any] = {"shipDateStart": mapping.pacific_date(since), "includeShipmentItems": "true"}
        if self.config.store_id is not None:
            params["storeId"] = self.config.store_id
        shipments: list[Shipment] = []
        async for page in self._pages("/shipments", "shipments", params):
            for record in page:
                found = mapping.shipment(record)
                # Several merchants (and other order sources) may share one account: only our
                # own orders' labels are reported.
                if found is not None and self.context.owns(found.reference):
                    shipments.append(found)
        return shipments

    # -- webhooks -----------------------------------------------------------------------------

    async def _webhooks(self) -> list[dict[str, Any]]:
        """The account's webhooks (`GET /webhooks`: `{"webhooks": [...]}`, not paged)."""
        response = await self.http.request("GET", "/webhooks")
        body = response.json() if response.content else {}
        hooks = (body or {}).get("webhooks") if isinstance(body, dict) else body
        return [h for h in hooks or [] if isinstance(h, dict)]

    def _ship_notify_to(self, hooks: list[dict[str, Any]], url: str) -> list[dict[str, Any]]:
        return [h for h in hooks if mapping.webhook_field(h, "Url", "target_url") == url
                and mapping.webhook_field(h, "HookType", "event") == mapping.SHIP_NOTIFY
                and mapping.webhook_field(h, "Active") is not False]

    async def register_webhooks(self, url: str, secret: str = "") -> list[str]:
        """Subscribe `url` to SHIP_NOTIFY unless it already is. `secret` is not used: v1 can
        carry nothing but the URL."""
        mine = self._ship_notify_to(await self._webhooks(), url)
        if mine:
            return [f"already subscribed: {mapping.SHIP_NOTIFY} (webhook {mapping.webhook_field(mine[0], 'WebHookID', 'id')})"]
        body: dict[str, Any] = {"target_url": url, "event": mapping.SHIP_NOTIFY, "friendly_name": f"UltraCart connector {self.context.merchant}"}
        if self.config.store_id is not None:
            body["store_id"] = self.config.store_id
        # A repeat after a lost reply may add a second subscription: harmless (each delivery only
        # starts a read), and the next register run shows it.
        response = await self.http.request("POST", "/webhooks/subscribe", json=body, idempotent=False, ok=(200, 201))
        made = response.json() if response.content else {}
        hook_id = made.get("id") if isinstance(made, dict) else None
        return [f"subscribed {mapping.SHIP_NOTIFY} (webhook {hook_id or '?'}); ShipStation v1 does not sign deliveries: "
                "the secret URL is their only authentication"]

    async def webhook_urls(self) -> set[str]:
        hooks = await self._webhooks()
        urls = {str(mapping.webhook_field(h, "Url", "target_url") or "") for h in hooks}
        return {u for u in urls if u and self._ship_notify_to(hooks, u)}

    def webhook_hints(self, body: Any) -> list[dict[str, Any]]:
        return mapping.webhook_hints(body)

    # -- paging -------------------------------------------------------------------------------

    def _pages(self, path: str, key: str, params: dict[str, Any]) -> AsyncIterator[list[dict[str, Any]]]:
        """Pages of `{<key>: [...], total, page, pages}` (`page` from 1, `pageSize` <= 500)."""
        paging = PageNumbers(self.name, items=key, page_param="page", size=PAGE_SIZE, size_param="pageSize",
                             pages=lambda body: (body or {}).get("pages"))
        return self.pages(paging, path, params)
