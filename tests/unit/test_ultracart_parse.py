"""The UltraCart order parser and webhook splitter, on real payload shapes and on bad input."""

from __future__ import annotations

import base64
import copy
import gzip
import json
import re
import zlib
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from adapters.ultracart.parse import OrderParseError, WebhookParseError, parse_order, parse_webhook
from connector.sandbox.samples import demo_orders, make_order

ROOT = Path(__file__).parents[2]
SEED = ROOT.parent / "shared" / "seeds" / "ultracart-webhooks.txt"
FIXTURES = ROOT / "tests" / "fixtures" / "ultracart"


def _seed_payload() -> list:
    """The sample webhook body embedded in UltraCart's "Creating a Simple Webhook" page."""
    if not SEED.exists():
        pytest.skip("../shared/seeds/ultracart-webhooks.txt not present")
    text = SEED.read_text(encoding="utf-8")
    decoder = json.JSONDecoder()
    for start in (i for i, ch in enumerate(text) if ch == "["):
        try:
            value, _ = decoder.raw_decode(text, start)
        except ValueError:
            continue
        if isinstance(value, list) and value and isinstance(value[0], dict):
            return value
    pytest.fail("no JSON payload found in the webhook seed")


def _fixture(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


# -- real payloads -----------------------------------------------------------------------------


def test_seed_webhook_order():
    events = parse_webhook(json.dumps(_seed_payload()))
    assert [name for name, _ in events] == ["order_create"]
    order = parse_order(events[0][1])

    assert order.order_id == "DEMO-0009103373"
    assert order.merchant_id == "DEMO"
    assert order.stage == "Shipping Department"
    assert order.created_at == datetime(2016, 4, 7, 14, 7, 36, tzinfo=timezone(timedelta(hours=-4)))
    assert order.ship_to.name == "Test Order"
    assert (order.ship_to.address1, order.ship_to.city, order.ship_to.state) == ("Test Street", "ELK GROVE", "CA")
    assert (order.ship_to.postal_code, order.ship_to.country_code) == ("95758", "US")
    assert order.ship_to.residential is True
    assert order.ship_to.is_complete()
    assert order.bill_to.email == order.email == "adam@kontor.hu"
    assert order.phone == "(234) 234-2342"
    assert order.ship_method == "USPS: Priority Mail"
    assert (order.payment_method, order.payment_status, order.test_order) == ("Credit Card", "Processed", True)
    assert (order.subtotal, order.shipping_total, order.tax, order.total) == (
        Decimal("20.00"), Decimal("2.96"), Decimal("1.60"), Decimal("24.56"))
    assert order.discount == 0
    assert order.weight.value == 5 and order.weight.uom == "LB"
    assert order.coupons == [] and order.gift is False and order.requested_ship_date is None

    (line,) = order.lines
    assert line.sku == "Bone"
    assert line.line_no == 0  # the sample has no item_index
    assert line.quantity == 1
    assert line.unit_price == Decimal("20.00")
    assert line.weight.uom == "KG" and line.weight.value == Decimal("2.26796")
    assert round(line.weight.ounces) == 80
    assert (line.barcode, line.distribution_center, line.kit, line.kit_component) == ("078742226583", "DFLT", False, False)
    assert "DOGGIE BONES" in line.description


def test_fixture_kit_order_with_mixed_units():
    order = parse_order(_fixture("order-kit-mixed-units.json"))

    assert order.stage == "Pending Fulfillment Review"  # not one of the 13 documented stages: kept
    assert order.payment_method == "Interac e-Transfer"  # not in the enum: kept
    assert order.currency == "CAD"
    assert order.created_at.utcoffset() == timedelta(hours=-5)
    assert order.created_at.microsecond == 250000
    assert order.requested_ship_date == date(2026, 2, 17)  # the local date, not shifted to UTC
    assert order.email == "chloe.tremblay@example.com"  # billing.email blank: customer profile
    assert order.phone == "+1 416 555 0137"  # shipping phones blank: billing.day_phone
    assert order.ship_to.company == "Happy Paws Grooming" and order.ship_to.residential is False
    assert order.ship_to.email == order.email
    assert order.bill_to.country_code == "CA"
    assert order.discount == Decimal("11.42")  # subtotal discount + shipping discount
    assert [(c.code, c.base_code) for c in order.coupons] == [("SAVE10-7F3K", "SAVE10"), ("FREESHIP5", "FREESHIP5")]
    assert order.gift and order.gift_message == "Happy birthday, Rex!"
    assert order.customer_notes == "Please no plastic packaging."
    assert order.internal_notes == "Repeat customer"
    assert order.special_instructions == "Deliver to reception desk"
    assert order.weight.uom == "KG"

    parent, bone, treat, kibble = order.lines
    assert (parent.sku, parent.line_no, parent.kit, parent.quantity) == ("GIFT-SET", 0, True, 2)
    assert [(o.label, o.value, o.hidden) for o in parent.options] == [
        ("Gift Wrap", "Blue ribbon", False), ("Packer note", "wrap separately", True)]
    for component in (bone, treat):
        assert component.kit_component and not component.kit
        assert (component.parent_line_no, component.parent_sku) == (0, "GIFT-SET")
    assert bone.quantity == 2 and bone.weight.uom == "LB" and bone.weight.ounces == 80
    assert treat.weight.uom == "G" and round(treat.weight.ounces, 1) == Decimal("12.0")
    assert kibble.quantity == Decimal("1.5") and kibble.unit_price == Decimal("4.10")
    assert kibble.weight.ounces == 24 and kibble.parent_line_no is None


def test_every_demo_order_parses_and_the_specials_are_there():
    orders = [parse_order(o) for o in demo_orders()]
    assert len(orders) == 50 and orders[0].order_id == "DEMO-0001"
    assert len({o.order_id for o in orders}) == 50
    assert sum(o.ship_method == "Pigeon: Carrier Express" for o in orders) == 1
    assert sum(any(l.sku == "MYSTERY-SKU" for l in o.lines) for o in orders) == 1
    assert sum(not o.ship_to.is_complete() for o in orders) == 1
    assert sum(o.test_order for o in orders) == 1
    assert sum(o.created_at < datetime(2026, 1, 1, tzinfo=timezone.utc) for o in orders) == 1
    (kit,) = [o for o in orders if any(l.kit for l in o.lines)]
    assert [(l.sku, l.quantity, l.kit, l.kit_component, l.parent_line_no) for l in kit.lines] == [
        ("GIFT-SET", 1, True, False, None), ("BONE-5LB", 1, False, True, 1), ("TREAT", 2, False, True, 1)]
    assert any(l.sku == "Bone" for o in orders for l in o.lines)
    assert {o.ship_method for o in orders} >= {"USPS: Priority Mail", "UPS: Ground", "FedEx: 2Day"}
    assert any(o.gift_message for o in orders) and any(o.coupons for o in orders)
    assert any(o.special_instructions for o in orders) and any(o.customer_notes for o in orders)
    assert any(l.options for o in orders for l in o.lines)
    assert {l.weight.uom for o in orders for l in o.lines} >= {"LB", "KG", "OZ", "G"}
    raw = demo_orders()
    cards = [o["payment"]["credit_card"]["card_number"] for o in raw if "credit_card" in o["payment"]]
    assert cards and all(c.startswith("****") for c in cards)
    assert demo_orders(seed=7) == raw  # deterministic


def test_make_order_overrides_and_no_address():
    raw = make_order("ACME-9", items=[("TREAT", 3)], address=False, test_order=True, billing=None,
                     gift={"gift_message": "hi"})
    assert "billing" not in raw and "address1" not in raw["shipping"] and raw["merchant_id"] == "ACME"
    order = parse_order(raw)
    assert order.test_order and not order.ship_to.is_complete() and order.gift_message == "hi"
    assert order.lines[0].quantity == 3 and order.email == order.ship_to.email != ""


# -- what changed after hand-off -----------------------------------------------------------------


def test_fixture_rejected_order():
    order = parse_order(_fixture("order-rejected.json"))
    assert order.stage == "Rejected" and not order.on_hold
    assert order.rejected_at == datetime(2026, 3, 3, 16, 45, 9, tzinfo=timezone(timedelta(hours=-5)))
    assert order.reject_reason == "Customer called to cancel - duplicate order"
    assert order.refunded_at is None and order.refund_reason == ""
    assert [(l.sku, l.quantity, l.quantity_refunded) for l in order.lines] == [("BONE-5LB", 2, 0), ("TREAT", 1, 0)]


def test_fixture_partially_refunded_order():
    order = parse_order(_fixture("order-refunded-partial.json"))
    assert order.stage == "Shipping Department" and order.rejected_at is None and order.reject_reason == ""
    assert order.refunded_at == datetime(2026, 3, 4, 11, 39, 11, tzinfo=timezone(timedelta(hours=-5)))
    assert order.refund_reason == "CustomerCancel"
    leash, treat = order.lines
    assert (leash.quantity, leash.quantity_refunded) == (1, 0)
    # The refunded unit stays on the line: quantity keeps what was sold, quantity_refunded says how many went back.
    assert (treat.quantity, treat.quantity_refunded) == (2, 1)


@pytest.mark.parametrize("stage", ["Hold", "HOLD", "hold", " Hold "])
def test_hold_stage_in_any_case(stage):
    raw = _fixture("order-hold.json")
    raw["current_stage"] = stage
    order = parse_order(raw)
    assert order.on_hold and order.stage == stage.strip()


@pytest.mark.parametrize("stage", ["Shipping Department", "Holding", "Hold for review", "", None])
def test_other_stages_are_not_a_hold(stage):
    raw = _fixture("order-hold.json")
    raw["current_stage"] = stage
    assert not parse_order(raw).on_hold


def test_fixture_odd_quantities_are_kept_for_the_rules():
    null, missing, huge = parse_order(_fixture("order-odd-quantities.json")).lines
    assert null.sku == "TREAT" and null.quantity is None
    assert missing.sku == "LEASH-BLUE" and missing.quantity is None
    assert huge.quantity == Decimal(10) ** 12 and huge.quantity_refunded == 0


@pytest.mark.parametrize("text", ["1000000000000", "1e12", "1000000000000.0", "123456789012345678901234567890"])
def test_huge_quantities_parse_exactly(text):
    raw = json.loads('{"order_id": "D", "items": [{"merchant_item_id": "A", "quantity": %s}]}' % text)
    assert parse_order(raw).lines[0].quantity == Decimal(text)


def test_huge_integer_built_in_python_parses_too():
    # str() of an int over 4300 digits raises in Python; the parser must not depend on it.
    quantity = 10**5000
    assert parse_order({"order_id": "D", "items": [{"quantity": quantity}]}).lines[0].quantity == quantity


@pytest.mark.parametrize(("text", "field"), [
    ('{"quantity": 1e400}', "items[0].quantity"),
    ('{"quantity": -1e400}', "items[0].quantity"),
    ('{"quantity": 1, "quantity_refunded": 1e400}', "items[0].quantity_refunded"),
])
def test_json_overflow_to_infinity_is_refused(text, field):
    raw = json.loads('{"order_id": "DEMO-9", "items": [%s]}' % text)
    with pytest.raises(OrderParseError, match=re.escape(f"order DEMO-9: {field} must be a finite number")):
        parse_order(raw)


def test_reject_and_refund_fields_tolerate_junk():
    order = parse_order({"order_id": "D", "reject_dts": "not a date", "refund_dts": "", "reject_reason": None,
                         "refund_reason": 42, "items": [{"quantity": 1, "quantity_refunded": ""}]})
    assert order.rejected_at is None and order.refunded_at is None
    assert order.reject_reason == "" and order.refund_reason == "42"
    assert order.lines[0].quantity_refunded == 0


def test_unchanged_order_has_no_change_fields():
    order = parse_order(make_order("DEMO-1"))
    assert (order.rejected_at, order.refunded_at, order.on_hold) == (None, None, False)
    assert order.reject_reason == order.refund_reason == ""
    assert all(l.quantity_refunded == 0 for l in order.lines)


# -- tolerance -----------------------------------------------------------------------------------


def test_minimal_order_has_empty_defaults():
    order = parse_order({"order_id": "DEMO-1"})
    assert order.order_id == "DEMO-1" and order.lines == [] and order.coupons == []
    assert order.ship_to.address1 == "" and order.bill_to.city == "" and order.email == ""
    assert order.subtotal is None and order.total is None and order.discount == 0
    assert order.created_at is None and order.weight is None and order.currency == "USD"


def test_null_blocks_and_nulls_inside_blocks():
    raw = {"order_id": "DEMO-2", "billing": None, "shipping": {"address1": None, "tracking_numbers": [""]},
           "summary": {"total": None, "subtotal": {"localized": 1}}, "items": None, "coupons": None,
           "payment": {"test_order": None}, "gift": None}
    order = parse_order(raw)
    assert order.total is None and order.subtotal is None and not order.test_order and order.lines == []


def test_items_tolerances():
    raw = make_order("DEMO-3", items=[("TREAT", 1)])
    item = raw["items"][0]
    item.update(item_index=0, quantity=0.5, weight={"value": "250", "uom": "g"}, merchant_item_id=" TREAT ")
    del item["cost"]
    raw["items"].append({"merchant_item_id": "X", "quantity": "2", "item_index": "4", "kit": "false"})
    first, second = parse_order(raw).lines
    assert (first.line_no, first.quantity, first.sku, first.unit_price) == (0, Decimal("0.5"), "TREAT", None)
    assert first.weight.uom == "G" and first.weight.value == 250
    assert (second.quantity, second.line_no, second.kit) == (2, 4, False)


def test_dates_in_several_spellings():
    order = parse_order({"order_id": "D", "creation_dts": "2026-01-05T10:00:00Z",
                         "shipping": {"ship_on_date": "2026-01-09"}})
    assert order.created_at == datetime(2026, 1, 5, 10, tzinfo=timezone.utc)
    assert order.requested_ship_date == date(2026, 1, 9)
    late = parse_order({"order_id": "D", "shipping": {"ship_on_date": "2026-01-09T23:30:00-08:00"}})
    assert late.requested_ship_date == date(2026, 1, 9)
    garbled = parse_order({"order_id": "D", "creation_dts": "last tuesday"})
    assert garbled.created_at is None  # unreadable text is not worth losing the order over


def test_numbers_where_strings_are_documented():
    order = parse_order({"order_id": 12345, "shipping": {"postal_code": 95758, "day_phone": 5551234}})
    assert order.order_id == "12345" and order.ship_to.postal_code == "95758" and order.phone == "5551234"


def test_gift_message_without_flag_and_coupon_without_code():
    order = parse_order({"order_id": "G", "gift": {"gift_message": "For you"}, "coupons": [{"coupon_code": ""}]})
    assert order.gift and order.coupons == []


# -- malformed orders -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        ([], "JSON object"),
        ("DEMO-1", "JSON object"),
        (None, "JSON object"),
        ({}, "order_id"),
        ({"order_id": "  "}, "order_id"),
        ({"order_id": None}, "order_id"),
        ({"order_id": ["DEMO-1"]}, "order_id"),
        ({"order_id": "D", "items": "BONE-5LB"}, "items must be an array"),
        ({"order_id": "D", "items": ["BONE-5LB"]}, "items[0] must be an object"),
        ({"order_id": "D", "items": [{"merchant_item_id": "A", "quantity": "abc"}]}, "items[0].quantity"),
        ({"order_id": "D", "items": [{"quantity": True}]}, "items[0].quantity"),
        ({"order_id": "D", "items": [{"item_index": 1.5}]}, "items[0].item_index"),
        ({"order_id": "D", "items": [{"cost": {"value": "x"}}]}, "items[0].cost.value"),
        ({"order_id": "D", "items": [{"weight": "5 lb"}]}, "items[0].weight"),
        ({"order_id": "D", "items": [{"options": "gift wrap"}]}, "items[0].options"),
        ({"order_id": "D", "items": [{"merchant_item_id": {"sku": "A"}}]}, "items[0].merchant_item_id"),
        ({"order_id": "D", "shipping": "123 Main St"}, "shipping must be an object"),
        ({"order_id": "D", "shipping": {"ship_to_residential": "maybe"}}, "shipping.ship_to_residential"),
        ({"order_id": "D", "summary": {"total": {"value": "NaN"}}}, "summary.total.value"),
        ({"order_id": "D", "items": [{"quantity_refunded": "two"}]}, "items[0].quantity_refunded"),
        ({"order_id": "D", "reject_dts": 1700000000}, "reject_dts"),
        ({"order_id": "D", "refund_reason": ["x"]}, "refund_reason"),
        ({"order_id": "D", "creation_dts": 1700000000}, "creation_dts"),
        ({"order_id": "D", "coupons": "SAVE10"}, "coupons"),
    ],
)
def test_malformed_orders_name_the_field(raw, words):
    with pytest.raises(OrderParseError) as info:
        parse_order(raw)
    assert words in str(info.value)
    assert isinstance(info.value, ValueError)


