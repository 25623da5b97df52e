"""Aligni as an inventory ledger, over its REST API v2 (XML).

Calls (all under `{root}/api/v2/{api_token}`, `Accept`/`Content-Type: application/xml`):

- `GET /part` (paged by `page`/`per_page`, the `X-Pagination` JSON header; `filter[updated_on][gte]`
  for the parts changed since a time): the item master, cached. Aligni documents no search of
  parts by number, so the adapter reads the part list and matches the SKU itself
  (`sku_field`: the part number or the manufacturer part number).
- `GET /inventory_units/search?field0=..&comparison0=contains&term0=..` (BETA in Aligni's docs;
  terms are OR-ed, case-insensitive; paged like parts): a part's units (`part_id`), or every unit
  at a place (`inventory_location` contains "Location - Sublocation", Aligni's label of a unit's
  place). Terms cannot be AND-ed, so the exact location/sublocation match (and the part, when
  searching by place) is made here, on `inventory_location` or `inventory_sublocation_id`.
- `GET /parts/{part_id}/inventory_units/{id}`: one unit, read before and after each adjustment.
- `PUT /parts/{part_id}/inventory_units/{id}/adjust_quantity?inventory_unit[quantity]=-N`:
  the consumption (see `consume` for why a signed relative amount).

Aligni allows about 30 calls a minute per token; the limiter keeps to `rate_per_minute` and a
429 is a RateLimitedError like every vendor's. The token is in the URL path: it is registered with
the redactor, so call records, error messages and httpx's own log lines never carry it.
"""

from __future__ import annotations

import logging
import time
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Callable, Iterable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, ClassVar, TypeVar

import httpx

from adapters.aligni import parse
from adapters.aligni.config import AligniConfig
from adapters.base import AdapterContext
from adapters.http import HttpClient, limiter_for
from adapters.ledger import (
    ConsumeResult,
    InsufficientInventoryError,
    LedgerCapabilities,
    LedgerItem,
    LedgerUnit,
    ReadBackMismatchError,
    UnitChangedError,
)
from connector.domain import StockLevel
from connector.errors import (
    ConfigurationError,
    InDoubtError,
    PermanentError,
    RateLimitedError,
    TransientError,
    VendorError,
)
from connector.redact import DEFAULT as DEFAULT_REDACTOR
from connector.redact import Redactor

VENDOR = "aligni"
XML = "application/xml"
MAX_PAGES = 1000  # a guard against a server that keeps handing out a next page
DELTA_EVERY_S = 60.0  # an unknown SKU re-reads the parts changed since the last read at most this often
DELTA_SLACK = timedelta(minutes=10)  # overlap of those reads, for clock differences with Aligni
CONSUME_CALLS = 3  # read, adjust, read back: a consumption starts only when the budget has room for all three

Row = TypeVar("Row")


class _LogScrubber(logging.Filter):
    """Masks secrets in httpx's own log lines: httpx logs every request's URL at INFO, and
    Aligni's URLs carry the token."""

    def __init__(self) -> None:
        super().__init__()
        self.redactors: list[Redactor] = []

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is httpx's problem, not a reason to drop it
            return True
        clean = message
        for redactor in self.redactors:
            clean = redactor.text(clean)
        if clean != message:
            record.msg, record.args = clean, None
        return True


_SCRUBBER = _LogScrubber()
logging.getLogger("httpx").addFilter(_SCRUBBER)


def _amount(value: Decimal) -> str:
    """A quantity as Aligni reads it: plain digits, no exponent, no trailing zeros."""
    text = format(value.normalize(), "f")
    return text


def _norm(value: str) -> str:
    return " ".join(value.split()).casefold()


