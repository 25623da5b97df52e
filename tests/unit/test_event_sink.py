"""Vendor-call records reach the event log during a long pass, not only at its end: a pass of
thousands of creates must not hold every request and response body in memory until it ends."""

from __future__ import annotations

import asyncio

from adapters.http import CallRecord
from connector.calls import WRITE_AT, EventSink
from connector.store import Store


def call(i: int) -> CallRecord:
    return CallRecord("shipbob", "POST", "https://sandbox.example/2026-01/order", 201, f"req-{i}", 12.0,
                      request_body={"reference_id": f"acme-{i}"}, response_body={"id": i})


async def test_records_are_written_in_batches_while_the_pass_runs() -> None:
    store = Store.memory()
    sink = EventSink(store, "acme")
    for i in range(WRITE_AT + 5):
        sink(call(i))
    # The pass is still running (no flush yet): the first batch is written anyway.
    for _ in range(1000):
        if len(await store.events.listing(merchant="acme", limit=10_000)) >= WRITE_AT:
            break
        await asyncio.sleep(0.001)
    written = await store.events.listing(merchant="acme", limit=10_000)
    assert len(written) >= WRITE_AT and len(sink.buffer) < WRITE_AT
    await sink.flush()  # the pass's end writes the rest: nothing lost, nothing twice
    rows = await store.events.listing(merchant="acme", limit=10_000)
    assert sorted(r.request_id for r in rows) == sorted(f"req-{i}" for i in range(WRITE_AT + 5))
