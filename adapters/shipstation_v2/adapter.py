"""ShipStation (API v2) as a warehouse: orders in as pending shipments, labels and stock out.

Every path, parameter and body field here was checked against the official v2 document
(`../shared/specs/shipstation-v2-openapi.yaml`); the adapter tests validate each request against
it. Where the document falls short of ShipStation's own guides the tests say so, and allow just
that (`tests/adapters/test_shipstation_v2_adapter.py`): `service_code` on a create, `pickup_id` as
an optional filter of `GET /v2/shipments`, and the `page` of `/v2/inventory`'s own next links.

A `[merchants.ship_methods]` value is a carrier `service_code` (`usps_priority_mail`) or a carrier
account and a service (`se-123456:usps_priority_mail`); both are checked against `GET /v2/carriers`.
"""

from __future__ import annotations

import asyncio
import hmac
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Mapping
from datetime import datetime
from typing import Any, ClassVar
from urllib.parse import quote

from adapters.base import Capabilities
from adapters.http import NextLinkPages
from adapters.kit import VendorAdapter, iso
from adapters.shipstation_v2 import mapping
from adapters.shipstation_v2.config import ShipStationV2Config
from connector.domain import CancelOutcome, CancelResult, CreateResult, Shipment, ShipmentLine, StockLevel, WarehouseOrder
from connector.errors import ConfigurationError, InDoubtError, PermanentError

VENDOR = "shipstation-v2"
PAGE_SIZE = 100
CATALOG_TTL_S = 600.0  # carriers and the ship-from address change rarely; re-read every 10 min
LABEL_CACHE = 20_000  # labels already attributed (the read window overlaps: most are seen again)

_Resolved = tuple[str, str, list[ShipmentLine]] | None  # (reference, our shipment id, lines); None = not ours


class _Lru(OrderedDict):
    """A dict that forgets its oldest entries past `limit` (the adapter lives as long as the daemon)."""

    def __init__(self, limit: int):
        super().__init__()
        self.limit = limit

    def put(self, key: Any, value: Any) -> Any:
        self[key] = value
        self.move_to_end(key)
        while len(self) > self.limit:
            self.popitem(last=False)
        return value


