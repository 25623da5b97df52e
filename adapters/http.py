"""The one HTTP layer every adapter uses.

It owns what every vendor call needs and no adapter should write again: an `httpx.AsyncClient`
with explicit timeouts, short in-call retries (tenacity, at most 3, full jitter, only where a
retry is safe), a per-credential rate limiter fed by the vendor's headers, the status -> error
class table of `connector.errors`, the vendor request id, and a redacted record of each call for
the event log and metrics (`on_call`). It also holds the two things vendors disagree on only in
detail: rate limiters per credential (`Limiters`) and the ways a list pages (`PageNumbers`,
`CursorPages`, `NextLinkPages`).
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json as jsonlib
import random
import ssl
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_random_exponential

from connector import jsontext
from connector.errors import ErrorClass, PermanentError, RateLimitedError, VendorError, classify_status, error_for
from connector.redact import DEFAULT as DEFAULT_REDACTOR
from connector.redact import Redactor

DEFAULT_TIMEOUT = httpx.Timeout(connect=5.0, read=30.0, write=30.0, pool=10.0)
RECORD_CHARS = 20_000  # what the event log keeps of a body (connector.runtime._dump cuts there)
MAX_RATE_WAIT_S = 2.0  # longer waits are not slept: the call raises RateLimitedError instead
RETRY_WAIT_S = 0.1  # the longest wait before a call's second try (full jitter; it doubles each try, up to 2 s)
MAX_PAGES = 1000  # no list the connector reads is longer: more is a server handing out pages forever


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After as delta-seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


class RateLimiter:
    """Keeps one credential inside the vendor's budget: at most `per_minute` calls in any sliding
    60 s window (how ShipBob and ShipStation count), and none while the vendor said stop.

    `note(remaining, reset_after)` feeds the vendor's headers, so a budget spent elsewhere (another
    process with the same token) slows us before a 429 does. Waits longer than MAX_RATE_WAIT_S are
    not slept: the call raises RateLimitedError and the job reschedules instead of blocking.
    """

    WINDOW_S = 60.0

    def __init__(self, per_minute: float | None = None, name: str = ""):
        self.per_minute = int(per_minute) if per_minute else 0
        self.name = name
        self._sent: deque[float] = deque()
        self.blocked_until = 0.0

    async def acquire(self) -> None:
        # No lock: nothing awaits between reading and reserving the slot, so reservations are
        # atomic on an event loop (and a limiter can serve several loops, as tests do).
        now = time.monotonic()
        start = max(now, self.blocked_until)
        if self.per_minute:
            while self._sent and self._sent[0] <= now - self.WINDOW_S:
                self._sent.popleft()
            if len(self._sent) >= self.per_minute:
                start = max(start, self._sent[-self.per_minute] + self.WINDOW_S)
        wait = start - now
        if wait > MAX_RATE_WAIT_S:
            raise RateLimitedError("rate limit budget spent; rescheduling", vendor=self.name, retry_after=wait)
        if self.per_minute:
            self._sent.append(start)
        if wait > 0:
            await asyncio.sleep(wait)

    def block_for(self, seconds: float) -> None:
        self.blocked_until = max(self.blocked_until, time.monotonic() + seconds)

    def note(self, remaining: int | None, reset_after: float | None) -> None:
        if remaining is not None and remaining <= 0:
            self.block_for(reset_after if reset_after else 1.0)


class Limiters:
    """The rate limiters of one runtime: one per vendor and credential, so every merchant and
    adapter instance sharing a credential shares its budget.

    Keyed by the vendor and a hash of the credential, never the secret itself. The runtime owns
    one (`AdapterContext.limiters`); tests give each adapter a fresh one instead of inventing
    fresh credentials to get a fresh budget.
    """

    def __init__(self) -> None:
        self._by_key: dict[str, RateLimiter] = {}

    @staticmethod
    def key(vendor: str, credential: str) -> str:
        return vendor + ":" + hashlib.sha256(credential.encode()).hexdigest()[:16]

    def get(self, vendor: str, credential: str, per_minute: float | None) -> RateLimiter:
        """The limiter of `credential` at `vendor`, made on first use with `per_minute`."""
        key = self.key(vendor, credential)
        limiter = self._by_key.get(key)
        if limiter is None:
            limiter = self._by_key[key] = RateLimiter(per_minute, vendor)
        return limiter

    def __len__(self) -> int:
        return len(self._by_key)


DEFAULT_LIMITERS = Limiters()  # for callers that bring no registry of their own


def limiter_for(vendor: str, credential: str, per_minute: float | None) -> RateLimiter:
    """The limiter of one credential in the module's default registry.

    Kept for callers not yet handed a runtime's `Limiters` (the UltraCart client); adapters take
    theirs from `AdapterContext.limiters`.
    """
    return DEFAULT_LIMITERS.get(vendor, credential, per_minute)


def short_retries(*, repeatable: bool, attempts: int = 3, wait: float = RETRY_WAIT_S) -> AsyncRetrying:
    """In-call retries of one vendor operation: transient failures only, at most `attempts`
    tries with full jitter, and only when the operation may be repeated (`repeatable`) or
    surely never reached the vendor (`not_sent`)."""

    return AsyncRetrying(
        stop=stop_after_attempt(attempts),
        wait=wait_random_exponential(multiplier=wait, max=2.0),
        retry=retry_if_exception(lambda exc: _retryable(exc, repeatable)),
        reraise=True,
    )


def _retryable(exc: BaseException, repeatable: bool) -> bool:
    return isinstance(exc, VendorError) and exc.error_class is ErrorClass.transient and (repeatable or exc.not_sent)


@dataclass
class CallRecord:
    """One vendor call, redacted: what the event log stores and metrics count."""

    vendor: str
    method: str
    url: str
    status: int | None
    request_id: str
    duration_ms: float
    request_body: Any = None
    response_body: Any = None
    error: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


OnCall = Callable[[CallRecord], Awaitable[None] | None]



@functools.cache
def shared_tls() -> ssl.SSLContext:
    """One TLS context for every client of the process: each of its own would load the CA bundle
    again (about 0.8 MB and 16 ms of CPU a client; a thousand merchants have two clients each).
    Built on first use, with the same trust (SSL_CERT_FILE / SSL_CERT_DIR) httpx would apply."""
    return httpx.create_ssl_context()


class VendorResponse(httpx.Response):
    """httpx's Response whose `json()` reads with orjson, several times faster on an order page;
    the standard library's parser (httpx's own) still reads what orjson refuses (NaN, integers
    over 64 bits, a body that is not UTF-8), so no body reads differently than before."""

    def json(self, **kwargs: Any) -> Any:
        if not kwargs:
            try:
                return jsontext.loads(self.content)
            except ValueError:
                pass
        return super().json(**kwargs)


class HttpClient:
    """A vendor's HTTP client. Adapters subclass nothing: they pass small hooks.

    - `error_message(response)` -> the vendor's readable message for an error response;
    - `retry_after(response)` -> seconds to wait, from whatever header the vendor uses;
    - `rate_headers(response)` -> (remaining, reset_after) to feed the limiter.
    """

    def __init__(
        self,
        vendor: str,
        base_url: str,
        *,
        headers: dict[str, str],
        request_id_header: str = "",
        limiter: RateLimiter | None = None,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        error_message: Callable[[httpx.Response], str] | None = None,
        retry_after: Callable[[httpx.Response], float | None] | None = None,
        rate_headers: Callable[[httpx.Response], tuple[int | None, float | None]] | None = None,
        redactor: Redactor | None = None,
        on_call: OnCall | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        max_attempts: int = 3,
    ):
        self.vendor = vendor
        self.request_id_header = request_id_header
        self.limiter = limiter or RateLimiter(None, vendor)
        self._error_message = error_message or _default_error_message
        self._retry_after = retry_after or (lambda r: parse_retry_after(r.headers.get("Retry-After")))
        self._rate_headers = rate_headers
        self.redactor = redactor or DEFAULT_REDACTOR
        self.on_call = on_call
        self.max_attempts = max_attempts
        from adapters.transport import make_transport  # aiohttp on first client, not at import (`--help`, `check`)

        limits = httpx.Limits(max_connections=20, max_keepalive_connections=20)
        self.client = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers={"Accept": "application/json", **headers},
            timeout=timeout,
            transport=transport or make_transport(verify=shared_tls(), limits=limits),
            verify=shared_tls(),
            limits=limits,
        )
        self._base = str(self.client.base_url).rstrip("/") + "/"
        self._extensions = {"timeout": self.client.timeout.as_dict()}

    async def aclose(self) -> None:
        await self.client.aclose()

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        idempotent: bool | None = None,
        ok: tuple[int, ...] = (200, 201, 204),
    ) -> httpx.Response:
        """Send one call (with short retries when safe); return the response or raise VendorError."""
        if idempotent is None:
            idempotent = method.upper() in ("GET", "HEAD", "PUT", "DELETE")

        try:
            return await self._once(method, path, json=json, params=params, idempotent=idempotent, ok=ok)
        except VendorError as exc:
            # Almost every call succeeds at once: tenacity's machinery is built only for a retry.
            if self.max_attempts <= 1 or not _retryable(exc, idempotent):
                raise
        await asyncio.sleep(random.uniform(0, RETRY_WAIT_S))  # full jitter, as short_retries waits
        async for attempt in short_retries(repeatable=idempotent, attempts=self.max_attempts - 1, wait=2 * RETRY_WAIT_S):
            with attempt:
                return await self._once(method, path, json=json, params=params, idempotent=idempotent, ok=ok)
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    async def _once(self, method, path, *, json, params, idempotent, ok) -> httpx.Response:
        await self.limiter.acquire()
        started = time.perf_counter()
        url = path
        response: httpx.Response | None = None
        error: VendorError | None = None
        try:
            response = await self._send(method, path, params, json)
            url = str(response.request.url)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            # Nothing reached the vendor: always safe to retry.
            error = error_for(ErrorClass.transient, f"cannot connect: {exc!r}", vendor=self.vendor, not_sent=True)
        except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as exc:
            cls = ErrorClass.transient if idempotent else ErrorClass.in_doubt
            error = error_for(cls, f"no answer: {type(exc).__name__}", vendor=self.vendor)
        duration = (time.perf_counter() - started) * 1000
        request_id = response.headers.get(self.request_id_header, "") if response is not None and self.request_id_header else ""
        if response is not None:
            if self._rate_headers:
                remaining, reset_after = self._rate_headers(response)
                self.limiter.note(remaining, reset_after)
            if response.status_code not in ok:
                cls = classify_status(response.status_code, idempotent=idempotent)
                retry_after = self._retry_after(response)
                if cls is ErrorClass.rate_limited:
                    retry_after = retry_after if retry_after is not None else 60.0
                    self.limiter.block_for(retry_after)
                error = error_for(
                    cls,
                    self._error_message(response),
                    vendor=self.vendor,
                    status=response.status_code,
                    request_id=request_id,
                    retry_after=retry_after,
                )
        await self._record(method, url, json, response, request_id, duration, error)
        if error is not None:
            raise error
        assert response is not None
        return response

    async def _send(self, method: str, path: str, params: dict[str, Any] | None, json: Any) -> httpx.Response:
        """One request handed straight to the client's transport, read to its end.

        httpx's Request and Response, without the client's per-call machinery: URL merging, the
        auth and redirect flows and the cookie jar cost more CPU than the aiohttp transport
        under them (about 0.4 ms a call on the bench machine, a create being one call per order).
        No vendor API here sets cookies or answers an API call with a redirect (one would be
        answered as before: a status that is not `ok`, an error)."""
        client = self.client
        url = path if path.startswith(("https://", "http://")) else self._base + path.lstrip("/")
        body = jsontext.request_body(json)  # orjson's bytes when it can write them
        if body is None:
            request = httpx.Request(method, url, params=params, headers=client.headers, json=json, extensions=self._extensions)
        else:
            request = httpx.Request(method, url, params=params, headers=client.headers, content=body, extensions=self._extensions)
            if "content-type" not in client.headers:  # the client's own (Extensiv's HAL+JSON) wins, as with json=
                request.headers["Content-Type"] = "application/json"
        # The client's transport, asked as the client asks it (and as respx patches it in tests).
        response = await client._transport_for_url(request.url).handle_async_request(request)  # noqa: SLF001
        response.request = request
        response.__class__ = VendorResponse  # the same object, with the faster json()
        try:
            await response.aread()
        except BaseException:
            await response.aclose()
            raise
        return response

    async def _record(self, method, url, body, response, request_id, duration, error) -> None:
        if self.on_call is None:
            return
        response_body: Any = None
        if response is not None and response.content:
            try:
                response_body = _keepable(jsontext.loads(response.content), len(response.content))
            except ValueError:
                response_body = response.text[:2000]
        record = CallRecord(
            vendor=self.vendor,
            method=method,
            url=self.redactor.text(url),
            status=response.status_code if response is not None else None,
            request_id=request_id,
            duration_ms=round(duration, 1),
            request_body=self.redactor.data(body),
            response_body=self.redactor.data(response_body),
            error=self.redactor.text(str(error)) if error else "",
        )
        result = self.on_call(record)
        if asyncio.iscoroutine(result):
            await result


# -- pagination -------------------------------------------------------------------------------

Fetch = Callable[[dict[str, Any]], Awaitable[Any]]  # query parameters -> the decoded body of one page


def query_of(url: str | None) -> dict[str, str]:
    """The query parameters of a URL (a vendor's next link), blanks kept."""
    return dict(parse_qsl(urlsplit(url or "").query, keep_blank_values=True))


def _count(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


class Paginator:
    """How one list endpoint of a vendor pages: the loop every adapter would otherwise write again.

    `pages(fetch, params)` yields the records of each page; `fetch(params)` makes one call and
    returns its decoded body. `items` says where a page's records are: a body key, a function of
    the body, or None for a bare JSON array. A subclass says which parameters ask for the next
    page (`following`) and how a page already read is recognised (`repeated`).

    The loop always ends. A page, cursor or link the server hands out a second time, or more than
    `max_pages` pages, raise PermanentError naming the endpoint: a server paging in circles is a
    vendor fault to report, not a reason to read (and spend the rate budget) forever.
    """

    def __init__(self, vendor: str, *, items: str | Callable[[Any], list[Any]] | None = None, max_pages: int = MAX_PAGES):
        self.vendor = vendor
        self.max_pages = max_pages
        if items is None:
            self._items: Callable[[Any], list[Any]] = lambda body: body if isinstance(body, list) else []
        elif isinstance(items, str):
            self._items = lambda body: (body.get(items) if isinstance(body, dict) else None) or []
        else:
            self._items = items

    def first(self, params: dict[str, Any]) -> dict[str, Any]:
        """The parameters of the first page."""
        return dict(params)

    def following(self, body: Any, params: dict[str, Any], items: list[Any], number: int) -> dict[str, Any] | None:
        """The parameters of the page after page `number` (asked for with `params`), or None
        when it was the last."""
        raise NotImplementedError

    def repeated(self, following: dict[str, Any], items: list[Any], previous: list[Any] | None, seen: set[Any]) -> str:
        """Why the next page is one already read ("" when it is new). `seen` is this run's own
        memory, holding the first page's parameters at the start."""
        return ""

    async def pages(self, fetch: Fetch, params: dict[str, Any], *, what: str = "a list") -> AsyncIterator[list[Any]]:
        params = self.first(params)
        seen: set[Any] = {_key(params)}
        previous: list[Any] | None = None
        for number in range(1, self.max_pages + 1):
            body = await fetch(params)
            items = self._items(body) or []
            yield items
            following = self.following(body, params, items, number)
            if following is None:
                return
            loop = self.repeated(following, items, previous, seen)
            if loop:
                raise PermanentError(f"{what}: {loop}; stopped rather than page in circles", vendor=self.vendor)
            params, previous = following, items
        raise PermanentError(f"{what}: more than {self.max_pages} pages; stopped rather than page forever", vendor=self.vendor)


def _key(params: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((k, str(v)) for k, v in params.items()))


class PageNumbers(Paginator):
    """Pages numbered from 1 in `page_param`, `size` records each (asked for in `size_param`
    when the vendor takes one). The list is over at an empty page, at the vendor's page count
    (`pages(body)`) or record count (`total(body)`) when it gives one, else at a short page.
    A page identical to the one before means the server ignores `page_param`."""

    def __init__(self, vendor: str, *, page_param: str, size: int, size_param: str | None = None,
                 pages: Callable[[Any], Any] | None = None, total: Callable[[Any], Any] | None = None, **kw: Any):
        super().__init__(vendor, **kw)
        self.page_param, self.size, self.size_param = page_param, size, size_param
        self._pages, self._total = pages, total

    def first(self, params: dict[str, Any]) -> dict[str, Any]:
        return self._numbered(params, 1)

    def _numbered(self, params: dict[str, Any], number: int) -> dict[str, Any]:
        return {**params, self.page_param: number, **({self.size_param: self.size} if self.size_param else {})}

    def following(self, body: Any, params: dict[str, Any], items: list[Any], number: int) -> dict[str, Any] | None:
        if not items:
            return None
        pages = _count(self._pages(body)) if self._pages else None
        total = _count(self._total(body)) if self._total else None
        if pages:
            done = number >= pages
        elif total is not None:
            done = number * self.size >= total
        else:
            done = len(items) < self.size
        return None if done else self._numbered(params, number + 1)

    def repeated(self, following: dict[str, Any], items: list[Any], previous: list[Any] | None, seen: set[Any]) -> str:
        number = following[self.page_param] - 1
        return f"page {number} is page {number - 1} again (is `{self.page_param}` ignored?)" if items == previous else ""


class CursorPages(Paginator):
    """Pages chained by an opaque cursor: `cursor(body)` names the next page (None: the last),
    sent back in `param` beside our own parameters. A cursor handed out twice is a loop."""

    def __init__(self, vendor: str, *, cursor: Callable[[Any], str | None], param: str, **kw: Any):
        super().__init__(vendor, **kw)
        self.cursor, self.param = cursor, param

    def following(self, body: Any, params: dict[str, Any], items: list[Any], number: int) -> dict[str, Any] | None:
        cursor = self.cursor(body)
        return {**params, self.param: cursor} if cursor else None

    def repeated(self, following: dict[str, Any], items: list[Any], previous: list[Any] | None, seen: set[Any]) -> str:
        cursor = following[self.param]
        if cursor in seen:
            return f"cursor {cursor!r} handed out twice"
        seen.add(cursor)
        return ""


class NextLinkPages(Paginator):
    """Pages chained by a link to the next one (`link(body)`; none, or an empty page: the last).
    The link's query is replayed over our own parameters on our own base URL, so neither a proxy
    host in it nor a link that drops one of our filters matters. A link back to a page already
    read is a loop."""

    def __init__(self, vendor: str, *, link: Callable[[Any], str | None], **kw: Any):
        super().__init__(vendor, **kw)
        self.link = link

    def following(self, body: Any, params: dict[str, Any], items: list[Any], number: int) -> dict[str, Any] | None:
        href = self.link(body)
        if not href or not items:
            return None
        return {**params, **query_of(href)}

    def repeated(self, following: dict[str, Any], items: list[Any], previous: list[Any] | None, seen: set[Any]) -> str:
        key = _key(following)
        if key in seen:
            return "a next link back to a page already read"
        seen.add(key)
        return ""


def _keepable(body: Any, size: int) -> Any:
    """The part of a large JSON body the event log can keep: lists cut to the share of their
    items that fits in RECORD_CHARS, with a note of how many were left out. Redacting and
    dumping a 500 kB page of orders only to keep its first 20,000 characters cost more CPU than
    everything else the download does."""
    if size <= RECORD_CHARS:
        return body
    share = RECORD_CHARS / size

    def cut(value: Any) -> Any:
        if isinstance(value, list) and len(value) > 1:
            keep = max(1, int(len(value) * share))
            return [cut(v) for v in value[:keep]] + ([f"... {len(value) - keep} more not recorded"] if keep < len(value) else [])
        if isinstance(value, dict):
            return {k: cut(v) for k, v in value.items()}
        return value

    return cut(body)


def _default_error_message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return (response.text or response.reason_phrase or f"HTTP {response.status_code}")[:500]
    return jsonlib.dumps(body)[:500]
