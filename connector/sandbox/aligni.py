"""A loopback Aligni (API v2, XML): just the endpoints the Aligni ledger adapter uses.

Faithful where it matters to the connector (api.aligni.com/v2, research notes section 1):
- the API token is a path segment, `/api/v2/{token}/...`: another token is a 401 with an XML
  error, a path outside the API a 404;
- `GET /part` lists the item master, paged by `page`/`per_page` (default 25) with the
  `X-Pagination` JSON header (`total_entries`, `total_pages`, `per_page`, `current_page`,
  `first_page`, `last_page`, `previous_page`, `next_page`, `out_of_range`) and filtered by
  `filter[updated_on][gte]` (ISO 8601), the only filter Aligni documents; `GET /part/{id}`;
- `GET /inventory_units/search`: indexed `field{i}`/`comparison{i}`/`term{i}` read in order
  until an index is missing, OR-combined, case-insensitive; `comparison` is `contains` (the one
  Aligni documents; default), a missing `field` searches the text fields; an unknown field or
  comparison is a 422; paged like parts;
- `GET /parts/{part_id}/inventory_units/{id}`: one unit, in the documented single-unit shape
  (no `part_id`, no `inventory_sublocation_id`); `inventory_location` reads
  "{location} - {sublocation}";
- `PUT /parts/{part_id}/inventory_units/{id}/adjust_quantity` with `inventory_unit[quantity]`
  (query or form or an XML `<inventory_unit><quantity>` body) and an optional
  `inventory_unit[inventory_record][comment]`. `adjust_mode` says how the number is read:
  "signed" (default; Aligni's manual-adjustment rule: a leading + or - is relative, a bare number
  absolute), "relative" or "absolute". Neither the quantity nor the quantity available
  (quantity less what builds reserved) may go negative: a 422 `<errors><error>` otherwise, and
  nothing changes. `delete_empty` removes a unit adjusted to 0;
- about 30 calls a minute per sandbox (`rate_limit_per_minute`, a sliding window; 429 with
  Retry-After), plus every fault knob of `connector.sandbox.faults` (latency, 5xx, timeouts,
  resets, scripted faults that may hit after the work is done).

State changes hold `self._lock` (the server runs in its own thread). Tests seed with
`add_part` / `add_unit` and read `quantity()`, `history()`, `state()`; `change_after_next_adjust`
plays a colleague adjusting a unit in Aligni's UI between our adjustment and its read-back.
Control API (never faulted): GET /_sandbox/state, POST /_sandbox/faults, /_sandbox/parts,
/_sandbox/units.
"""

from __future__ import annotations

import json
import threading
import xml.etree.ElementTree as ET
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from connector.sandbox import common
from connector.sandbox.common import Edge, endpoint
from connector.sandbox.faults import FaultMiddleware, Faults
from connector.sandbox.server import SandboxServer

XML = "application/xml; charset=utf-8"
API = "/api/v2/{token}"
DEFAULT_PER_PAGE = 25
RATE_LIMIT = 30  # Aligni: about 30 calls a minute
ADJUST_MODES = ("signed", "relative", "absolute")
UNIT_TEXT_FIELDS = ("inventory_location", "sublocation_bin", "lot_code", "datecode", "serial_number", "asset_id", "details")
UNIT_FIELDS = ("id", "part_id", "inventory_sublocation_id", "bin", "purchase_order_number", "vendor", *UNIT_TEXT_FIELDS)


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def _qty(value: Decimal) -> str:
    """Quantities as Aligni writes them: "3600", "0.10" (no exponent)."""
    return format(value.normalize(), "f") if value == value.to_integral_value() else format(value, "f")


def _xml(root: ET.Element) -> bytes:
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="utf-8")


def _leaf(parent: ET.Element, tag: str, value: Any) -> None:
    ET.SubElement(parent, tag).text = "" if value is None else str(value)


