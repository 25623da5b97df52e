"""Carrier names from warehouses -> canonical names and tracking links."""

import pytest

from mappings.carriers import canonical_carrier, normalize_carrier, tracking_url


@pytest.mark.parametrize(
    "reported, canonical",
    [
        ("usps", "USPS"),
        ("USPS", "USPS"),
        ("United States Postal Service", "USPS"),
        ("stamps_com", "USPS"),
        ("UPS", "UPS"),
        ("ups_ground", "UPS"),
        ("UPS 2nd Day Air", "UPS"),
        ("FedEx", "FedEx"),
        ("FEDEX", "FedEx"),
        ("fedex_smartpost", "FedEx"),
        ("DHL Express", "DHL"),
        ("dhl_express", "DHL"),
        ("dhl_ecommerce", "DHL eCommerce"),
        ("DHL eCommerce", "DHL eCommerce"),
        ("OnTrac", "OnTrac"),
    ],
)
def test_known_spellings(reported, canonical):
    assert canonical_carrier(reported) == canonical


def test_unknown_carrier_is_kept_as_reported():
    assert canonical_carrier("Pigeon Express") is None
    assert normalize_carrier("  Pigeon Express ") == "Pigeon Express"
    assert canonical_carrier("") is None
    # A word that merely starts with a carrier's letters is not that carrier.
    assert canonical_carrier("upsilon freight") is None


def test_tracking_urls():
    assert tracking_url("usps", "9400 1000 0000") == "https://tools.usps.com/go/TrackConfirmAction?tLabels=940010000000"
    assert tracking_url("ups_ground", "1Z999AA10123456784") == "https://www.ups.com/track?tracknum=1Z999AA10123456784"
    assert tracking_url("FEDEX", "123456789012").startswith("https://www.fedex.com/")
    assert "tracking-id=JD0123" in tracking_url("DHL Express", "JD0123")


def test_tracking_url_none_for_unknown_carrier_or_empty_number():
    assert tracking_url("Pigeon", "123") is None
    assert tracking_url("UPS", "  ") is None


def test_tracking_number_is_url_escaped():
    assert tracking_url("UPS", "A&B").endswith("tracknum=A%26B")
