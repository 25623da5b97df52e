"""Which inventory units to draw a quantity from, by the merchant's unit-selection rule.

An inventory ledger (Aligni) keeps stock as *units*: one record per lot, receipt or location,
each with its own quantity. When an order ships, the quantity of an item must be taken from one
or more of them; the rule says in which order:

- `fifo`: the oldest unit first (by `created_at`); `lifo`: the newest first;
- `largest_first` / `smallest_first`: by the quantity available;
- `lot_code` / `datecode`: by ascending lot code or datecode.

Pure: no I/O, no adapter types. A unit is anything with `id`, `quantity_available`,
`created_at`, `lot_code` and `datecode` (adapters.ledger.LedgerUnit has them).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Literal, Protocol, get_args

UnitRule = Literal["fifo", "lifo", "largest_first", "smallest_first", "lot_code", "datecode"]
RULES: tuple[str, ...] = get_args(UnitRule)


class UnitLike(Protocol):
    """What `pick_units` reads of a unit."""

    id: str
    quantity_available: Decimal
    created_at: datetime | None
    lot_code: str
    datecode: str


@dataclass(frozen=True)
class Draw:
    """Take `quantity` from `unit`."""

    unit: Any  # the caller's unit object, handed back untouched
    quantity: Decimal


@dataclass(frozen=True)
class Pick:
    """The draws that cover a quantity, in the order to make them, and what could not be covered."""

    draws: tuple[Draw, ...]
    shortfall: Decimal

    @property
    def total(self) -> Decimal:
        return sum((d.quantity for d in self.draws), Decimal(0))

    @property
    def complete(self) -> bool:
        return self.shortfall == 0


_DIGITS = re.compile(r"(\d+)")


def natural_key(text: str) -> tuple[tuple[int, int | str], ...]:
    """A sort key where digit runs compare as numbers, case-insensitive: LOT-9 before LOT-10.

    Each part is tagged (0 for a number, 1 for text) so a number is never compared with a string.
    """
    parts = _DIGITS.split(text.strip().casefold())
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in parts if p != "")


def _decimal(value: Any, what: str) -> Decimal:
    try:
        d = value if isinstance(value, Decimal) else Decimal(str(value))
    except (InvalidOperation, ValueError) as exc:
        raise ValueError(f"{what} is not a number: {value!r}") from exc
    if not d.is_finite():
        raise ValueError(f"{what} is not a finite number: {value!r}")
    return d


_NEVER = datetime.max.replace(tzinfo=UTC)


def _when(unit: UnitLike) -> datetime | None:
    moment = getattr(unit, "created_at", None)
    if moment is None:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _text(unit: UnitLike, field: str) -> str:
    return (getattr(unit, field, "") or "").strip()


def _sort_key(rule: str):
    """The ordering of one rule. Units missing the rule's field (no date, no lot code) come
    last, because nothing says they should go first; every tie falls back to the unit id, so the
    same units always give the same pick."""

    def by_id(u: UnitLike) -> tuple:
        return natural_key(str(u.id)), str(u.id)  # the raw id settles "7" against "007"

    def fifo(u: UnitLike) -> tuple:
        when = _when(u)
        return (when is None, when or _NEVER, by_id(u))

    def lifo(u: UnitLike) -> tuple:
        # Newest first: negate the timestamp rather than reversing the sort, so ids stay ascending.
        when = _when(u)
        return (when is None, -when.timestamp() if when else 0.0, by_id(u))

    def largest(u: UnitLike) -> tuple:
        return (-_decimal(u.quantity_available, "quantity_available"), by_id(u))

    def smallest(u: UnitLike) -> tuple:
        return (_decimal(u.quantity_available, "quantity_available"), by_id(u))

    def by_field(u: UnitLike) -> tuple:
        value = _text(u, rule)
        return (value == "", natural_key(value), by_id(u))

    keys = {"fifo": fifo, "lifo": lifo, "largest_first": largest, "smallest_first": smallest,
            "lot_code": by_field, "datecode": by_field}
    if rule not in keys:
        raise ValueError(f"unknown unit selection rule {rule!r}; use one of: {', '.join(RULES)}")
    return keys[rule]


def order_units(units: Iterable[UnitLike], rule: UnitRule | str) -> list[UnitLike]:
    """The units in the order `rule` draws from them (units with nothing available included)."""
    return sorted(units, key=_sort_key(rule))


def pick_units(units: Iterable[UnitLike], quantity: Decimal | int | str, rule: UnitRule | str) -> Pick:
    """Draw `quantity` from `units` following `rule`.

    Units with no available quantity are skipped; no draw exceeds a unit's `quantity_available`;
    whatever the units cannot cover is the `shortfall` (the caller decides whether a partial
    consumption is acceptable: Aligni's own integration consumes what it can and reports the rest).
    """
    key = _sort_key(rule)  # an unknown rule fails before anything else
    wanted = _decimal(quantity, "quantity")
    if wanted < 0:
        raise ValueError(f"quantity must not be negative: {quantity!r}")
    candidates = []
    for unit in units:
        available = _decimal(unit.quantity_available, f"unit {unit.id} quantity_available")
        if available > 0:
            candidates.append(unit)
    draws: list[Draw] = []
    left = wanted
    for unit in sorted(candidates, key=key):
        if left <= 0:
            break
        take = min(left, _decimal(unit.quantity_available, "quantity_available"))
        draws.append(Draw(unit, take))
        left -= take
    return Pick(tuple(draws), max(left, Decimal(0)))
