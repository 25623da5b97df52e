"""What the engine expects of an inventory ledger, and how ledger adapters are found.

An inventory ledger is where a manufacturer keeps its finished-goods stock (Aligni, an MRP/PLM
system). It is the second kind of adapter, next to warehouses: when an order ships the engine
consumes each item's stock in the ledger, drawn from *inventory units* (one record per lot or
receipt) at one location and sublocation, chosen by a unit-selection rule
(`mappings.units.pick_units`); the other way, it reads the ledger's stock to push to the cart.

A ledger adapter is a small class with declared attributes (`name`, `Config`, `capabilities`)
and a few async methods, registered under the entry-point group `connector.ledgers`:

    [project.entry-points."connector.ledgers"]
    myerp = "myerp_connector:MyErpLedger"

Like warehouse adapters, ledger adapters know `connector.domain`, `connector.errors` and
`adapters.http`, never the store or the pipeline, and raise `connector.errors.VendorError`
subclasses. A consumption is the ledger's create: a timeout or 5xx on it raises InDoubtError,
and the engine resolves it with `unit()` (see `consumption_outcome`) before anything is retried.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from importlib.metadata import entry_points
from typing import Any, ClassVar, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from adapters.base import AdapterConfig, AdapterContext
from connector.domain import StockLevel
from connector.errors import PermanentError, TransientError

ENTRY_POINT_GROUP = "connector.ledgers"

# Keys of the `[merchants.ledger]` block that belong to the engine, not to the adapter's Config:
# where stock is consumed and read, how units are chosen, and when consumption happens.
ENGINE_KEYS = ("location", "sublocation", "unit_selection", "consume_on")


@dataclass(frozen=True)
class LedgerCapabilities:
    """What a ledger can do; the engine switches its services on and off by these."""

    consume: bool = True  # consume() draws stock down when an order ships
    stock: bool = False  # stock_levels() works: ledger stock can be pushed to the cart
    lots: bool = False  # units carry lot codes and datecodes (the lot_code / datecode rules mean something)
    created_at: bool = False  # units carry their creation time (the fifo / lifo rules mean something)


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True)


class LedgerItem(_Record):
    """An item of the ledger's item master, found by the cart SKU."""

    sku: str
    item_id: str  # the ledger's own id (Aligni: the part id)
    description: str = ""


class LedgerUnit(_Record):
    """One inventory unit: a quantity of one item at one location/sublocation (often one lot)."""

    id: str
    item_id: str
    quantity: Decimal  # on the shelf
    quantity_available: Decimal  # what may be consumed: quantity less builds, transfers, pending adjustments
    location: str = ""
    sublocation: str = ""
    bin: str = ""
    lot_code: str = ""
    datecode: str = ""
    serial: str = ""
    created_at: datetime | None = None


class ConsumeResult(_Record):
    """The outcome of one consumption, as read back from the ledger."""

    item_id: str
    unit_id: str
    quantity: Decimal  # consumed
    quantity_before: Decimal
    quantity_after: Decimal
    # True when the ledger already showed this consumption (a repeat of a call whose reply was
    # lost): nothing was adjusted this time.
    already_applied: bool = False


class InsufficientInventoryError(PermanentError):
    """More was asked of a unit than it has available; nothing was consumed."""


class UnitChangedError(TransientError):
    """The unit is not what the caller read (someone else adjusted it, or it is gone): nothing was
    consumed. Read the units again and pick again; retrying the same call cannot succeed."""


class ReadBackMismatchError(PermanentError):
    """The ledger accepted an adjustment but the unit read back is not what was expected.

    The ledger *has changed*: never retry blindly. A person must look at the unit (its history in
    the ledger shows who changed what). `expected` and `found` are quantities; `found` is None
    when the unit is gone.
    """

    def __init__(self, message: str, *, expected: Decimal, found: Decimal | None, unit_id: str, item_id: str, **kw: Any):
        super().__init__(message, **kw)
        self.expected, self.found, self.unit_id, self.item_id = expected, found, unit_id, item_id


Outcome = Literal["applied", "not_applied", "unknown"]


def consumption_outcome(quantity_before: Decimal, consumed: Decimal, now: LedgerUnit | None) -> Outcome:
    """Whether an in-doubt consumption happened, from the unit read back with `unit()`.

    `quantity_before` is the unit's quantity when the consumption was sent (the snapshot the
    caller passed to `consume`). "unknown" means the unit changed in some other way too: a
    person must decide, and nothing may be resent.
    """
    before, taken = Decimal(quantity_before), Decimal(consumed)
    if now is None:  # a ledger may delete a unit it emptied
        return "applied" if before == taken else "unknown"
    if now.quantity == before - taken:
        return "applied"
    if now.quantity == before:
        return "not_applied"
    return "unknown"


@runtime_checkable
class LedgerAdapter(Protocol):
    """An inventory ledger (item master + inventory units). Consumptions are never repeated blindly."""

    name: ClassVar[str]
    Config: ClassVar[type[AdapterConfig]]
    capabilities: ClassVar[LedgerCapabilities]

    def __init__(self, config: Any, context: AdapterContext) -> None: ...

    async def check(self, location: str = "", sublocation: str = "") -> str:
        """Verify credentials (and, when given, that the location holds stock) with cheap calls;
        return a one-line description. ConfigurationError when something is wrong."""

    async def find_items(self, skus: Iterable[str]) -> dict[str, LedgerItem]:
        """The ledger's items for these cart SKUs; unknown SKUs are absent from the answer."""

    async def units(self, item: LedgerItem, location: str, sublocation: str = "") -> list[LedgerUnit]:
        """The item's inventory units at `location` (and `sublocation` when given), empty ones included."""

    async def consume(self, item: LedgerItem, unit: LedgerUnit, quantity: Decimal, memo: str = "") -> ConsumeResult:
        """Take `quantity` off `unit` (the snapshot the caller picked from), with `memo` in the
        ledger's history. Never more than the unit's quantity available.

        Raises InsufficientInventoryError (nothing consumed), UnitChangedError (the unit is not
        as read: nothing consumed), InDoubtError (the outcome is unknown: resolve with `unit()`
        and `consumption_outcome`), ReadBackMismatchError (adjusted, but not as expected).
        A repeat of a consumption the ledger already shows returns `already_applied=True`.
        """

    async def unit(self, item: LedgerItem, unit_id: str) -> LedgerUnit | None:
        """Read one unit back (None when it no longer exists)."""

    async def stock_levels(self, location: str, sublocation: str = "") -> list[StockLevel]:
        """Stock per SKU at the location/sublocation (capability `stock`); quantities rounded
        down to whole items, never negative; `warehouse_id` names the location."""

    async def aclose(self) -> None: ...


def split_ledger_block(block: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A `[merchants.ledger]` block -> (the engine's keys, validated by the engine's
    `connector.config.LedgerSettings`; the adapter's Config keys)."""
    engine = {k: v for k, v in block.items() if k in ENGINE_KEYS}
    adapter = {k: v for k, v in block.items() if k not in ENGINE_KEYS}
    return engine, adapter


class UnknownLedger(LookupError):
    def __init__(self, name: str, available: list[str]):
        self.name, self.available = name, available
        super().__init__(f"unknown ledger adapter {name!r}; installed: {', '.join(available) or 'none'}")


def available_ledgers() -> dict[str, Any]:
    """Entry points of the `connector.ledgers` group, by name (not yet imported)."""
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def load_ledger(name: str) -> type[LedgerAdapter]:
    eps = available_ledgers()
    if name not in eps:
        raise UnknownLedger(name, sorted(eps))
    return eps[name].load()
