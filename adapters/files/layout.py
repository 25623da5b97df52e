"""The CSV layout (after DropStream's DSFX), as pure functions: orders out, shipments and stock in.

Columns have our names; `FilesConfig.columns` maps them to a partner's headers. Headers are
matched case-insensitively, in any order; unknown columns are ignored. A bad row never fails a
file: it is skipped (or, for a field we can do without, the value is ignored) and reported as a
`FileProblem` naming the file and the line, and the rest of the file is read.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from adapters import kit
from adapters.kit import iso
from connector.domain import Shipment, ShipmentLine, StockLevel, WarehouseOrder


@dataclass(frozen=True)
class Columns:
    """The columns of one file kind, in the order an order file is written."""

    names: tuple[str, ...]
    required: frozenset[str]


COLUMNS: dict[str, Columns] = {
    # Order-level columns are repeated on every line row (one row per order line).
    "orders": Columns(
        (
            "reference", "order_id", "order_date", "ship_method",
            "ship_to_name", "ship_to_company", "ship_to_address1", "ship_to_address2", "ship_to_city",
            "ship_to_state", "ship_to_postal_code", "ship_to_country", "ship_to_phone", "ship_to_email",
            "gift_message", "notes", "sku", "quantity", "description", "unit_price",
        ),
        frozenset({"reference", "sku", "quantity"}),
    ),
    # One row per shipped line; shipment-level columns repeated. `shipment_id` may be blank.
    "shipments": Columns(
        ("reference", "shipment_id", "carrier", "service", "tracking_number", "ship_date", "sku", "quantity", "cost", "voided"),
        frozenset({"reference", "tracking_number", "sku", "quantity"}),
    ),
    # A full snapshot: one row per SKU and warehouse (several rows of a pair are bins: summed).
    "stock": Columns(("sku", "warehouse_id", "available", "on_hand"), frozenset({"sku", "available"})),
}
DEFAULT_WAREHOUSE_ID = "main"  # for stock rows without a warehouse id
_TRUE = frozenset({"1", "true", "yes", "y", "x", "t", "void", "voided"})


@dataclass(frozen=True)
class FileProblem:
    """Something wrong in an inbound file, for the log, the event log and the operator."""

    file: str
    line: int  # 1 = the header row; 0 = the file as a whole
    message: str
    fatal: bool = False  # the file could not be read at all (it is left where it is)

    def __str__(self) -> str:
        return f"{self.file} line {self.line}: {self.message}" if self.line else f"{self.file}: {self.message}"


class _Skip(ValueError):
    """A row that cannot be used."""


# -- orders out -------------------------------------------------------------------------------


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")  # what makes a spreadsheet read a cell as a formula
_PLAIN_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)$")


def neutralised(text: str) -> str:
    """A cell no spreadsheet will run (OWASP, CSV injection): one starting with = + - @ tab or
    carriage return gets a leading `'`, which spreadsheets show as text and do not evaluate.
    Plain numbers (a negative price) are not formulas and stay as they are."""
    if text.startswith(FORMULA_STARTS) and not _PLAIN_NUMBER.match(text):
        return "'" + text
    return text


def _cell(value: Any, escape_formulas: bool = True) -> str:
    # Many WMS importers read one record per physical line: keep every value on one line.
    text = "" if value is None else str(value)
    text = re.sub(r"\s*[\r\n]+\s*", " ", text).strip()
    return neutralised(text) if escape_formulas else text


def order_rows(order: WarehouseOrder) -> list[dict[str, str]]:
    """The rows of one order, by our column names."""
    cart, to = order.order, order.order.ship_to
    notes = " | ".join(n.strip() for n in (cart.special_instructions, cart.customer_notes) if n and n.strip())
    head = {
        "reference": order.reference,
        "order_id": cart.order_id,
        "order_date": iso(cart.created_at) if cart.created_at else "",
        "ship_method": order.ship_method,
        "ship_to_name": to.name,
        "ship_to_company": to.company,
        "ship_to_address1": to.address1,
        "ship_to_address2": to.address2,
        "ship_to_city": to.city,
        "ship_to_state": to.state,
        "ship_to_postal_code": to.postal_code,
        "ship_to_country": to.country_code.upper(),
        "ship_to_phone": to.phone or cart.phone,
        "ship_to_email": to.email or cart.email,
        "gift_message": cart.gift_message,
        "notes": notes,
    }
    return [
        {
            **head,
            "sku": line.sku,
            "quantity": str(int(line.quantity)),
            "description": line.description,
            "unit_price": "" if line.unit_price is None else f"{line.unit_price:f}",
        }
        for line in order.lines
    ]


def cancel_csv(reference: str, order_id: str, reason: str, at: datetime, delimiter: str = ",", *, escape_formulas: bool = True) -> str:
    """A cancel request: a header row (reference, order_id, reason, requested_at) and one row."""
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\r\n")
    writer.writerow(["reference", "order_id", "reason", "requested_at"])
    writer.writerow([_cell(v, escape_formulas) for v in (reference, order_id, reason[:500], at.strftime("%Y-%m-%dT%H:%M:%SZ"))])
    return out.getvalue()


def order_csv(order: WarehouseOrder, headers: dict[str, str], delimiter: str = ",", *, escape_formulas: bool = True) -> str:
    """The whole order file: a header row and one row per line. `headers` maps our column
    names to the partner's; a column mapped to "" is left out. With `escape_formulas` no cell
    can run as a spreadsheet formula (`neutralised`)."""
    kept = [(name, headers.get(name, name)) for name in COLUMNS["orders"].names if headers.get(name, name).strip()]
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\r\n")  # RFC 4180 line ends
    writer.writerow([header for _, header in kept])
    for row in order_rows(order):
        writer.writerow([_cell(row[name], escape_formulas) for name, _ in kept])
    return out.getvalue()


# -- reading ----------------------------------------------------------------------------------


def _records(name: str, text: str, kind: str, headers: dict[str, str], delimiter: str, problems: list[FileProblem]):
    """(line number, {our name: value}) for each data row; header problems end the file."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = next(reader, None)
        while header is not None and not any(c.strip() for c in header):
            header = next(reader, None)
    except csv.Error as exc:
        problems.append(FileProblem(name, 1, f"unreadable header: {exc}; file not read", fatal=True))
        return
    if header is None:
        return  # an empty file is a valid "nothing to report"
    position = {h.strip().lstrip("\ufeff").lower(): i for i, h in enumerate(header)}
    index = {ours: position[theirs.strip().lower()] for ours, theirs in headers.items() if theirs.strip().lower() in position}
    missing = [f"{ours} (header {headers[ours]!r})" for ours in sorted(COLUMNS[kind].required) if ours not in index]
    if missing:
        problems.append(FileProblem(name, reader.line_num, f"missing column {', '.join(missing)}; file not read", fatal=True))
        return
    width = len(header)
    line = reader.line_num
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            problems.append(FileProblem(name, line + 1, f"unreadable row ({exc}); row skipped"))
            line = reader.line_num
            continue
        start, line = line + 1, reader.line_num
        if not any(c.strip() for c in row):
            continue
        if len(row) > width and any(c.strip() for c in row[width:]):
            problems.append(FileProblem(name, start, f"{len(row)} fields for {width} columns (check the quoting); row skipped"))
            continue
        yield start, {ours: (row[i].strip() if i < len(row) else "") for ours, i in index.items()}


