"""Onboarding analysis: the mismatches that break go-lives, found from the catalogs alone."""

from __future__ import annotations

from mappings.onboarding import CatalogItem, aliases_csv, check_methods, line_coverage, match_skus, near_key, suggest_method
from mappings.skus import SkuMap, load_alias_csv

WAREHOUSE = {"BONE-5LB", "TREAT", "LEASH-RED", "BOWL-L", "COLLAR-M", "SKU-00042", "SPARE-PART"}


def test_near_keys_ignore_case_spacing_dashes_and_leading_zeros():
    assert near_key("Bone 5lb") == near_key("BONE-5LB") == near_key(" bone_5LB ")
    assert near_key("SKU-42") == near_key("sku 00042") == near_key("SKU.042")
    assert near_key("SKU-42") != near_key("SKU-43")


def test_catalog_match_finds_exact_near_kits_and_missing():
    items = [CatalogItem("BONE-5LB"), CatalogItem("treat "), CatalogItem("Leash Red"), CatalogItem("SKU-42"),
             CatalogItem("GIFT-SET", components={"BONE-5LB": 1, "TREAT": 2}), CatalogItem("BOX-SET", components={"BONE-5LB": 1, "MUG": 1}),
             CatalogItem("MYSTERY"), CatalogItem("Bowl")]
    r = match_skus(items, WAREHOUSE, SkuMap(aliases={"Bowl": "BOWL-L"}, kits={}))
    assert r.exact == ["BONE-5LB"]
    assert r.aliased == {"Bowl": "BOWL-L"}
    assert r.proposed == {"treat": "TREAT", "Leash Red": "LEASH-RED", "SKU-42": "SKU-00042"}  # SKUs are compared as orders carry them: trimmed
    assert r.kits_ok == ["GIFT-SET"] and r.kits_missing == {"BOX-SET": ["MUG"]}
    assert r.missing == ["MYSTERY"]
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


def test_coverage_counts_lines_and_names_the_skus_that_would_hold_orders():
    lines = [("1", "BONE-5LB"), ("1", "Bowl"), ("2", "MYSTERY"), ("3", "MYSTERY"), ("3", "GIFT-SET"), ("4", "MUG")]
    c = line_coverage(lines, WAREHOUSE, SkuMap(aliases={"Bowl": "BOWL-L"}, kits={"GIFT-SET": {"BONE-5LB": 1, "TREAT": 2}}))
    assert (c.lines, c.mapped_lines) == (6, 3)
    assert c.holding_skus == {"MYSTERY": ["2", "3"], "MUG": ["4"]}
    assert round(c.share, 2) == 0.5
