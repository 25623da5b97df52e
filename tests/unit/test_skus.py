"""SKU aliases, kits and the warehouse lines an order becomes."""

from decimal import Decimal

import pytest

from connector.domain import OrderLine, WarehouseLine
from mappings.skus import AliasFileError, SkuMap, load_alias_csv, map_lines, unknown_skus


def line(sku, qty="1", no=0, **kw):
    return OrderLine(sku=sku, quantity=Decimal(qty), line_no=no, **kw)


def picked(mapping):
    return [(ln.sku, ln.quantity) for ln in mapping.lines]


# --- alias file -----------------------------------------------------------------------------


def test_alias_csv_tolerates_bom_blank_lines_comments_and_spaces():
    text = "\ufeffcart_sku,warehouse_sku\n\n# the dog range\n Bone , BONE-5LB \nTreat,TREAT-1,\n"
    assert load_alias_csv(text, "acme.csv") == {"Bone": "BONE-5LB", "Treat": "TREAT-1"}


def test_alias_csv_accepts_windows_line_endings_and_quotes():
    assert load_alias_csv('cart_sku,warehouse_sku\r\n"A 1","W-1"\r\n') == {"A 1": "W-1"}


def test_alias_csv_repeated_identical_row_is_fine():
    assert load_alias_csv("cart_sku,warehouse_sku\nA,W\nA,W\n") == {"A": "W"}


@pytest.mark.parametrize(
    "text, line_no",
    [
        ("cart_sku,warehouse_sku\nA,W\nB\n", 3),
        ("cart_sku,warehouse_sku\nA,\n", 2),
        ("cart_sku,warehouse_sku\n,W\n", 2),
        ("cart_sku,warehouse_sku\nA,W,extra\n", 2),
        ("sku,alias\nA,W\n", 1),
    ],
)
def test_alias_csv_malformed_row_names_file_and_line(text, line_no):
    with pytest.raises(AliasFileError, match=rf"skus-acme\.csv: line {line_no}:"):
        load_alias_csv(text, "skus-acme.csv")


def test_alias_csv_conflicting_mapping_names_both_lines():
    with pytest.raises(AliasFileError) as err:
        load_alias_csv("cart_sku,warehouse_sku\nA,W1\n# x\nA,W2\n", "f.csv")
    assert "f.csv: line 4" in str(err.value) and "line 2" in str(err.value)
    assert isinstance(err.value, ValueError)


def test_alias_csv_empty_file_is_no_aliases():
    assert load_alias_csv("") == {}


# --- SkuMap ---------------------------------------------------------------------------------


def test_alias_lookup_exact_then_case_insensitive():
    skus = SkuMap(aliases={"Bone": "BONE-5LB", "bone": "BONE-1LB"})
    assert skus.alias_for("Bone") == "BONE-5LB"
    assert skus.alias_for("bone") == "BONE-1LB"
    # "BONE" folds onto two different targets: refuse to guess.
    assert skus.alias_for("BONE") is None
    assert SkuMap(aliases={"Bone": "BONE-5LB"}).alias_for("BONE") == "BONE-5LB"


def test_kit_quantities_must_be_whole_and_positive():
    with pytest.raises(ValueError, match="GIFT"):
        SkuMap(kits={"GIFT": {"A": 0}})
    with pytest.raises(ValueError):
        SkuMap(kits={"GIFT": {}})


def test_skumap_copies_its_inputs():
    aliases = {"A": "W"}
    skus = SkuMap(aliases=aliases)
    aliases["A"] = "X"
    assert skus.alias_for("A") == "W"


# --- map_lines ------------------------------------------------------------------------------

SKUS = SkuMap(aliases={"Bone": "BONE-5LB"}, kits={"GIFT-SET": {"BONE-5LB": 1, "TREAT": 2}})


def test_aliases_are_applied_and_cart_sku_kept():
    result = map_lines([line("bone", "2", description="A bone", unit_price=Decimal("9.99"))], SKUS)
    assert result.problems == []
    assert result.lines == [WarehouseLine(sku="BONE-5LB", quantity=2, description="A bone", unit_price=Decimal("9.99"), cart_sku="bone")]


def test_configured_kit_is_exploded_by_quantity():
    result = map_lines([line("GIFT-SET", "3")], SKUS)
    assert picked(result) == [("BONE-5LB", 3), ("TREAT", 6)]
    assert {ln.cart_sku for ln in result.lines} == {"GIFT-SET"}


def test_same_warehouse_sku_lines_are_merged_keeping_first_description():
    result = map_lines([line("Bone", "1", description="first"), line("GIFT-SET", "2"), line("BONE-5LB", "1", description="x")], SKUS)
    assert picked(result) == [("BONE-5LB", 4), ("TREAT", 4)]
    assert result.lines[0].description == "first"


def test_kit_sent_with_components_keeps_components_and_drops_parent():
    lines = [
        line("BOX", "2", no=1, kit=True),
        line("Bone", "2", no=2, kit_component=True, parent_line_no=1),
        line("CHEW", "4", no=3, kit_component=True, parent_line_no=1),
    ]
    assert picked(map_lines(lines, SKUS)) == [("BONE-5LB", 2), ("CHEW", 4)]


def test_kit_sent_with_components_but_configured_is_exploded_once():
    lines = [
        line("GIFT-SET", "1", no=1, kit=True),
        line("BONE-5LB", "1", no=2, kit_component=True, parent_line_no=1),
        line("TREAT", "2", no=3, kit_component=True, parent_line_no=1),
        line("Bone", "1", no=4),  # bought separately too: must still count
    ]
    assert picked(map_lines(lines, SKUS)) == [("BONE-5LB", 2), ("TREAT", 2)]


def test_component_found_by_parent_sku_when_no_parent_index():
    lines = [line("GIFT-SET", "1", no=0, kit=True), line("TREAT", "2", no=1, kit_component=True, parent_sku="GIFT-SET")]
    assert picked(map_lines(lines, SKUS)) == [("BONE-5LB", 1), ("TREAT", 2)]


def test_kit_parent_without_components_or_config_is_kept():
    assert picked(map_lines([line("BOX", "1", kit=True)], SKUS)) == [("BOX", 1)]


def test_orphan_component_is_kept():
    assert picked(map_lines([line("TREAT", "1", kit_component=True, parent_line_no=9)], SKUS)) == [("TREAT", 1)]


def test_integral_decimal_quantity_is_accepted():
    assert picked(map_lines([line("Bone", "2.000")], SKUS)) == [("BONE-5LB", 2)]


def test_fractional_zero_and_negative_quantities_are_problems():
    result = map_lines([line("Bone", "1.5"), line("TREAT", "0"), line("CHEW", "-2"), line("OK", "1")], SKUS)
    assert result.problems == [
        "fractional quantity 1.5 for SKU Bone",
        "zero quantity 0 for SKU TREAT",
        "negative quantity -2 for SKU CHEW",
    ]
    assert picked(result) == [("OK", 1)]


def test_order_without_lines_is_a_problem():
    assert map_lines([], SKUS).problems == ["order has no items"]


def test_unknown_skus_sorted_unique_and_none_means_cannot_tell():
    lines = [WarehouseLine(sku="Z", quantity=1), WarehouseLine(sku="A", quantity=1), WarehouseLine(sku="K", quantity=1)]
    assert unknown_skus(lines, {"K"}) == ["A", "Z"]
    assert unknown_skus(lines, None) == []
