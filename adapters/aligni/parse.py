"""Aligni API v2 XML -> records, with the standard library's ElementTree.

Documents carrying a DTD or entity declarations are refused before parsing (the standard parser
would expand internal entities; Aligni's answers never need either). Field names follow Aligni's
documented responses (api.aligni.com/v2/part.html, /v2/inventory_units.html).
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from adapters.ledger import LedgerUnit

LOCATION_SEPARATOR = " - "  # Aligni writes a unit's place as "CDHQ - General Storage" (location - sublocation)


class RefusedDocument(ValueError):
    """The body declares a DTD or entities: never parsed."""


class NotXml(ValueError):
    """The body is not well-formed XML (a proxy's page, a cut reply)."""


class BadField(ValueError):
    """A record's field cannot be read (a quantity that is not a number)."""


def document(body: bytes | str) -> ET.Element:
    """The root element of an XML body."""
    head = body if isinstance(body, str) else body.decode("utf-8", "replace")
    folded = head.casefold()
    if "<!doctype" in folded or "<!entity" in folded:
        raise RefusedDocument("the answer declares a DTD or entities; refused")
    try:
        return ET.fromstring(body)
    except ET.ParseError as exc:
        raise NotXml(f"the answer is not XML ({exc})") from None


def text(element: ET.Element, tag: str) -> str:
    return (element.findtext(tag) or "").strip()


def decimal(value: str, what: str) -> Decimal:
    try:
        d = Decimal(value)
    except InvalidOperation:
        raise BadField(f"{what} is not a number: {value!r}") from None
    if not d.is_finite():
        raise BadField(f"{what} is not a number: {value!r}")
    return d


def timestamp(value: str) -> datetime | None:
    """Aligni's ISO 8601 times ("2013-11-14T10:34:00+00:00"); None when absent or unreadable."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Part:
    """One part of the item master (the fields the ledger uses)."""

    id: str
    partnumber: str
    manufacturer_pn: str
    description: str


def parts(root: ET.Element) -> list[Part]:
    """`<parts><part>...</part></parts>` (a single `<part>` answer is accepted too)."""
    elements = [root] if root.tag == "part" else root.findall("part")
    out = []
    for el in elements:
        pid = text(el, "id")
        if not pid:
            raise BadField("a part without an id")
        out.append(Part(pid, text(el, "partnumber"), text(el, "manufacturer_pn"), text(el, "description")))
    return out


@dataclass(frozen=True)
class UnitRow:
    """An inventory unit as Aligni describes it, plus what filtering by place needs."""

    unit: LedgerUnit
    label: str  # inventory_location as Aligni writes it
    sublocation_id: str  # inventory_sublocation_id (absent from the single-unit answer)


def split_label(label: str) -> tuple[str, str]:
    location, _, sublocation = label.partition(LOCATION_SEPARATOR)
    return location.strip(), sublocation.strip()


def unit(el: ET.Element, part_id: str = "") -> UnitRow:
    """One `<inventory_unit>`. The single-unit answer has no `part_id`: the caller supplies it."""
    uid = text(el, "id")
    if not uid:
        raise BadField("an inventory unit without an id")
    label = text(el, "inventory_location")
    location, sublocation = split_label(label)
    quantity = decimal(text(el, "quantity"), f"inventory unit {uid} quantity")
    available_text = text(el, "quantity_available")
    available = decimal(available_text, f"inventory unit {uid} quantity_available") if available_text else quantity
    return UnitRow(
        LedgerUnit(
            id=uid,
            item_id=text(el, "part_id") or part_id,
            quantity=quantity,
            quantity_available=available,
            location=location,
            sublocation=sublocation,
            bin=text(el, "sublocation_bin") or text(el, "bin"),
            lot_code=text(el, "lot_code"),
            datecode=text(el, "datecode"),
            serial=text(el, "serial_number"),
            created_at=timestamp(text(el, "created_at")),
        ),
        label,
        text(el, "inventory_sublocation_id"),
    )


def units(root: ET.Element) -> list[UnitRow]:
    """`<inventory_units><inventory_unit>...</inventory_unit></inventory_units>`."""
    elements = [root] if root.tag == "inventory_unit" else root.findall("inventory_unit")
    return [unit(el) for el in elements]


def pagination(header: str | None) -> dict[str, Any] | None:
    """The X-Pagination header (JSON: total_entries, total_pages, next_page...), None when absent
    or unreadable."""
    if not header:
        return None
    try:
        value = json.loads(header)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


_TAGS = re.compile(r"<[^>]+>")
_SPACE = re.compile(r"\s+")


def error_text(body: str, fallback: str) -> str:
    """Aligni's readable message from an error answer: the `<error>` texts of an XML body
    (`<errors><error>..</error></errors>`), else the body's text without markup."""
    body = body.strip()
    if not body:
        return fallback
    folded = body.casefold()
    if body.startswith("<") and "<!doctype" not in folded and "<!entity" not in folded:
        try:
            root = ET.fromstring(body)
        except ET.ParseError:
            root = None
        if root is not None:
            messages = [(e.text or "").strip() for e in root.iter("error")]
            messages = [m for m in messages if m]
            if messages:
                return "; ".join(messages)[:500]
            flat = _SPACE.sub(" ", " ".join(t.strip() for t in root.itertext() if t.strip()))
            if flat:
                return flat[:500]
    return _SPACE.sub(" ", _TAGS.sub(" ", body)).strip()[:500] or fallback
