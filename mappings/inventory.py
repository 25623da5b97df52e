"""The inventory quantity pipeline: warehouse stock -> the quantity each store SKU should sell.

Steps, each a small pure function, run in order by `compute`:

1. `select_available` - sum `available` (never on-hand) per warehouse SKU over the selected
   warehouses; a negative figure counts as 0.
2. `in_flight_units` + `subtract_units` - units ordered locally but not yet in the warehouse's
   snapshot are translated to warehouse SKUs (kits exploded, aliases applied, exactly as an
   order is mapped) and taken off the warehouse SKU's pool *before* store quantities are derived.
   Why: a kit and its components, or two cart SKUs aliasing one warehouse SKU, share the same
   units; an order for any of them must lower all of them, and a kit must be computed from
   components that are already reduced.
3. `store_quantities` - warehouse SKUs -> store SKUs: every cart SKU aliasing a warehouse SKU
   gets its quantity; a kit gets min over components of floor(pool / qty per kit) (0 when a
   component is missing); unaliased warehouse SKUs are pushed under their own name only when
   `push_by_alias` is off.
4. `adjust` - buffer, percent (rounded down), cap.
5. `clamp_minimum` - below `minimum_level` the store gets 0.
6. `changes` - only what differs from the last push (or everything on a full push).

The hot loop uses plain dicts and tuples: 50,000 SKUs take a few tens of milliseconds.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from connector.domain import StockLevel
from mappings.skus import SkuMap


class InventoryRules(BaseModel):
    """A merchant's `[merchants.inventory]` block: which stock counts and how much of it to show."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    warehouses: Literal["all"] | list[str] = "all"
    exclude_warehouses: list[str] = Field(default_factory=list)
    push_by_alias: bool = True
    minimum_level: int = Field(default=0, ge=0)
    buffer: int = Field(default=0, ge=0)
    percent: int = Field(default=100, ge=0, le=100)
    max_quantity: int = Field(default=0, ge=0)  # 0 = no cap
    subtract_in_flight: bool = True

    @field_validator("warehouses", "exclude_warehouses", mode="before")
    @classmethod
    def _ids_as_text(cls, value: object) -> object:
        # Warehouse ids are often numbers in TOML (ShipBob fulfillment centers); compare as text.
        if isinstance(value, list):
            return [str(v) for v in value]
        return value

    @model_validator(mode="after")
    def _consistent(self) -> InventoryRules:
        if isinstance(self.warehouses, list) and not self.warehouses:
            raise ValueError('warehouses is an empty list: nothing would be sold; use "all" or name the warehouses')
        if 0 < self.max_quantity < self.minimum_level:
            raise ValueError(
                f"max_quantity {self.max_quantity} is below minimum_level {self.minimum_level}: every item would be 0"
            )
        return self


class QuantityTrace(NamedTuple):
    """How one store SKU's quantity was reached, step by step (for `connector` output and alerts)."""

    sku: str
    available: int  # from the selected warehouses (kits: what the components make)
    after_in_flight: int
    after_buffer: int
    after_percent: int
    after_cap: int
    final: int
    clamped: bool  # the minimum-level clamp turned a positive quantity into 0
    source: str = ""  # the warehouse SKU, or "kit: A x1, B x2"


@dataclass(frozen=True)
class InventoryResult:
    """The quantities to sell per store SKU, with a trace of each."""

    quantities: dict[str, int]
    traces: dict[str, QuantityTrace]

    def explain(self, sku: str) -> str:
        """One line saying how `sku`'s quantity was computed, or that it is not pushed."""
        t = self.traces.get(sku)
        if t is None:
            return f"{sku}: not pushed (no alias, kit or stock record for it)"
        text = (
            f"{sku} ({t.source}): available {t.available}, after in-flight {t.after_in_flight}, "
            f"after buffer {t.after_buffer}, after percent {t.after_percent}, after cap {t.after_cap}"
        )
        return text + (f", below minimum level -> {t.final}" if t.clamped else f" -> {t.final}")


def _is_selected(warehouse_id: str, rules: InventoryRules) -> bool:
    """True when stock in this warehouse counts towards the store."""
    if warehouse_id in rules.exclude_warehouses:
        return False
    return rules.warehouses == "all" or warehouse_id in rules.warehouses


def select_available(levels: Iterable[StockLevel], rules: InventoryRules) -> dict[str, int]:
    """Step 1: available units per warehouse SKU over the selected warehouses.

    Every SKU seen in the snapshot is present, with 0 when only unselected warehouses hold it,
    so the store is told it has none rather than being left with an old figure.
    """
    selected: dict[str, bool] = {}  # few warehouses, many rows: decide once per warehouse
    pool: dict[str, int] = {}
    for level in levels:
        wid = str(level.warehouse_id)
        use = selected.get(wid)
        if use is None:
            use = selected[wid] = _is_selected(wid, rules)
        add = level.available if use and level.available > 0 else 0
        pool[level.sku] = pool.get(level.sku, 0) + add
    return pool


