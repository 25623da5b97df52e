"""The onboarding sample builders: a catalog and an order history whose mismatches a test plants."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta

import pytest

from adapters.ultracart import parse_item, parse_order
from connector.sandbox.samples import EST, make_catalog, make_item, order_history


def test_history_plants_exactly_the_skus_and_methods_asked_for():
    end = datetime(2026, 3, 2, tzinfo=EST)
    skus = ["BONE-5LB", "bone-5lb", " TREAT", "LEASH_RED", "00123", "MYSTERY", "GIFT-SET"]
    methods = ["USPS: Priority Mail", "Pigeon: Carrier Express", "ups: ground"]
    raw = order_history(days=7, per_day=3, skus=skus, ship_methods=methods, kits={"GIFT-SET": {"BONE-5LB": 1, "TREAT": 2}},
                        end=end)
    orders = [parse_order(o) for o in raw]
    assert len(orders) == 21 and len({o.order_id for o in orders}) == 21
    assert all(end - timedelta(days=7) <= o.created_at < end for o in orders)
    assert Counter(o.ship_method for o in orders) == dict.fromkeys(methods, 7)
    sold = Counter(i["merchant_item_id"] for o in raw for i in o["items"] if not i["kit_component"])
    assert sold == dict.fromkeys(skus, 3)  # spelt exactly as planted: " TREAT" keeps its space in the JSON
    # The parser trims: 3 planted " TREAT" lines, plus the TREAT component line of each of the 3 kits.
    assert Counter(l.sku for o in orders for l in o.lines)["TREAT"] == 6
    kit_orders = [o for o in orders if any(l.kit for l in o.lines)]
    assert len(kit_orders) == 3
    assert [(l.sku, l.quantity, l.parent_sku) for l in kit_orders[0].lines] == [
        ("GIFT-SET", 1, ""), ("BONE-5LB", 1, "GIFT-SET"), ("TREAT", 2, "GIFT-SET")]
    assert all(o.stage == "Completed Order" for o in orders)
    assert order_history(days=7, per_day=3, skus=skus, ship_methods=methods, end=end) == order_history(
        days=7, per_day=3, skus=skus, ship_methods=methods, end=end)  # deterministic


def test_history_with_several_lines_and_an_open_stage():
    raw = order_history(days=1, per_day=2, skus=["A", "B", "C"], lines=2, quantity=3, stage="Shipping Department")
    assert [[(i["merchant_item_id"], i["quantity"]) for i in o["items"]] for o in raw] == [
        [("A", 3), ("B", 3)], [("C", 3), ("A", 3)]]
    assert all(o["current_stage"] == "Shipping Department" and o["shipping"]["tracking_numbers"] == [""] for o in raw)
    with pytest.raises(ValueError, match="at least one SKU"):
        order_history(skus=[])


def test_catalog_items_read_back_as_catalog_records():
    catalog = make_catalog(["BONE-5LB", "0012345", "bone-5lb"], kits={"GIFT-SET": {"BONE-5LB": 1, "TREAT": 2}})
    items = [parse_item(i) for i in catalog]
    assert [i.sku for i in items] == ["BONE-5LB", "0012345", "bone-5lb", "GIFT-SET"]
    assert items[0].description == "TJ's Doggie Bones (5 lbs.)" and not items[0].kit
    assert items[-1].kit and [(c.sku, c.quantity) for c in items[-1].components] == [("BONE-5LB", 1), ("TREAT", 2)]
    assert len({i.item_oid for i in items}) == 4
    assert make_item("X", inactive=True, kit_component_only=True)["inactive"] is True
    assert [i["merchant_item_id"] for i in make_catalog()][-1] == "GIFT-SET"  # the demo catalog with its kit
