"""The adapter kit: what a warehouse adapter over an HTTP API is made of, written once.

`VendorAdapter` builds the `adapters.http.HttpClient` from the adapter's config and the
`AdapterContext` (base URL, auth headers, rate limiter, the vendor's error and rate headers), so
an adapter declares what differs and writes only what its warehouse does:

    class MyWmsAdapter(VendorAdapter):
        name = "mywms"                      # the entry-point name
        Config = MyWmsConfig                # a VendorConfig: base_url, rate_per_minute, credentials
        capabilities = Capabilities(inventory=True)
        retry_after_headers = ("Retry-After",)
        rate_remaining_header = "X-RateLimit-Remaining"

        def auth_headers(self) -> dict[str, str]:
            return {"Authorization": f"Bearer {self.config.token}"}

        async def create_order(self, order): ...

Lists page through `self.pages(paginator, path, params)` with one of `adapters.http`'s
paginators. The pure helpers below (`error_text`, `parse_time`, `iso`, `tracking_numbers`,
`clip`, `merged_lines`, `shipment_lines`) are the parts every vendor's JSON mapping needs.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import AsyncIterator, Callable, Iterable
from datetime import UTC, datetime, tzinfo
from decimal import Decimal
from typing import Any, ClassVar

import httpx
from pydantic import Field

from adapters.base import AdapterConfig, AdapterContext, WarehouseAdapterBase
from adapters.http import HttpClient, Paginator, parse_retry_after
from connector.domain import ShipmentLine, WarehouseLine, WarehouseOrder
from connector.errors import PermanentError

ERROR_CHARS = 1000  # of a vendor's error message kept in an exception


class VendorConfig(AdapterConfig):
    """Base of an HTTP vendor's config block: where its API is and how fast it may be called.

    A vendor's config overrides the defaults (`base_url = "https://api.example.com"`,
    `rate_per_minute = Field(default=120, gt=0)`) and adds its credentials.
    """

    base_url: str
    rate_per_minute: float | None = Field(default=None, gt=0)  # None: no pacing beyond the vendor's headers


class VendorAdapter(WarehouseAdapterBase):
    """A warehouse behind an HTTP API: `self.http` is built from the config and the context.

    Declare `name`, `Config` (a `VendorConfig`) and `capabilities`, say how the vendor
    authenticates (`auth_headers`) and which headers carry its rate limits and request ids, and
    how its error bodies read (`error_text`). The rate limiter comes from the runtime's
    `Limiters`, keyed by `rate_key()` (the credential the vendor counts calls against).
    """

    request_id_header: ClassVar[str] = ""  # the vendor's request id header, for support questions
    retry_after_headers: ClassVar[tuple[str, ...]] = ("Retry-After",)  # how long to wait, first found wins
    rate_remaining_header: ClassVar[str] = ""  # calls left in the window, fed to the limiter

    def __init__(self, config: AdapterConfig | dict[str, Any], context: AdapterContext):
        super().__init__(config, context)
        self.http = self.http_client(self.auth_headers())

    # -- hooks --------------------------------------------------------------------------------

    def auth_headers(self) -> dict[str, str]:
        """Headers every call carries (credentials, a channel id)."""
        return {}

    def rate_key(self) -> str:
        """The credential the vendor's rate budget belongs to (hashed, never kept as such)."""
        return "\n".join(self.config.secrets())

    def error_text(self, body: Any) -> str:
        """The vendor's readable message from a decoded error body."""
        return error_text(body)

    def retry_after(self, response: httpx.Response) -> float | None:
        """Seconds to wait, from the first of `retry_after_headers` the response carries."""
        value = next((response.headers[h] for h in self.retry_after_headers if h in response.headers), None)
        return parse_retry_after(value)

    def rate_headers(self, response: httpx.Response) -> tuple[int | None, float | None]:
        """(calls left, seconds until the window reopens) for the limiter; (None, None) if unsaid."""
        try:
            remaining = int(response.headers[self.rate_remaining_header]) if self.rate_remaining_header else None
        except (KeyError, ValueError):
            remaining = None
        return (remaining, self.retry_after(response)) if remaining is not None else (None, None)

    def error_message(self, response: httpx.Response) -> str:
        try:
            body = response.json()
        except ValueError:
            return (response.text.strip() or response.reason_phrase or f"HTTP {response.status_code}")[:ERROR_CHARS]
        return self.error_text(body)[:ERROR_CHARS]

    # -- plumbing -----------------------------------------------------------------------------

    def http_client(self, headers: dict[str, str], base_url: str | None = None) -> HttpClient:
        """An HttpClient for this vendor; a second one (a token endpoint) shares the limiter."""
        ctx = self.context
        return HttpClient(
            self.name,
            base_url or self.config.base_url,
            headers=headers,
            request_id_header=self.request_id_header,
            limiter=ctx.limiters.get(self.name, self.rate_key(), self.config.rate_per_minute),
            error_message=self.error_message,
            retry_after=self.retry_after,
            rate_headers=self.rate_headers,
            redactor=ctx.redactor,
            on_call=ctx.on_call,
            transport=ctx.transport,
        )

    async def call(self, method: str, path: str, **kw: Any) -> httpx.Response:
        """One API call (`HttpClient.request`); an adapter with per-call auth overrides it."""
        return await self.http.request(method, path, **kw)

    async def fetch(self, method: str, path: str, **kw: Any) -> Any:
        """One API call's decoded JSON body (None when the answer has no body)."""
        response = await self.call(method, path, **kw)
        return response.json() if response.content else None

    async def fetch_record(self, path: str, **kw: Any) -> dict[str, Any] | None:
        """`GET path` for one record: its body, or None when the vendor answers 404 (no such record)."""
        try:
            body = await self.fetch("GET", path, **kw)
        except PermanentError as exc:
            if exc.status == 404:
                return None
            raise
        return body if isinstance(body, dict) else {}

    def pages(self, paginator: Paginator, path: str, params: dict[str, Any]) -> AsyncIterator[list[Any]]:
        """The records of `GET path`, page by page, as `paginator` says the list pages."""
        return paginator.pages(lambda p: self.fetch("GET", path, params=p), params, what=f"GET {path}")

    async def aclose(self) -> None:
        await self.http.aclose()


