"""Extensiv (3PL Warehouse Manager) JSON <-> domain records, as pure functions (the adapter does I/O).

Extensiv documents its bodies in camelCase and answers in PascalCase (`ReadOnly.OrderId`,
`ResourceList`, `TotalResults`); its JSON binding ignores case. We send camelCase, as the
documentation and public integrations do, and read every answer case-insensitively (`pick`).

The ship-method value format (the right-hand side of `[merchants.ship_methods]`) is
`"Carrier|Mode"` or `"Carrier|Mode|SCAC"`, e.g. `"UPS|Ground"`, `"FedEx|FedEx 2Day|FDEG"`: it
becomes the order's `routingInfo` (`carrier`, `mode`, `scacCode`), which must match a carrier and
service the warehouse has set up.
"""

from __future__ import annotations

import re
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from adapters import kit
from connector.domain import Shipment, StockLevel, WarehouseOrder

STATUS_OPEN, STATUS_CLOSED, STATUS_CANCELED = 0, 1, 2  # ReadOnly.Status


def pick(obj: Any, *path: str, default: Any = None) -> Any:
    """`obj[path[0]][path[1]]...`, each key matched case-insensitively; `default` when absent."""
    for key in path:
        if not isinstance(obj, dict):
            return default
        if key in obj:
            obj = obj[key]
            continue
        lowered = key.lower()
        for k, v in obj.items():
            if isinstance(k, str) and k.lower() == lowered:
                obj = v
                break
        else:
            return default
    return default if obj is None else obj


def collection(body: Any, name: str = "ResourceList") -> list[dict[str, Any]]:
    """The records of a list answer: `ResourceList` (or `Summaries`), else HAL's `_embedded`."""
    records = pick(body, name)
    if isinstance(records, list):
        return [r for r in records if isinstance(r, dict)]
    embedded = pick(body, "_embedded")
    if isinstance(embedded, dict):
        for value in embedded.values():
            if isinstance(value, list):
                return [r for r in value if isinstance(r, dict)]
    return []


# -- requests --------------------------------------------------------------------------------


class BadShipMethod(ValueError):
    """A `[merchants.ship_methods]` value not in the `Carrier|Mode[|SCAC]` form."""


def routing(ship_method: str) -> dict[str, str]:
    """`"UPS|Ground|UPSN"` -> `{"carrier": "UPS", "mode": "Ground", "scacCode": "UPSN"}`.

    The carrier is required; the mode may be empty (`"Will Call|"`). A value without `|` is
    refused rather than guessed: Extensiv would store a mistyped "UPS Ground" as a carrier named
    that and the order would wait at the packing station for someone to route it by hand.
    """
    parts = [p.strip() for p in (ship_method or "").split("|")]
    if len(parts) < 2 or len(parts) > 3 or not parts[0]:
        raise BadShipMethod(
            f"ship method {ship_method!r} is not in the Extensiv form 'Carrier|Mode' or 'Carrier|Mode|SCAC' "
            "(e.g. \"UPS|Ground\"); fix the value in [merchants.ship_methods]"
        )
    out = {"carrier": parts[0], "mode": parts[1]}
    if len(parts) == 3 and parts[2]:
        out["scacCode"] = parts[2]
    return out


def _clip(value: str | None, limit: int) -> str:
    return (value or "").strip()[:limit]


def order_body(order: WarehouseOrder, customer_id: int, facility_id: int) -> dict[str, Any]:
    """The `POST /orders` body (camelCase, as Extensiv documents it)."""
    cart = order.order
    to = cart.ship_to
    name = to.name or to.company.strip()
    ship_to: dict[str, Any] = {
        # Extensiv's contact requires a company name; a consumer's is their own name.
        "companyName": _clip(to.company or name, 100),
        "name": _clip(name, 100),
    }
    for key, value in (
        ("address1", to.address1), ("address2", to.address2), ("city", to.city), ("state", to.state),
        ("zip", to.postal_code), ("country", to.country_code.upper()), ("phoneNumber", to.phone or cart.phone),
        ("emailAddress", to.email or cart.email),
    ):
        if (value or "").strip():
            ship_to[key] = _clip(value, 100)
    body: dict[str, Any] = {
        "customerIdentifier": {"id": customer_id},
        "facilityIdentifier": {"id": facility_id},
        "referenceNum": order.reference,
        "poNum": _clip(cart.order_id, 50),  # the UltraCart order id, for the warehouse's searches
        "routingInfo": routing(order.ship_method),
        "shipTo": ship_to,
        "orderItems": order_items(order),
    }
    notes = "\n".join(n.strip() for n in (cart.special_instructions, cart.customer_notes) if n and n.strip())
    if notes:
        body["notes"] = _clip(notes, 1000)
    if cart.requested_ship_date:
        body["earliestShipDate"] = cart.requested_ship_date.isoformat() + "T00:00:00"
    gift = _clip(cart.gift_message, 500)
    if gift:
        body["fulfillInvInfo"] = {"fulfillInvGiftMessage": gift}
    return body


