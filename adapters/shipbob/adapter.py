"""ShipBob as a warehouse: orders in, shipments and stock out, over the Developer API (2026-01).

Every path, parameter and body field here was checked against ShipBob's 2026-01 OpenAPI document
(`../shared/specs/shipbob-2026-01-openapi.json`); the adapter tests validate each request against it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any, ClassVar

from adapters.base import Capabilities
from adapters.http import CursorPages, PageNumbers, query_of
from adapters.kit import VendorAdapter, iso
from adapters.shipbob import mapping
from adapters.shipbob.config import ShipBobConfig
from connector.domain import CancelOutcome, CancelResult, CreateResult, Shipment, StockLevel, WarehouseOrder
from connector.errors import ConfigurationError, InDoubtError, PermanentError

PAGE_LIMIT = 250  # the largest page every list endpoint we use accepts
ACK_BATCH = 100  # ShipBob documents no maximum for batchUpdateTrackingUpload; stay modest


class ShipBobAdapter(VendorAdapter):
    """Creates orders in ShipBob by reference and reads back shipments and per-FC stock.

    Idempotency: `reference_id` is unique per ShipBob account, so a repeated create answers 422
    "existing ReferenceId"; the adapter then looks the order up and returns it as `already_existed`.
    Shipment acknowledgement uses ShipBob's own outbox flag (`is_tracking_uploaded`).
    Cancel: `POST /{ver}/order/{id}:cancel`, ShipBob deciding what is still cancellable
    (`cancel_order` says how its answers are read).
    Webhooks: `/{ver}/webhook` subscriptions to `order.shipped`, `order.shipment.cancelled` and
    `order.shipment.on_hold`, created with a `whsec_` secret; ShipBob signs each delivery with it
    (`webhook-id`, `webhook-timestamp`, `webhook-signature`: HMAC-SHA256, Standard Webhooks).
    """

    name: ClassVar[str] = "shipbob"
    Config: ClassVar[type[ShipBobConfig]] = ShipBobConfig
    capabilities: ClassVar[Capabilities] = Capabilities(
        inventory=True, shipment_ack=True, cancel=True, sku_catalog=True, ship_method_catalog=True, webhooks=True
    )
    # ShipBob documents no request id header. x-remaining-calls counts down its sliding window;
    # at 0 the limiter waits x-retry-after (or its own short default when ShipBob does not say).
    retry_after_headers = ("x-retry-after", "Retry-After")
    rate_remaining_header = "x-remaining-calls"
    config: ShipBobConfig

    @property
    def channel_id(self) -> int:
        return int(str(self.config.channel_id).strip())

    @property
    def _v(self) -> str:
        return "/" + self.config.api_version.strip("/")

    def auth_headers(self) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self.config.token}",
            # Required on creates; on reads it scopes orders to this channel, so shipments of
            # the merchant's other channels (a Shopify store) are never read or acknowledged.
            "shipbob_channel_id": str(self.channel_id),
        }

    def error_text(self, body: Any) -> str:
        return mapping.error_text(body)

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

    async def create_request(self, order: WarehouseOrder) -> dict[str, Any]:
        """The `POST /{ver}/order` body create_order sends."""
        return mapping.order_body(order)

    async def create_order(self, order: WarehouseOrder) -> CreateResult:
        """`POST /{ver}/order`; a timeout or 5xx raises InDoubtError (resolved by find_order)."""
        try:
            response = await self.http.request(
                "POST", f"{self._v}/order", json=mapping.order_body(order), idempotent=False, ok=(200, 201)
            )
        except PermanentError as exc:
            if exc.status != 422 or not mapping.is_duplicate_reference(exc.message):
                raise
            found = await self.already_there(order.reference)
            if found is None:
                # ShipBob holds the reference account-wide, but not in our channel.
                raise PermanentError(
                    f"reference {order.reference} already exists in ShipBob outside channel {self.channel_id}: {exc.message}",
                    vendor="shipbob",
                    status=422,
                ) from exc
            return found
        created = response.json() if response.content else {}
        if isinstance(created, dict) and created.get("id") is not None:
            return CreateResult(warehouse_order_id=str(created["id"]), reference=order.reference)
        return await self.accepted(order.reference)  # a 201 without a body: ask

    async def find_order(self, reference: str) -> CreateResult | None:
        """`GET /{ver}/order?ReferenceIds=<reference>`, with ShipBob's status (`Cancelled` flagged)."""
        order = await self._order_by_reference(reference)
        if order is None:
            return None
        status = str(order.get("status") or "")
        return CreateResult(warehouse_order_id=str(order["id"]), reference=reference, status=status,
                            cancelled=status in mapping.CANCELLED_ORDER)

    async def _order_by_reference(self, reference: str) -> dict[str, Any] | None:
        """This channel's ShipBob order for our reference (the filter is comma separated: the
        exact match is kept), or None."""
        response = await self.http.request("GET", f"{self._v}/order", params={"ReferenceIds": reference})
        for order in response.json() or []:
            if order.get("reference_id") == reference and order.get("id") is not None:
                return order
        return None

    async def cancel_order(self, reference: str) -> CancelResult:
        """`POST /{ver}/order/{id}:cancel` for the order found by reference.

        - already `Cancelled` in ShipBob: `cancelled`, nothing sent (cancels are idempotent);
        - 200 `Success`: `cancelled`; `Failure` or `PartialSuccess` (a shipment picked, packed or
          shipped): `too_late` with ShipBob's per-shipment reasons (for a partial success, which
          shipments it did cancel);
        - 422 (not in a cancellable state): the order is read again, since it may have been
          cancelled meanwhile (`cancelled`); else `too_late` with ShipBob's words;
        - no answer (timeout, dropped connection, 5xx): `unknown`, never re-sent in the call: the
          engine looks the order up before asking again.

        A reference ShipBob does not list (in this channel) raises PermanentError: the connector
        recorded the order as created, so "nothing to cancel" would hide an order that may still
        ship (a channel changed, an order moved); a person must look.
        """
        order = await self._order_by_reference(reference)
        if order is None:
            raise PermanentError(f"no ShipBob order with reference {reference} in channel {self.channel_id}: nothing was cancelled",
                                 vendor=self.name, status=404)
        order_id = str(order["id"])
        if order.get("status") in mapping.CANCELLED_ORDER:
            return CancelResult(outcome=CancelOutcome.cancelled, reference=reference, warehouse_order_id=order_id,
                                reason=f"ShipBob order {order_id} was already cancelled")
        try:
            response = await self.http.request("POST", f"{self._v}/order/{order_id}:cancel", idempotent=False, ok=(200,))
        except InDoubtError as exc:
            return CancelResult(outcome=CancelOutcome.unknown, reference=reference, warehouse_order_id=order_id, reason=str(exc))
        except PermanentError as exc:
            if exc.status != 422:
                raise
            again = await self._order_by_reference(reference)
            if again is not None and again.get("status") in mapping.CANCELLED_ORDER:
                return CancelResult(outcome=CancelOutcome.cancelled, reference=reference, warehouse_order_id=order_id,
                                    reason=f"ShipBob order {order_id} is cancelled")
            return CancelResult(outcome=CancelOutcome.too_late, reference=reference, warehouse_order_id=order_id,
                                reason=f"ShipBob order {order_id}: {exc.message}")
        outcome, reason = mapping.cancel_outcome(response.json() if response.content else None, order_id)
        return CancelResult(outcome=outcome, reference=reference, warehouse_order_id=order_id, reason=reason)

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
        params = {"IsTrackingUploaded": "false", "LastTrackingUpdateStartDate": iso(since)}
        shipments: list[Shipment] = []
        async for page in self._numbered_pages(f"{self._v}/order", params):
            for order in page:
                channel = (order.get("channel") or {}).get("id")
                if channel is not None and channel != self.channel_id:
                    continue  # belt and braces: never report another channel's parcels
                if not self.context.owns(str(order.get("reference_id") or "")):
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

    # -- webhooks -----------------------------------------------------------------------------

    async def _subscriptions(self) -> list[dict[str, Any]]:
        """Every webhook subscription of this token (`GET /{ver}/webhook`, cursor-paged)."""
        subs: list[dict[str, Any]] = []
        async for page in self._cursor_pages(f"{self._v}/webhook", {"RecordsPerPage": str(PAGE_LIMIT)}):
            subs += [s for s in page if isinstance(s, dict)]
        return subs

    def _covered(self, subs: list[dict[str, Any]], url: str) -> set[str]:
        """The topics enabled subscriptions to `url` already deliver."""
        return {t for s in subs if s.get("url") == url and s.get("enabled", True) for t in s.get("topics") or []}

    async def register_webhooks(self, url: str, secret: str = "") -> list[str]:
        """Subscribe `url` to the shipment topics it is not subscribed to yet (one
        `POST /{ver}/webhook` for all the missing ones, with the secret ShipBob signs with).

        A disabled subscription to `url` counts as missing (ShipBob disables an endpoint that
        failed for days): a new one is made and the old one named, for a person to delete."""
        subs = await self._subscriptions()
        mine = [s for s in subs if s.get("url") == url]
        lines = [f"subscription {s.get('id')} is disabled in ShipBob: delete it (a new one replaces it)"
                 for s in mine if s.get("enabled", True) is False]
        covered = self._covered(subs, url)
        missing = [t for t in mapping.WEBHOOK_TOPICS if t not in covered]
        if covered & set(mapping.WEBHOOK_TOPICS):
            lines.append(f"already subscribed: {', '.join(t for t in mapping.WEBHOOK_TOPICS if t in covered)}")
        if not missing:
            return lines
        body: dict[str, Any] = {"url": url, "topics": missing, "description": f"UltraCart connector, merchant {self.context.merchant}"}
        if secret:
            body["secret"] = secret if secret.startswith(mapping.SECRET_PREFIX) else mapping.SECRET_PREFIX + secret
        # A repeat after a lost reply makes a second subscription to the same URL: harmless (a
        # delivery only starts a read) and the next register run reports both.
        response = await self.http.request("POST", f"{self._v}/webhook", json=body, idempotent=False, ok=(200, 201))
        created = response.json() if response.content else {}
        sub_id = created.get("id") if isinstance(created, dict) else None
        lines.append(f"subscribed (id {sub_id or '?'}): {', '.join(missing)}{', signed' if secret else ''}")
        return lines

    async def webhook_urls(self) -> set[str]:
        """URLs whose enabled subscriptions deliver every topic the connector needs."""
        subs = await self._subscriptions()
        urls = {str(s.get("url")) for s in subs if s.get("url")}
        return {u for u in urls if set(mapping.WEBHOOK_TOPICS) <= self._covered(subs, u)}

    def webhook_hints(self, body: Any) -> list[dict[str, Any]]:
        return mapping.webhook_hints(body)

    def verify_webhook(self, headers: Mapping[str, str], body: bytes, secret: str = "") -> bool:
        """ShipBob signs every delivery: no secret (none was made here) or a bad or stale
        signature is a refusal."""
        lowered = {str(k).lower(): str(v) for k, v in headers.items()}
        return bool(secret) and mapping.signature_valid(lowered, body, secret, time.time())

    # -- paging -------------------------------------------------------------------------------

    def _cursor_pages(self, path: str, params: dict[str, Any]) -> AsyncIterator[list[dict[str, Any]]]:
        """Pages of `{items, next}` responses; `next` is a URL whose `Cursor` names the next page."""
        paging = CursorPages(self.name, items="items", param="Cursor", cursor=lambda body: query_of((body or {}).get("next")).get("Cursor"))
        return self.pages(paging, path, params)

    def _numbered_pages(self, path: str, params: dict[str, Any]) -> AsyncIterator[list[dict[str, Any]]]:
        """Pages of bare-array responses (`Page` from 1, `Limit`); a short page is the last."""
        return self.pages(PageNumbers(self.name, page_param="Page", size=PAGE_LIMIT, size_param="Limit"), path, params)
