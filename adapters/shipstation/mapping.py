"""ShipStation v1 JSON <-> domain records, as pure functions (the adapter does the I/O).

Shapes follow ShipStation's v1 documentation (there is no published machine-readable spec):
the Order model out (`POST /orders/createorder`), Order and Shipment models in (`GET /orders`,
`GET /shipments?includeShipmentItems=true`). Every date ShipStation reads or writes is Pacific
time without an offset (see "Pacific time" below).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit
from zoneinfo import ZoneInfo

from adapters import kit
from adapters.base import reference_order_id
from adapters.kit import clip
from connector.domain import Address, Shipment, WarehouseOrder

_WEIGHT_UNITS = "ounces"
# US Pacific time (PST/PDT), from the tz database: the `tzdata` dependency provides it where the
# system has none.
PACIFIC = ZoneInfo("America/Los_Angeles")


# -- Pacific time -----------------------------------------------------------------------------


def stamp(moment: datetime) -> str:
    """ShipStation's datetime form: Pacific wall time, seven fraction digits, no offset (what we
    send is whole seconds; naive datetimes are taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(PACIFIC).strftime("%Y-%m-%dT%H:%M:%S.0000000")


def pacific_date(moment: datetime) -> str:
    """The Pacific calendar date of an instant, `YYYY-MM-DD` (ShipStation's date-only filters)."""
    return stamp(moment)[:10]


def parse_time(text: str | None) -> datetime | None:
    """A ShipStation datetime or date (Pacific, no offset) as an aware UTC datetime; None if
    unreadable. An explicit offset or `Z`, should one appear, is honoured instead. A wall time
    in the repeated November hour is read as the first (daylight) one."""
    return kit.parse_time(text, naive=PACIFIC)


# -- orders -----------------------------------------------------------------------------------


def parse_ship_method(value: str) -> tuple[str, str]:
    """A `[merchants.ship_methods]` value -> (carrierCode, serviceCode).

    The value names ShipStation's codes as `carrierCode:serviceCode` ("ups:ups_ground",
    "stamps_com:usps_priority_mail"), or a bare `carrierCode` to let ShipStation (an automation
    rule, or the packer) pick the service. Empty: neither is sent.
    """
    carrier, _, service = (value or "").partition(":")
    return carrier.strip(), service.strip()


def method_name(carrier: str, service: str = "") -> str:
    """The inverse of parse_ship_method: how a catalog entry is spelt in the config."""
    return f"{carrier}:{service}" if service else carrier


def address(to: Address, *, email: str = "") -> dict[str, Any]:
    """A ShipStation Address. `country` is the ISO 3166 alpha-2 code; `residential` only when known."""
    out: dict[str, Any] = {
        "name": clip(to.name or to.company, 100),
        "company": clip(to.company, 100) or None,
        "street1": clip(to.address1, 200),
        "street2": clip(to.address2, 200) or None,
        "city": clip(to.city, 100),
        "state": clip(to.state, 100),
        "postalCode": clip(to.postal_code, 50),
        "country": clip(to.country_code, 2).upper(),
        "phone": clip(to.phone, 50) or None,
    }
    if to.residential is not None:
        out["residential"] = to.residential
    return out


def items(order: WarehouseOrder) -> list[dict[str, Any]]:
    """Order lines by warehouse SKU, one per SKU (`kit.merged_lines`) for the packer and in the
    shipment items."""
    out = []
    for line, quantity in kit.merged_lines(order):
        item: dict[str, Any] = {"lineItemKey": line.sku, "sku": line.sku, "name": clip(line.description, 200) or line.sku, "quantity": quantity}
        if line.unit_price is not None:
            item["unitPrice"] = float(line.unit_price)
        out.append(item)
    return out


def order_body(order: WarehouseOrder, *, store_id: int | None = None, now: datetime | None = None) -> dict[str, Any]:
    """The `POST /orders/createorder` body: the whole order, every time (v1 has no partial update).

    `orderKey` carries our reference: ShipStation upserts by it, so even a blind resend can only
    update the same order, never make a second one. `orderNumber` is the cart's order id, the
    number packers, packing slips and customers know.
    """
    cart = order.order
    email = (cart.ship_to.email or cart.email).strip()
    ship_to = address(cart.ship_to)
    bill = cart.bill_to
    bill_to = address(bill) if (bill.name or bill.company.strip()) and bill.address1.strip() else {"name": ship_to["name"]}
    carrier, service = parse_ship_method(order.ship_method)
    body: dict[str, Any] = {
        "orderNumber": clip(cart.order_id, 50),
        "orderKey": order.reference,
        "orderDate": stamp(cart.created_at or now or datetime.now(UTC)),
        "orderStatus": "awaiting_shipment",
        "customerEmail": email or None,
        # ShipStation builds its customer profile from the username; the e-mail is the natural one.
        "customerUsername": email or None,
        "billTo": bill_to,
        "shipTo": ship_to,
        "items": items(order),
        "requestedShippingService": clip(cart.ship_method, 100) or None,
    }
    if carrier:
        body["carrierCode"] = carrier
    if service:
        body["serviceCode"] = service
    for key, value in (("amountPaid", cart.total), ("taxAmount", cart.tax), ("shippingAmount", cart.shipping_total)):
        if value is not None:
            body[key] = float(value)
    notes = "\n".join(n.strip() for n in (cart.customer_notes, cart.special_instructions) if n and n.strip())
    if notes:
        body["customerNotes"] = notes[:1000]
    if cart.internal_notes.strip():
        body["internalNotes"] = cart.internal_notes.strip()[:1000]
    if cart.payment_method.strip():
        body["paymentMethod"] = clip(cart.payment_method, 50)
    if cart.gift or cart.gift_message.strip():
        body["gift"] = True
        if cart.gift_message.strip():
            body["giftMessage"] = clip(cart.gift_message, 1000)
    if cart.weight is not None and cart.weight.ounces > 0:
        body["weight"] = {"value": float(round(cart.weight.ounces, 2)), "units": _WEIGHT_UNITS}
    if store_id is not None:
        body["advancedOptions"] = {"storeId": store_id}
    return body