def in_flight_units(in_flight: Mapping[str, int], skus: SkuMap) -> dict[str, int]:
    """Step 2a: in-flight units per store SKU -> units per warehouse SKU (kits exploded, aliases applied)."""
    units: dict[str, int] = {}
    for store_sku, qty in in_flight.items():
        if qty <= 0:
            continue
        kit = skus.kit_for(store_sku)
        parts = kit.items() if kit is not None else ((skus.warehouse_sku(store_sku), 1),)
        for warehouse_sku, per_unit in parts:
            units[warehouse_sku] = units.get(warehouse_sku, 0) + qty * per_unit
    return units


def subtract_units(pool: Mapping[str, int], units: Mapping[str, int]) -> dict[str, int]:
    """Step 2b: the pool less the in-flight units, never below 0."""
    reduced = dict(pool)
    for sku, qty in units.items():
        if sku in reduced:
            reduced[sku] = max(reduced[sku] - qty, 0)
    return reduced


def kit_quantity(components: Mapping[str, int], pool: Mapping[str, int]) -> int:
    """How many whole kits the pool makes: min over components of floor(units / qty per kit)."""
    return min(pool.get(sku, 0) // per_kit for sku, per_kit in components.items())


def store_sources(pool: Mapping[str, int], skus: SkuMap, *, push_by_alias: bool) -> dict[str, str | dict[str, int]]:
    """Which store SKUs are pushed and where each gets its stock: a warehouse SKU or kit components.

    Precedence when one store SKU could come from several places: kit, then alias, then the
    warehouse SKU under its own name (an explicit mapping beats a coincidence of names).
    """
    sources: dict[str, str | dict[str, int]] = {}
    if not push_by_alias:
        aliased = set(skus.aliases.values())
        for warehouse_sku in pool:
            if warehouse_sku not in aliased:
                sources[warehouse_sku] = warehouse_sku
    # Configured aliases are pushed even when the warehouse reports nothing for them: 0 is
    # the safe answer for an item the warehouse cannot ship.
    sources.update(skus.aliases)
    sources.update(skus.kits)
    return sources


def store_quantities(pool: Mapping[str, int], skus: SkuMap, *, push_by_alias: bool) -> dict[str, int]:
    """Step 3: quantity per store SKU from a warehouse-SKU pool (see `store_sources`)."""
    return {
        sku: kit_quantity(src, pool) if isinstance(src, dict) else pool.get(src, 0)
        for sku, src in store_sources(pool, skus, push_by_alias=push_by_alias).items()
    }


def adjust(quantity: int, rules: InventoryRules) -> tuple[int, int, int]:
    """Step 4: (after buffer, after percent rounded down, after cap) for one quantity."""
    after_buffer = max(quantity - rules.buffer, 0)
    after_percent = after_buffer * rules.percent // 100
    after_cap = min(after_percent, rules.max_quantity) if rules.max_quantity > 0 else after_percent
    return after_buffer, after_percent, after_cap


def clamp_minimum(quantity: int, minimum_level: int) -> int:
    """Step 5: below the minimum level the store gets 0 (so it cannot oversell the last units)."""
    return 0 if quantity < minimum_level else max(quantity, 0)


def compute(
    levels: Iterable[StockLevel],
    rules: InventoryRules,
    skus: SkuMap,
    in_flight: Mapping[str, int] | None = None,
) -> InventoryResult:
    """Run steps 1-5: stock levels from the warehouse -> the quantity each store SKU should sell.

    `in_flight` is units per store (cart) SKU ordered but not yet in the warehouse snapshot,
    taken from the orders' cart lines; ignored when `rules.subtract_in_flight` is off.
    """
    pool = select_available(levels, rules)
    reduced = pool
    if rules.subtract_in_flight and in_flight:
        reduced = subtract_units(pool, in_flight_units(in_flight, skus))

    buffer, percent, cap, minimum = rules.buffer, rules.percent, rules.max_quantity, rules.minimum_level
    quantities: dict[str, int] = {}
    traces: dict[str, QuantityTrace] = {}
    for sku, src in store_sources(pool, skus, push_by_alias=rules.push_by_alias).items():
        if isinstance(src, dict):
            available, after_in_flight = kit_quantity(src, pool), kit_quantity(src, reduced)
            source = "kit: " + ", ".join(f"{c} x{q}" for c, q in src.items())
        else:
            available, after_in_flight, source = pool.get(src, 0), reduced.get(src, 0), src
        # Step 4 and 5 inlined (same arithmetic as `adjust` / `clamp_minimum`): this loop runs
        # once per SKU of a large catalogue.
        after_buffer = after_in_flight - buffer if after_in_flight > buffer else 0
        after_percent = after_buffer * percent // 100
        after_cap = after_percent if cap <= 0 or after_percent <= cap else cap
        final = 0 if after_cap < minimum else after_cap
        quantities[sku] = final
        traces[sku] = QuantityTrace(
            sku, available, after_in_flight, after_buffer, after_percent, after_cap, final, final != after_cap, source
        )
    return InventoryResult(quantities, traces)


def changes(computed: Mapping[str, int], last_pushed: Mapping[str, int], *, full: bool) -> dict[str, int]:
    """Step 6: what to send - SKUs whose quantity differs from the last push, or all when `full`.

    A SKU pushed before but no longer computed (its alias was removed) is not sent: nothing
    says what it should be, and the store keeps its last figure.
    """
    if full:
        return dict(computed)
    return {sku: qty for sku, qty in computed.items() if last_pushed.get(sku) != qty}
