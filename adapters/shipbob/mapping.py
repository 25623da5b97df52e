"""ShipBob JSON <-> domain records, as pure functions (the adapter does the I/O).

Shapes follow ShipBob's 2026-01 document: `Orders.CreateOrderModel` out, `Orders.OrderViewModel`
(with its `shipments`), `Products.ProductViewModelV5` and `Inventory.InventoryQuantityFcResponse` in.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from decimal import Decimal
from typing import Any

from adapters import kit
from adapters.kit import clip, iso, parse_time
from connector.domain import CancelOutcome, Shipment, ShipmentLine, StockLevel, WarehouseOrder

SHIPPED_STATUSES = frozenset({"Completed"})  # Orders.OrderStatusEnum: the parcel left the building
VOIDED_STATUSES = frozenset({"Cancelled"})
CANCELLED_ORDER = frozenset({"Cancelled"})  # Orders.OrderStatus of an order that will not ship


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
    recipient: dict[str, Any] = {"name": clip(to.name or to.company, 300), "address": address}
    email = (to.email or cart.email).strip()
    if email:
        recipient["email"] = email
    phone = clip(to.phone or cart.phone, 50)
    if phone:
        recipient["phone_number"] = phone

    body: dict[str, Any] = {
        "reference_id": order.reference,
        "order_number": clip(cart.order_id, 400),
        "type": "DTC",
        "shipping_method": order.ship_method,
        "recipient": recipient,
        "products": products(order),
    }
    if cart.created_at:
        body["purchase_date"] = iso(cart.created_at)
    gift = clip(cart.gift_message, 500)
    if gift:
        body["gift_message"] = gift
    if cart.total is not None:
        body["financials"] = {"total_price": float(cart.total)}
    return body


def products(order: WarehouseOrder) -> list[dict[str, Any]]:
    """Order lines by warehouse SKU, one product line per SKU (`kit.merged_lines`), which keeps
    ShipBob's allocation unambiguous."""
    out = []
    for line, quantity in kit.merged_lines(order):
        # `name` is required by the schema and used by ShipBob only when it must create the
        # product, which the engine prevents by validating SKUs against known_skus() first.
        item: dict[str, Any] = {"reference_id": line.sku, "name": line.description.strip() or line.sku, "quantity": quantity}
        if line.unit_price is not None:
            item["unit_price"] = float(line.unit_price)
        out.append(item)
    return out


def tracking_numbers(tracking: dict[str, Any]) -> list[str]:
    """Trimmed, de-duplicated, blanks dropped; freight shipments carry a PRO number instead."""
    return kit.tracking_numbers(tracking.get("tracking_number") or tracking.get("pro_number") or "")


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
                shipped_at=parse_time(tracking.get("shipping_date") or sb.get("actual_fulfillment_date")),
                lines=lines,
                # What ShipBob invoiced the merchant for this shipment (label + pick/pack).
                shipping_cost=Decimal(str(sb.get("invoice_amount") or 0)),
                voided=voided,
            )
        )
    return out


def cancel_outcome(body: Any, order_id: str) -> tuple[CancelOutcome, str]:
    """What a 200 `Orders.CanceledOrderViewModel` says: (outcome, reason in ShipBob's words).

    `Success` is `cancelled`. `Failure` and `PartialSuccess` are `too_late`: some shipment is
    picked, packed or shipped, and the order (or that part of it) will still go out; the reason
    names each shipment ShipBob could not cancel and why, and the ones it did cancel. A body
    without a status that ShipBob documents is `unknown`: the engine looks the order up.
    """
    body = body if isinstance(body, dict) else {}
    status = str(body.get("status") or "")
    results = [r for r in body.get("canceled_shipment_results") or [] if isinstance(r, dict)]
    if status == "Success":
        return CancelOutcome.cancelled, f"ShipBob cancelled order {order_id}"
    if status not in ("Failure", "PartialSuccess"):
        return CancelOutcome.unknown, f"ShipBob answered the cancel of order {order_id} with status {status or 'none'!r}"
    refused = [f"shipment {r.get('shipment_id')}: {(r.get('reason') or '').strip() or 'not cancelled'}" for r in results if not r.get("is_success")]
    done = [str(r.get("shipment_id")) for r in results if r.get("is_success")]
    text = f"ShipBob could not cancel order {order_id} ({status})"
    if refused:
        text += ": " + "; ".join(refused)
    if done:
        text += f"; cancelled shipment{'s' if len(done) > 1 else ''} {', '.join(done)}"
    return CancelOutcome.too_late, text


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
    return kit.error_text(body, messages=("message", "title", "detail", "error_description"), fields=("errors",),
                          rest=True, skip=("type", "status", "statusCode", "traceId"))


