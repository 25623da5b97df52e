"""The order rules: each rule, and the order in which they are applied."""

from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from pydantic import ValidationError

from connector.domain import Address, Order, OrderLine
from mappings.rules import HoldKind, OrderRules, decide, missing_address_fields
from mappings.skus import SkuMap

T0 = datetime(2026, 11, 22, 10, 0, tzinfo=timezone.utc)
SKUS = SkuMap(aliases={"Bone": "BONE-5LB"}, kits={"GIFT-SET": {"BONE-5LB": 1, "TREAT": 2}})
METHODS = {"USPS: Priority Mail": "USPS Priority"}
ADDRESS = Address(first_name="Ann", last_name="Lee", address1="1 Main St", city="Austin", state="TX", postal_code="78701", country_code="US")


def order(**kw):
    base = dict(
        order_id="DEMO-1",
        created_at=datetime(2026, 11, 20, 9, 0, tzinfo=timezone.utc),
        ship_method="USPS: Priority Mail",
        ship_to=ADDRESS,
        lines=[OrderLine(sku="Bone", quantity=Decimal(2)), OrderLine(sku="GIFT-SET", quantity=Decimal(1))],
    )
    base.update(kw)
    return Order(**base)


def run(o=None, *, rules=None, known_skus=None, known_methods=None, now=T0, received_at=T0, manual_hold=None, methods=METHODS):
    return decide(
        o or order(),
        rules=rules or OrderRules(),
        skus=SKUS,
        ship_methods=methods,
        known_skus=known_skus,
        known_ship_methods=known_methods,
        received_at=received_at,
        now=now,
        manual_hold=manual_hold,
    )


def test_ready_carries_mapped_method_and_lines():
    d = run()
    assert (d.outcome, d.hold_kind, d.ship_method) == ("ready", None, "USPS Priority")
    assert [(ln.sku, ln.quantity) for ln in d.lines] == [("BONE-5LB", 3), ("TREAT", 2)]


def test_before_earliest_order_date_is_skipped():
    d = run(order(created_at=datetime(2025, 12, 30, 23, 0)), rules=OrderRules(earliest_order_date=date(2026, 1, 1)))
    assert (d.outcome, d.reason) == ("skip", "before earliest order date 2026-01-01 (created 2025-12-30)")


def test_on_earliest_order_date_or_undated_is_not_skipped():
    rules = OrderRules(earliest_order_date=date(2026, 1, 1))
    assert run(order(created_at=datetime(2026, 1, 1, 0, 0)), rules=rules).outcome == "ready"
    assert run(order(created_at=None), rules=rules).outcome == "ready"


def test_test_orders_skipped_only_when_configured():
    assert run(order(test_order=True)).outcome == "ready"
    d = run(order(test_order=True), rules=OrderRules(skip_test_orders=True))
    assert (d.outcome, d.reason) == ("skip", "test order")


def test_skip_beats_every_hold():
    d = run(order(test_order=True, ship_method="Pigeon", lines=[]), rules=OrderRules(skip_test_orders=True), manual_hold="x")
    assert d.outcome == "skip"


def test_manual_hold():
    d = run(manual_hold="customer called")
    assert (d.outcome, d.reason, d.hold_kind) == ("hold", "manual hold: customer called", HoldKind.manual_hold)
    assert run(manual_hold="").reason == "manual hold"


def test_invalid_lines_hold_before_ship_method():
    d = run(order(ship_method="Pigeon", lines=[OrderLine(sku="Bone", quantity=Decimal("1.5"))]))
    assert (d.outcome, d.reason, d.hold_kind) == ("hold", "fractional quantity 1.5 for SKU Bone", "invalid_lines")
    assert run(order(lines=[])).reason == "order has no items"


def test_unmapped_ship_method_held():
    d = run(order(ship_method="Pigeon: Carrier Express"))
    assert (d.outcome, d.reason, d.hold_kind) == ("hold", "unmapped ship method: Pigeon: Carrier Express", HoldKind.unmapped_ship_method)
    assert run(order(ship_method="")).reason == "unmapped ship method: (none)"


