"""What changed between two copies of an order, in words an operator can act on (pure).

Used when UltraCart sends an order again (a corrected address, edited items) and when it tells
the connector of an edit after the order reached the warehouse.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from connector.domain import Address, Order
from connector.lifecycle import CancelKind, Reason, cancel

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


# ---------------------------------------------------------------------------------------- after hand-off
@dataclass(frozen=True)
class CartChange:
    """What a fresh copy of an order from the cart says, compared with the copy the connector
    acted on: whether it is cancelled (rejected, refunded in full, deleted), held or released,
    and what else changed that matters to fulfilment."""

    cancel: Reason | None = None
    hold: bool | None = None  # True: the cart holds it; False: the cart released it; None: no news
    edits: tuple[str, ...] = ()
    refunds: tuple[str, ...] = ()  # lines refunded in part

    @property
    def anything(self) -> bool:
        return bool(self.cancel or self.hold is not None or self.edits or self.refunds)


def fully_refunded(order: Order) -> bool:
    lines = [ln for ln in order.lines if not ln.kit_component and ln.quantity is not None]
    return bool(lines) and all(ln.quantity_refunded >= ln.quantity for ln in lines)


def cart_change(old: Order | None, new: Order, *, event: str = "", was_held_by_cart: bool = False) -> CartChange:
    """Read a cart copy (and the event that brought it) against the copy acted on."""
    if event == "order_delete":
        return CartChange(cancel=cancel(CancelKind.deleted))
    if new.stage.strip().casefold() == "rejected" or new.rejected_at is not None:
        return CartChange(cancel=cancel(CancelKind.rejected, detail=new.reject_reason))
    if fully_refunded(new):
        return CartChange(cancel=cancel(CancelKind.refunded, detail=new.refund_reason))
    held = new.on_hold or event == "fulfillment_hold"
    hold = True if held and not was_held_by_cart else False if was_held_by_cart and not held else None
    if old is None:
        return CartChange(hold=hold)
    before = {ln.sku: ln.quantity_refunded for ln in old.lines}
    refunds = tuple(f"{ln.sku}: {(ln.quantity_refunded - before.get(ln.sku, 0)).normalize():f} more refunded"
                    for ln in new.lines if ln.quantity_refunded > before.get(ln.sku, 0))
    edits = [f"ship-to {c}" for c in address_changes(old.ship_to, new.ship_to)]
    if not refunds:
        edits += line_changes(old, new)
    if old.ship_method != new.ship_method:
        edits.append(f"ship method {old.ship_method!r} -> {new.ship_method!r}")
    return CartChange(hold=hold, edits=tuple(edits), refunds=refunds)
