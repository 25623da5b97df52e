"""ShipStation v1 JSON <-> domain records, as pure functions (the adapter does the I/O).

Shapes follow ShipStation's v1 documentation (there is no published machine-readable spec):
the Order model out (`POST /orders/createorder`), Order and Shipment models in (`GET /orders`,
`GET /shipments?includeShipmentItems=true`). Every date ShipStation reads or writes is Pacific
time without an offset (`adapters.shipstation.pacific`).
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from adapters.shipstation import pacific
from connector.domain import Address, Shipment, ShipmentLine, WarehouseOrder

# The connector's reference (`{merchant}-{order id}`) is cut to 39 characters plus "~" and ten
# hex digits when too long (adapters.base.order_reference).
_HASHED_TAIL = re.compile(r"~[0-9a-f]{10}$")
_WEIGHT_UNITS = "ounces"


def _clip(value: str | None, limit: int) -> str:
    return (value or "").strip()[:limit]


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
        "name": _clip(to.name or to.company, 100),
        "company": _clip(to.company, 100) or None,
        "street1": _clip(to.address1, 200),
        "street2": _clip(to.address2, 200) or None,
        "city": _clip(to.city, 100),
        "state": _clip(to.state, 100),
        "postalCode": _clip(to.postal_code, 50),
        "country": _clip(to.country_code, 2).upper(),
        "phone": _clip(to.phone, 50) or None,
    }
    if to.residential is not None:
        out["residential"] = to.residential
    return out


def items(order: WarehouseOrder) -> list[dict[str, Any]]:
    """Order lines by warehouse SKU. Lines sharing a SKU (a kit component also sold on its own)
    are merged, so one SKU is one line for the packer and in the shipment items."""
    merged: dict[str, dict[str, Any]] = {}
    for line in order.lines:
        if line.sku in merged:
            merged[line.sku]["quantity"] += int(line.quantity)
            continue
        item: dict[str, Any] = {
            "lineItemKey": line.sku,
            "sku": line.sku,
            "name": _clip(line.description, 200) or line.sku,
            "quantity": int(line.quantity),
        }
        if line.unit_price is not None:
            item["unitPrice"] = float(line.unit_price)
        merged[line.sku] = item
    return list(merged.values())


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
        "orderNumber": _clip(cart.order_id, 50),
        "orderKey": order.reference,
        "orderDate": pacific.stamp(cart.created_at or now or datetime.now(UTC)),
        "orderStatus": "awaiting_shipment",
        "customerEmail": email or None,
        # ShipStation builds its customer profile from the username; the e-mail is the natural one.
        "customerUsername": email or None,
        "billTo": bill_to,
        "shipTo": ship_to,
        "items": items(order),
        "requestedShippingService": _clip(cart.ship_method, 100) or None,
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
        body["paymentMethod"] = _clip(cart.payment_method, 50)
    if cart.gift or cart.gift_message.strip():
        body["gift"] = True
        if cart.gift_message.strip():
            body["giftMessage"] = _clip(cart.gift_message, 1000)
    if cart.weight is not None and cart.weight.ounces > 0:
        body["weight"] = {"value": float(round(cart.weight.ounces, 2)), "units": _WEIGHT_UNITS}
    if store_id is not None:
        body["advancedOptions"] = {"storeId": store_id}
    return body


def was_updated(order: dict[str, Any]) -> bool:
    """True when a createorder answer updated an existing order: ShipStation keeps `modifyDate`
    equal to `createDate` until the order is first modified. (Only the timeline's wording
    depends on it: created or already there, the order is at the warehouse once.)"""
    created, modified = order.get("createDate"), order.get("modifyDate")
    return bool(created and modified and pacific.parse(created) != pacific.parse(modified))


def lookup_number(reference: str, merchant: str) -> str:
    """The `orderNumber` prefix to search a reference by (`GET /orders?orderNumber=` is a
    "starts with" search): the cart order id inside `{merchant}-{order id}`; for a shortened
    reference, the part of the order id it kept. A foreign reference is searched as it is."""
    prefix = f"{merchant}-"
    if not merchant or not reference.startswith(prefix):
        return reference
    number = _HASHED_TAIL.sub("", reference[len(prefix):]) if len(reference) == 50 else reference[len(prefix):]
    return number or reference


def is_ours(reference: str, merchant: str) -> bool:
    """Whether an `orderKey` is one of this merchant's references. Several merchants (and other
    order sources) may share one ShipStation account: only our own orders' shipments are read."""
    return bool(reference) and (not merchant or reference.startswith(f"{merchant}-"))


def tracking_numbers(value: Any) -> list[str]:
    """Trimmed, de-duplicated, blanks dropped (a label can carry an empty tracking number)."""
    numbers = [n.strip() for n in re.split(r"[,;]", str(value or ""))]
    return list(dict.fromkeys(n for n in numbers if n))


def _money(*values: Any) -> Decimal:
    total = Decimal(0)
    for v in values:
        if v is not None:
            total += Decimal(str(v))
    return total


def shipment(record: dict[str, Any], merchant: str) -> Shipment | None:
    """One ShipStation Shipment (a label) -> a Shipment, or None when it is not ours to report.

    Return labels are not deliveries and are left out; a voided label is returned flagged
    `voided` (the engine ignores it, and warns if its tracking had already been posted).
    """
    if record.get("isReturnLabel"):
        return None
    reference = (record.get("orderKey") or "").strip()
    if not is_ours(reference, merchant) or record.get("shipmentId") is None:
        return None
    lines: dict[str, int] = {}
    for item in record.get("shipmentItems") or []:
        sku = (item.get("sku") or "").strip()
        quantity = int(item.get("quantity") or 0)
        if sku and quantity > 0:
            lines[sku] = lines.get(sku, 0) + quantity
    return Shipment(
        shipment_id=str(record["shipmentId"]),
        reference=reference,
        warehouse_order_id=str(record.get("orderId") or ""),
        carrier=(record.get("carrierCode") or "").strip(),
        service=(record.get("serviceCode") or "").strip(),
        tracking_numbers=tracking_numbers(record.get("trackingNumber")),
        # createDate is the label's own timestamp; shipDate is only a (Pacific) date.
        shipped_at=pacific.parse(record.get("createDate")) or pacific.parse(record.get("shipDate")),
        lines=[ShipmentLine(sku=s, quantity=q) for s, q in lines.items()],
        shipping_cost=_money(record.get("shipmentCost"), record.get("insuranceCost")),
        voided=bool(record.get("voided")),
    )


def error_text(body: Any) -> str:
    """ShipStation's readable message from its (ASP.NET Web API) error shapes.

    Seen: `{"Message": ..., "ModelState": {"apiOrder.orderNumber": ["... required."]}}`,
    `{"Message": ..., "ExceptionMessage": ...}`, `{"message": ...}`, and plain text.
    """
    if isinstance(body, str):
        return body.strip()
    if isinstance(body, list):
        return "; ".join(filter(None, (error_text(x) for x in body)))
    if not isinstance(body, dict):
        return json.dumps(body)
    parts: list[str] = []
    for key in ("ExceptionMessage", "Message", "message", "error", "errors"):
        value = body.get(key)
        if isinstance(value, str) and value.strip():
            parts.append(value.strip())
    state = body.get("ModelState") or {}
    if isinstance(state, dict):
        for field, messages in state.items():
            text = error_text(messages)
            if text:
                parts.append(f"{field}: {text}" if field else text)
    return "; ".join(dict.fromkeys(parts)) or json.dumps(body)[:500]
