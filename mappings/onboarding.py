"""Onboarding a merchant: the two things that break go-lives, found before the first order (pure).

- SKU match: the store's catalog against the warehouse's SKUs: exact matches, near matches
  (case, whitespace, dashes, leading zeros) proposed as aliases, kits checked component by
  component, store items with no warehouse SKU, warehouse SKUs never sold.
- Ship methods: the methods recent orders used against the mapping and the warehouse's catalog,
  with a proposed mapping for each unmapped one (by carrier and speed).
- Coverage: what share of recent order lines would map, and which SKUs would hold which orders.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from connector.domain import WarehouseLine
from mappings.carriers import canonical_carrier
from mappings.ship_methods import map_ship_method, split_method
from mappings.skus import SkuMap

_SEPARATORS = re.compile(r"[\s_\-./]+")


def near_key(sku: str) -> str:
    """What two spellings of one SKU share: case, whitespace, dashes/underscores/dots and leading
    zeros of each number ignored ("Bone-05lb" ~ "BONE 5LB")."""
    parts = _SEPARATORS.split(sku.strip().casefold())
    return "".join(p.lstrip("0") or "0" if p.isdigit() else re.sub(r"(?<![0-9])0+(?=[0-9])", "", p) for p in parts if p)


class CatalogEntry(Protocol):
    """A store item as onboarding reads it (adapters.ultracart.catalog.CatalogItem is one): its
    SKU, whether it is retired, and for a kit its components (SKUs, or records with a `.sku`)."""

    sku: str
    inactive: bool
    components: Any


def _component_skus(item: CatalogEntry) -> list[str]:
    return [c if isinstance(c, str) else c.sku for c in (item.components or ())]


@dataclass
class SkuReport:
    exact: list[str] = field(default_factory=list)  # store SKU = warehouse SKU (or already aliased to a known one)
    aliased: dict[str, str] = field(default_factory=dict)  # already mapped by the config: store SKU -> warehouse SKU
    proposed: dict[str, str] = field(default_factory=dict)  # near matches: store SKU -> warehouse SKU (review, then use)
    ambiguous: dict[str, list[str]] = field(default_factory=dict)  # near matches to several warehouse SKUs
    kits_ok: list[str] = field(default_factory=list)
    kits_missing: dict[str, list[str]] = field(default_factory=dict)  # kit -> components the warehouse lacks
    missing: list[str] = field(default_factory=list)  # store items no warehouse SKU matches
    never_sold: list[str] = field(default_factory=list)  # warehouse SKUs no store item maps to
    inactive: list[str] = field(default_factory=list)  # retired store items: not checked (nobody can buy them)


def match_skus(items: Iterable[CatalogEntry], warehouse_skus: set[str], skus: SkuMap) -> SkuReport:
    r = SkuReport()
    by_near: dict[str, list[str]] = defaultdict(list)
    for w in sorted(warehouse_skus):
        by_near[near_key(w)].append(w)
    used: set[str] = set()

    def resolve(sku: str) -> tuple[str, str]:
        """(warehouse SKU, how) for a store SKU: exact, aliased, proposed, ambiguous, missing."""
        target = skus.warehouse_sku(sku)
        if target != sku and target in warehouse_skus:
            return target, "aliased"
        if sku in warehouse_skus:
            return sku, "exact"
        near = by_near.get(near_key(sku), [])
        if len(near) == 1:
            return near[0], "proposed"
        return ("|".join(near), "ambiguous") if near else ("", "missing")

    for item in items:
        sku = item.sku.strip()
        if not sku:
            continue
        if getattr(item, "inactive", False):
            r.inactive.append(sku)
            continue
        kit = skus.kit_for(sku) or _component_skus(item)
        if kit:
            lacking = []
            for component in kit:
                target, how = resolve(component)
                if how in ("exact", "aliased"):
                    used.add(target)
                elif how == "proposed":
                    r.proposed[component] = target
                    used.add(target)
                else:
                    lacking.append(component)
            if lacking:
                r.kits_missing[sku] = lacking
            else:
                r.kits_ok.append(sku)
            continue
        target, how = resolve(sku)
        if how == "exact":
            r.exact.append(sku)
            used.add(target)
        elif how == "aliased":
            r.aliased[sku] = target
            used.add(target)
        elif how == "proposed":
            r.proposed[sku] = target
            used.add(target)
        elif how == "ambiguous":
            r.ambiguous[sku] = target.split("|")
        else:
            r.missing.append(sku)
    r.never_sold = sorted(warehouse_skus - used)
    return r


# ---------------------------------------------------------------------------------------- ship methods
_SPEED = (("overnight", ("overnight", "next day", "nextday", "1 day", "1day", "express saver", "priority overnight")),
          ("2day", ("2day", "2 day", "second day", "two day", "2nd day")),
          ("3day", ("3 day", "3day", "three day", "express")),
          ("ground", ("ground", "standard", "economy", "parcel select", "first class", "media mail", "home delivery", "smartpost")),
          ("priority", ("priority",)))


def speed(text: str) -> str:
    low = _SEPARATORS.sub(" ", text.casefold())
    for name, words in _SPEED:
        if any(w in low for w in words):
            return name
    return ""


def suggest_method(cart_method: str, warehouse_methods: Iterable[str]) -> str | None:
    """The warehouse method most like a cart method: same carrier and speed, else same speed,
    else same carrier; None when nothing shares either."""
    carrier, service = split_method(cart_method)
    want_carrier, want_speed = canonical_carrier(carrier or service), speed(service or cart_method)
    best, best_score = None, 0
    for m in sorted(warehouse_methods):
        score = 2 * bool(want_speed and speed(m) == want_speed) + bool(want_carrier and canonical_carrier(m) == want_carrier)
        if score > best_score:
            best, best_score = m, score
    return best


@dataclass
class MethodReport:
    used: Counter = field(default_factory=Counter)  # cart method -> orders
    mapped: dict[str, str] = field(default_factory=dict)
    mapped_unknown_at_warehouse: dict[str, str] = field(default_factory=dict)  # mapped to a method the warehouse lacks
    unmapped: dict[str, str | None] = field(default_factory=dict)  # cart method -> proposed warehouse method
    held_orders: dict[str, list[str]] = field(default_factory=dict)  # cart method -> orders it would have held


def check_methods(orders_by_method: dict[str, list[str]], table: dict[str, str], warehouse_methods: set[str] | None,
                  default: str | None = None) -> MethodReport:
    r = MethodReport(used=Counter({m: len(ids) for m, ids in orders_by_method.items()}))
    folded = {w.casefold(): w for w in warehouse_methods or ()}
    for method, ids in sorted(orders_by_method.items(), key=lambda kv: -len(kv[1])):
        target = map_ship_method(method, table, default=default)
        if target is None:
            r.unmapped[method] = suggest_method(method, warehouse_methods or ()) if warehouse_methods else None
            r.held_orders[method] = ids
        elif warehouse_methods is not None and target.casefold() not in folded:
            r.mapped_unknown_at_warehouse[method] = target
            r.held_orders[method] = ids
        else:
            r.mapped[method] = target
    return r


# ---------------------------------------------------------------------------------------- coverage
@dataclass
class Coverage:
    lines: int = 0  # warehouse lines of the recent orders (after aliases and kits)
    mapped_lines: int = 0  # ... whose SKU the warehouse knows
    holding_skus: dict[str, list[str]] = field(default_factory=dict)  # store SKU -> orders it would hold
    targets: dict[str, str] = field(default_factory=dict)  # store SKU -> the warehouse SKU it maps to

    @property
    def share(self) -> float:
        return self.mapped_lines / self.lines if self.lines else 1.0


def line_coverage(orders: Iterable[tuple[str, list[WarehouseLine]]], known: set[str]) -> Coverage:
    """`orders`: (order id, its mapped warehouse lines) of recent orders, as `map_lines` makes
    them. A line maps when the warehouse knows its SKU; the others are named by the store SKU
    they came from (a kit's, for a component), with the orders each would hold."""
    c = Coverage()
    holding: dict[str, set[str]] = defaultdict(set)
    for order_id, lines in orders:
        for line in lines:
            c.lines += 1
            if line.sku in known:
                c.mapped_lines += 1
            else:
                cart = line.cart_sku or line.sku
                holding[cart].add(order_id)
                c.targets.setdefault(cart, line.sku)
    c.holding_skus = {sku: sorted(ids) for sku, ids in sorted(holding.items(), key=lambda kv: (-len(kv[1]), kv[0]))}
    c.targets = {sku: c.targets[sku] for sku in c.holding_skus}
    return c


def aliases_csv(proposed: dict[str, str]) -> str:
    """The proposed aliases as the CSV `[merchants.skus] aliases_file` reads."""
    import csv
    import io

    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["cart_sku", "warehouse_sku"])
    for cart, warehouse in sorted(proposed.items()):
        w.writerow([cart, warehouse])
    return out.getvalue()