# -- the JSON every vendor maps ---------------------------------------------------------------


def _lookup(body: dict[str, Any], key: str) -> Any:
    if key in body:
        return body[key]
    lowered = key.lower()
    return next((v for k, v in body.items() if isinstance(k, str) and k.lower() == lowered), None)


def error_text(body: Any, *, messages: Iterable[str] = ("message", "error", "title", "detail", "error_description"), fields: Iterable[str] = (),
               rest: bool = False, skip: Iterable[str] = (), separator: str = "; ") -> str:
    """A vendor's readable message out of a JSON error body of any shape.

    - a string is the message; a list, its items' messages joined by "; ";
    - in an object, the values under `messages` come first, in that order (keys matched
      case-insensitively; a number counts, an object does not);
    - `fields` name objects of field -> messages (ASP.NET's `ModelState`, a problem document's
      `errors`): each read as "field: message" (a plain list there is read as messages);
    - with `rest`, every other string or list value not in `skip` is added as "key: message"
      (vendors whose bodies are field -> messages maps of their own);
    - repeats are dropped; with nothing readable, the JSON itself (500 characters).
    """
    messages, fields, skip = tuple(messages), tuple(fields), {k.lower() for k in skip}

    def text(value: Any) -> str:
        if isinstance(value, str):
            return value.strip()
        if isinstance(value, list):
            return "; ".join(filter(None, (text(v) for v in value)))
        if not isinstance(value, dict):
            return json.dumps(value)
        parts: list[str] = []
        for key in messages:
            found = _lookup(value, key)
            if isinstance(found, int) and not isinstance(found, bool):
                parts.append(str(found))
            elif isinstance(found, str | list):
                parts.append(text(found))
        for key in fields:
            found = _lookup(value, key)
            if isinstance(found, dict):
                parts += [f"{k}: {t}" if k else t for k, v in found.items() if (t := text(v))]
            elif isinstance(found, str | list):
                parts.append(text(found))
        if rest:
            taken = {k.lower() for k in (*messages, *fields)} | skip
            for key, found in value.items():
                if str(key).lower() not in taken and isinstance(found, str | list) and (t := text(found)):
                    parts.append(f"{key}: {t}" if key else t)
        return separator.join(dict.fromkeys(p for p in parts if p)) or json.dumps(value)[:500]

    return text(body)


def parse_time(value: Any, *, naive: tzinfo = UTC) -> datetime | None:
    """An ISO 8601 date or date-time as an aware UTC datetime; None when absent or unreadable.

    A value without an offset is read in `naive` (UTC unless the vendor keeps local time)."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(str(value).strip())
    except ValueError:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=naive)).astimezone(UTC)


def iso(moment: datetime) -> str:
    """An RFC 3339 instant in UTC, `2026-03-04T05:06:07Z` (naive datetimes are taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@functools.cache
def _splitter(separators: str) -> Callable[[str], list[str]]:
    if not separators:
        return lambda value: [value]
    return re.compile("[" + re.escape(separators) + "]").split


def tracking_numbers(*values: Any, separators: str = ",;") -> list[str]:
    """Tracking numbers from one or more fields (each may hold several, separated by any of
    `separators`): trimmed, de-duplicated in order, blanks dropped."""
    split = _splitter(separators)
    numbers = (n.strip() for v in values if isinstance(v, str) for n in split(v))
    return list(dict.fromkeys(n for n in numbers if n))


def clip(value: str | None, limit: int) -> str:
    """Trimmed and cut to a vendor's field length, so a long note never turns an order into a 400."""
    return (value or "").strip()[:limit]


def merged_lines(order: WarehouseOrder) -> list[tuple[WarehouseLine, int]]:
    """(first line, total quantity) per warehouse SKU, in order. Lines sharing a SKU (a kit
    component also sold on its own) become one, so the packer and the shipment items see one
    line per SKU."""
    merged: dict[str, list[Any]] = {}
    for line in order.lines:
        if line.sku in merged:
            merged[line.sku][1] += int(line.quantity)
        else:
            merged[line.sku] = [line, int(line.quantity)]
    return [(line, quantity) for line, quantity in merged.values()]


def shipment_lines(pairs: Iterable[tuple[Any, Any]]) -> list[ShipmentLine]:
    """(sku, quantity) pairs -> shipment lines: SKUs trimmed, quantities summed per SKU, blank
    SKUs and quantities under one dropped."""
    totals: dict[str, int] = {}
    for sku, quantity in pairs:
        sku, quantity = str(sku or "").strip(), int(float(quantity or 0))
        if sku and quantity > 0:
            totals[sku] = totals.get(sku, 0) + quantity
    return [ShipmentLine(sku=sku, quantity=q) for sku, q in totals.items()]


def money(*values: Any) -> Decimal:
    """The sum of a vendor's amounts (numbers or numeric strings; None counts as nothing)."""
    return sum((Decimal(str(v)) for v in values if v is not None), Decimal(0))
