"""Onboarding analysis: the mismatches that break go-lives, found from the catalogs alone."""

from __future__ import annotations

from decimal import Decimal

from adapters.ultracart.catalog import CatalogItem, KitComponent
from connector.domain import OrderLine
from mappings.onboarding import aliases_csv, check_methods, line_coverage, match_skus, near_key, suggest_method
from mappings.skus import SkuMap, load_alias_csv, map_lines


def kit(sku: str, **components: int) -> CatalogItem:
    return CatalogItem(sku, kit=True, components=tuple(KitComponent(c.replace("_", "-"), Decimal(q)) for c, q in components.items()))

WAREHOUSE = {"BONE-5LB", "TREAT", "LEASH-RED", "BOWL-L", "COLLAR-M", "SKU-00042", "SPARE-PART"}


def test_near_keys_ignore_case_spacing_dashes_and_leading_zeros():
    assert near_key("Bone 5lb") == near_key("BONE-5LB") == near_key(" bone_5LB ")
    assert near_key("SKU-42") == near_key("sku 00042") == near_key("SKU.042")
    assert near_key("SKU-42") != near_key("SKU-43")


def test_catalog_match_finds_exact_near_kits_and_missing():
    items = [CatalogItem("BONE-5LB"), CatalogItem("treat "), CatalogItem("Leash Red"), CatalogItem("SKU-42"),
             kit("GIFT-SET", BONE_5LB=1, TREAT=2), kit("BOX-SET", BONE_5LB=1, MUG=1),
             CatalogItem("MYSTERY"), CatalogItem("Bowl"), CatalogItem("OLD-THING", inactive=True)]
    r = match_skus(items, WAREHOUSE, SkuMap(aliases={"Bowl": "BOWL-L"}, kits={}))
    assert r.exact == ["BONE-5LB"]
    assert r.aliased == {"Bowl": "BOWL-L"}
    assert r.proposed == {"treat": "TREAT", "Leash Red": "LEASH-RED", "SKU-42": "SKU-00042"}  # SKUs are compared as orders carry them: trimmed
    assert r.kits_ok == ["GIFT-SET"] and r.kits_missing == {"BOX-SET": ["MUG"]}
    assert r.missing == ["MYSTERY"]
    assert r.inactive == ["OLD-THING"]  # retired: nobody can order it, so it is not a mismatch
    assert r.never_sold == ["COLLAR-M", "SPARE-PART"]
    # The proposed CSV loads as an aliases_file.
    assert load_alias_csv(aliases_csv(r.proposed), source="proposed.csv") == {"Leash Red": "LEASH-RED", "SKU-42": "SKU-00042", "treat": "TREAT"}


def test_ship_methods_are_proposed_by_carrier_and_speed():
    warehouse = {"Standard", "Expedited", "2-Day", "Overnight", "USPS Priority", "UPS Ground"}
    assert suggest_method("UPS: Ground", warehouse) == "UPS Ground"
    assert suggest_method("FedEx: 2Day", warehouse) == "2-Day"
    assert suggest_method("FedEx: Priority Overnight", warehouse) == "Overnight"
    assert suggest_method("USPS: Priority Mail", warehouse) == "USPS Priority"
    assert suggest_method("Pigeon: Carrier", warehouse) is None
    r = check_methods({"UPS: Ground": ["1", "2"], "FedEx: 2Day": ["3"], "USPS: First Class": ["4"], "Pigeon": ["5"]},
                      {"UPS: Ground": "UPS Ground", "USPS: First Class": "First Class Mail"}, warehouse)
    assert r.mapped == {"UPS: Ground": "UPS Ground"}
    assert r.mapped_unknown_at_warehouse == {"USPS: First Class": "First Class Mail"}
    assert r.unmapped == {"FedEx: 2Day": "2-Day", "Pigeon": None}
    assert r.held_orders == {"FedEx: 2Day": ["3"], "USPS: First Class": ["4"], "Pigeon": ["5"]}


def test_coverage_counts_mapped_lines_and_names_the_store_skus_that_would_hold_orders():
    skus = SkuMap(aliases={"Bowl": "BOWL-L"}, kits={"GIFT-SET": {"BONE-5LB": 1, "MUG": 2}})

    def order(*cart_skus: str) -> list:
        return map_lines([OrderLine(line_no=i, sku=s, quantity=Decimal(1)) for i, s in enumerate(cart_skus)], skus).lines

    orders = [("1", order("BONE-5LB", "Bowl")), ("2", order("MYSTERY")), ("3", order("MYSTERY", "GIFT-SET")), ("4", order("Cup"))]
    c = line_coverage(orders, WAREHOUSE)
    # 7 warehouse lines: BONE-5LB, BOWL-L, MYSTERY, MYSTERY, BONE-5LB + MUG (the kit exploded), Cup.
    assert (c.lines, c.mapped_lines) == (7, 3)
    assert c.holding_skus == {"MYSTERY": ["2", "3"], "Cup": ["4"], "GIFT-SET": ["3"]}
    assert c.targets == {"MYSTERY": "MYSTERY", "Cup": "Cup", "GIFT-SET": "MUG"}
    assert round(c.share, 2) == 0.43
