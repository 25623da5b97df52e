"""The vendor-call recorder: each adapter call (redacted by the HTTP layer) is counted in the
metrics and buffered for the event log, written in batches: at the end of a pass, and every
`WRITE_AT` records during a long one."""

from __future__ import annotations

import asyncio
from typing import Any

import structlog

from adapters.http import CallRecord
from connector import jsontext, metrics
from connector.clock import SYSTEM, Clock

BODY_CHARS = 20_000  # what the event log keeps of a body
# Records buffered before they are written without waiting for the pass's end: a pass of 10,000
# creates held every request and response body in memory until it ended (tens of MB).
WRITE_AT = 200
log = structlog.get_logger("connector")


class EventSink:
    """Buffers vendor-call records of one merchant and writes them to the event log in batches."""

    def __init__(self, store: Any, merchant: str, clock: Clock = SYSTEM):
        self.store, self.merchant, self.clock = store, merchant, clock
        self.buffer: list[dict[str, Any]] = []
        self.calls: dict[str, int] = {}
        self._writing: asyncio.Task | None = None

    def __call__(self, rec: CallRecord) -> None:
        key = f"{rec.vendor} {rec.method}"
        self.calls[key] = self.calls.get(key, 0) + 1
        metrics.vendor_call(rec.vendor, rec.status)
        self.buffer.append(dict(
            at=self.clock.now(), merchant=self.merchant, kind="vendor_call", vendor=rec.vendor, order_id=rec.extra.get("order_id", ""),
            method=rec.method, url=rec.url, status=rec.status, request_id=rec.request_id, duration_ms=rec.duration_ms,
            request_body=dump(rec.request_body), response_body=dump(rec.response_body), error=rec.error,
        ))
        if len(self.buffer) >= WRITE_AT and (self._writing is None or self._writing.done()):
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return  # called outside an event loop: the pass's end writes them
            self._writing = loop.create_task(self._write_early(), name=f"event log {self.merchant}")

    async def settle(self) -> None:
        """Wait for a batch being written during a pass (before the store closes)."""
        if self._writing is not None and not self._writing.done():
            await asyncio.wait([self._writing])

    async def _write_early(self) -> None:
        try:
            await self.flush()
        except Exception as exc:  # noqa: BLE001 - as at a pass's end: the records are lost, the flow is not
            log.error("could not write vendor-call records to the event log", merchant=self.merchant, error=f"{type(exc).__name__}: {exc}"[:300])

    async def flush(self, store: Any = None) -> None:
        """Write the buffered records (through `store`, e.g. a pass's closing transaction, when given)."""
        rows, self.buffer = self.buffer, []
        if rows:
            await (store or self.store).events.log(rows)


def dump(body: Any) -> str:
    if body is None:
        return ""
    text = body if isinstance(body, str) else jsontext.dumps(body)
    return text[:BODY_CHARS]
