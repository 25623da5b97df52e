"""Ship-method mapping as merchants type it."""

import pytest

from mappings.ship_methods import map_ship_method, split_method

TABLE = {"USPS: Priority Mail": "USPS Priority", "UPS: Ground": "UPS GND"}


def test_exact_match():
    assert map_ship_method("USPS: Priority Mail", TABLE) == "USPS Priority"


@pytest.mark.parametrize("method", ["usps: priority mail", "  USPS:Priority   Mail ", "USPS :\tPRIORITY MAIL"])
def test_case_and_whitespace_insensitive(method):
    assert map_ship_method(method, TABLE) == "USPS Priority"


def test_unmapped_is_none_or_default():
    assert map_ship_method("Pigeon: Carrier Express", TABLE) is None
    assert map_ship_method("Pigeon: Carrier Express", TABLE, default="STANDARD") == "STANDARD"
    assert map_ship_method("", TABLE) is None


def test_fuzzy_match_onto_two_different_methods_is_refused():
    table = {"UPS: Ground": "A", "ups: ground": "B"}
    assert map_ship_method("UPS: Ground", table) == "A"
    assert map_ship_method("UPS:GROUND", table) is None


@pytest.mark.parametrize(
    "method, parts",
    [
        ("USPS: Priority Mail", ("USPS", "Priority Mail")),
        ("UPS:Ground", ("UPS", "Ground")),
        ("FedEx: Home: Delivery", ("FedEx", "Home: Delivery")),
        ("Local Pickup", ("", "Local Pickup")),
    ],
)
def test_split_method(method, parts):
    assert split_method(method) == parts
