"""The inventory quantity pipeline: each step, the whole run, and its invariants."""


import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from connector.domain import StockLevel
from mappings.inventory import (
    InventoryRules,
    adjust,
    changes,
    clamp_minimum,
    compute,
    in_flight_units,
    kit_quantity,
    select_available,
    store_quantities,
    subtract_units,
)
from mappings.skus import SkuMap


def lvl(sku, wh, available, on_hand=None):
    return StockLevel(sku=sku, warehouse_id=wh, available=available, on_hand=available if on_hand is None else on_hand)


SKUS = SkuMap(aliases={"Bone": "BONE-5LB", "Bone-Gift": "BONE-5LB", "Treat": "TREAT"}, kits={"GIFT-SET": {"BONE-5LB": 1, "TREAT": 2}})


# --- step 1: warehouses ---------------------------------------------------------------------


def test_sums_available_over_all_warehouses_never_on_hand():
    levels = [lvl("A", "1", 5, on_hand=50), lvl("A", "2", 7), lvl("B", "1", -3)]
    assert select_available(levels, InventoryRules()) == {"A": 12, "B": 0}


def test_warehouse_selection_and_exclusion():
    levels = [lvl("A", "1", 5), lvl("A", "2", 7), lvl("A", "3", 11), lvl("B", "3", 4)]
    assert select_available(levels, InventoryRules(warehouses=["1", "3"])) == {"A": 16, "B": 4}
    assert select_available(levels, InventoryRules(exclude_warehouses=["3"])) == {"A": 12, "B": 0}
    assert select_available(levels, InventoryRules(warehouses=[1, 3], exclude_warehouses=[3])) == {"A": 5, "B": 0}


def test_rules_validation():
    with pytest.raises(ValidationError):
        InventoryRules(percent=101)
    with pytest.raises(ValidationError):
        InventoryRules(warehouses=[])
    with pytest.raises(ValidationError, match="minimum_level"):
        InventoryRules(max_quantity=3, minimum_level=5)
    with pytest.raises(ValidationError):
        InventoryRules(bufer=1)


# --- step 2: in-flight, step 3: store SKUs --------------------------------------------------


def test_in_flight_translated_to_warehouse_units():
    units = in_flight_units({"Bone": 1, "GIFT-SET": 2, "RAW": 3, "Zero": 0}, SKUS)
    assert units == {"BONE-5LB": 3, "TREAT": 4, "RAW": 3}
    assert subtract_units({"BONE-5LB": 2, "TREAT": 10}, units) == {"BONE-5LB": 0, "TREAT": 6}


def test_every_alias_of_a_warehouse_sku_gets_its_quantity():
    q = store_quantities({"BONE-5LB": 9, "TREAT": 4, "OTHER": 3}, SKUS, push_by_alias=True)
    assert q == {"Bone": 9, "Bone-Gift": 9, "Treat": 4, "GIFT-SET": 2}


def test_without_push_by_alias_unaliased_skus_push_under_their_own_name():
    q = store_quantities({"BONE-5LB": 9, "TREAT": 4, "OTHER": 3}, SKUS, push_by_alias=False)
    assert q == {"OTHER": 3, "Bone": 9, "Bone-Gift": 9, "Treat": 4, "GIFT-SET": 2}


def test_alias_without_stock_record_is_pushed_as_zero():
    assert store_quantities({}, SkuMap(aliases={"A": "W"}), push_by_alias=True) == {"A": 0}


def test_kit_quantity_is_min_over_components_rounded_down():
    assert kit_quantity({"A": 1, "B": 2}, {"A": 10, "B": 7}) == 3
    assert kit_quantity({"A": 1, "B": 2}, {"A": 10}) == 0


def test_kit_order_in_flight_lowers_components_and_kit_sees_reduced_components():
    levels = [lvl("BONE-5LB", "1", 10), lvl("TREAT", "1", 10)]
    result = compute(levels, InventoryRules(), SKUS, in_flight={"GIFT-SET": 2, "Treat": 1})
    # TREAT: 10 - 2*2 - 1 = 5 -> kits = min(8, 5 // 2) = 2
    assert result.quantities == {"Bone": 8, "Bone-Gift": 8, "Treat": 5, "GIFT-SET": 2}
    assert result.traces["GIFT-SET"][1:3] == (5, 2)


def test_in_flight_ignored_when_disabled():
    levels = [lvl("TREAT", "1", 10)]
    result = compute(levels, InventoryRules(subtract_in_flight=False), SKUS, in_flight={"Treat": 4})
    assert result.quantities["Treat"] == 10


# --- steps 4 and 5 --------------------------------------------------------------------------


def test_buffer_percent_cap():
    rules = InventoryRules(buffer=2, percent=50, max_quantity=10)
    assert adjust(100, rules) == (98, 49, 10)
    assert adjust(7, rules) == (5, 2, 2)  # 2.5 rounds down
    assert adjust(1, rules) == (0, 0, 0)


def test_minimum_level_clamp():
    assert clamp_minimum(4, 5) == 0
    assert clamp_minimum(5, 5) == 5
    assert clamp_minimum(0, 0) == 0


