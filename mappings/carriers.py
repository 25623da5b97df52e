"""Carrier names as warehouses report them -> one canonical short name, and tracking links.

Warehouses spell carriers many ways ("usps", "stamps_com", "United States Postal Service",
"ups_ground", "FEDEX", "dhl_ecommerce"). The store and the alerts want one name per carrier.
"""

from __future__ import annotations

import re
from urllib.parse import quote

# Canonical name -> spellings, as space-separated lower-case words. A reported name matches a
# spelling when its words start with the spelling's words, so "ups ground" is UPS.
_SPELLINGS: dict[str, tuple[str, ...]] = {
    "USPS": ("usps", "united states postal service", "us postal service", "stamps com", "stamps", "endicia"),
    "UPS": ("ups", "united parcel service"),
    "FedEx": ("fedex", "fed ex", "fdx", "federal express"),
    "DHL eCommerce": ("dhl ecommerce", "dhl e commerce", "dhl global mail", "dhlgm", "dhl ecs"),
    "DHL": ("dhl", "dhl express"),
    "OnTrac": ("ontrac", "on trac"),
    "Amazon": ("amazon", "amazon shipping", "amzl"),
    "Canada Post": ("canada post", "canadapost", "postes canada"),
    "Purolator": ("purolator",),
    "Royal Mail": ("royal mail", "royalmail"),
    "Australia Post": ("australia post", "auspost"),
}

# Longest spellings first, so "dhl ecommerce" wins over "dhl".
_BY_WORDS: list[tuple[tuple[str, ...], str]] = sorted(
    ((tuple(s.split()), name) for name, spellings in _SPELLINGS.items() for s in spellings),
    key=lambda item: -len(item[0]),
)

_TRACKING_URLS: dict[str, str] = {
    "USPS": "https://tools.usps.com/go/TrackConfirmAction?tLabels={}",
    "UPS": "https://www.ups.com/track?tracknum={}",
    "FedEx": "https://www.fedex.com/fedextrack/?trknbr={}",
    "DHL": "https://www.dhl.com/global-en/home/tracking/tracking-express.html?submit=1&tracking-id={}",
    "DHL eCommerce": "https://www.dhl.com/us-en/home/tracking/tracking-ecommerce.html?submit=1&tracking-id={}",
    "OnTrac": "https://www.ontrac.com/tracking/?number={}",
    "Canada Post": "https://www.canadapost-postescanada.ca/track-reperage/en#/search?searchFor={}",
}

_NON_WORD = re.compile(r"[^0-9a-z]+")


def canonical_carrier(name: str) -> str | None:
    """The canonical short name of a reported carrier ("ups_ground" -> "UPS"), or None if unknown."""
    words = tuple(_NON_WORD.sub(" ", name.casefold()).split())
    if not words:
        return None
    for spelling, canonical in _BY_WORDS:
        if words[: len(spelling)] == spelling:
            return canonical
    return None


def normalize_carrier(name: str) -> str:
    """The canonical name when the carrier is known, else the reported name trimmed (never lost)."""
    return canonical_carrier(name) or name.strip()


def tracking_url(carrier: str, number: str) -> str | None:
    """A public tracking page for `number` at `carrier`, or None for an unknown carrier or no number."""
    canonical = canonical_carrier(carrier)
    # Warehouses sometimes report "1Z 999 AA1..." with spaces; the carriers' pages want none.
    cleaned = "".join(number.split())
    template = _TRACKING_URLS.get(canonical or "")
    if not template or not cleaned:
        return None
    return template.format(quote(cleaned, safe=""))
