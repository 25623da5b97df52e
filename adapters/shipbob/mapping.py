"""ShipBob JSON <-> domain records, as pure functions (the adapter does the I/O).

Shapes follow ShipBob's 2026-01 document: `Orders.CreateOrderModel` out, `Orders.OrderViewModel`
(with its `shipments`), `Products.ProductViewModelV5` and `Inventory.InventoryQuantityFcResponse` in.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from connector.domain import Shipment, ShipmentLine, StockLevel, WarehouseOrder

SHIPPED_STATUSES = frozenset({"Completed"})  # Orders.OrderStatusEnum: the parcel left the building
VOIDED_STATUSES = frozenset({"Cancelled"})


def _clip(value: str | None, limit: int) -> str:
    return (value or "").strip()[:limit]


def iso(moment: datetime) -> str:
    """An RFC 3339 instant in UTC (naive datetimes are taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def order_body(order: WarehouseOrder) -> dict[str, Any]:
    """The `POST /{ver}/order` body. Lengths are clipped to the spec's limits so a long gift
    message or phone number never turns a good order into a 400."""
    cart = order.order
    to = cart.ship_to
    address: dict[str, Any] = {
        "address1": to.address1.strip(),
        "city": to.city.strip(),
        "country": to.country_code.strip().upper(),
    }
    for key, value in (("address2", to.address2), ("company_name", to.company), ("state", to.state), ("zip_code", to.postal_code)):
        if value.strip():
            address[key] = value.strip()
    recipient: dict[str, Any] = {"name": _clip(to.name or to.company, 300), "address": address}
    email = (to.email or cart.email).strip()
    if email:
        recipient["email"] = email
    phone = _clip(to.phone or cart.phone, 50)
    if phone:
        recipient["phone_number"] = phone

    body: dict[str, Any] = {
        "reference_id": order.reference,
        "order_number": _clip(cart.order_id, 400),
        "type": "DTC",
        "shipping_method": order.ship_method,
        "recipient": recipient,
        "products": products(order),
    }
    if cart.created_at:
        body["purchase_date"] = iso(cart.created_at)
    gift = _clip(cart.gift_message, 500)
    if gift:
        body["gift_message"] = gift
    if cart.total is not None:
        body["financials"] = {"total_price": float(cart.total)}
    return body


def products(order: WarehouseOrder) -> list[dict[str, Any]]:
    """Order lines by warehouse SKU. Lines sharing a SKU (a kit component also sold on its own)
    are merged: one product line per reference keeps ShipBob's allocation unambiguous."""
    merged: dict[str, dict[str, Any]] = {}
    for line in order.lines:
        if line.sku in merged:
            merged[line.sku]["quantity"] += int(line.quantity)
            continue
        # `name` is required by the schema and used by ShipBob only when it must create the
        # product, which the engine prevents by validating SKUs against known_skus() first.
        item: dict[str, Any] = {"reference_id": line.sku, "name": line.description.strip() or line.sku, "quantity": int(line.quantity)}
        if line.unit_price is not None:
            item["unit_price"] = float(line.unit_price)
        merged[line.sku] = item
    return list(merged.values())


def tracking_numbers(tracking: dict[str, Any]) -> list[str]:
    """Trimmed, de-duplicated, blanks dropped; freight shipments carry a PRO number instead."""
    raw = tracking.get("tracking_number") or tracking.get("pro_number") or ""
    numbers = [n.strip() for n in re.split(r"[,;]", raw)]
    return list(dict.fromkeys(n for n in numbers if n))


def _parse_time(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None


def shipments_of(order: dict[str, Any]) -> list[Shipment]:
    """The shipments of one `Orders.OrderViewModel` whose tracking was not yet uploaded.

    Shipped (`Completed`) shipments are returned; a `Cancelled` one is returned with `voided=True`
    only when it had a tracking number (a label was bought, then voided) so the engine can tell
    the cart. Shipments still in the building are left for a later pass.
    """
    ordered = {p.get("reference_id"): int(p.get("quantity") or 0) for p in order.get("products") or []}
    out: list[Shipment] = []
    for sb in order.get("shipments") or []:
        if sb.get("is_tracking_uploaded"):
            continue
        status = sb.get("status") or ""
        tracking = sb.get("tracking") or {}
        numbers = tracking_numbers(tracking)
        voided = status in VOIDED_STATUSES
        if not (status in SHIPPED_STATUSES or (voided and numbers)):
            continue
        lines = []
        for product in sb.get("products") or []:
            sku = product.get("reference_id") or product.get("sku") or ""
            quantity = sum(int(i.get("quantity") or 0) for i in product.get("inventory_items") or [])
            if not quantity and len(order.get("shipments") or []) == 1:
                quantity = ordered.get(sku, 0)  # no inventory detail: a single shipment ships all
            if sku and quantity:
                lines.append(ShipmentLine(sku=sku, quantity=quantity))
        out.append(
            Shipment(
                shipment_id=str(sb["id"]),
                reference=order.get("reference_id") or sb.get("reference_id") or "",
                warehouse_order_id=str(order.get("id") or sb.get("order_id") or ""),
                carrier=(tracking.get("carrier") or "").strip(),
                service=(tracking.get("carrier_service") or sb.get("ship_option") or "").strip(),
                tracking_numbers=numbers,
                shipped_at=_parse_time(tracking.get("shipping_date") or sb.get("actual_fulfillment_date")),
                lines=lines,
                # What ShipBob invoiced the merchant for this shipment (label + pick/pack).
                shipping_cost=Decimal(str(sb.get("invoice_amount") or 0)),
                voided=voided,
            )
        )
    return out


def variant_skus(product: dict[str, Any]) -> set[str]:
    """The SKUs of a `Products.ProductViewModelV5`: each variant is one SKU."""
    return {v["sku"].strip() for v in product.get("variants") or [] if (v.get("sku") or "").strip()}


def stock_levels_of(item: dict[str, Any]) -> list[StockLevel]:
    """One `Inventory.InventoryQuantityFcResponse` -> a StockLevel per fulfillment center.

    `available` is the fulfillable quantity (on hand minus committed), never on-hand.
    """
    sku = (item.get("sku") or "").strip()
    if not sku:
        return []
    return [
        StockLevel(
            sku=sku,
            warehouse_id=str(loc["location_id"]),
            on_hand=max(0, int(loc.get("on_hand_quantity") or 0)),
            available=max(0, int(loc.get("fulfillable_quantity") or 0)),
        )
        for loc in item.get("locations") or []
        if loc.get("location_id") is not None
    ]


def error_text(body: Any) -> str:
    """ShipBob's readable message from any of its error shapes.

    Seen shapes: `{"": ["Cannot insert order with existing ReferenceId"]}` (field -> messages),
    `{"errors": [...]}`, `{"message": ...}` (429), problem details `{"title", "detail", "errors"}`,
    and a bare string (batchUpdateTrackingUpload 400).
    """
    if isinstance(body, str):
        return body.strip()
    if isinstance(body, list):
        return "; ".join(filter(None, (error_text(x) for x in body)))
    if not isinstance(body, dict):
        return json.dumps(body)
    parts: list[str] = []
    for key in ("message", "title", "detail", "error_description"):
        if isinstance(body.get(key), str) and body[key].strip():
            parts.append(body[key].strip())
    for key, value in body.items():
        if key in ("message", "title", "detail", "error_description", "type", "status", "statusCode", "traceId"):
            continue
        if key == "errors" and isinstance(value, dict):
            parts += [f"{k}: {error_text(v)}" if k else error_text(v) for k, v in value.items()]
        elif isinstance(value, list | str):
            text = error_text(value)
            if text:
                parts.append(f"{key}: {text}" if key and key != "errors" else text)
    return "; ".join(dict.fromkeys(parts)) or json.dumps(body)[:500]


def is_duplicate_reference(message: str) -> bool:
    """True for ShipBob's 422 "an order with this reference already exists" in its wordings."""
    text = re.sub(r"[\s_-]", "", message.lower())
    return "referenceid" in text and any(w in text for w in ("exist", "duplicate", "already"))