def _quantity(value: str, column: str) -> int:
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise _Skip(f"{column} {value!r} is not a number") from None
    if number != number.to_integral_value():
        raise _Skip(f"{column} {value!r} is not a whole number")
    return int(number)


def _moment(value: str) -> datetime | None:
    if not value:
        return None
    moment = kit.parse_time(value)
    if moment is not None:
        return moment
    for fmt in ("%m/%d/%Y %H:%M:%S", "%m/%d/%Y %H:%M", "%m/%d/%Y", "%Y%m%d", "%Y/%m/%d"):
        try:
            return datetime.strptime(value.strip(), fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    raise ValueError(f"ship_date {value!r} is not a date")


def tracking_numbers(value: str) -> list[str]:
    """Several numbers in one cell (`;`, `,` or `|` separated); blanks and repeats dropped."""
    return kit.tracking_numbers(value, separators=";,|")


def parse_shipments(name: str, text: str, headers: dict[str, str], delimiter: str = ",") -> tuple[list[Shipment], list[FileProblem]]:
    """The shipments of one `shp_*` file, grouped by shipment id (or, when the partner sends
    none, by reference and tracking number), with the problems found."""
    problems: list[FileProblem] = []
    shipments: dict[str, dict[str, Any]] = {}
    for line, rec in _records(name, text, "shipments", headers, delimiter, problems):
        try:
            if not rec["reference"]:
                raise _Skip("no reference")
            if not rec["sku"]:
                raise _Skip("no sku")
            quantity = _quantity(rec["quantity"], "quantity")
            if quantity < 0:
                raise _Skip(f"quantity {quantity} is negative")
        except _Skip as exc:
            problems.append(FileProblem(name, line, f"{exc}; row skipped"))
            continue
        numbers = tracking_numbers(rec.get("tracking_number", ""))
        sid = rec.get("shipment_id") or f"{rec['reference']}:{numbers[0] if numbers else name}"
        s = shipments.setdefault(sid, {"reference": rec["reference"], "lines": {}, "tracking": [], "carrier": "",
                                       "service": "", "shipped_at": None, "cost": None, "voided": False})
        if s["reference"] != rec["reference"]:
            problems.append(FileProblem(name, line, f"shipment {sid} is already for {s['reference']}, not {rec['reference']}; row skipped"))
            continue
        s["lines"][rec["sku"]] = s["lines"].get(rec["sku"], 0) + quantity
        s["tracking"] += [t for t in numbers if t not in s["tracking"]]
        s["carrier"] = s["carrier"] or rec.get("carrier", "")
        s["service"] = s["service"] or rec.get("service", "")
        s["voided"] = s["voided"] or rec.get("voided", "").lower() in _TRUE
        try:
            s["shipped_at"] = s["shipped_at"] or _moment(rec.get("ship_date", ""))
        except ValueError as exc:
            problems.append(FileProblem(name, line, f"{exc}; value ignored"))
        if s["cost"] is None and rec.get("cost"):
            # The shipment's cost, repeated on its rows (or given on the first one only).
            try:
                s["cost"] = Decimal(rec["cost"].lstrip("$"))
            except InvalidOperation:
                problems.append(FileProblem(name, line, f"cost {rec['cost']!r} is not a number; value ignored"))
    out = [
        Shipment(
            shipment_id=sid, reference=s["reference"], carrier=s["carrier"], service=s["service"],
            tracking_numbers=s["tracking"], shipped_at=s["shipped_at"], shipping_cost=s["cost"] or Decimal(0),
            lines=[ShipmentLine(sku=sku, quantity=q) for sku, q in s["lines"].items() if q > 0], voided=s["voided"],
        )
        for sid, s in shipments.items()
    ]
    return out, problems


def parse_stock(name: str, text: str, headers: dict[str, str], delimiter: str = ",") -> tuple[list[StockLevel], list[FileProblem]]:
    """One `inv_*` snapshot: stock per SKU and warehouse (rows of the same pair summed)."""
    problems: list[FileProblem] = []
    levels: dict[tuple[str, str], list[int]] = {}
    for line, rec in _records(name, text, "stock", headers, delimiter, problems):
        try:
            if not rec["sku"]:
                raise _Skip("no sku")
            available = _quantity(rec["available"], "available")
            on_hand = _quantity(rec["on_hand"], "on_hand") if rec.get("on_hand") else None
        except _Skip as exc:
            problems.append(FileProblem(name, line, f"{exc}; row skipped"))
            continue
        # A WMS can report negative stock (over-picked bins): nothing can be promised from it.
        available = max(0, available)
        on_hand = max(0, available if on_hand is None else on_hand)
        pair = levels.setdefault((rec["sku"], rec.get("warehouse_id") or DEFAULT_WAREHOUSE_ID), [0, 0])
        pair[0] += available
        pair[1] += on_hand
    return [StockLevel(sku=sku, warehouse_id=wid, available=a, on_hand=h) for (sku, wid), (a, h) in levels.items()], problems