class ShipStationV2Adapter(VendorAdapter):
    """Creates each order as a pending ShipStation shipment keyed by our reference and reads
    tracking back from the labels bought for it, and stock per inventory warehouse.

    Idempotency: `external_shipment_id` is unique per account and immutable, so a repeated create
    is refused; any refused create is looked up by reference (`GET /v2/shipments/
    external_shipment_id/{id}`) and, when found, returned as `already_existed`.
    Shipments: one per live label (`label_id`); a voided label is returned flagged `voided` (the
    engine ignores it). A shipment ShipStation split off one of ours (Split Ship: a new shipment
    with its own id and the original's `shipment_number`) is attributed to our order.
    No acknowledgement: v2 has no "tracking sent" flag, and the engine stores each label once.
    Catalogues: SKUs are ShipStation products and their aliases (`check_skus`); ship methods are
    the connected carriers' services.
    Cancel: `PUT /v2/shipments/{id}/cancel` for our shipment and any part split off it, while no
    label is bought (ShipStation wants labels voided first: a label means too late here).
    Update (an address or item edit after hand-off, `update_order`): `PUT /v2/shipments/{id}`
    with the shipment as ShipStation holds it and the new `ship_to` and/or `items`, while it is
    `pending`; a label bought means "void the label first", so it is refused for a person.
    Webhooks: `/v2/environment/webhooks` subscriptions to the `track` and `batch` events, each
    with a custom header carrying the connector's secret (`verify_webhook` checks it). ShipStation
    also signs deliveries with RSA-SHA256, but its document does not say how (keys, headers), so
    that signature is not checked.
    """

    name: ClassVar[str] = VENDOR
    Config: ClassVar[type[ShipStationV2Config]] = ShipStationV2Config
    capabilities: ClassVar[Capabilities] = Capabilities(inventory=True, cancel=True, sku_catalog=True, ship_method_catalog=True,
                                                                webhooks=True, update_address=True, update_lines=True)
    # The request id travels in error bodies (`request_id`), not a header. v2 documents only
    # Retry-After (on 429s); the X-Rate-Limit-* headers of ShipStation's v1 API are honoured when
    # a response carries them, so a budget spent elsewhere slows us first.
    retry_after_headers = ("Retry-After", "X-Rate-Limit-Reset")
    rate_remaining_header = "X-Rate-Limit-Remaining"
    config: ShipStationV2Config

    def __init__(self, config: ShipStationV2Config | dict[str, Any], context):
        super().__init__(config, context)
        # Creates run several at a time: one of them reads a stale catalog, the others wait for it.
        self._loading = asyncio.Lock()
        self._catalog: tuple[float, mapping.ServiceCatalog] | None = None
        self._warehouse: tuple[float, dict[str, Any]] | None = None
        self._labels: _Lru = _Lru(LABEL_CACHE)  # label_id -> _Resolved
        self._numbers: _Lru = _Lru(LABEL_CACHE)  # shipment_number -> (reference, shipment id) | None

    def auth_headers(self) -> dict[str, str]:
        return {"api-key": self.config.api_key}

    def error_text(self, body: Any) -> str:
        return mapping.error_text(body)

    # -- setup --------------------------------------------------------------------------------

    async def check(self) -> str:
        """API key valid (`GET /v2/carriers`) and, when configured, the ship-from warehouse exists."""
        catalog = await self._services(refresh=True)
        text = f"ShipStation v2 at {self.config.base_url}: {catalog.describe()}"
        if self.config.warehouse_id:
            warehouse = await self._ship_from_warehouse()
            text += f"; ships from {self.config.warehouse_id} ({warehouse.get('name') or '?'})"
        return text

    @staticmethod
    def _stale(entry: tuple[float, Any] | None) -> bool:
        return entry is None or time.monotonic() - entry[0] > CATALOG_TTL_S

    async def _services(self, refresh: bool = False) -> mapping.ServiceCatalog:
        asked = time.monotonic()
        async with self._loading:
            # A refresh that another task finished while we waited counts as ours.
            if self._stale(self._catalog) or (refresh and self._catalog[0] < asked):  # type: ignore[index]
                # 207: some carriers could not be read; the ones listed are still good.
                response = await self.http.request("GET", "/v2/carriers", ok=(200, 207))
                self._catalog = (time.monotonic(), mapping.ServiceCatalog((response.json() or {}).get("carriers") or []))
            return self._catalog[1]  # type: ignore[index]

    async def _ship_from_warehouse(self) -> dict[str, Any]:
        async with self._loading:
            if self._stale(self._warehouse):
                self._warehouse = (time.monotonic(), await self._read_warehouse())
            return self._warehouse[1]  # type: ignore[index]

    async def _read_warehouse(self) -> dict[str, Any]:
        wid = self.config.warehouse_id
        try:
            response = await self.http.request("GET", f"/v2/warehouses/{quote(wid, safe='')}")
        except PermanentError as exc:
            if exc.status in (400, 404):
                raise ConfigurationError(
                    f"warehouse_id {wid} is not a warehouse of this ShipStation account: {exc.message}", vendor=VENDOR, status=exc.status
                ) from exc
            raise
        return response.json() or {}

    # -- orders -------------------------------------------------------------------------------

    async def create_request(self, order: WarehouseOrder) -> dict[str, Any]:
        """The `POST /v2/shipments` body create_order sends (reads the carriers and the ship-from
        warehouse, writes nothing)."""
        service = await self._service_for(order.ship_method)
        ship_from = mapping.ship_from_of(await self._ship_from_warehouse()) if self.config.warehouse_id else None
        try:
            body = mapping.shipment_body(
                order, service=service, ship_from=ship_from, store_id=self.config.store_id,
                validate_address=self.config.validate_address, default_phone=self.config.default_phone,
            )
        except ValueError as exc:
            raise PermanentError(str(exc), vendor=VENDOR) from exc
        return {"shipments": [body]}

    async def create_order(self, order: WarehouseOrder) -> CreateResult:
        """`POST /v2/shipments` with one shipment; a timeout or 5xx raises InDoubtError."""
        request = await self.create_request(order)
        try:
            response = await self.http.request("POST", "/v2/shipments", json=request, idempotent=False, ok=(200, 201))
        except PermanentError as exc:
            # ShipStation's wording for a repeated external_shipment_id is not documented, so
            # every refusal is checked: if the reference exists, this was a repeat.
            found = await self.already_there(order.reference)
            if found is None:
                raise
            return found
        shipment_id, errors = mapping.created_result(response.json() if response.content else None)
        if shipment_id and not errors:
            return CreateResult(warehouse_order_id=shipment_id, reference=order.reference)
        # A batch answers 200 with per-shipment errors (a duplicate among them).
        found = await self.find_order(order.reference)
        if found is None:
            raise PermanentError(f"ShipStation refused {order.reference}: {'; '.join(errors)}", vendor=VENDOR, status=response.status_code)
        return found.model_copy(update={"already_existed": found.warehouse_order_id != shipment_id})

    async def _service_for(self, method: str) -> mapping.Service | None:
        """The carrier service a mapped ship method names; none when the mapping gave none
        (the packer chooses in ShipStation)."""
        if not method.strip():
            return None
        service = (await self._services()).resolve(method)
        if service is None:  # a carrier connected since the last read?
            service = (await self._services(refresh=True)).resolve(method)
        if service is None:
            raise PermanentError(
                f"ship method {method!r} is not a service of a connected ShipStation carrier "
                "(use a service_code, or carrier_id:service_code, from GET /v2/carriers)",
                vendor=VENDOR,
            )
        return service

    async def find_order(self, reference: str) -> CreateResult | None:
        """`GET /v2/shipments/external_shipment_id/{reference}`; none when ShipStation answers 404.
        `cancelled` once our shipment and every part split off it are."""
        shipment = await self._by_reference(reference)
        if shipment is None:
            return None
        status = str(shipment.get("shipment_status") or "")
        cancelled = status == mapping.CANCELLED_SHIPMENT
        if cancelled:  # the order is cancelled when every part Split Ship made of it is too
            parts = await self._split_parts(shipment, reference)
            cancelled = all(p.get("shipment_status") == mapping.CANCELLED_SHIPMENT for p in parts)
        return CreateResult(warehouse_order_id=str(shipment["shipment_id"]), reference=reference, status=status, cancelled=cancelled)

    async def cancel_order(self, reference: str) -> CancelResult:
        """`PUT /v2/shipments/{id}/cancel` (204) for our shipment and each part Split Ship made of
        it (same `shipment_number`, as `shipments_since` attributes them), ours last: ours
        cancelled means every part was dealt with (`find_order` also checks the parts).

        - every part already `cancelled`: `cancelled`, nothing sent;
        - a part with a label bought (`label_purchased`): `too_late` in ShipStation's words ("any
          label associated with the shipment needs to be voided first"); the parts still pending
          are cancelled all the same, and the reason says which;
        - a refused cancel (400) is read again: `cancelled` if it is by now, `too_late` if a label
          was bought meanwhile, else raised (PermanentError, ShipStation's message);
        - no answer (timeout, dropped connection, 5xx): `unknown`, never re-sent in the call
          (`too_late` when another part is already known to be too late: the order ships anyway).

        A reference ShipStation does not have raises PermanentError: the order was recorded as
        created, so "nothing to cancel" could hide a shipment that still ships.
        """
        shipment = await self._by_reference(reference)
        if shipment is None:
            raise PermanentError(f"ShipStation has no shipment with external_shipment_id {reference}: nothing was cancelled",
                                 vendor=VENDOR, status=404)
        ours = str(shipment["shipment_id"])
        parts = await self._split_parts(shipment, reference) + [shipment]
        done: list[str] = []
        late: list[str] = []
        for part in parts:
            sid = str(part.get("shipment_id") or "")
            status = part.get("shipment_status")
            if status == mapping.CANCELLED_SHIPMENT:
                continue
            if status == mapping.LABELLED_SHIPMENT:
                late.append(f"shipment {sid} is {status}: {mapping.VOID_FIRST}")
                continue
            try:
                await self.http.request("PUT", f"/v2/shipments/{quote(sid, safe='')}/cancel", idempotent=False, ok=(200, 204))
            except InDoubtError as exc:
                if late:
                    late.append(f"shipment {sid}: no answer to the cancel ({exc})")
                    break
                return CancelResult(outcome=CancelOutcome.unknown, reference=reference, warehouse_order_id=ours,
                                    reason=f"cancel of shipment {sid}: {exc}")
            except PermanentError as exc:
                if exc.status != 400:
                    raise
                again = await self._shipment(sid)
                now = (again or {}).get("shipment_status")
                if now == mapping.CANCELLED_SHIPMENT:
                    continue
                if now != mapping.LABELLED_SHIPMENT:
                    raise
                late.append(f"shipment {sid}: {exc.message}")
                continue
            done.append(sid)
        if late:
            reason = "ShipStation cannot cancel: " + "; ".join(late)
            if done:
                reason += f"; cancelled shipment{'s' if len(done) > 1 else ''} {', '.join(done)}"
            return CancelResult(outcome=CancelOutcome.too_late, reference=reference, warehouse_order_id=ours, reason=reason)
        said = f"cancelled shipment{'s' if len(done) > 1 else ''} {', '.join(done)}" if done else "already cancelled"
        return CancelResult(outcome=CancelOutcome.cancelled, reference=reference, warehouse_order_id=ours, reason=f"ShipStation: {said}")

    async def update_order(self, order: WarehouseOrder, warehouse_order_id: str, *, address: bool, lines: bool) -> str:
        """`PUT /v2/shipments/{id}` (Update Shipment) with our shipment as ShipStation holds it and
        `order`'s `ship_to` (`address`) and/or `items` (`lines`).

        Only while it is `pending` (no label): `label_purchased` raises PermanentError (void the
        label first: the order then ships as it is), as does `cancelled`, any other status, a
        shipment Split Ship divided (the parts would disagree), or a refusal (400) in
        ShipStation's words. Idempotent: the same update again sends the same values. No
        answer (timeout, 5xx) raises InDoubtError; a resend is harmless.
        """
        reference = order.reference
        shipment = await self._by_reference(reference)
        if shipment is None:
            raise PermanentError(f"ShipStation has no shipment with external_shipment_id {reference}: nothing was updated",
                                 vendor=VENDOR, status=404)
        sid = str(shipment["shipment_id"])
        if warehouse_order_id and sid != str(warehouse_order_id):
            raise PermanentError(f"ShipStation's shipment for {reference} is {sid}, not {warehouse_order_id}: nothing was updated", vendor=VENDOR)
        status = str(shipment.get("shipment_status") or "")
        if status == mapping.LABELLED_SHIPMENT:
            raise PermanentError(f"shipment {sid} is {status}: a label was bought; void the label first ({mapping.VOID_FIRST}), "
                                 "or the order ships as it is", vendor=VENDOR)
        if status != mapping.PENDING_SHIPMENT:
            raise PermanentError(f"shipment {sid} is {status or 'of unknown status'}: only a pending shipment (no label) can be updated",
                                 vendor=VENDOR)
        parts = await self._split_parts(shipment, reference)
        if parts:
            raise PermanentError(f"shipment {sid} was split (Split Ship) into {', '.join(str(p.get('shipment_id')) for p in parts)} "
                                 "as well: change each part by hand", vendor=VENDOR)
        try:
            body = mapping.update_body(shipment, order, address=address, lines=lines, validate_address=self.config.validate_address,
                                       default_phone=self.config.default_phone)
        except ValueError as exc:
            raise PermanentError(str(exc), vendor=VENDOR) from exc
        path = f"/v2/shipments/{quote(sid, safe='')}"
        try:
            response = await self.http.request("PUT", path, json=body, idempotent=False, ok=(200,))
        except PermanentError as exc:
            if exc.status != 400:
                raise
            now = ((await self._shipment(sid)) or {}).get("shipment_status")
            hint = f"; void the label first ({mapping.VOID_FIRST})" if now == mapping.LABELLED_SHIPMENT else ""
            raise PermanentError(f"ShipStation refused the update of shipment {sid} (now {now or 'not found'}): {exc.message}{hint}",
                                 vendor=VENDOR, status=400) from exc
        answer = response.json() if response.content else None
        if not isinstance(answer, dict) or not answer.get("shipment_id"):  # an answer without the shipment: ask
            answer = await self._shipment(sid) or {}
        done = []
        if address:
            if not mapping.address_matches(body["ship_to"], answer.get("ship_to")):
                raise PermanentError(f"ShipStation answered the update of shipment {sid} without the new ship_to", vendor=VENDOR)
            done.append("ship_to")
        if lines:
            if mapping.item_quantities(answer.get("items")) != mapping.item_quantities(body["items"]):
                raise PermanentError(f"ShipStation answered the update of shipment {sid} without the new items", vendor=VENDOR)
            done.append("items")
        return f"ShipStation shipment {sid}: {' and '.join(done) or 'nothing'} updated"

    async def _by_reference(self, reference: str) -> dict[str, Any] | None:
        """Our shipment for `reference`, or None (a 404, or a reference too long ever to be sent:
        ShipStation would have truncated it)."""
        if not reference or len(reference) > mapping.MAX_EXTERNAL_ID:
            return None
        shipment = await self.fetch_record(f"/v2/shipments/external_shipment_id/{quote(reference, safe='')}")
        if shipment is None or shipment.get("external_shipment_id") not in (None, reference) or not shipment.get("shipment_id"):
            return None
        return shipment

    async def _split_parts(self, shipment: dict[str, Any], reference: str) -> list[dict[str, Any]]:
        """The shipments Split Ship made of ours: same `shipment_number`, not ours, and not
        another of this merchant's orders."""
        number = str(shipment.get("shipment_number") or "").strip()
        if not number:
            return []
        parts = []
        async for page in self._pages("/v2/shipments", {"shipment_number": number, "page_size": PAGE_SIZE}, "shipments"):
            for other in page:
                external = other.get("external_shipment_id") or ""
                if other.get("shipment_id") in (None, shipment["shipment_id"]) or external == reference or self.context.owns(external):
                    continue
                if str(other.get("shipment_number") or "").strip() == number:
                    parts.append(other)
        return parts

    # -- catalogues ---------------------------------------------------------------------------

    async def known_skus(self) -> set[str] | None:
        """Every product SKU and SKU alias (`GET /v2/products`, paged); None with `check_skus =
        false` (ShipStation takes any SKU on a shipment, so the check is the merchant's choice)."""
        if not self.config.check_skus:
            return None
        skus: set[str] = set()
        async for page in self._pages("/v2/products", {"page_size": PAGE_SIZE}, "products"):
            for product in page:
                skus |= mapping.product_skus(product)
        return skus

    async def known_ship_methods(self) -> set[str]:
        """Every `service_code` of the connected carriers, bare and as `carrier_id:service_code`."""
        return (await self._services(refresh=True)).names()

    # -- shipments ----------------------------------------------------------------------------

    async def shipments_since(self, since: datetime) -> list[Shipment]:
        """Labels bought since `since` (`GET /v2/labels?created_at_start=`, oldest first, so new
        labels land on later pages while we read), each attributed to our order."""
        params = {"created_at_start": iso(since), "sort_by": "created_at", "sort_dir": "asc", "page_size": PAGE_SIZE}
        labels: list[dict[str, Any]] = []
        async for page in self._pages("/v2/labels", params, "labels"):
            labels += [label for label in page if mapping.wanted_label(label)]
        shipments: list[Shipment] = []
        lined: set[str] = set()  # ShipStation shipments whose items a live label already carries
        for label in labels:
            resolved = await self._resolve(label)
            if resolved is None:
                continue
            reference, order_id, lines = resolved
            shipment = mapping.shipment_of(label, reference=reference, order_id=order_id, lines=lines)
            if not shipment.voided:
                # Two live labels on one shipment (one per package) ship its items once.
                if label.get("shipment_id") in lined:
                    shipment = shipment.model_copy(update={"lines": []})
                lined.add(label.get("shipment_id"))
            shipments.append(shipment)
        return shipments

    async def _resolve(self, label: dict[str, Any]) -> _Resolved:
        """(our reference, our shipment id, items shipped) of a label, or None when not ours.
        Cached by label id: a label's shipment and items no longer change once it is bought."""
        label_id = label["label_id"]
        if label_id in self._labels:
            return self._labels[label_id]
        external = label.get("external_shipment_id") or ""
        if label.get("status") == mapping.VOIDED_LABEL and self.context.owns(external):
            return self._labels.put(label_id, (external, str(label.get("shipment_id") or ""), []))
        shipment = await self._shipment(str(label.get("shipment_id") or ""))
        if shipment is None:
            return None  # not cached: the shipment may be readable on the next pass
        external = shipment.get("external_shipment_id") or external
        if self.context.owns(external):
            owner: tuple[str, str] | None = (external, str(shipment.get("shipment_id") or ""))
        else:
            owner = await self._split_from(shipment)
        if owner is None:
            return self._labels.put(label_id, None)
        return self._labels.put(label_id, (owner[0], owner[1], mapping.lines_of(shipment)))

    async def _shipment(self, shipment_id: str) -> dict[str, Any] | None:
        if not shipment_id:
            return None
        return await self.fetch_record(f"/v2/shipments/{quote(shipment_id, safe='')}")

    async def _split_from(self, shipment: dict[str, Any]) -> tuple[str, str] | None:
        """Our (reference, shipment id) for a shipment split off one of ours: Split Ship keeps
        the `shipment_number`, so the sibling with our reference is looked up by it."""
        number = str(shipment.get("shipment_number") or "").strip()
        if not number:
            return None
        if number not in self._numbers:
            owner = None
            async for page in self._pages("/v2/shipments", {"shipment_number": number, "page_size": PAGE_SIZE}, "shipments"):
                for sibling in page:
                    if self.context.owns(sibling.get("external_shipment_id") or "") and owner is None:
                        owner = (sibling["external_shipment_id"], str(sibling.get("shipment_id") or ""))
            self._numbers.put(number, owner)
        return self._numbers[number]

    # -- stock --------------------------------------------------------------------------------

    async def stock_levels(self) -> list[StockLevel]:
        """Per SKU and inventory warehouse (`GET /v2/inventory?group_by=warehouse`), paged by
        the response's own next links."""
        rows: list[dict[str, Any]] = []
        async for page in self._pages("/v2/inventory", {"group_by": "warehouse"}, "inventory"):
            rows += page
        return mapping.stock_levels_of(rows)

    # -- webhooks -----------------------------------------------------------------------------

    async def _webhooks(self) -> list[dict[str, Any]]:
        """Every webhook of the account (`GET /v2/environment/webhooks`: one unpaged array)."""
        response = await self.http.request("GET", "/v2/environment/webhooks")
        body = response.json() if response.content else []
        return [w for w in body if isinstance(w, dict)] if isinstance(body, list) else []

    @staticmethod
    def _carries(webhook: dict[str, Any], secret: str) -> bool:
        return any(isinstance(h, dict) and str(h.get("key", "")).lower() == mapping.SECRET_HEADER.lower() and h.get("value") == secret
                   for h in webhook.get("headers") or [])

    async def register_webhooks(self, url: str, secret: str = "") -> list[str]:
        """For each event: create the subscription to `url` when there is none; one that lacks
        the secret header is updated (`PUT`, its other headers kept); one in order is left."""
        lines: list[str] = []
        hooks = await self._webhooks()
        ours = {"key": mapping.SECRET_HEADER, "value": secret}
        for event in mapping.WEBHOOK_EVENTS:
            mine = [w for w in hooks if w.get("url") == url and w.get("event") == event]
            if not mine:
                body: dict[str, Any] = {"event": event, "url": url}
                if secret:
                    body["headers"] = [ours]
                # A repeat after a lost reply may add a second, identical webhook: harmless (a
                # delivery only starts a read), and register shows it.
                try:
                    response = await self.http.request("POST", "/v2/environment/webhooks", json=body, idempotent=False, ok=(200, 201))
                except PermanentError as exc:
                    if exc.status != 409:
                        raise
                    raise PermanentError(f"ShipStation refused a {event} webhook to this URL (409: {exc.message}); another app's "
                                         f"{event} webhook may be in the way: see Settings > API > Webhooks",
                                         vendor=self.name, status=409) from exc
                made = response.json() if response.content else {}
                lines.append(f"subscribed {event} (webhook {made.get('webhook_id') if isinstance(made, dict) else '?'})")
                continue
            hook = mine[0]
            if secret and not self._carries(hook, secret):
                kept = [h for h in hook.get("headers") or [] if isinstance(h, dict) and str(h.get("key", "")).lower() != mapping.SECRET_HEADER.lower()]
                await self.http.request("PUT", f"/v2/environment/webhooks/{quote(str(hook.get('webhook_id')), safe='')}",
                                        json={"url": url, "headers": [*kept, ours]}, idempotent=True, ok=(200, 204))
                lines.append(f"{event}: webhook {hook.get('webhook_id')} now sends the connector's secret header")
            else:
                lines.append(f"already subscribed: {event} (webhook {hook.get('webhook_id')})")
        return lines

    async def webhook_urls(self) -> set[str]:
        """URLs subscribed to every event the connector needs."""
        hooks = await self._webhooks()
        urls = {str(w.get("url")) for w in hooks if w.get("url")}
        return {u for u in urls if all(any(w.get("url") == u and w.get("event") == e for w in hooks) for e in mapping.WEBHOOK_EVENTS)}

    def webhook_hints(self, body: Any) -> list[dict[str, Any]]:
        return mapping.webhook_hints(body)

    def verify_webhook(self, headers: Mapping[str, str], body: bytes, secret: str = "") -> bool:
        """The secret header our subscriptions carry, compared in constant time. No stored secret
        (lost, or never made): a refusal, as for ShipBob; `connector webhooks register` makes one."""
        if not secret:
            return False
        given = next((str(v) for k, v in headers.items() if str(k).lower() == mapping.SECRET_HEADER.lower()), "")
        return hmac.compare_digest(given.encode(), secret.encode())

    # -- paging -------------------------------------------------------------------------------

    def _pages(self, path: str, params: dict[str, Any], key: str) -> AsyncIterator[list[dict[str, Any]]]:
        """Pages of a paged list (`{key: [...], page, pages, links: {next: {href}}}`), followed by
        the responses' own next links."""
        paging = NextLinkPages(self.name, items=key, link=lambda body: (((body or {}).get("links") or {}).get("next") or {}).get("href"))
        return self.pages(paging, path, params)