class AligniLedger:
    """Consumes finished-goods inventory in Aligni when orders ship, and reads its stock.

    Consumption is never repeated blindly: each one reads the unit first (a repeat of a
    consumption Aligni already shows returns `already_applied`, a unit changed by someone else
    raises UnitChangedError), adjusts it once, and reads it back to verify.
    """

    name: ClassVar[str] = "aligni"
    Config: ClassVar[type[AligniConfig]] = AligniConfig
    capabilities: ClassVar[LedgerCapabilities] = LedgerCapabilities(consume=True, stock=True, lots=True, created_at=True)

    def __init__(self, config: AligniConfig | dict[str, Any], context: AdapterContext):
        self.config = config if isinstance(config, AligniConfig) else AligniConfig.model_validate(config)
        self.context = context
        # The token is part of every URL: whoever built the context, it must be masked.
        self.redactor = context.redactor or DEFAULT_REDACTOR
        self.redactor.add(*self.config.secrets())
        if not any(r is self.redactor for r in _SCRUBBER.redactors):
            _SCRUBBER.redactors.append(self.redactor)
        self.http = HttpClient(
            VENDOR,
            f"{self.config.root}/api/v2/{self.config.token_segment}",
            headers={"Accept": XML, "Content-Type": XML},
            request_id_header="X-Request-Id",
            limiter=limiter_for(VENDOR, self.config.api_token, self.config.rate_per_minute),
            error_message=self._error_message,
            redactor=self.redactor,
            on_call=context.on_call,
            transport=context.transport,
        )
        self._parts: dict[str, parse.Part] = {}  # by part id
        self._by_sku: dict[str, list[str]] = {}  # sku -> part ids
        self._full_at: float | None = None  # monotonic time of the last whole read of the part list
        self._delta_at = float("-inf")  # ... and of the last read of recent changes
        self._synced_at: datetime | None = None  # Aligni-side time the last read started
        self._search_by_part = True  # cleared if Aligni refuses a part_id search term

    # -- plumbing -----------------------------------------------------------------------------

    def _error_message(self, response: httpx.Response) -> str:
        message = parse.error_text(response.text, response.reason_phrase or f"HTTP {response.status_code}")
        if response.status_code == 401:
            message = f"Aligni refused the API token (revoked or expired? the site administrator issues tokens): {message}"
        return self.redactor.text(message)

    def _scrub(self, exc: VendorError) -> VendorError:
        exc.message = self.redactor.text(exc.message)
        exc.args = (exc.message,)
        return exc

    async def _call(self, method: str, path: str, *, params: dict[str, Any] | None = None,
                    idempotent: bool | None = None) -> httpx.Response:
        try:
            return await self.http.request(method, path, params=params, idempotent=idempotent)
        except VendorError as exc:
            raise self._scrub(exc)
        except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
            raise ConfigurationError(self.redactor.text(f"base_url unusable: {exc}"), vendor=VENDOR) from None
        except httpx.HTTPError as exc:  # what HttpClient does not classify (a reply it cannot decode...)
            cls = TransientError if idempotent is not False else InDoubtError
            raise cls(self.redactor.text(f"{type(exc).__name__}: {exc}"), vendor=VENDOR) from None

    def _document(self, response: httpx.Response) -> ET.Element:
        try:
            return parse.document(response.content)
        except parse.RefusedDocument as exc:
            raise PermanentError(str(exc), vendor=VENDOR, status=response.status_code) from None
        except parse.NotXml as exc:
            raise TransientError(str(exc), vendor=VENDOR, status=response.status_code) from None

    def _read(self, reader: Callable[[ET.Element], list[Row]], root: ET.Element) -> list[Row]:
        try:
            return reader(root)
        except parse.BadField as exc:
            raise PermanentError(f"unreadable answer: {exc}", vendor=VENDOR) from None

    async def _pages(self, path: str, params: dict[str, Any],
                     reader: Callable[[ET.Element], list[Row]]) -> AsyncIterator[list[Row]]:
        """Every page of a list or search, following X-Pagination's `next_page` (or, without the
        header, asking for the next page while pages come back full)."""
        page = 1
        for _ in range(MAX_PAGES):
            response = await self._call("GET", path, params={**params, "page": page, "per_page": self.config.per_page})
            rows = self._read(reader, self._document(response))
            yield rows
            info = parse.pagination(response.headers.get("X-Pagination"))
            if info is None:
                if len(rows) < self.config.per_page:
                    return
                page += 1
                continue
            nxt = info.get("next_page")
            if nxt in (None, "", False):
                return
            try:
                nxt = int(nxt)
            except (TypeError, ValueError):
                raise TransientError(f"unreadable X-Pagination next_page {nxt!r}", vendor=VENDOR) from None
            if nxt <= page:
                raise TransientError(f"X-Pagination sent page {page} back to page {nxt}", vendor=VENDOR)
            page = nxt
        raise TransientError(f"{path}: more than {MAX_PAGES} pages", vendor=VENDOR)

    def _spare_calls(self) -> tuple[int, float]:
        """(calls the rate budget still allows now, seconds until one more frees up)."""
        limiter = self.http.limiter
        sent = getattr(limiter, "_sent", None)
        if not limiter.per_minute or sent is None:
            return CONSUME_CALLS, 0.0
        now = time.monotonic()
        recent = [t for t in sent if t > now - limiter.WINDOW_S]
        wait_blocked = max(0.0, limiter.blocked_until - now)
        spare = limiter.per_minute - len(recent)
        wait = recent[0] + limiter.WINDOW_S - now if recent else 0.0
        return (0 if wait_blocked else spare), max(wait, wait_blocked)

    # -- setup --------------------------------------------------------------------------------

    async def check(self, location: str = "", sublocation: str = "") -> str:
        """The token works (`GET /part`, one part), and when `location` is given, some inventory
        unit sits there (ConfigurationError naming the places seen otherwise)."""
        response = await self._call("GET", "/part", params={"page": 1, "per_page": 1})
        self._document(response)
        info = parse.pagination(response.headers.get("X-Pagination")) or {}
        text = f"Aligni site {self.config.site} at {self.config.root} (API v2)"
        if info.get("total_entries") is not None:
            text += f", {info['total_entries']} parts"
        if not location:
            return text
        where = self._where(location, sublocation)
        if any(self._at(r, location, sublocation) for r in await self._first_page(self._place_term(location, sublocation))):
            return text + f"; inventory units at {where}"
        seen = sorted({r.label for r in await self._first_page(location.strip()) if r.label})[:10]
        raise ConfigurationError(
            f"no inventory unit at {where!r} in Aligni"
            + (f"; units found at: {', '.join(seen)}" if seen else f"; none at any place named like {location!r}"),
            vendor=VENDOR,
        )

    async def _first_page(self, term: str) -> list[parse.UnitRow]:
        response = await self._call("GET", "/inventory_units/search", params={
            **self._term(0, "inventory_location", term), "page": 1, "per_page": self.config.per_page})
        return self._read(parse.units, self._document(response))

    # -- items --------------------------------------------------------------------------------

    async def _load_parts(self, since: datetime | None) -> None:
        params: dict[str, Any] = {}
        if since is not None:
            params["filter[updated_on][gte]"] = since.isoformat(timespec="seconds")
        started = datetime.now(UTC)
        fresh: dict[str, parse.Part] = {}
        async for batch in self._pages("/part", params, parse.parts):
            for part in batch:
                fresh[part.id] = part
        self._parts = fresh if since is None else {**self._parts, **fresh}
        index: dict[str, list[str]] = {}
        for part in self._parts.values():
            sku = getattr(part, self.config.sku_field).strip()
            if sku:
                index.setdefault(sku, []).append(part.id)
        self._by_sku = index
        self._synced_at = started

    async def _catalog(self, wanted: Iterable[str] = (), part_ids: Iterable[str] = ()) -> None:
        """The part list, read whole when never read or older than `parts_refresh_s`; otherwise
        the parts changed since the last read, when something asked for is missing (at most once
        every DELTA_EVERY_S, so a SKU Aligni does not have cannot spend the rate budget)."""
        now = time.monotonic()
        if self._full_at is None or now - self._full_at >= self.config.parts_refresh_s:
            self._full_at = self._delta_at = now
            await self._load_parts(None)
            return
        missing = any(s not in self._by_sku for s in wanted) or any(p not in self._parts for p in part_ids)
        if missing and now - self._delta_at >= DELTA_EVERY_S and self._synced_at is not None:
            self._delta_at = now
            await self._load_parts(self._synced_at - DELTA_SLACK)

    async def find_items(self, skus: Iterable[str]) -> dict[str, LedgerItem]:
        """The parts whose `sku_field` equals each SKU (exactly, spaces around ignored)."""
        wanted = {s: s.strip() for s in skus if s and s.strip()}
        if not wanted:
            return {}
        await self._catalog(wanted=wanted.values())
        found: dict[str, LedgerItem] = {}
        for sku, key in wanted.items():
            ids = self._by_sku.get(key, [])
            if len(ids) > 1:
                raise PermanentError(
                    f"SKU {key!r} is the {self.config.sku_field} of {len(ids)} Aligni parts (ids {', '.join(sorted(ids))});"
                    " make it unique in Aligni",
                    vendor=VENDOR,
                )
            if ids:
                part = self._parts[ids[0]]
                found[sku] = LedgerItem(sku=sku, item_id=part.id, description=part.description)
        return found

    # -- units --------------------------------------------------------------------------------

    @staticmethod
    def _term(index: int, field: str, term: str, comparison: str = "contains") -> dict[str, str]:
        return {f"field{index}": field, f"comparison{index}": comparison, f"term{index}": term}

    @staticmethod
    def _where(location: str, sublocation: str) -> str:
        return f"{location.strip()}{parse.LOCATION_SEPARATOR}{sublocation.strip()}" if sublocation.strip() else location.strip()

    def _place_term(self, location: str, sublocation: str) -> str:
        """The narrowest search term for a place: "Location - Sublocation" (how Aligni labels a
        unit's place), or the location alone when the sublocation is given by id."""
        sub = sublocation.strip()
        return self._where(location, sublocation) if sub and not sub.isdigit() else location.strip()

    @staticmethod
    def _at(row: parse.UnitRow, location: str, sublocation: str) -> bool:
        """Whether a unit sits at the location (and sublocation: its name, or Aligni's numeric id)."""
        label, loc, sub = _norm(row.label), _norm(location), _norm(sublocation)
        in_location = label == loc or label.startswith(loc + parse.LOCATION_SEPARATOR)
        if not sub:
            return in_location
        if label == loc + parse.LOCATION_SEPARATOR + sub:
            return True
        return sub.isdigit() and row.sublocation_id == sub and in_location

    @staticmethod
    def _placed(row: parse.UnitRow, location: str) -> LedgerUnit:
        """The unit with its place split at the configured location (whose name may itself
        contain " - ")."""
        label = row.label.strip()
        loc = location.strip()
        if _norm(label).startswith(_norm(loc) + parse.LOCATION_SEPARATOR) and len(label) > len(loc):
            rest = label[len(loc):].lstrip(" -").strip()
            return row.unit.model_copy(update={"location": label[: len(loc)], "sublocation": rest})
        return row.unit

    async def _search(self, field: str, term: str) -> list[parse.UnitRow]:
        rows: list[parse.UnitRow] = []
        async for batch in self._pages("/inventory_units/search", self._term(0, field, term), parse.units):
            rows += batch
        return rows

    async def units(self, item: LedgerItem, location: str, sublocation: str = "") -> list[LedgerUnit]:
        """The part's units at the place, by id. Searched by `part_id` (one short answer); should
        Aligni refuse that search field, by location instead (longer, same result)."""
        rows: list[parse.UnitRow] | None = None
        if self._search_by_part:
            try:
                rows = await self._search("part_id", item.item_id)
            except PermanentError as exc:
                if exc.status not in (400, 422):
                    raise
                self._search_by_part = False
        if rows is None:
            rows = await self._search("inventory_location", self._place_term(location, sublocation))
        mine = [self._placed(r, location) for r in rows if r.unit.item_id == item.item_id and self._at(r, location, sublocation)]
        return sorted(mine, key=lambda u: (len(u.id), u.id))

    async def unit(self, item: LedgerItem, unit_id: str) -> LedgerUnit | None:
        """`GET /parts/{part_id}/inventory_units/{id}`; None on 404."""
        try:
            response = await self._call("GET", f"/parts/{item.item_id}/inventory_units/{unit_id}")
        except PermanentError as exc:
            if exc.status == 404:
                return None
            raise
        rows = self._read(lambda root: [parse.unit(root, item.item_id)], self._document(response))
        return rows[0].unit

    # -- consumption --------------------------------------------------------------------------

    async def consume(self, item: LedgerItem, unit: LedgerUnit, quantity: Decimal | int, memo: str = "") -> ConsumeResult:
        """Take `quantity` off `unit` with one `adjust_quantity`, verified by reading the unit back.

        The amount is sent as a signed relative change, `inventory_unit[quantity]=-N`. Aligni's
        documentation does not say whether this parameter is absolute or relative; its manual
        adjustment dialog reads a leading sign as relative and a bare number as absolute. A
        negative amount is the safe reading under every interpretation: taken as relative (or as
        Aligni's signed rule) it subtracts N; taken as absolute it asks for a negative quantity,
        which Aligni refuses, so nothing changes. A bare absolute target (quantity - N) would,
        read as relative, *add* stock and be accepted. Whatever Aligni did, the read-back tells:
        anything but quantity - N raises ReadBackMismatchError naming both numbers, and nothing
        is adjusted again.

        The read before the adjustment catches a resend: when Aligni already shows this unit at
        the snapshot's quantity less N, the consumption is reported `already_applied` and not
        made again. (Someone else taking exactly N in between looks the same; under-consuming
        once is the lesser harm, and the result says what happened.)
        """
        amount = Decimal(str(quantity))
        if not amount.is_finite() or amount <= 0:
            raise ValueError(f"quantity to consume must be positive, not {quantity!r}")
        spare, wait = self._spare_calls()
        if spare < CONSUME_CALLS:
            # Starting now could leave the adjustment without its read-back: wait for the budget.
            raise RateLimitedError(
                f"rate budget too low for a consumption ({spare} calls left)", vendor=VENDOR, retry_after=max(wait, 1.0)
            )
        what = f"inventory unit {unit.id} of {item.sku} (part {item.item_id})"
        current = await self.unit(item, unit.id)
        if current is None:
            if unit.quantity == amount:  # emptied by an earlier run of this very consumption, and removed
                return ConsumeResult(item_id=item.item_id, unit_id=unit.id, quantity=amount, quantity_before=unit.quantity,
                                     quantity_after=Decimal(0), already_applied=True)
            raise UnitChangedError(f"{what} no longer exists in Aligni; read the units again", vendor=VENDOR)
        if current.quantity != unit.quantity:
            if current.quantity == unit.quantity - amount:
                # Aligni already shows this consumption: the reply of an earlier call was lost.
                return ConsumeResult(item_id=item.item_id, unit_id=unit.id, quantity=amount, quantity_before=unit.quantity,
                                     quantity_after=current.quantity, already_applied=True)
            raise UnitChangedError(
                f"{what} changed since it was read: quantity {_amount(unit.quantity)} then, {_amount(current.quantity)} now;"
                " read the units again",
                vendor=VENDOR,
            )
        if amount > current.quantity_available:
            raise InsufficientInventoryError(
                f"{what}: {_amount(amount)} asked, {_amount(current.quantity_available)} available"
                f" ({_amount(current.quantity)} on hand); nothing consumed",
                vendor=VENDOR,
            )
        params = {"inventory_unit[quantity]": f"-{_amount(amount)}"}
        if memo:
            params["inventory_unit[inventory_record][comment]"] = memo[:255]
        try:
            await self._call("PUT", f"/parts/{item.item_id}/inventory_units/{unit.id}/adjust_quantity",
                             params=params, idempotent=False)
        except PermanentError as exc:
            if exc.status == 404:
                raise UnitChangedError(f"{what} no longer exists in Aligni; read the units again", vendor=VENDOR) from None
            exc.message = (f"Aligni refused to take {_amount(amount)} off {what}, which had {_amount(current.quantity)}"
                           f" on hand and {_amount(current.quantity_available)} available: {exc.message}")
            raise self._scrub(exc)
        except InDoubtError as exc:
            exc.message = (f"taking {_amount(amount)} off {what} may or may not have happened: {exc.message};"
                           " read the unit back before anything else")
            raise self._scrub(exc)
        expected = current.quantity - amount
        try:
            after = await self.unit(item, unit.id)
        except VendorError as exc:
            raise InDoubtError(
                f"Aligni accepted taking {_amount(amount)} off {what} but it could not be read back ({exc});"
                f" read the unit back before anything else (expected quantity {_amount(expected)})",
                vendor=VENDOR,
            ) from None
        found = None if after is None else after.quantity
        if found is None and expected == 0:
            found = Decimal(0)  # Aligni removed the unit it emptied
        if found != expected:
            shown = "gone" if found is None else _amount(found)
            raise ReadBackMismatchError(
                f"after taking {_amount(amount)} off {what}, Aligni shows quantity {shown} where"
                f" {_amount(expected)} was expected ({_amount(current.quantity)} before); not adjusting again:"
                " check the unit's inventory history in Aligni",
                expected=expected, found=found, unit_id=unit.id, item_id=item.item_id, vendor=VENDOR,
            )
        return ConsumeResult(item_id=item.item_id, unit_id=unit.id, quantity=amount,
                             quantity_before=current.quantity, quantity_after=expected)

    # -- stock --------------------------------------------------------------------------------

    async def stock_levels(self, location: str, sublocation: str = "") -> list[StockLevel]:
        """Every unit at the place, summed per SKU: on-hand from `quantity`, available from
        `quantity_available` (what builds and transfers have not claimed), rounded down."""
        found = await self._search("inventory_location", self._place_term(location, sublocation))
        rows = [r for r in found if self._at(r, location, sublocation)]
        await self._catalog(part_ids={r.unit.item_id for r in rows})
        where = self._where(location, sublocation)
        totals: dict[str, list[Decimal]] = {}
        for row in rows:
            part = self._parts.get(row.unit.item_id)
            sku = getattr(part, self.config.sku_field).strip() if part else ""
            if not sku:
                continue  # a part without a SKU (or deleted meanwhile) sells nowhere
            total = totals.setdefault(sku, [Decimal(0), Decimal(0)])
            total[0] += max(row.unit.quantity, Decimal(0))
            total[1] += max(row.unit.quantity_available, Decimal(0))
        return [
            StockLevel(sku=sku, warehouse_id=where, on_hand=int(on_hand), available=int(available))
            for sku, (on_hand, available) in sorted(totals.items())
        ]

    async def aclose(self) -> None:
        await self.http.aclose()
