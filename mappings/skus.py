"""Cart SKUs -> warehouse SKUs: aliases, kits, and the order lines a warehouse should pick.

Pure functions: the caller reads the alias file and the config; this module only transforms.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from decimal import Decimal

from connector.domain import OrderLine, WarehouseLine

CSV_HEADER = ("cart_sku", "warehouse_sku")


class AliasFileError(ValueError):
    """An alias CSV is malformed; the message names the file (source) and the line."""


def _fold_index(mapping: dict[str, object]) -> dict[str, object]:
    """Case-folded key -> value, leaving out folds that are ambiguous (two keys, two values).

    An ambiguous fold must not guess: the SKU then passes through unmapped and the warehouse's
    unknown-SKU check holds the order, which is safer than picking the wrong product.
    """
    index: dict[str, object] = {}
    ambiguous: set[str] = set()
    for key, value in mapping.items():
        folded = key.casefold()
        if folded in index and index[folded] != value:
            ambiguous.add(folded)
        index.setdefault(folded, value)
    for folded in ambiguous:
        del index[folded]
    return index


@dataclass(frozen=True)
class SkuMap:
    """A merchant's SKU translation: aliases (cart SKU -> warehouse SKU) and kits.

    `kits` maps a cart kit SKU to its warehouse component SKUs and the quantity of each per kit.
    Lookups try an exact match, then a case-insensitive one. A kit wins over an alias.
    """

    aliases: dict[str, str] = field(default_factory=dict)
    kits: dict[str, dict[str, int]] = field(default_factory=dict)
    _aliases_folded: dict = field(init=False, repr=False, compare=False)
    _kits_folded: dict = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Own copies, so that a caller mutating its dict cannot change a frozen map.
        aliases = {str(k).strip(): str(v).strip() for k, v in self.aliases.items()}
        kits = {str(k).strip(): dict(v) for k, v in self.kits.items()}
        for kit_sku, components in kits.items():
            if not components:
                raise ValueError(f"kit {kit_sku!r} has no components")
            for component, qty in components.items():
                if isinstance(qty, bool) or not isinstance(qty, int) or qty < 1:
                    raise ValueError(
                        f"kit {kit_sku!r}: component {component!r} needs a whole quantity >= 1, got {qty!r}"
                    )
        object.__setattr__(self, "aliases", aliases)
        object.__setattr__(self, "kits", kits)
        object.__setattr__(self, "_aliases_folded", _fold_index(aliases))
        object.__setattr__(self, "_kits_folded", _fold_index(kits))

    def kit_for(self, cart_sku: str) -> dict[str, int] | None:
        """The components of `cart_sku` when it is a configured kit, else None."""
        sku = cart_sku.strip()
        found = self.kits.get(sku)
        return found if found is not None else self._kits_folded.get(sku.casefold())

    def alias_for(self, cart_sku: str) -> str | None:
        """The warehouse SKU configured for `cart_sku`, or None when it has no alias."""
        sku = cart_sku.strip()
        found = self.aliases.get(sku)
        return found if found is not None else self._aliases_folded.get(sku.casefold())

    def warehouse_sku(self, cart_sku: str) -> str:
        """The warehouse SKU for a (non-kit) cart SKU: its alias, else the SKU itself."""
        return self.alias_for(cart_sku) or cart_sku.strip()


def load_alias_csv(text: str, source: str = "") -> dict[str, str]:
    """Parse an alias file with the header `cart_sku,warehouse_sku` into {cart SKU: warehouse SKU}.

    Tolerates a BOM, blank lines, `#` comment lines, spaces around values and trailing empty
    columns. Raises AliasFileError naming `source` and the line for a missing header, a row
    without both SKUs, or a cart SKU mapped twice to different warehouse SKUs.
    """
    where = source or "alias file"
    aliases: dict[str, str] = {}
    first_seen: dict[str, int] = {}
    header_seen = False
    for line_no, raw in enumerate(text.lstrip("\ufeff").splitlines(), start=1):
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        fields = [f.strip() for f in next(csv.reader([raw], skipinitialspace=True))]
        while fields and not fields[-1]:
            fields.pop()  # "A,B," from spreadsheet exports
        if not header_seen:
            if tuple(f.lower() for f in fields) != CSV_HEADER:
                raise AliasFileError(
                    f"{where}: line {line_no}: expected the header 'cart_sku,warehouse_sku', got {raw.strip()!r}"
                )
            header_seen = True
            continue
        if len(fields) != 2 or not all(fields):
            raise AliasFileError(f"{where}: line {line_no}: expected 'cart_sku,warehouse_sku', got {raw.strip()!r}")
        cart_sku, warehouse_sku = fields
        previous = aliases.get(cart_sku)
        if previous is not None and previous != warehouse_sku:
            raise AliasFileError(
                f"{where}: line {line_no}: cart SKU {cart_sku!r} is mapped to {warehouse_sku!r} "
                f"but line {first_seen[cart_sku]} maps it to {previous!r}"
            )
        aliases[cart_sku] = warehouse_sku
        first_seen.setdefault(cart_sku, line_no)
    return aliases


@dataclass(frozen=True)
class LineMapping:
    """The warehouse lines of one order, and what is wrong with its cart lines (empty when fine)."""

    lines: list[WarehouseLine]
    problems: list[str]


def _whole_quantity(line: OrderLine, problems: list[str]) -> int | None:
    """The line's quantity as a positive int, or None after recording why it is not one."""
    if line.quantity is None:
        problems.append(f"no quantity for SKU {line.sku}")
        return None
    qty = Decimal(line.quantity)
    if not qty.is_finite():
        problems.append(f"invalid quantity {qty} for SKU {line.sku}")
    elif qty != qty.to_integral_value():
        problems.append(f"fractional quantity {qty.normalize():f} for SKU {line.sku}")
    elif qty <= 0:
        problems.append(f"{'zero' if qty == 0 else 'negative'} quantity {int(qty)} for SKU {line.sku}")
    else:
        return int(qty)
    return None


