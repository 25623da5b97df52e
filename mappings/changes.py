"""What changed between two copies of an order, in words an operator can act on (pure).

Used when UltraCart sends an order again (a corrected address, edited items) and when it tells
the connector of an edit after the order reached the warehouse.
"""

from __future__ import annotations

from decimal import Decimal

from connector.domain import Address, Order

ADDRESS_FIELDS = ("first_name", "last_name", "company", "address1", "address2", "city", "state", "postal_code", "country_code", "phone")


def address_changes(old: Address, new: Address) -> list[str]:
    return [f"{f} {getattr(old, f) or '(blank)'!r} -> {getattr(new, f) or '(blank)'!r}"
            for f in ADDRESS_FIELDS if getattr(old, f) != getattr(new, f)]


def _quantities(order: Order) -> dict[str, Decimal]:
    out: dict[str, Decimal] = {}
    for line in order.lines:
        if line.quantity is not None:
            out[line.sku] = out.get(line.sku, Decimal(0)) + line.quantity - line.quantity_refunded
    return out


def line_changes(old: Order, new: Order) -> list[str]:
    before, after = _quantities(old), _quantities(new)
    out = []
    for sku in sorted(set(before) | set(after)):
        a, b = before.get(sku), after.get(sku)
        if a == b:
            continue
        if a is None:
            out.append(f"added {sku} x{b.normalize():f}")
        elif b is None:
            out.append(f"removed {sku}")
        else:
            out.append(f"{sku} x{a.normalize():f} -> x{b.normalize():f}")
    return out


def describe_changes(old: Order, new: Order) -> list[str]:
    """Each difference that matters to fulfilment: ship-to address, lines and quantities, method,
    notes; an empty list when the copies would be fulfilled the same way."""
    out = [f"ship-to {c}" for c in address_changes(old.ship_to, new.ship_to)]
    out += line_changes(old, new)
    if old.ship_method != new.ship_method:
        out.append(f"ship method {old.ship_method!r} -> {new.ship_method!r}")
    for name in ("special_instructions", "gift_message", "requested_ship_date"):
        if getattr(old, name) != getattr(new, name):
            out.append(f"{name.replace('_', ' ')} changed")
    return out