class ApiError(common.ApiError):
    """An Aligni-style error: `<errors><error>message</error></errors>`."""

    def response(self) -> Response:
        if self.body is None:
            return Response(status_code=self.status)
        root = ET.Element("errors")
        for message in self.body if isinstance(self.body, list) else [self.body]:
            _leaf(root, "error", message)
        return Response(_xml(root), status_code=self.status, media_type=XML)


@dataclass
class Unit:
    """One inventory unit of the simulated site."""

    id: int
    part_id: int
    location: str
    sublocation: str
    sublocation_id: int
    quantity: Decimal
    reserved: Decimal = Decimal(0)  # set aside for builds: not available
    bin: str = ""
    lot_code: str = ""
    datecode: str = ""
    serial_number: str = ""
    asset_id: str = ""
    details: str = ""
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    updated_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def available(self) -> Decimal:
        return self.quantity - self.reserved

    @property
    def label(self) -> str:
        return f"{self.location} - {self.sublocation}"

    def value(self, name: str) -> str:
        """A field as the search compares it."""
        return {
            "id": str(self.id), "part_id": str(self.part_id), "inventory_sublocation_id": str(self.sublocation_id),
            "inventory_location": self.label, "sublocation_bin": self.bin, "bin": self.bin,
            "purchase_order_number": "", "vendor": "",
        }.get(name, getattr(self, name, "") or "")