def order_items(order: WarehouseOrder) -> list[dict[str, Any]]:
    """One item per warehouse SKU (a kit component also sold alone is merged): Extensiv allocates
    per line, and two lines of one SKU only make the pick ticket harder to read."""
    merged: dict[str, int] = {}
    for line in order.lines:
        merged[line.sku] = merged.get(line.sku, 0) + int(line.quantity)
    return [{"itemIdentifier": {"sku": sku}, "qty": qty} for sku, qty in merged.items()]


def rql_string(value: str) -> str:
    """An RQL string literal: double-quoted, quotes and backslashes escaped."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def rql_time(moment: datetime) -> str:
    """An instant as Extensiv's RQL compares dates: ISO 8601, UTC, without an offset."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment.strftime("%Y-%m-%dT%H:%M:%S")


# -- answers ---------------------------------------------------------------------------------


def order_id(order: dict[str, Any]) -> str:
    value = pick(order, "ReadOnly", "OrderId")
    return "" if value is None else str(value)


def status(order: dict[str, Any]) -> int | None:
    value = pick(order, "ReadOnly", "Status")
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def is_shipped(order: dict[str, Any]) -> bool:
    """Closed (confirmed as shipped) and not cancelled. Extensiv's `Status` is only reliable for
    "cancelled" in RQL lists, so closed-ness is read from `IsClosed` as well."""
    state = status(order)
    if state == STATUS_CANCELED:
        return False
    return bool(pick(order, "ReadOnly", "IsClosed", default=False)) or state == STATUS_CLOSED


def tracking_numbers(raw: Any) -> list[str]:
    """Trimmed, de-duplicated, blanks dropped (one field may hold several, comma separated)."""
    return kit.tracking_numbers(str(raw or ""))


def parse_time(value: Any) -> datetime | None:
    """Extensiv's date-times carry no offset; they are read as UTC."""
    return kit.parse_time(value)