def test_error_message_names_the_order():
    with pytest.raises(OrderParseError, match=r"order DEMO-7: items\[0\]\.quantity must be a number, got 'abc'"):
        parse_order({"order_id": "DEMO-7", "items": [{"quantity": "abc"}]})


def test_parser_does_not_mutate_its_input():
    raw = _fixture("order-kit-mixed-units.json")
    before = copy.deepcopy(raw)
    parse_order(raw)
    assert raw == before


# -- webhooks --------------------------------------------------------------------------------------


def _events(*ids: str) -> list:
    return [{"order_create": make_order(i)} for i in ids]


def test_webhook_envelope_in_every_input_type():
    envelope = {"events": _events("DEMO-1") + [{"fulfillment_transmit": make_order("DEMO-2")}]}
    text = json.dumps(envelope)
    for body in (envelope, text, text.encode()):
        pairs = parse_webhook(body)
        assert [(n, o["order_id"]) for n, o in pairs] == [("order_create", "DEMO-1"), ("fulfillment_transmit", "DEMO-2")]


def test_webhook_bare_array():
    pairs = parse_webhook(json.dumps(_events("DEMO-1", "DEMO-2")).encode())
    assert [o["order_id"] for _, o in pairs] == ["DEMO-1", "DEMO-2"]
    assert parse_webhook([]) == [] and parse_webhook({"events": []}) == []