# Order statuses ShipStation lets createorder update (research A.2); shipped, cancelled and
# pending_fulfillment (handed to a fulfillment provider) orders cannot be.
UPDATABLE_STATUSES = frozenset({"awaiting_payment", "awaiting_shipment", "on_hold"})
CANCELLED = "cancelled"
# The writable fields of v1's Order, Address, OrderItem and AdvancedOptions models: what an
# update sends back of the order ShipStation holds (read-only fields such as orderId, createDate,
# orderTotal or addressVerified are left out).
_ORDER_FIELDS = (
    "orderNumber", "orderKey", "orderDate", "paymentDate", "shipByDate", "orderStatus", "customerUsername", "customerEmail",
    "billTo", "shipTo", "items", "amountPaid", "taxAmount", "shippingAmount", "customerNotes", "internalNotes", "gift",
    "giftMessage", "paymentMethod", "requestedShippingService", "carrierCode", "serviceCode", "packageCode", "confirmation",
    "shipDate", "holdUntilDate", "weight", "dimensions", "insuranceOptions", "internationalOptions", "advancedOptions", "tagIds",
)
_ADDRESS_FIELDS = ("name", "company", "street1", "street2", "street3", "city", "state", "postalCode", "country", "phone", "residential")
_ITEM_FIELDS = (
    "lineItemKey", "sku", "name", "imageUrl", "weight", "quantity", "unitPrice", "taxAmount", "shippingAmount",
    "warehouseLocation", "options", "productId", "fulfillmentSku", "adjustment", "upc",
)
_ADVANCED_FIELDS = (
    "warehouseId", "nonMachinable", "saturdayDelivery", "containsAlcohol", "storeId", "customField1", "customField2",
    "customField3", "source", "billToParty", "billToAccount", "billToPostalCode", "billToCountryCode", "billToMyOtherAccount",
)


def _pick(source: Any, fields: tuple[str, ...]) -> Any:
    return {k: source[k] for k in fields if k in source} if isinstance(source, dict) else source


def held_body(record: dict[str, Any]) -> dict[str, Any]:
    """The order as ShipStation holds it (a `GET /orders` record), as a createorder body: its
    writable fields only, so a re-post wipes nothing the warehouse changed (v1 has no partial
    update)."""
    body = _pick(record, _ORDER_FIELDS)
    for key in ("billTo", "shipTo"):
        if key in body:
            body[key] = _pick(body[key], _ADDRESS_FIELDS)
    if "items" in body:
        body["items"] = [_pick(item, _ITEM_FIELDS) for item in body["items"] or []]
    if "advancedOptions" in body:
        body["advancedOptions"] = _pick(body["advancedOptions"], _ADVANCED_FIELDS)
    return body


def cancel_body(record: dict[str, Any]) -> dict[str, Any]:
    """The createorder body that cancels an order: the order as ShipStation holds it
    (`held_body`) with `orderStatus` "cancelled"."""
    body = held_body(record)
    body["orderStatus"] = CANCELLED
    return body


def update_body(record: dict[str, Any], order: WarehouseOrder, *, ship_to: bool, lines: bool) -> dict[str, Any]:
    """The createorder body that updates an order already in ShipStation: the order as it holds
    it (`held_body`, its status, hold, service and notes kept), with the ship-to address of
    `order` when `ship_to`, and its items when `lines`.

    An item already there under the same SKU keeps what the warehouse set on it (a bin
    location, a weight, options); its name, quantity and price are the order's. Items the
    order no longer has are left out: that is the edit.
    """
    body = held_body(record)
    if ship_to:
        new = address(order.order.ship_to)
        kept = body.get("shipTo") if isinstance(body.get("shipTo"), dict) else {}
        if "residential" not in new and kept.get("residential") is not None and kept.get("street1") == new["street1"]:
            new["residential"] = kept["residential"]  # ShipStation's verdict on the same street still holds
        body["shipTo"] = new
    if lines:
        before = {str(i.get("sku") or ""): i for i in body.get("items") or [] if isinstance(i, dict)}
        body["items"] = [dict(before.get(item["sku"], {}), **item) for item in items(order)]
    return body