class AligniSandbox:
    """State of one simulated Aligni site plus its ASGI app (`.app`) and faults (`.faults`)."""

    api_error = ApiError  # what @endpoint turns into a reply

    def __init__(
        self,
        token: str = "sandboxToken_0001",
        *,
        site: str = "sandbox",
        rate_limit_per_minute: int = RATE_LIMIT,
        adjust_mode: str = "signed",
        delete_empty: bool = False,
        searchable_part_id: bool = True,  # Aligni does not list its search fields; False makes part_id a 422
        max_per_page: int = 100,
        echo_path_in_errors: bool = False,  # error bodies repeat the request path (as a debug page would)
        faults: Faults | None = None,
    ):
        if adjust_mode not in ADJUST_MODES:
            raise ValueError(f"adjust_mode must be one of {ADJUST_MODES}")
        self.token, self.site = token, site
        self.adjust_mode, self.delete_empty = adjust_mode, delete_empty
        self.searchable_part_id, self.max_per_page = searchable_part_id, max_per_page
        self.echo_path_in_errors = echo_path_in_errors
        self._lock = threading.Lock()
        self._seq = {"part": 700, "unit": 50, "sublocation": 0}
        self.parts: dict[int, dict[str, Any]] = {}
        self.units: dict[int, Unit] = {}
        self.sublocations: dict[tuple[str, str], int] = {}
        self.requests: dict[str, int] = defaultdict(int)
        self.adjust_count = 0  # adjustments that changed a unit
        self._after_adjust: dict[int, Decimal] = {}
        self.url = ""  # set by whoever serves the app
        self.faults = faults or Faults()
        self.faults.rate_limit_per_minute = rate_limit_per_minute
        routes = [
            Route(f"{API}/part", self._list_parts, methods=["GET"]),
            Route(f"{API}/part/{{part_id}}", self._show_part, methods=["GET"]),
            Route(f"{API}/inventory_units/search", self._search, methods=["GET"]),
            Route(f"{API}/parts/{{part_id}}/inventory_units/{{unit_id}}", self._show_unit, methods=["GET"]),
            Route(f"{API}/parts/{{part_id}}/inventory_units/{{unit_id}}/adjust_quantity", self._adjust, methods=["PUT"]),
            Route("/_sandbox/state", self._control_state, methods=["GET"]),
            Route("/_sandbox/faults", self._control_faults, methods=["POST"]),
            Route("/_sandbox/parts", self._control_parts, methods=["POST"]),
            Route("/_sandbox/units", self._control_units, methods=["POST"]),
        ]
        inner = Starlette(routes=routes)
        self.app = Edge(FaultMiddleware(inner, self.faults), self._count_request)

    # -- Python-side API (tests, demo) --------------------------------------------------------

    def add_part(self, partnumber: str, description: str = "", *, manufacturer_pn: str = "",
                 updated_at: datetime | None = None) -> str:
        """A part of the item master; returns its id."""
        with self._lock:
            self._seq["part"] += 1
            pid = self._seq["part"]
            moment = updated_at or datetime.now(UTC)
            self.parts[pid] = {"id": pid, "partnumber": partnumber, "manufacturer_pn": manufacturer_pn,
                               "description": description or partnumber, "unit_id": 2,
                               "created_at": moment, "updated_at": moment}
            return str(pid)

    def part_id(self, partnumber: str) -> str:
        with self._lock:
            return str(self._part_by_number(partnumber)["id"])

    def add_unit(self, partnumber: str, quantity: Decimal | int | str, *, location: str = "Main Warehouse",
                 sublocation: str = "Finished Goods", reserved: Decimal | int | str = 0, lot_code: str = "",
                 datecode: str = "", serial_number: str = "", bin: str = "", created_at: datetime | None = None) -> str:
        """An inventory unit of a part (created when unknown); returns the unit's id."""
        if not any(p["partnumber"] == partnumber for p in self.parts.values()):
            self.add_part(partnumber)
        with self._lock:
            part = self._part_by_number(partnumber)
            key = (location, sublocation)
            if key not in self.sublocations:
                self._seq["sublocation"] += 1
                self.sublocations[key] = self._seq["sublocation"]
            self._seq["unit"] += 1
            moment = created_at or datetime.now(UTC)
            unit = Unit(id=self._seq["unit"], part_id=part["id"], location=location, sublocation=sublocation,
                        sublocation_id=self.sublocations[key], quantity=Decimal(str(quantity)),
                        reserved=Decimal(str(reserved)), bin=bin, lot_code=lot_code, datecode=datecode,
                        serial_number=serial_number, created_at=moment, updated_at=moment)
            self.units[unit.id] = unit
            return str(unit.id)

    def quantity(self, unit_id: str | int) -> Decimal | None:
        """The unit's quantity now (None once deleted)."""
        with self._lock:
            unit = self.units.get(int(unit_id))
            return None if unit is None else unit.quantity

    def available(self, unit_id: str | int) -> Decimal | None:
        with self._lock:
            unit = self.units.get(int(unit_id))
            return None if unit is None else unit.available

    def history(self, unit_id: str | int) -> list[dict[str, Any]]:
        """The unit's adjustments: before, after, comment, how the quantity parameter read."""
        with self._lock:
            unit = self.units.get(int(unit_id))
            return [dict(h) for h in unit.history] if unit else []

    def set_quantity(self, unit_id: str | int, quantity: Decimal | int | str, comment: str = "adjusted in the UI") -> None:
        """Someone adjusts the unit in Aligni's UI."""
        with self._lock:
            unit = self.units[int(unit_id)]
            self._record(unit, Decimal(str(quantity)), comment, "ui")

    def change_after_next_adjust(self, unit_id: str | int, delta: Decimal | int | str) -> None:
        """Right after the next API adjustment of this unit, someone changes it by `delta`."""
        with self._lock:
            self._after_adjust[int(unit_id)] = Decimal(str(delta))

    def state(self) -> dict[str, Any]:
        with self._lock:
            return {
                "parts": {p["partnumber"]: str(pid) for pid, p in self.parts.items()},
                "units": {
                    str(u.id): {"part": self.parts[u.part_id]["partnumber"], "place": u.label,
                                "quantity": _qty(u.quantity), "available": _qty(u.available),
                                "lot_code": u.lot_code, "datecode": u.datecode, "history": len(u.history)}
                    for u in self.units.values()
                },
                "adjust_count": self.adjust_count,
                "requests": dict(self.requests),
                "faults": dict(self.faults.counts),
            }

    # -- internals (callers hold the lock) ----------------------------------------------------

    def _part_by_number(self, partnumber: str) -> dict[str, Any]:
        return next(p for p in self.parts.values() if p["partnumber"] == partnumber)

    def _record(self, unit: Unit, after: Decimal, comment: str, reading: str) -> None:
        unit.history.append({"before": unit.quantity, "after": after, "comment": comment, "reading": reading,
                             "at": datetime.now(UTC)})
        unit.quantity = after
        unit.updated_at = datetime.now(UTC)

    def _count_request(self, method: str, path: str) -> None:
        parts = path.split("/")
        if len(parts) > 3 and parts[1] == "api":
            parts[3] = "{token}"  # never keep a token, even a sandbox one
        shape = "/".join("{id}" if p.isdigit() else p for p in parts)
        with self._lock:
            self.requests[f"{method} {shape}"] += 1

    def _check_auth(self, request: Request) -> None:
        if request.path_params.get("token") != self.token:
            raise ApiError(401, self._message(request, "Invalid API token"))

    def _message(self, request: Request, text: str) -> str:
        return f"{text} ({request.method} {request.url.path})" if self.echo_path_in_errors else text

    def _page(self, request: Request, items: list[ET.Element], root_tag: str) -> Response:
        q = request.query_params
        try:
            page = int(q.get("page") or 1)
            per_page = int(q.get("per_page") or DEFAULT_PER_PAGE)
        except ValueError:
            raise ApiError(422, self._message(request, "page and per_page must be integers")) from None
        if page < 1 or per_page < 1:
            raise ApiError(422, self._message(request, "page and per_page must be positive"))
        per_page = min(per_page, self.max_per_page)
        total = len(items)
        pages = (total + per_page - 1) // per_page
        chunk = items[(page - 1) * per_page: page * per_page]
        root = ET.Element(root_tag)
        root.extend(chunk)
        info = {
            "total_entries": total, "total_pages": pages, "per_page": per_page, "current_page": page,
            "first_page": page == 1, "last_page": page >= pages, "previous_page": page - 1 if page > 1 else None,
            "next_page": page + 1 if page < pages else None, "out_of_range": page > pages,
        }
        return Response(_xml(root), media_type=XML, headers={"X-Pagination": json.dumps(info)})

    def _part_xml(self, part: dict[str, Any]) -> ET.Element:
        el = ET.Element("part")
        for key in ("id", "partnumber", "manufacturer_pn", "description", "unit_id"):
            _leaf(el, key, part[key])
        _leaf(el, "created_at", _stamp(part["created_at"]))
        _leaf(el, "updated_at", _stamp(part["updated_at"]))
        return el

    def _unit_xml(self, unit: Unit, *, single: bool = False) -> ET.Element:
        """The search shape, or (`single`) the documented show shape without the ids."""
        el = ET.Element("inventory_unit")
        _leaf(el, "id", unit.id)
        if not single:
            _leaf(el, "part_id", unit.part_id)
            _leaf(el, "inventory_sublocation_id", unit.sublocation_id)
            _leaf(el, "unit_id", 2)
            _leaf(el, "sublocation_bin", unit.bin)
            _leaf(el, "bin", unit.bin)
        _leaf(el, "quantity", _qty(unit.quantity))
        _leaf(el, "quantity_available", _qty(unit.available))
        _leaf(el, "unit", "each")
        _leaf(el, "cost_per_unit", "4.25")
        _leaf(el, "currency", "USD")
        _leaf(el, "inventory_location", unit.label)
        if single:
            _leaf(el, "sublocation_bin", unit.bin)
        for key in ("asset_id", "serial_number", "lot_code", "datecode", "details"):
            _leaf(el, key, getattr(unit, key))
        for key in ("purchase_order_number", "purchase_quantity", "purchase_price", "vendor"):
            _leaf(el, key, "")
        _leaf(el, "created_at", _stamp(unit.created_at))
        _leaf(el, "updated_at", _stamp(unit.updated_at))
        return el

    def _unit_at(self, request: Request) -> Unit:
        try:
            uid, pid = int(request.path_params["unit_id"]), int(request.path_params["part_id"])
        except ValueError:
            raise ApiError(404, self._message(request, "Not found")) from None
        unit = self.units.get(uid)
        if unit is None or unit.part_id != pid:
            raise ApiError(404, self._message(request, "Inventory unit not found"))
        return unit

    # -- API handlers -------------------------------------------------------------------------

    @endpoint
    async def _list_parts(self, request: Request) -> Response:
        since = None
        raw = request.query_params.get("filter[updated_on][gte]")
        if raw is not None:
            try:
                since = datetime.fromisoformat(raw.replace("Z", "+00:00"))
            except ValueError:
                raise ApiError(422, self._message(request, f"filter[updated_on][gte] is not an ISO8601 date: {raw}")) from None
            if since.tzinfo is None:
                since = since.replace(tzinfo=UTC)
        with self._lock:
            parts = [self._part_xml(p) for _, p in sorted(self.parts.items())
                     if since is None or p["updated_at"] >= since]
        return self._page(request, parts, "parts")

    @endpoint
    async def _show_part(self, request: Request) -> Response:
        with self._lock:
            part = self.parts.get(int(request.path_params["part_id"])) if request.path_params["part_id"].isdigit() else None
            if part is None:
                raise ApiError(404, self._message(request, "Part not found"))
            return Response(_xml(self._part_xml(part)), media_type=XML)

    @endpoint
    async def _search(self, request: Request) -> Response:
        q = request.query_params
        terms: list[tuple[tuple[str, ...], str]] = []
        i = 0
        while f"term{i}" in q:  # Aligni: "Skipping an index will result in later search params being ignored"
            name = q.get(f"field{i}") or ""
            comparison = q.get(f"comparison{i}") or "contains"
            if (name and name not in UNIT_FIELDS) or (name == "part_id" and not self.searchable_part_id):
                raise ApiError(422, self._message(request, f"Unknown search field: {name}"))
            if comparison != "contains":
                raise ApiError(422, self._message(request, f"Unknown comparison: {comparison}"))
            terms.append(((name,) if name else UNIT_TEXT_FIELDS, q[f"term{i}"].casefold()))
            i += 1
        with self._lock:
            found = [
                self._unit_xml(u) for _, u in sorted(self.units.items())
                if not terms or any(term in u.value(f).casefold() for fields, term in terms for f in fields)
            ]
        return self._page(request, found, "inventory_units")

    @endpoint
    async def _show_unit(self, request: Request) -> Response:
        with self._lock:
            return Response(_xml(self._unit_xml(self._unit_at(request), single=True)), media_type=XML)

    @endpoint
    async def _adjust(self, request: Request) -> Response:
        params = dict(request.query_params)
        body = await request.body()
        if body:
            if body.lstrip().startswith(b"<"):
                try:
                    root = ET.fromstring(body)
                except ET.ParseError:
                    raise ApiError(400, self._message(request, "Malformed XML")) from None
                for child in root:
                    params.setdefault(f"inventory_unit[{child.tag}]", (child.text or "").strip())
            else:
                params.update({k: v for k, v in parse_qsl(body.decode("utf-8", "replace")) if k not in params})
        raw = (params.get("inventory_unit[quantity]") or "").strip()
        comment = params.get("inventory_unit[inventory_record][comment]", "")
        try:
            amount = Decimal(raw)
            if not amount.is_finite():
                raise InvalidOperation
        except InvalidOperation:
            raise ApiError(422, self._message(request, f"Quantity is not a number: {raw!r}")) from None
        with self._lock:
            unit = self._unit_at(request)
            signed = raw[:1] in "+-"
            relative = self.adjust_mode == "relative" or (self.adjust_mode == "signed" and signed)
            after = unit.quantity + amount if relative else amount
            if after < 0:
                raise ApiError(422, self._message(request, "Quantity must be greater than or equal to 0"))
            if after - unit.reserved < 0:
                raise ApiError(422, self._message(request, "Quantity available may not be negative"))
            self._record(unit, after, comment, "relative" if relative else "absolute")
            self.adjust_count += 1
            delta = self._after_adjust.pop(unit.id, None)
            if delta is not None:
                self._record(unit, unit.quantity + delta, "adjusted in the UI meanwhile", "ui")
            reply = self._unit_xml(unit, single=True)
            if unit.quantity == 0 and self.delete_empty:
                del self.units[unit.id]
        return Response(_xml(reply), media_type=XML)

    # -- control API (never faulted) ----------------------------------------------------------

    async def _control_state(self, request: Request) -> Response:
        return JSONResponse(self.state())

    async def _control_faults(self, request: Request) -> Response:
        try:
            self.faults.update(await request.json())
        except (KeyError, ValueError, TypeError) as exc:
            return JSONResponse({"error": f"unknown fault setting: {exc}"}, status_code=400)
        return JSONResponse({k: v for k, v in self.faults.snapshot().items() if k != "script"} | {"script": self.faults.script})

    async def _control_parts(self, request: Request) -> Response:
        """One part or a list: `{partnumber, description?, manufacturer_pn?}`."""
        body = await request.json()
        try:
            ids = [self.add_part(str(p["partnumber"]), str(p.get("description") or ""),
                                 manufacturer_pn=str(p.get("manufacturer_pn") or ""))
                   for p in (body if isinstance(body, list) else [body])]
        except (KeyError, TypeError, AttributeError) as exc:
            return JSONResponse({"error": f"bad part: {exc!r}"}, status_code=400)
        return JSONResponse({"ids": ids})

    async def _control_units(self, request: Request) -> Response:
        """One unit or a list: `{partnumber, quantity, location?, sublocation?, reserved?, lot_code?,
        datecode?, serial_number?, bin?, created_at?}`."""
        body = await request.json()
        ids = []
        try:
            for u in body if isinstance(body, list) else [body]:
                kw = {k: u[k] for k in ("location", "sublocation", "reserved", "lot_code", "datecode", "serial_number", "bin") if k in u}
                if u.get("created_at"):
                    kw["created_at"] = datetime.fromisoformat(str(u["created_at"]).replace("Z", "+00:00"))
                ids.append(self.add_unit(str(u["partnumber"]), u["quantity"], **kw))
        except (KeyError, TypeError, ValueError, InvalidOperation, AttributeError) as exc:
            return JSONResponse({"error": f"bad unit: {exc!r}"}, status_code=400)
        return JSONResponse({"ids": ids})


