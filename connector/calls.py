"""The vendor-call recorder: each adapter call (redacted by the HTTP layer) is counted in the
metrics and buffered for the event log, written in batches at the end of a pass."""

from __future__ import annotations

from typing import Any

from adapters.http import CallRecord
from connector import jsontext, metrics
from connector.clock import SYSTEM, Clock

BODY_CHARS = 20_000  # what the event log keeps of a body


class EventSink:
    """Buffers vendor-call records of one merchant and writes them to the event log in batches."""

    def __init__(self, store: Any, merchant: str, clock: Clock = SYSTEM):
        self.store, self.merchant, self.clock = store, merchant, clock
        self.buffer: list[dict[str, Any]] = []
        self.calls: dict[str, int] = {}

    def __call__(self, rec: CallRecord) -> None:
        key = f"{rec.vendor} {rec.method}"
        self.calls[key] = self.calls.get(key, 0) + 1
        metrics.vendor_call(rec.vendor, rec.status)
        self.buffer.append(dict(
            at=self.clock.now(), merchant=self.merchant, kind="vendor_call", vendor=rec.vendor, order_id=rec.extra.get("order_id", ""),
            method=rec.method, url=rec.url, status=rec.status, request_id=rec.request_id, duration_ms=rec.duration_ms,
            request_body=dump(rec.request_body), response_body=dump(rec.response_body), error=rec.error,
        ))

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