def same_ship_to(sent: dict[str, Any], held: Any) -> bool:
    """Whether ShipStation's copy of an address has what was sent (it adds its own fields)."""
    if not isinstance(held, dict):
        return False
    fields = ("name", "street1", "street2", "city", "state", "postalCode", "country")
    return all((sent.get(f) or None) == (held.get(f) or None) for f in fields)


def item_quantities(listed: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in listed or []:
        if isinstance(item, dict) and not item.get("adjustment"):
            sku = str(item.get("sku") or "")
            out[sku] = out.get(sku, 0) + int(item.get("quantity") or 0)
    return out


def was_updated(order: dict[str, Any]) -> bool:
    """True when a createorder answer updated an existing order: ShipStation keeps `modifyDate`
    equal to `createDate` until the order is first modified. (Only the timeline's wording
    depends on it: created or already there, the order is at the warehouse once.)"""
    created, modified = order.get("createDate"), order.get("modifyDate")
    return bool(created and modified and parse_time(created) != parse_time(modified))


def lookup_number(reference: str, merchant: str) -> str:
    """The `orderNumber` prefix to search a reference by (`GET /orders?orderNumber=` is a
    "starts with" search): the cart order id inside `{merchant}-{order id}`; for a shortened
    reference, the part of the order id it kept. A foreign reference is searched as it is."""
    return reference_order_id(merchant, reference) or reference


def shipment(record: dict[str, Any]) -> Shipment | None:
    """One ShipStation Shipment (a label) -> a Shipment, or None when it is not one to report.

    Return labels are not deliveries and are left out, as are labels of orders without a key; a
    voided label is returned flagged `voided` (the engine ignores it, and warns if its tracking
    had already been posted). Whose order it is, is the adapter's question (`owns`).
    """
    if record.get("isReturnLabel"):
        return None
    reference = (record.get("orderKey") or "").strip()
    if not reference or record.get("shipmentId") is None:
        return None
    return Shipment(
        shipment_id=str(record["shipmentId"]),
        reference=reference,
        warehouse_order_id=str(record.get("orderId") or ""),
        carrier=(record.get("carrierCode") or "").strip(),
        service=(record.get("serviceCode") or "").strip(),
        tracking_numbers=kit.tracking_numbers(str(record.get("trackingNumber") or "")),
        # createDate is the label's own timestamp; shipDate is only a (Pacific) date.
        shipped_at=parse_time(record.get("createDate")) or parse_time(record.get("shipDate")),
        lines=kit.shipment_lines((i.get("sku"), i.get("quantity")) for i in record.get("shipmentItems") or []),
        shipping_cost=kit.money(record.get("shipmentCost"), record.get("insuranceCost")),
        voided=bool(record.get("voided")),
    )


def error_text(body: Any) -> str:
    """ShipStation's readable message from its (ASP.NET Web API) error shapes.

    Seen: `{"Message": ..., "ModelState": {"apiOrder.orderNumber": ["... required."]}}`,
    `{"Message": ..., "ExceptionMessage": ...}`, `{"message": ...}`, and plain text.
    """
    return kit.error_text(body, messages=("ExceptionMessage", "Message", "message", "error", "errors"), fields=("ModelState",))


# -- webhooks ---------------------------------------------------------------------------------

SHIP_NOTIFY = "SHIP_NOTIFY"  # fires when a label is created: the one event that means tracking exists


def webhook_field(hook: dict[str, Any], *names: str) -> Any:
    """A field of a v1 webhook record, whichever casing ShipStation used (`WebHookID`, `Url`...)."""
    lowered = {str(k).lower(): v for k, v in hook.items()}
    return next((lowered[n.lower()] for n in names if n.lower() in lowered), None)


def webhook_hints(body: Any) -> list[dict[str, Any]]:
    """What a delivery (`{resource_url, resource_type}`) is about: its type and, when the URL
    names them, the batch and store. `resource_url` is never fetched (it came in an unsigned body
    and would be sent our credentials): the shipments read uses our own base URL."""
    if not isinstance(body, dict):
        return []
    rtype, url = body.get("resource_type"), body.get("resource_url")
    hint: dict[str, Any] = {"topic": rtype.strip().lower()[:64] if isinstance(rtype, str) else ""}
    if isinstance(url, str):
        query = {k.lower(): v for k, v in parse_qsl(urlsplit(url[:2000]).query)}
        for key, field in (("batch_id", "batchid"), ("store_id", "storeid")):
            if query.get(field, "").isdigit():
                hint[key] = query[field][:20]
        if "batch_id" in hint:
            hint["id"] = hint["batch_id"]
    return [hint] if hint["topic"] or len(hint) > 1 else []