# -- the demo's finished-goods ledger -----------------------------------------------------------

DEMO_LOCATION = "Main Warehouse"
DEMO_SUBLOCATION = "Finished Goods"
DEMO_TOKEN = "demoLedgerToken_7Qx2"
_EPOCH = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
# Finished goods per SKU: (quantity, reserved for builds, lot code, datecode, days after _EPOCH).
# Several lots each, received at different times, so fifo, lifo, lot_code, datecode and the
# size rules each draw from different units.
DEMO_UNITS: dict[str, list[tuple[int, int, str, str, int]]] = {
    "BONE-5LB": [(40, 0, "BN-2601", "2601", 0), (60, 0, "BN-2603", "2603", 21), (25, 5, "BN-2602", "2602", 35)],
    "TREAT": [(120, 20, "TR-0412", "2602", 3), (80, 0, "TR-0398", "2601", 10)],
    "LEASH-RED": [(18, 0, "LR-7", "2552", 1), (15, 0, "LR-12", "2604", 30)],
    "LEASH-BLUE": [(2, 0, "LB-3", "2550", 2), (1, 0, "LB-4", "2603", 40)],
    "BOWL-L": [(40, 0, "BW-101", "2601", 5), (40, 0, "BW-099", "2548", 12)],
    "COLLAR-M": [(35, 0, "CM-22", "2602", 8), (25, 0, "CM-21", "2601", 9)],
}
# Stock elsewhere on the site, which a ledger restricted to Main Warehouse - Finished Goods must
# neither consume nor report: goods on QA hold, an overflow rack, and components for builds.
DEMO_ELSEWHERE: list[tuple[str, int, str, str]] = [
    ("BONE-5LB", 30, DEMO_LOCATION, "QA Hold"),
    ("TREAT", 200, "Overflow", "Pallet Rack B"),
    ("COLLAR-M", 12, DEMO_LOCATION, "Returns"),
    ("PKG-BOX-S", 500, DEMO_LOCATION, "Components"),
    ("BUCKLE-25MM", 1200, DEMO_LOCATION, "Components"),
]