def test_webhook_returns_bad_orders_raw_for_the_caller_to_reject_one_by_one():
    pairs = parse_webhook({"events": [{"order_create": {"no": "id"}}, {"order_create": make_order("DEMO-3")}]})
    assert len(pairs) == 2
    with pytest.raises(OrderParseError):
        parse_order(pairs[0][1])
    assert parse_order(pairs[1][1]).order_id == "DEMO-3"


@pytest.mark.parametrize("compress", [gzip.compress, zlib.compress], ids=["gzip", "zlib"])
def test_webhook_compressed_events(compress):
    events = _events("DEMO-1", "DEMO-2")
    packed = base64.b64encode(compress(json.dumps(events).encode())).decode()
    pairs = parse_webhook(json.dumps({"events": packed}))
    assert [o["order_id"] for _, o in pairs] == ["DEMO-1", "DEMO-2"]


def test_webhook_compressed_whole_envelope_and_plain_base64():
    events = _events("DEMO-5")
    whole = base64.b64encode(gzip.compress(json.dumps({"events": events}).encode())).decode()
    plain = base64.b64encode(json.dumps(events).encode()).decode()
    assert parse_webhook({"events": whole})[0][1]["order_id"] == "DEMO-5"
    assert parse_webhook({"events": plain})[0][1]["order_id"] == "DEMO-5"


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"", "empty"),
        ("   ", "empty"),
        (b"\xff\xfe{", "UTF-8"),
        ("{not json", "not JSON"),
        ("42", "array"),
        ('"text"', "array"),
        ({"event": []}, "no 'events' key"),
        ({"events": {"order_create": {}}}, "events must be an array"),
        ({"events": None}, "events must be an array"),
        ({"events": ["order_create"]}, "events[0]"),
        ({"events": [{"order_create": {}, "order_update": {}}]}, "exactly one key"),
        ({"events": [{}]}, "exactly one key"),
        ([{"order_create": "DEMO-1"}], "events[0].order_create must be an object"),
        ({"events": "!!not base64!!"}, "not base64"),
        ({"events": base64.b64encode(gzip.compress(b"<xml/>")).decode()}, "not JSON"),
    ],
)
def test_malformed_webhooks(body, words):
    with pytest.raises(WebhookParseError) as info:
        parse_webhook(body)
    assert words in str(info.value)
