"""Every file operation goes through `Calls`: short in-call retries where a retry is safe, and a
redacted record for the event log (what `adapters.http.HttpClient` does for HTTP vendors)."""

from __future__ import annotations

import asyncio
import posixpath
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from adapters.base import AdapterContext
from adapters.files.transport import FX_OK, VENDOR, Transport
from adapters.http import CallRecord, short_retries
from connector.errors import VendorError
from connector.redact import DEFAULT as DEFAULT_REDACTOR

T = TypeVar("T")
MAX_ATTEMPTS = 3


def join(*parts: str) -> str:
    """A path under the root from config folders and a name ("" and "." folders vanish)."""
    return posixpath.normpath(posixpath.join(*[p.strip("/") if i else p.rstrip("/") for i, p in enumerate(parts) if p]))


class Calls:
    """The adapter's file operations: `await calls("GET", path, lambda: io.read(path))`."""

    def __init__(self, transport: Transport, context: AdapterContext, *, retry_wait: float = 0.1):
        self.io = transport
        self.context = context
        self.redactor = context.redactor or DEFAULT_REDACTOR
        self.retry_wait = retry_wait

    async def __call__(self, method: str, path: str, op: Callable[[], Awaitable[T]], *, retry: bool = True,
                       record: bool = False, body: Any = None, order_id: str = "", summary: Callable[[T], Any] | None = None) -> T:
        """Run `op`; transient failures are retried (at most 3 tries, jitter) when `retry` says the
        operation may be repeated, or whenever nothing reached the server."""

        async for attempt in short_retries(repeatable=retry, attempts=MAX_ATTEMPTS, wait=self.retry_wait):
            with attempt:
                started = time.perf_counter()
                try:
                    result = await op()
                except VendorError as exc:
                    if record:
                        await self.record(method, path, started=started, body=body, status=exc.status, error=str(exc), order_id=order_id)
                    raise
                if record:
                    await self.record(method, path, started=started, body=body, response=summary(result) if summary else None, order_id=order_id)
                return result
        raise AssertionError("unreachable")  # pragma: no cover

    async def replace(self, path: str, data: bytes) -> None:
        """Replace a small file of ours (a ledger, a marker) atomically: written aside, then
        renamed over the old one, so a crash leaves the old or the new, never half of one."""
        await self("PUT", path + ".part", lambda: self.io.write(path + ".part", data))
        try:
            await self("MOVE", path, lambda: self.io.replace(path + ".part", path))
        except FileNotFoundError:
            pass  # a retried replace whose first try went through (only a lost reply looks like this)

    async def record(self, method: str, path: str, *, started: float | None = None, body: Any = None, response: Any = None,
                     status: int | None = FX_OK, error: str = "", order_id: str = "") -> None:
        """One entry in the event log (errors carry no status unless the server gave one)."""
        if self.context.on_call is None:
            return
        record = CallRecord(
            vendor=VENDOR,
            method=method,
            url=self.redactor.text(f"{self.io.url.rstrip('/')}/{path}"),
            status=status if not error or status else None,
            request_id="",
            duration_ms=round((time.perf_counter() - started) * 1000, 1) if started else 0.0,
            request_body=self.redactor.data(body),
            response_body=self.redactor.data(response),
            error=self.redactor.text(error),
            extra={"order_id": order_id} if order_id else {},
        )
        result = self.context.on_call(record)
        if asyncio.iscoroutine(result):
            await result
