"""UltraCart Item JSON -> the small catalog records onboarding compares orders against.

Only what SKU matching needs: the SKU (`merchant_item_id`), the description, whether the item is
a kit and its components (`kit_definition.components`, which needs the `kit_definition`
expansion). Tolerant like the order parser: odd values become empty defaults rather than errors,
because one strange item must not hide the rest of a catalog.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any


@dataclass(frozen=True)
class KitComponent:
    """One component of a kit item: its SKU and how many of it one kit holds."""

    sku: str
    quantity: Decimal | None  # None: UltraCart sent none or nothing readable
    description: str = ""


@dataclass(frozen=True)
class CatalogItem:
    """One item of the merchant's UltraCart catalog."""

    sku: str  # merchant_item_id, exactly as UltraCart spells it (no trimming: mismatches are the point)
    description: str = ""
    kit: bool = False
    components: tuple[KitComponent, ...] = ()
    kit_component_only: bool = False  # sold only inside kits
    inactive: bool = False
    item_oid: int | None = None  # merchant_item_oid


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        return str(value)  # numeric SKUs turn up as numbers
    return ""


def _flag(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "yes", "1")
    return value is True or (isinstance(value, int) and not isinstance(value, bool) and value == 1)


def _quantity(value: Any) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = Decimal(value) if isinstance(value, int) else Decimal(str(value).strip())
    except (InvalidOperation, ValueError, TypeError):
        return None
    return number if number.is_finite() else None


def parse_item(raw: Any) -> CatalogItem | None:
    """One raw UltraCart Item -> CatalogItem; None when it has no SKU (nothing can refer to it)."""
    if not isinstance(raw, dict):
        return None
    sku = _text(raw.get("merchant_item_id"))
    if not sku.strip():
        return None
    definition = raw.get("kit_definition")
    entries = definition.get("components") if isinstance(definition, dict) else None
    components = []
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict):
            continue
        component_sku = _text(entry.get("component_merchant_item_id"))
        if component_sku.strip():
            components.append(KitComponent(component_sku, _quantity(entry.get("quantity")),
                                           _text(entry.get("component_description"))))
    oid = raw.get("merchant_item_oid")
    return CatalogItem(
        sku=sku,
        description=_text(raw.get("description")),
        # A definition with components makes a kit even when the flag is missing from the payload.
        kit=_flag(raw.get("kit")) or bool(components),
        components=tuple(components),
        kit_component_only=_flag(raw.get("kit_component_only")),
        inactive=_flag(raw.get("inactive")),
        item_oid=oid if isinstance(oid, int) and not isinstance(oid, bool) else None,
    )