def seed_demo(sandbox: AligniSandbox) -> None:
    """The demo's finished goods (the products of connector.sandbox.samples) and some components."""
    from connector.sandbox.samples import PRODUCTS

    for sku in DEMO_UNITS:
        sandbox.add_part(sku, PRODUCTS[sku].description if sku in PRODUCTS else sku)
    sandbox.add_part("PKG-BOX-S", "Shipping box, small")
    sandbox.add_part("BUCKLE-25MM", "Side-release buckle, 25 mm")
    for sku, lots in DEMO_UNITS.items():
        for quantity, reserved, lot, datecode, day in lots:
            sandbox.add_unit(sku, quantity, location=DEMO_LOCATION, sublocation=DEMO_SUBLOCATION, reserved=reserved,
                             lot_code=lot, datecode=datecode, created_at=_EPOCH + timedelta(days=day))
    for sku, quantity, location, sublocation in DEMO_ELSEWHERE:
        sandbox.add_unit(sku, quantity, location=location, sublocation=sublocation, created_at=_EPOCH)


class AligniKit:
    """The Aligni sandbox seeded with the demo's finished goods, and the `[merchants.ledger]`
    block that points the Aligni ledger at it (`connector demo --ledger aligni`).

    Either serve `app` yourself and call `ledger_config(url)`, or `start()` (which serves it on
    loopback and returns the block) and `stop()`. The demo's sandbox does not rate-limit and the
    block allows a fast pace, so a demo run takes seconds; a real Aligni site allows about 30
    calls a minute.
    """

    name = "aligni"

    def __init__(self, token: str = DEMO_TOKEN, *, unit_selection: str = "fifo", rate_limit_per_minute: int = 0, **kw: Any):
        self.sandbox = AligniSandbox(token, rate_limit_per_minute=rate_limit_per_minute, **kw)
        seed_demo(self.sandbox)
        self.app = self.sandbox.app
        self.faults = self.sandbox.faults
        self.unit_selection = unit_selection
        self._server: SandboxServer | None = None

    def ledger_config(self, base_url: str) -> dict[str, Any]:
        """The `[merchants.ledger]` block: the adapter's keys, then the engine's."""
        return {
            "adapter": "aligni",
            "site": self.sandbox.site,
            "api_token": self.sandbox.token,
            "base_url": base_url,
            "rate_per_minute": 6000 if not self.sandbox.faults.rate_limit_per_minute else self.sandbox.faults.rate_limit_per_minute,
            "location": DEMO_LOCATION,
            "sublocation": DEMO_SUBLOCATION,
            "unit_selection": self.unit_selection,
            "consume_on": ["order_ship", "confirmed"],
        }

    def start(self) -> dict[str, Any]:
        """Serve the sandbox on loopback; returns the ledger block pointing at it."""
        if self._server is None:
            self._server = SandboxServer(self.app).start()
            self.sandbox.url = self._server.url
        return self.ledger_config(self._server.url)

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def stock(self) -> dict[str, Decimal]:
        """Quantity on hand per SKU at the demo's location and sublocation (what the demo reports)."""
        with self.sandbox._lock:
            out: dict[str, Decimal] = defaultdict(Decimal)
            for unit in self.sandbox.units.values():
                if (unit.location, unit.sublocation) == (DEMO_LOCATION, DEMO_SUBLOCATION):
                    out[self.sandbox.parts[unit.part_id]["partnumber"]] += unit.quantity
            return dict(out)

    def __enter__(self) -> dict[str, Any]:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