def shipments_of(order: dict[str, Any]) -> list[Shipment]:
    """The parcels of one order (read with `detail=All`) once it is closed; [] before, or when cancelled.

    Each package is a shipment (`{OrderId}-{PackageId}`) with its tracking number and its
    contents mapped through the order items to SKUs. A package with neither contents nor a
    tracking number is an emptied carton (a voided label, repacked elsewhere) and is skipped.
    When no package lists contents, the first one carries every line; an order confirmed without
    any package (freight, will call) is one shipment with the order-level tracking (PRO) number.
    """
    if not is_shipped(order):
        return []
    oid = order_id(order)
    reference = str(pick(order, "ReferenceNum", default="")).strip()
    skus: dict[str, str] = {}
    ordered: dict[str, float] = defaultdict(float)
    for item in pick(order, "OrderItems", default=[]) or []:
        sku = str(pick(item, "ItemIdentifier", "Sku", default="")).strip()
        item_id = pick(item, "ReadOnly", "OrderItemId")
        if item_id is not None:
            skus[str(item_id)] = sku
        ordered[sku] += float(pick(item, "Qty", default=0) or 0)
    carrier = str(pick(order, "RoutingInfo", "Carrier", default="")).strip()
    mode = str(pick(order, "RoutingInfo", "Mode", default="")).strip()
    shipped_at = parse_time(pick(order, "ReadOnly", "ProcessDate")) or parse_time(pick(order, "ReadOnly", "LastModifiedDate"))
    order_tracking = tracking_numbers(pick(order, "RoutingInfo", "TrackingNumber"))

    parcels: list[tuple[str, list[str], dict[str, float]]] = []
    for package in pick(order, "ReadOnly", "Packages", default=[]) or []:
        contents: dict[str, float] = defaultdict(float)
        for content in pick(package, "PackageContents", default=[]) or []:
            sku = skus.get(str(pick(content, "OrderItemId", default="")), "")
            contents[sku] += float(pick(content, "Qty", default=0) or 0)
        numbers = tracking_numbers(pick(package, "TrackingNumber"))
        if not numbers and not any(q > 0 for q in contents.values()):
            continue
        parcels.append((str(pick(package, "PackageId", default=len(parcels) + 1)), numbers, dict(contents)))
    if not parcels:
        parcels = [("order", order_tracking, dict(ordered))]
    elif not any(contents for _, _, contents in parcels):
        first_id, first_numbers, _ = parcels[0]
        parcels[0] = (first_id, first_numbers, dict(ordered))
    if not any(numbers for _, numbers, _ in parcels) and order_tracking:
        first_id, _, first_contents = parcels[0]
        parcels[0] = (first_id, order_tracking, first_contents)  # tracking keyed on the order only

    return [
        Shipment(
            shipment_id=f"{oid}-{package_id}",
            reference=reference,
            warehouse_order_id=oid,
            carrier=carrier,
            service=mode,
            tracking_numbers=numbers,
            shipped_at=shipped_at,
            lines=kit.shipment_lines(contents.items()),
        )
        for package_id, numbers, contents in parcels
    ]


def stock_levels_of(summaries: list[dict[str, Any]]) -> list[StockLevel]:
    """`Summaries` rows -> one StockLevel per SKU and facility.

    Extensiv reports a row per item *qualifier* (e.g. a colour or a lot class); the store sells
    the SKU, so the rows are summed. `Available` (on hand minus allocated and on hold) is what
    can be promised; negative figures (over-allocation) count as 0.
    """
    totals: dict[tuple[str, str], list[int]] = {}
    for row in summaries:
        sku = str(pick(row, "ItemIdentifier", "Sku", default="")).strip()
        facility = pick(row, "FacilityId", default=None)
        if facility is None:
            facility = pick(row, "FacilityIdentifier", "Id", default=None)
        if not sku or facility is None:
            continue
        key = (sku, str(facility))
        total = totals.setdefault(key, [0, 0])
        total[0] += max(0, int(float(pick(row, "OnHand", default=0) or 0)))
        total[1] += max(0, int(float(pick(row, "Available", default=0) or 0)))
    return [StockLevel(sku=sku, warehouse_id=fc, on_hand=on_hand, available=available) for (sku, fc), (on_hand, available) in totals.items()]


def active_skus(items: list[dict[str, Any]]) -> set[str]:
    """The SKUs of `GET /customers/{id}/items` records, deactivated items left out."""
    return {
        str(pick(i, "Sku")).strip()
        for i in items
        if str(pick(i, "Sku", default="")).strip() and not pick(i, "ReadOnly", "Deactivated", default=False)
    }


def error_text(body: Any) -> str:
    """Extensiv's readable message from its error shapes: `{ErrorCode, Hint, Properties}` (REST),
    `{error, error_description}` (the token server), `{Message}` (the web framework)."""
    props = pick(body, "Properties") if isinstance(body, dict) else None
    if isinstance(props, dict | list) and props:
        listed = ", ".join(f"{k}={v}" for k, v in props.items()) if isinstance(props, dict) else ", ".join(map(str, props))
        body = {k: v for k, v in body.items() if str(k).lower() != "properties"} | {"_properties": listed}
    return kit.error_text(body, messages=("ErrorCode", "error", "Hint", "error_description", "Message", "title", "detail", "_properties"),
                          separator=": ")


def is_duplicate_reference(message: str) -> bool:
    """True for a refusal saying the reference number is already used (when the customer has
    Extensiv's "unique reference number" option on)."""
    text = re.sub(r"[\s_-]", "", message.lower())
    return ("referencenum" in text or "reference" in text) and any(
        w in text for w in ("exist", "duplicate", "alreadyinuse", "already", "unique")
    )