def _parent_of(
    line: OrderLine, kit_parents: dict[int, OrderLine], kit_lines: list[OrderLine]
) -> OrderLine | None:
    """The kit parent line a component line belongs to, when that parent was sent."""
    if not line.kit_component:
        return None
    if line.parent_line_no is not None:
        return kit_parents.get(line.parent_line_no)
    if line.parent_sku:
        # No index: fall back to the last kit line before it with the parent's SKU.
        candidates = [p for p in kit_lines if p.sku == line.parent_sku and p is not line]
        return candidates[-1] if candidates else None
    return None


def _fates(lines: list[OrderLine], skus: SkuMap) -> list[str]:
    """For each line: "explode" (configured kit), "keep", or "drop" (stood in for by other lines)."""
    kit_lines = [ln for ln in lines if ln.kit]
    kit_parents = {ln.line_no: ln for ln in kit_lines}
    parents = [_parent_of(ln, kit_parents, kit_lines) for ln in lines]
    has_sent_children = {id(p) for p in parents if p is not None}
    parent_by_line = {id(ln): p for ln, p in zip(lines, parents)}

    def covered_by_exploded_kit(line: OrderLine) -> bool:
        # Walk up the parent chain (kits may nest); `seen` guards against a malformed cycle.
        seen: set[int] = set()
        parent = parent_by_line.get(id(line))
        while parent is not None and id(parent) not in seen:
            if skus.kit_for(parent.sku) is not None:
                return True
            seen.add(id(parent))
            parent = parent_by_line.get(id(parent))
        return False

    fates = []
    for line in lines:
        if covered_by_exploded_kit(line):
            fates.append("drop")  # its parent is exploded from the config: avoid double counting
        elif skus.kit_for(line.sku) is not None:
            fates.append("explode")
        elif line.kit and id(line) in has_sent_children:
            fates.append("drop")  # the cart sent the components: they are what gets picked
        else:
            # Includes a kit parent sent without components: dropping it would lose the item.
            fates.append("keep")
    return fates


def map_lines(lines: list[OrderLine], skus: SkuMap) -> LineMapping:
    """Turn an order's cart lines into warehouse lines: explode kits, apply aliases, merge SKUs.

    Warehouse lines with the same SKU are merged (quantities summed; the first line's
    description, price and cart SKU kept). Lines with a fractional, zero or negative quantity
    are left out and reported in `problems`, as is an order without lines.
    """
    if not lines:
        return LineMapping(lines=[], problems=["order has no items"])
    problems: list[str] = []
    merged: dict[str, WarehouseLine] = {}  # insertion order = the order's line order

    def add(sku: str, qty: int, cart_sku: str, description: str = "", unit_price: Decimal | None = None) -> None:
        existing = merged.get(sku)
        if existing is None:
            merged[sku] = WarehouseLine(
                sku=sku, quantity=qty, description=description, unit_price=unit_price, cart_sku=cart_sku
            )
        else:
            existing.quantity += qty

    for line, fate in zip(lines, _fates(lines, skus)):
        if fate == "drop":
            continue
        if line.quantity is not None and line.quantity_refunded > 0:
            # Refunded units stay on the cart's line but are not to be shipped.
            if line.quantity - line.quantity_refunded <= 0:
                continue
            line = line.model_copy(update={"quantity": line.quantity - line.quantity_refunded, "quantity_refunded": Decimal(0)})
        qty = _whole_quantity(line, problems)
        if qty is None:
            continue
        cart_sku = line.sku.strip()
        if fate == "explode":
            for component, per_kit in (skus.kit_for(cart_sku) or {}).items():
                add(component, qty * per_kit, cart_sku)  # the kit's price belongs to no component
        else:
            add(skus.warehouse_sku(cart_sku), qty, cart_sku, line.description, line.unit_price)
    return LineMapping(lines=list(merged.values()), problems=problems)


def unknown_skus(lines: list[WarehouseLine], known: set[str] | None) -> list[str]:
    """Warehouse SKUs of `lines` the warehouse does not know, sorted; [] when it cannot tell (None)."""
    if known is None:
        return []
    return sorted({ln.sku for ln in lines if ln.sku not in known})
