"""mappings.units.pick_units: which inventory units a shipped quantity is drawn from, per rule."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mappings.units import RULES, order_units, pick_units

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class U:
    id: str
    quantity_available: Decimal
    created_at: datetime | None = None
    lot_code: str = ""
    datecode: str = ""


def u(uid: str, available: int | str, day: int | None = None, lot: str = "", datecode: str = "") -> U:
    return U(uid, Decimal(str(available)), None if day is None else T0 + timedelta(days=day), lot, datecode)


def drawn(pick) -> list[tuple[str, Decimal]]:
    return [(d.unit.id, d.quantity) for d in pick.draws]


# Four lots: received on different days, with lot codes and datecodes that sort differently
# from their ages and sizes, so each rule draws in its own order.
LOTS = [
    u("11", 5, day=3, lot="LOT-10", datecode="2603"),
    u("12", 2, day=1, lot="LOT-9", datecode="2605"),
    u("13", 8, day=2, lot="LOT-11", datecode="2601"),
    u("14", 3, day=4, lot="LOT-2", datecode="2602"),
]


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ("fifo", [("12", 2), ("13", 8), ("11", 2)]),  # oldest first: days 1, 2, 3
        ("lifo", [("14", 3), ("11", 5), ("13", 4)]),  # newest first: days 4, 3, 2
        ("largest_first", [("13", 8), ("11", 4)]),
        ("smallest_first", [("12", 2), ("14", 3), ("11", 5), ("13", 2)]),
        ("lot_code", [("14", 3), ("12", 2), ("11", 5), ("13", 2)]),  # LOT-2, LOT-9, LOT-10, LOT-11: numbers as numbers
        ("datecode", [("13", 8), ("14", 3), ("11", 1)]),  # 2601, 2602, 2603
    ],
)
def test_each_rule_draws_in_its_order(rule: str, expected: list[tuple[str, int]]) -> None:
    pick = pick_units(LOTS, 12, rule)
    assert drawn(pick) == [(uid, Decimal(q)) for uid, q in expected]
    assert pick.shortfall == 0 and pick.complete and pick.total == 12


def test_a_quantity_one_unit_covers_takes_only_that_unit() -> None:
    assert drawn(pick_units(LOTS, 1, "fifo")) == [("12", Decimal(1))]


@pytest.mark.parametrize("rule", RULES)
def test_shortfall_when_units_cannot_cover(rule: str) -> None:
    pick = pick_units(LOTS, 30, rule)
    assert pick.total == 18 and pick.shortfall == 12 and not pick.complete
    assert sorted(drawn(pick)) == [("11", 5), ("12", 2), ("13", 8), ("14", 3)]  # everything, each unit whole


@pytest.mark.parametrize("rule", RULES)
def test_units_without_available_stock_are_skipped(rule: str) -> None:
    units = [u("1", 0, day=0, lot="A", datecode="1"), u("2", "-3", day=0, lot="A", datecode="1"), u("3", 4, day=9, lot="Z", datecode="9")]
    pick = pick_units(units, 2, rule)
    assert drawn(pick) == [("3", Decimal(2))]


@pytest.mark.parametrize("rule", RULES)
def test_zero_stock_is_all_shortfall(rule: str) -> None:
    pick = pick_units([u("1", 0, day=1), u("2", 0, day=2)], 3, rule)
    assert pick.draws == () and pick.shortfall == 3
    assert pick_units([], 3, rule).shortfall == 3


def test_nothing_asked_nothing_drawn() -> None:
    pick = pick_units(LOTS, 0, "fifo")
    assert pick.draws == () and pick.shortfall == 0 and pick.complete


@pytest.mark.parametrize("rule", RULES)
def test_ties_are_broken_by_id_numerically(rule: str) -> None:
    # Identical units: only the id tells them apart, and "9" comes before "10".
    same = [u(uid, 1, day=1, lot="L", datecode="D") for uid in ("10", "9", "100", "11")]
    assert [d.unit.id for d in pick_units(same, 4, rule).draws] == ["9", "10", "11", "100"]


@pytest.mark.parametrize("rule", ["fifo", "lifo"])
def test_units_of_unknown_age_come_last(rule: str) -> None:
    units = [u("1", 1), u("2", 1, day=5), u("3", 1, day=1)]
    order = [d.unit.id for d in pick_units(units, 3, rule).draws]
    assert order == (["3", "2", "1"] if rule == "fifo" else ["2", "3", "1"])


@pytest.mark.parametrize("rule", ["lot_code", "datecode"])
def test_units_without_the_field_come_last(rule: str) -> None:
    units = [u("1", 1), u("2", 1, lot="B", datecode="2"), u("3", 1, lot="a", datecode="1")]
    assert [d.unit.id for d in pick_units(units, 3, rule).draws] == ["3", "2", "1"]


def test_naive_and_aware_times_compare() -> None:
    naive = U("1", Decimal(1), datetime(2026, 1, 2))  # read as UTC
    aware = U("2", Decimal(1), datetime(2026, 1, 1, 23, tzinfo=UTC))
    assert [d.unit.id for d in pick_units([naive, aware], 2, "fifo").draws] == ["2", "1"]


def test_fractional_quantities() -> None:
    units = [u("1", "0.25", day=1), u("2", "1.5", day=2)]
    pick = pick_units(units, Decimal("1.0"), "fifo")
    assert drawn(pick) == [("1", Decimal("0.25")), ("2", Decimal("0.75"))]


def test_bad_input_is_refused_clearly() -> None:
    with pytest.raises(ValueError, match="unknown unit selection rule 'fefo'.*fifo"):
        pick_units(LOTS, 1, "fefo")
    with pytest.raises(ValueError, match="must not be negative"):
        pick_units(LOTS, -1, "fifo")
    with pytest.raises(ValueError, match="not a number"):
        pick_units(LOTS, "two", "fifo")
    with pytest.raises(ValueError, match="unit 9 quantity_available is not a number"):
        pick_units([U("9", "lots", None)], 1, "fifo")  # type: ignore[arg-type]


def test_order_units_keeps_empty_units_for_display() -> None:
    units = [u("1", 0, day=1), u("2", 4, day=0)]
    assert [x.id for x in order_units(units, "fifo")] == ["2", "1"]


def test_the_ledger_settings_offer_exactly_these_rules() -> None:
    from typing import get_args

    from connector.config import LedgerSettings

    assert get_args(LedgerSettings.model_fields["unit_selection"].annotation) == RULES


# -- properties -----------------------------------------------------------------------------

unit_lists = st.lists(
    st.builds(
        U,
        id=st.integers(1, 10_000).map(str),
        quantity_available=st.integers(-5, 50).map(Decimal),
        created_at=st.one_of(st.none(), st.integers(0, 400).map(lambda d: T0 + timedelta(days=d))),
        lot_code=st.sampled_from(["", "L1", "L2", "L10", "l2", "LOT-3"]),
        datecode=st.sampled_from(["", "2601", "2552", "2603"]),
    ),
    max_size=12,
    unique_by=lambda x: x.id,
)


@settings(max_examples=200, deadline=None)
@given(units=unit_lists, quantity=st.integers(0, 300), rule=st.sampled_from(RULES))
def test_a_pick_never_overdraws_and_accounts_for_everything(units, quantity, rule) -> None:
    pick = pick_units(units, quantity, rule)
    by_id = {x.id: x for x in units}
    ids = [d.unit.id for d in pick.draws]
    assert len(ids) == len(set(ids)), "a unit is drawn from at most once"
    for d in pick.draws:
        assert 0 < d.quantity <= by_id[d.unit.id].quantity_available
    available = sum((x.quantity_available for x in units if x.quantity_available > 0), Decimal(0))
    assert pick.total + pick.shortfall == quantity
    assert pick.shortfall == max(Decimal(0), quantity - available)
    # Only the last draw may leave something in its unit: the rule's order is followed.
    for d in pick.draws[:-1]:
        assert d.quantity == by_id[d.unit.id].quantity_available


@settings(max_examples=100, deadline=None)
@given(units=unit_lists, quantity=st.integers(0, 300), rule=st.sampled_from(RULES))
def test_a_pick_does_not_depend_on_the_order_units_arrive_in(units, quantity, rule) -> None:
    assert drawn(pick_units(units, quantity, rule)) == drawn(pick_units(list(reversed(units)), quantity, rule))


# -- reading an in-doubt consumption back (adapters.ledger) -------------------------------------


def test_consumption_outcome_from_the_unit_read_back() -> None:
    from adapters.ledger import LedgerUnit, consumption_outcome

    def now(quantity: int) -> LedgerUnit:
        return LedgerUnit(id="1", item_id="9", quantity=Decimal(quantity), quantity_available=Decimal(quantity))

    assert consumption_outcome(Decimal(10), Decimal(3), now(7)) == "applied"
    assert consumption_outcome(Decimal(10), Decimal(3), now(10)) == "not_applied"
    assert consumption_outcome(Decimal(10), Decimal(3), now(6)) == "unknown"  # changed some other way too
    assert consumption_outcome(Decimal(3), Decimal(3), None) == "applied"  # emptied and removed
    assert consumption_outcome(Decimal(10), Decimal(3), None) == "unknown"


def test_a_ledger_block_splits_into_the_engines_keys_and_the_adapters() -> None:
    from adapters.ledger import split_ledger_block
    from connector.config import LedgerSettings

    block = {"adapter": "aligni", "site": "acme", "api_token": "t0k3n-123", "location": "Main Warehouse",
             "sublocation": "Finished Goods", "unit_selection": "lot_code", "consume_on": "order_ship"}
    engine, adapter = split_ledger_block(block)
    assert adapter == {"adapter": "aligni", "site": "acme", "api_token": "t0k3n-123"}
    settings = LedgerSettings.model_validate(engine)
    assert (settings.location, settings.sublocation, settings.unit_selection, settings.consume_on) == (
        "Main Warehouse", "Finished Goods", "lot_code", ["order_ship"])
    with pytest.raises(ValueError, match="unit_selection"):
        LedgerSettings.model_validate({"location": "X", "unit_selection": "fefo"})