def test_compute_trace_explains_itself():
    levels = [lvl("TREAT", "1", 20)]
    result = compute(levels, InventoryRules(buffer=2, percent=50, minimum_level=10), SKUS, in_flight={"Treat": 3})
    t = result.traces["Treat"]
    assert (t.available, t.after_in_flight, t.after_buffer, t.after_percent, t.after_cap, t.final, t.clamped) == (20, 17, 15, 7, 7, 0, True)
    assert "below minimum level -> 0" in result.explain("Treat")
    assert "not pushed" in result.explain("NOPE")


# --- step 6 ---------------------------------------------------------------------------------


def test_changes_only_differences_unless_full():
    computed = {"A": 1, "B": 2, "C": 0}
    assert changes(computed, {"A": 1, "B": 3, "GONE": 4}, full=False) == {"B": 2, "C": 0}
    assert changes(computed, {"A": 1, "B": 2, "C": 0}, full=False) == {}
    assert changes(computed, {"A": 1}, full=True) == computed


# --- properties -----------------------------------------------------------------------------

warehouse_skus = st.sampled_from(["BONE-5LB", "TREAT", "OTHER", "W4"])
levels_st = st.lists(
    st.builds(lvl, warehouse_skus, st.sampled_from(["1", "2", "3"]), st.integers(-50, 500), st.integers(0, 1000)),
    max_size=25,
)
rules_st = st.builds(
    InventoryRules,
    warehouses=st.one_of(st.just("all"), st.lists(st.sampled_from(["1", "2", "3"]), min_size=1, unique=True)),
    exclude_warehouses=st.lists(st.sampled_from(["1", "2", "3"]), max_size=1),
    push_by_alias=st.booleans(),
    minimum_level=st.integers(0, 20),
    buffer=st.integers(0, 20),
    percent=st.integers(0, 100),
    max_quantity=st.one_of(st.just(0), st.integers(20, 300)),
    subtract_in_flight=st.booleans(),
)
in_flight_st = st.dictionaries(st.sampled_from(["Bone", "Treat", "GIFT-SET", "OTHER"]), st.integers(0, 50), max_size=4)


def selected_total(levels, rules):
    return select_available(levels, rules)


@settings(max_examples=150, deadline=None)
@given(levels_st, rules_st, in_flight_st)
def test_never_negative_and_never_above_selected_available(levels, rules, in_flight):
    result = compute(levels, rules, SKUS, in_flight)
    pool = select_available(levels, rules)
    for sku, qty in result.quantities.items():
        assert qty >= 0
        source = SKUS.kit_for(sku)
        if source is not None:
            assert all(qty * per <= pool.get(c, 0) for c, per in source.items())
        else:
            assert qty <= pool.get(SKUS.warehouse_sku(sku), 0)
        assert qty == 0 or qty >= rules.minimum_level


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 500), st.integers(0, 1000))
def test_minimum_level_exact_at_boundary(minimum, extra):
    rules = InventoryRules(minimum_level=minimum)
    skus = SkuMap(aliases={"S": "W"})
    assert compute([lvl("W", "1", minimum - 1)], rules, skus).quantities == {"S": 0}
    assert compute([lvl("W", "1", minimum)], rules, skus).quantities == {"S": minimum}
    assert compute([lvl("W", "1", minimum + extra)], rules, skus).quantities == {"S": minimum + extra}


@settings(max_examples=150, deadline=None)
@given(st.integers(0, 10_000), st.integers(0, 100))
def test_percent_rounds_down(available, percent):
    rules = InventoryRules(percent=percent)
    q = compute([lvl("W", "1", available)], rules, SkuMap(aliases={"S": "W"})).quantities["S"]
    assert q <= available * percent / 100 < q + 1


@settings(max_examples=100, deadline=None)
@given(levels_st, rules_st, in_flight_st)
def test_second_identical_run_changes_nothing(levels, rules, in_flight):
    first = compute(levels, rules, SKUS, in_flight).quantities
    pushed = changes(first, {}, full=False)
    assert pushed == first
    second = compute(levels, rules, SKUS, in_flight).quantities
    assert changes(second, pushed, full=False) == {}


def test_fifty_thousand_skus_and_five_thousand_kits_are_all_computed():
    """Its speed is measured by `connector bench` (the quantity pipeline's seconds), not here."""
    n = 50_000
    levels = [StockLevel(sku=f"W{i}", warehouse_id=str(i % 3), available=i % 40) for i in range(n)]
    skus = SkuMap(aliases={f"S{i}": f"W{i}" for i in range(n)}, kits={f"K{i}": {f"W{i}": 1, f"W{i + 1}": 2} for i in range(0, n, 10)})
    in_flight = {f"S{i}": 1 for i in range(0, n, 7)}
    rules = InventoryRules(minimum_level=5, buffer=1, percent=90, max_quantity=30)
    result = compute(levels, rules, skus, in_flight)
    pushed = changes(result.quantities, {}, full=False)
    assert len(pushed) == n + n // 10
