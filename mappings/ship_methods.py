"""Cart shipping methods ("USPS: Priority Mail") -> the warehouse's ship method names."""

from __future__ import annotations

import re

_SPACES = re.compile(r"\s+")
_AROUND_COLON = re.compile(r"\s*:\s*")


def normalize_method(method: str) -> str:
    """A comparison key: case-folded, runs of whitespace collapsed, no spaces around the colon.

    Merchants type the map by hand; "usps:priority  mail" should still find "USPS: Priority Mail".
    """
    return _AROUND_COLON.sub(":", _SPACES.sub(" ", method).strip()).casefold()


def map_ship_method(cart_method: str, table: dict[str, str], *, default: str | None = None) -> str | None:
    """The warehouse method for `cart_method`: an exact match, then a case/whitespace-insensitive
    one, else `default` (None when unmapped and no default).

    Two table keys that differ only in case or spacing but map to different methods are
    ambiguous; such a fuzzy match is refused rather than guessed (the order is then held).
    """
    exact = table.get(cart_method)
    if exact is not None:
        return exact
    key = normalize_method(cart_method)
    matches = {value for name, value in table.items() if normalize_method(name) == key}
    if len(matches) == 1:
        return matches.pop()
    return default


def split_method(method: str) -> tuple[str, str]:
    """Split UltraCart's "Carrier: Service" into its parts: "USPS: Priority Mail" -> ("USPS", "Priority Mail").

    A method without a colon has no carrier: "Pickup" -> ("", "Pickup").
    """
    carrier, sep, service = method.partition(":")
    if not sep:
        return "", method.strip()
    return carrier.strip(), service.strip()