def is_duplicate_reference(message: str) -> bool:
    """True for ShipBob's 422 "an order with this reference already exists" in its wordings."""
    text = re.sub(r"[\s_-]", "", message.lower())
    return "referenceid" in text and any(w in text for w in ("exist", "duplicate", "already"))


# -- webhooks ---------------------------------------------------------------------------------

# The topics the connector subscribes to (`Webhooks.Topics`): each starts a shipment read.
WEBHOOK_TOPICS = ("order.shipped", "order.shipment.cancelled", "order.shipment.on_hold")
SECRET_PREFIX = "whsec_"  # `secret` is `^whsec_[a-zA-Z0-9+/]{32}$`: 24 random bytes, base64
SIGNATURE_TOLERANCE_S = 300  # a delivery signed longer ago (or ahead) than this is a replay
MAX_HINTS = 100
_HINT_TEXT = 100


def _scalar(value: Any) -> str:
    """An id or reference from an untrusted body: a short string, or "" for anything else."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        return ""
    return str(value).strip()[:_HINT_TEXT]


def webhook_hints(body: Any, topic: str = "") -> list[dict[str, Any]]:
    """Which ShipBob order or shipment a delivery is about.

    ShipBob posts the order (`order.shipped`) or the shipment (`order.shipment.*`) as the body,
    the topic in the `x-webhook-topic` header; an envelope `{"topic", "data"}` is read too. Any
    other shape gives no hints: the shipment read the delivery starts finds what there is.
    """
    if isinstance(body, dict) and isinstance(body.get("data"), dict | list):
        topic = topic or _scalar(body.get("topic") or body.get("type"))
        body = body["data"]
    elif isinstance(body, dict):
        topic = topic or _scalar(body.get("topic"))
    hints: list[dict[str, Any]] = []
    for item in body if isinstance(body, list) else [body]:
        if not isinstance(item, dict) or len(hints) >= MAX_HINTS:
            continue
        hint = {"topic": topic or ("order.shipped" if isinstance(item.get("shipments"), list) else "")}
        for key, field in (("id", "id"), ("order_id", "order_id"), ("reference", "reference_id")):
            value = _scalar(item.get(field))
            if value:
                hint[key] = value
        if len(hint) > 1:
            hints.append(hint)
    return hints


def webhook_key(secret: str) -> bytes | None:
    """The HMAC key of a `whsec_...` secret (the bytes its base64 part decodes to); None when it
    is not one."""
    raw = secret[len(SECRET_PREFIX):] if secret.startswith(SECRET_PREFIX) else secret
    try:
        return base64.b64decode(raw, validate=True) if raw else None
    except (ValueError, binascii.Error):
        return None


def webhook_signature(key: bytes, msg_id: str, timestamp: str, body: bytes) -> str:
    """`v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`, as ShipBob signs (Standard Webhooks)."""
    digest = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signature_valid(headers: dict[str, str], body: bytes, secret: str, now: float) -> bool:
    """Whether `webhook-signature` holds a v1 signature of this body by `secret`, made within
    the tolerance of `now` (`headers` keyed in lower case)."""
    key = webhook_key(secret)
    msg_id, stamp, given = headers.get("webhook-id", ""), headers.get("webhook-timestamp", ""), headers.get("webhook-signature", "")
    if key is None or not msg_id or not stamp.isdigit() or not given:
        return False
    if abs(now - int(stamp)) > SIGNATURE_TOLERANCE_S:
        return False
    expected = webhook_signature(key, msg_id, stamp, body).encode()
    return any(hmac.compare_digest(expected, part.encode()) for part in given.split() if part.startswith("v1,"))