def test_ship_method_map_is_case_and_space_tolerant():
    assert run(order(ship_method="usps:priority mail")).ship_method == "USPS Priority"


def test_unmapped_method_passes_through_when_not_rejected():
    rules = OrderRules(reject_unmapped_ship_methods=False)
    assert run(order(ship_method="Pigeon: Carrier Express"), rules=rules).ship_method == "Pigeon: Carrier Express"
    rules = OrderRules(reject_unmapped_ship_methods=False, default_ship_method="STANDARD")
    assert run(order(ship_method="Pigeon: Carrier Express"), rules=rules).ship_method == "STANDARD"
    assert run(order(ship_method="USPS: Priority Mail"), rules=rules).ship_method == "USPS Priority"


def test_method_unknown_to_warehouse_held_and_known_spelling_used():
    d = run(known_methods={"Standard", "Express"})
    assert (d.reason, d.hold_kind) == ("warehouse does not know ship method: USPS Priority", "unmapped_ship_method")
    assert run(known_methods={"usps priority"}).ship_method == "usps priority"


def test_unknown_skus_all_listed_sorted():
    o = order(lines=[OrderLine(sku="ZED"), OrderLine(sku="MYSTERY-SKU"), OrderLine(sku="Bone")])
    d = run(o, known_skus={"BONE-5LB"})
    assert (d.outcome, d.reason, d.hold_kind) == ("hold", "unknown SKU: MYSTERY-SKU, ZED", HoldKind.unknown_sku)
    assert run(o, known_skus=None).outcome == "ready"


def test_ship_method_checked_before_skus():
    d = run(order(ship_method="Pigeon"), known_skus=set())
    assert d.hold_kind == "unmapped_ship_method"


def test_missing_address_fields_listed():
    d = run(order(ship_to=Address(first_name="Ann", country_code="US", postal_code="1")))
    assert (d.outcome, d.reason, d.hold_kind) == ("hold", "missing ship-to address: address1, city", HoldKind.missing_address)


def test_postal_code_required_unless_country_has_none():
    no_zip = ADDRESS.model_copy(update={"postal_code": ""})
    assert run(order(ship_to=no_zip)).reason == "missing ship-to address: postal_code"
    assert run(order(ship_to=no_zip.model_copy(update={"country_code": "HK"}))).outcome == "ready"
    assert missing_address_fields(Address()) == ["address1", "city", "name", "country_code", "postal_code"]


def test_company_is_enough_without_a_person():
    company_only = ADDRESS.model_copy(update={"first_name": "", "last_name": "", "company": "Acme"})
    assert run(order(ship_to=company_only)).outcome == "ready"


def test_address_not_required_when_configured():
    assert run(order(ship_to=Address()), rules=OrderRules(require_ship_address=False)).outcome == "ready"


def test_timed_hold_until_received_plus_minutes():
    rules = OrderRules(hold_minutes=15)
    d = run(rules=rules, now=T0 + timedelta(minutes=14))
    assert (d.outcome, d.reason, d.hold_kind) == ("hold", "timed hold until 2026-11-22T10:15:00+00:00", HoldKind.timed_hold)
    assert d.hold_until == T0 + timedelta(minutes=15)
    assert d.ship_method == "USPS Priority" and d.lines
    assert run(rules=rules, now=T0 + timedelta(minutes=15)).outcome == "ready"


def test_timed_hold_comes_after_fixable_holds():
    d = run(order(ship_method="Pigeon"), rules=OrderRules(hold_minutes=15))
    assert d.hold_kind == "unmapped_ship_method"


def test_rules_reject_unknown_keys_and_negative_minutes():
    with pytest.raises(ValidationError):
        OrderRules(hold_minuts=5)
    with pytest.raises(ValidationError):
        OrderRules(hold_minutes=-1)


def test_decide_is_pure():
    o = order()
    before = o.model_dump()
    assert run(o) == run(o)
    assert o.model_dump() == before
