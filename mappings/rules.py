"""The order rules: one pure decision per order - skip it, hold it (and why), or send it.

The engine calls `decide` when an order is received and again whenever the config is reloaded
or a timed hold may have ended; a held order whose cause is fixed then comes out `ready`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from connector.domain import Address, Order, OrderLine, WarehouseLine
from connector.lifecycle import HoldKind, Reason, SkipKind, hold, skip
from mappings.ship_methods import map_ship_method
from mappings.skus import SkuMap, map_lines, unknown_skus

# ISO 3166 countries whose addresses carry no postal code; a missing code there is normal.
COUNTRIES_WITHOUT_POSTAL_CODES = frozenset(
    "AE AG AN AO AW BF BI BJ BO BS BW BZ CD CF CG CI CK CM DJ DM ER FJ GA GD GH GM GQ GY HK IE JM "
    "KI KM KN KP LC ML MO MR MS MW NR NU QA RW SB SC SL SO SR ST SY TD TF TG TK TL TO TT TV UG VU "
    "YE ZW".split()
)


class OrderRules(BaseModel):
    """A merchant's `[merchants.orders]` block: which orders are sent, held or skipped."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    earliest_order_date: date | None = None
    reject_unmapped_ship_methods: bool = True
    require_ship_address: bool = True
    skip_test_orders: bool = False
    hold_minutes: int = Field(default=0, ge=0)
    default_ship_method: str | None = None
    max_line_quantity: int = Field(default=1000, ge=1)


@dataclass(frozen=True)
class Decision:
    """What to do with one order: skip it or hold it (`why`, a typed reason with its details), or
    send it. `hold_until` is set only for timed holds.

    `ship_method` is the warehouse's method (None: let the warehouse use its default) and `lines`
    the mapped warehouse lines; both are filled whenever the rules got far enough to compute them.
    """

    outcome: Literal["skip", "hold", "ready"]
    why: Reason | None = None
    ship_method: str | None = None
    lines: list[WarehouseLine] = field(default_factory=list)
    hold_until: datetime | None = None

    @property
    def reason(self) -> str:
        return self.why.text if self.why else ""

    @property
    def hold_kind(self) -> HoldKind | None:
        return HoldKind(self.why.kind) if self.outcome == "hold" and self.why else None


def missing_address_fields(address: Address) -> list[str]:
    """The ship-to fields a carrier needs that are empty (postal code unless the country has none)."""
    missing = [name for name in ("address1", "city") if not getattr(address, name).strip()]
    if not (address.name or address.company.strip()):
        missing.append("name")
    country = address.country_code.strip().upper()
    if not country:
        missing.append("country_code")
    if not address.postal_code.strip() and country not in COUNTRIES_WITHOUT_POSTAL_CODES:
        missing.append("postal_code")
    return missing


def _resolve_ship_method(order: Order, rules: OrderRules, table: dict[str, str]) -> tuple[str | None, Decision | None]:
    """The warehouse method for the order, or a hold when it is unmapped and unmapped is rejected."""
    mapped = map_ship_method(order.ship_method, table)
    if mapped is not None:
        return mapped, None
    if rules.reject_unmapped_ship_methods:
        return None, Decision("hold", hold(HoldKind.unmapped_ship_method, method=order.ship_method.strip() or "(none)"))
    # Not rejecting: send the cart's own method through, as Integration Manager does.
    return rules.default_ship_method or order.ship_method.strip() or None, None


def _known_spelling(method: str, known: set[str]) -> str | None:
    """The warehouse's own spelling of `method` (exact, then case-insensitive), or None."""
    if method in known:
        return method
    folded = [k for k in known if k.casefold() == method.casefold()]
    return folded[0] if len(folded) == 1 else None


def lines_for_dc(lines: list[OrderLine], dc: str | None) -> list[OrderLine]:
    """The lines this distribution center ships: those naming it, and those naming none (an
    expansion without DC codes). Lines for other DCs belong to another fulfillment house."""
    if not dc:
        return list(lines)
    return [ln for ln in lines if not ln.distribution_center.strip() or ln.distribution_center.strip().upper() == dc.strip().upper()]


def decide(
    order: Order,
    *,
    rules: OrderRules,
    skus: SkuMap,
    ship_methods: dict[str, str],
    known_skus: set[str] | None,
    known_ship_methods: set[str] | None,
    received_at: datetime,
    now: datetime,
    manual_hold: str | None = None,
    dc: str | None = None,
    released: bool = False,
) -> Decision:
    """Apply the order rules in a fixed order: skips, other DCs, manual hold, invalid lines, ship
    method, SKUs known to the warehouse, ship-to address, timed hold; the first that applies wins.

    `known_skus` / `known_ship_methods` are what the warehouse reports (None: it cannot tell,
    so that check is skipped). `received_at` and `now` must both be timezone-aware. `dc`: only
    lines for this distribution center are sent. `released`: an operator released the order, so
    a timed hold no longer applies.
    """
    created = order.created_at.date() if order.created_at else None
    # An order without a creation date cannot be shown to be too old, so it is not skipped.
    if rules.earliest_order_date and created and created < rules.earliest_order_date:
        return Decision("skip", skip(SkipKind.before_earliest_date, earliest=rules.earliest_order_date.isoformat(), created=created.isoformat()))
    if rules.skip_test_orders and order.test_order:
        return Decision("skip", skip(SkipKind.test_order))
    ours = lines_for_dc(order.lines, dc)
    if order.lines and not ours:
        others = sorted({ln.distribution_center.strip() for ln in order.lines})
        return Decision("skip", skip(SkipKind.other_distribution_center, dcs=others))
    if manual_hold is not None:
        return Decision("hold", hold(HoldKind.manual_hold, note=manual_hold))

    mapping = map_lines(ours, skus)
    problems = list(mapping.problems)
    problems += [f"quantity {ln.quantity} for SKU {ln.sku} is more than max_line_quantity {rules.max_line_quantity}"
                 for ln in mapping.lines if ln.quantity > rules.max_line_quantity]
    if problems:
        return Decision("hold", hold(HoldKind.invalid_lines, problems=problems), lines=mapping.lines)
    lines = mapping.lines

    method, held = _resolve_ship_method(order, rules, ship_methods)
    if held is not None:
        return Decision(held.outcome, held.why, lines=lines)
    if known_ship_methods is not None and method is not None:
        spelled = _known_spelling(method, known_ship_methods)
        if spelled is None:
            return Decision("hold", hold(HoldKind.unmapped_ship_method, method=method, at_warehouse=True), method, lines)
        method = spelled

    unknown = unknown_skus(lines, known_skus)
    if unknown:
        return Decision("hold", hold(HoldKind.unknown_sku, skus=list(unknown)), method, lines)

    if rules.require_ship_address:
        missing = missing_address_fields(order.ship_to)
        if missing or not order.ship_to.is_complete():
            return Decision("hold", hold(HoldKind.missing_address, fields=missing), method, lines)

    if rules.hold_minutes > 0 and not released:
        until = received_at + timedelta(minutes=rules.hold_minutes)
        if now < until:
            return Decision("hold", hold(HoldKind.timed_hold, until=until.isoformat()), method, lines, until)

    return Decision("ready", None, method, lines)
