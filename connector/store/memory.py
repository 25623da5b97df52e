"""The in-memory fake of every Store interface, for fast unit tests of the pipeline and the
operator logic. It passes the same test suite as SQLite and PostgreSQL
(tests/store/test_store_contract.py); where behaviour matters (compare-and-set, leases, the
lifecycle check, unique keys, atomic rollback) it does what the SQL does.

Rows are plain dicts of columns; callers get records built from copies, never the rows.
"""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any

from connector import lifecycle
from connector.clock import Clock
from connector.lifecycle import PRE_WAREHOUSE, Actor, AlertState, OrderState, ShipmentState, TaskState
from connector.store.alerts import KEY_MAX, Item
from connector.store.events import BLANK
from connector.store.orders import NOT_AT_WAREHOUSE_YET, TROUBLE, UNSHIPPED, Move, Search, TroubleGroup, check_moves, move_values, timeline_text
from connector.store.runs import ended_values
from connector.store.records import (AlertRecord, EventRecord, IngestResult, NewOrder, OrderRecord, ServiceRun, ShipmentRecord,
                                     TaskRecord, TimelineEntry, WorkerRecord)
from connector.store.tasks import dumps, mark_tried, tried_payload

S = OrderState
TS = TaskState
LIGHT_DROP = ("order_json", "raw_json", "warehouse_json", "sent_request")


class _Tables:
    """Everything the fake keeps; deep-copied for a transaction's rollback."""

    def __init__(self) -> None:
        self.orders: dict[int, dict[str, Any]] = {}
        self.events: list[dict[str, Any]] = []
        self.shipments: dict[int, dict[str, Any]] = {}
        self.tasks: dict[int, dict[str, Any]] = {}
        self.cursors: dict[tuple[str, str], str] = {}
        self.runs: dict[tuple[str, str], dict[str, Any]] = {}
        self.workers: dict[str, dict[str, Any]] = {}
        self.event_log: list[dict[str, Any]] = []
        self.alerts: dict[int, dict[str, Any]] = {}
        self.pushed: dict[tuple[str, str], int] = {}
        self.consumptions: dict[int, dict[str, Any]] = {}
        self.last_id = 0

    def new_id(self) -> int:
        self.last_id += 1
        return self.last_id


class MemoryBackend:
    url = "memory://"
    sqlite = False

    def __init__(self, clock: Clock):
        self.clock = clock
        self.t = _Tables()
        self._lock = asyncio.Lock()
        self._owner: asyncio.Task | None = None

    def store(self):
        from connector.store import Store

        parts = dict(orders=MemoryOrderStore(self), shipments=MemoryShipmentStore(self), tasks=MemoryTaskStore(self),
                     runs=MemoryRunStore(self), cursors=MemoryCursorStore(self), workers=MemoryWorkerStore(self),
                     events=MemoryEventStore(self), alerts=MemoryAlertStore(self), inventory=MemoryInventoryStore(self),
                     ledger=MemoryLedgerStore(self))
        return Store(parts, self)

    def now(self) -> datetime:
        return self.clock.now()

    @asynccontextmanager
    async def gate(self) -> AsyncIterator[None]:
        """Serialise against a transaction another task holds open (re-entrant for its owner)."""
        task = asyncio.current_task()
        if self._owner is not None and self._owner is task:
            yield
            return
        async with self._lock:
            yield

    @asynccontextmanager
    async def atomic(self) -> AsyncIterator[Any]:
        async with self._lock:
            self._owner = asyncio.current_task()
            saved = copy.deepcopy(self.t)
            try:
                yield self.store()
            except BaseException:
                self.t = saved
                raise
            finally:
                self._owner = None

    def with_deadline(self, ms: int):
        return self.store()

    def check_file(self) -> None:
        return None

    async def ping(self) -> None:
        return None

    async def probe_write(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def reset(self) -> None:
        return None


# ---------------------------------------------------------------------------------------- orders
class MemoryOrderStore:
    def __init__(self, b: MemoryBackend):
        self.b = b

    def _rec(self, row: dict[str, Any], light: bool = False) -> OrderRecord:
        data = {k: v for k, v in row.items() if not (light and k in LIGHT_DROP)}
        return OrderRecord.from_row(copy.copy(data))

    def _entry(self, pk: int, at: datetime, frm: str, to: str, actor: Actor | str, reason: str, request_id: str = "") -> None:
        self.b.t.events.append(dict(order_pk=pk, at=at, from_state=frm, to_state=to, actor=str(actor), reason=reason, request_id=request_id))

    async def ingest(self, merchant: str, dc: str, new: Sequence[NewOrder], *, source: str, actor: Actor) -> IngestResult:
        result = IngestResult()
        for n in new:
            lifecycle.check(None, n.state, actor)
        async with self.b.gate():
            now = self.b.now()
            by_id = {(r["merchant"], r["dc"], r["order_id"]): r for r in self.b.t.orders.values()}
            for n in new:
                key = (merchant, dc, n.order_id)
                if key in by_id:
                    if n.order_id not in result.new:
                        result.known[n.order_id] = self._rec({k: v for k, v in by_id[key].items() if k not in ("raw_json", "warehouse_json")})
                    continue
                pk = self.b.t.new_id()
                reason = n.reason
                row = dict(id=pk, merchant=merchant, dc=dc, order_id=n.order_id, reference=n.reference, state=str(n.state),
                           reason=reason.text if reason else "", hold_kind=str(reason.kind) if reason else "",
                           hold_detail=reason.to_json() if reason else "", source=source, warehouse_order_id="", attempts=0,
                           first_attempt_at=None, next_attempt_at=None, last_error="", lease_owner="", lease_until=None,
                           received_at=now, acked_at=None, updated_at=now, released_at=None, cancel_reason="",
                           customer=n.customer[:200], email=n.email[:200], ordered_at=n.ordered_at, sent_request="",
                           order_json=n.order_json, warehouse_json="", raw_json=n.raw_json)
                self.b.t.orders[pk] = row
                by_id[key] = row
                self._entry(pk, now, "", row["state"], actor, row["reason"] or f"received by {source}")
                result.new.append(n.order_id)
        return result

    async def unacked_ids(self, merchant: str, dc: str, limit: int = 100) -> list[str]:
        async with self.b.gate():
            rows = [r for r in self.b.t.orders.values() if r["merchant"] == merchant and r["dc"] == dc and r["acked_at"] is None]
            return [r["order_id"] for r in sorted(rows, key=lambda r: r["id"])[:limit]]

    async def mark_acked(self, merchant: str, dc: str, order_ids: Iterable[str]) -> None:
        ids = set(order_ids)
        async with self.b.gate():
            for r in self.b.t.orders.values():
                if r["merchant"] == merchant and r["dc"] == dc and r["order_id"] in ids and r["acked_at"] is None:
                    r["acked_at"] = self.b.now()

    async def move(self, m: Move, *, actor: Actor) -> bool:
        return (await self.move_many([m], actor=actor))[0]

    async def move_many(self, moves: Sequence[Move], *, actor: Actor) -> list[bool]:
        if not moves:
            return []
        check_moves(moves, actor)
        async with self.b.gate():
            now = self.b.now()
            done = []
            for m in moves:
                row = self.b.t.orders.get(m.pk)
                if row is None or row["state"] not in m.expect:
                    done.append(False)
                    continue
                state = row["state"]
                values = move_values(state, m, now)
                for k, v in values.items():
                    row[k] = _resolve(v, row)
                text = timeline_text(m)
                if str(m.to) != state or text:
                    self._entry(m.pk, now, state, str(m.to), actor, text, m.request_id)
                done.append(True)
            return done

    async def claim_ready(self, merchant: str, *, owner: str, lease_seconds: float, limit: int) -> list[OrderRecord]:
        lifecycle.check(S.ready, S.submitting, Actor.order_delivery)
        async with self.b.gate():
            now = self.b.now()
            due = sorted((r for r in self.b.t.orders.values() if r["merchant"] == merchant and r["state"] == S.ready
                          and (r["next_attempt_at"] is None or r["next_attempt_at"] <= now)), key=lambda r: r["id"])[:limit]
            out = []
            for r in due:
                r.update(state=str(S.submitting), lease_owner=owner, lease_until=now + timedelta(seconds=lease_seconds),
                         attempts=r["attempts"] + 1, updated_at=now, first_attempt_at=r["first_attempt_at"] or now)
                self._entry(r["id"], now, S.ready, S.submitting, Actor.order_delivery, f"attempt {r['attempts']} ({owner})")
                out.append(self._rec(r))
            return out

    async def _claims(self, pred) -> list[int]:
        async with self.b.gate():
            return [r["id"] for r in self.b.t.orders.values() if r["state"] == S.submitting and pred(r)]

    async def expire_claims(self, merchant: str) -> int:
        now = self.b.now()
        pks = await self._claims(lambda r: r["merchant"] == merchant and r["lease_until"] is not None and r["lease_until"] < now)
        return sum(await self.move_many([Move(pk, S.in_doubt, (S.submitting,), "lease expired while submitting (worker stopped); "
                                              "will look up before resending") for pk in pks], actor=Actor.recovery))

    async def recover_claims(self) -> int:
        pks = await self._claims(lambda r: True)
        return sum(await self.move_many([Move(pk, S.in_doubt, (S.submitting,), "found submitting at start (the previous process stopped "
                                              "mid-send); will look up before resending") for pk in pks], actor=Actor.recovery))

    async def release_claims(self, owner: str) -> int:
        pks = await self._claims(lambda r: r["lease_owner"] == owner)
        return sum(await self.move_many([Move(pk, S.in_doubt, (S.submitting,), "stopped while submitting; will look up before resending")
                                         for pk in pks], actor=Actor.shutdown))

    async def renew_claims(self, owner: str, seconds: float) -> None:
        async with self.b.gate():
            for r in self.b.t.orders.values():
                if r["lease_owner"] == owner and r["state"] == S.submitting:
                    r["lease_until"] = self.b.now() + timedelta(seconds=seconds)

    async def _select(self, pred, *, light: bool = False, key=lambda r: r["id"]) -> list[OrderRecord]:
        async with self.b.gate():
            return [self._rec(r, light) for r in sorted((r for r in self.b.t.orders.values() if pred(r)), key=key)]

    async def get(self, pk: int) -> OrderRecord | None:
        found = await self._select(lambda r: r["id"] == pk)
        return found[0] if found else None

    async def by_pks(self, pks: Iterable[int]) -> dict[int, OrderRecord]:
        wanted = set(pks)
        return {r.id: r for r in await self._select(lambda r: r["id"] in wanted)}

    async def find(self, order_id: str, merchant: str | None = None) -> list[OrderRecord]:
        return await self._select(lambda r: order_id in (r["order_id"], r["reference"]) and (not merchant or r["merchant"] == merchant))

    async def by_reference(self, merchant: str, references: Iterable[str]) -> dict[str, OrderRecord]:
        refs = set(references)
        rows = await self._select(lambda r: r["merchant"] == merchant and r["reference"] in refs)
        return {r.reference: OrderRecord.from_row({**r.__dict__, "order_json": "", "raw_json": ""}) for r in rows}

    async def in_states(self, merchant: str, states: Iterable[str], *, limit: int = 1000, after_pk: int = 0) -> list[OrderRecord]:
        wanted = {str(s) for s in states}
        return (await self._select(lambda r: r["merchant"] == merchant and r["state"] in wanted and r["id"] > after_pk))[:limit]

    async def timeline(self, pk: int) -> list[TimelineEntry]:
        async with self.b.gate():
            return [TimelineEntry.from_row(dict(e)) for e in self.b.t.events if e["order_pk"] == pk]

    def _match(self, state: str | None, merchant: str | None):
        return lambda r: (not state or r["state"] == state) and (not merchant or r["merchant"] == merchant)

    async def listing(self, *, state: str | None = None, merchant: str | None = None, limit: int = 200, offset: int = 0) -> list[OrderRecord]:
        return (await self._select(self._match(state, merchant), light=True))[offset : offset + limit]

    async def count(self, *, state: str | None = None, merchant: str | None = None) -> int:
        return len(await self._select(self._match(state, merchant), light=True))

    async def counts_by_state(self, merchant: str | None = None) -> dict[tuple[str, str], int]:
        out: dict[tuple[str, str], int] = {}
        for r in await self._select(self._match(None, merchant), light=True):
            out[(r.merchant, r.state)] = out.get((r.merchant, r.state), 0) + 1
        return out

    async def reasons(self, state: str, merchant: str | None = None) -> dict[tuple[str, str], int]:
        out: dict[tuple[str, str], int] = {}
        for r in await self._select(self._match(state, merchant), light=True):
            out[(r.merchant, r.reason)] = out.get((r.merchant, r.reason), 0) + 1
        return out

    async def oldest_pending(self, merchant: str | None = None) -> datetime | None:
        rows = await self._select(lambda r: r["state"] in PRE_WAREHOUSE and (not merchant or r["merchant"] == merchant), light=True)
        return min((r.received_at for r in rows), default=None)

    async def in_flight_json(self, merchant: str, since: datetime) -> list[str]:
        rows = await self._select(lambda r: r["merchant"] == merchant and (r["state"] in PRE_WAREHOUSE or (r["state"] == S.at_warehouse and r["updated_at"] >= since)))
        return [r.order_json for r in rows if r.order_json]

    async def not_at_warehouse_since(self, merchants: Sequence[str], before: datetime, *, limit: int = 1000) -> list[OrderRecord]:
        ms = set(merchants)
        return (await self._select(lambda r: r["merchant"] in ms and r["state"] in NOT_AT_WAREHOUSE_YET and r["received_at"] < before, light=True,
                                   key=lambda r: (r["merchant"], r["id"])))[:limit]

    async def unshipped_since(self, merchants: Sequence[str], before: datetime, *, limit: int = 1000) -> list[OrderRecord]:
        ms = set(merchants)
        return (await self._select(lambda r: r["merchant"] in ms and r["state"] in UNSHIPPED and r["updated_at"] < before, light=True,
                                   key=lambda r: (r["merchant"], r["id"])))[:limit]

    async def held(self, merchant: str, kinds: Iterable[str]) -> list[OrderRecord]:
        ks = {str(k) for k in kinds}
        return await self._select(lambda r: r["merchant"] == merchant and r["state"] == S.held and r["hold_kind"] in ks, light=True)

    async def search(self, q: Search) -> tuple[list[OrderRecord], int]:
        text = q.text.strip().lower()

        def match(r: dict[str, Any]) -> bool:
            return ((not q.merchant or r["merchant"] == q.merchant) and (q.merchants is None or r["merchant"] in q.merchants)
                    and (not q.state or r["state"] == q.state) and (not q.hold_kind or r["hold_kind"] == q.hold_kind)
                    and (q.reason is None or r["reason"] == q.reason) and (not q.since or r["received_at"] >= q.since)
                    and (not q.until or r["received_at"] < q.until)
                    and (not text or any(text in (r[c] or "").lower() for c in ("order_id", "reference", "customer", "email"))))

        rows = await self._select(match, light=True, key=lambda r: -r["id"])
        return rows[q.offset : q.offset + q.limit], len(rows)

    async def trouble(self, merchant: str | None = None) -> list[TroubleGroup]:
        groups: dict[tuple[str, str, str, str], list[OrderRecord]] = {}
        for r in await self._select(lambda r: r["state"] in TROUBLE and (not merchant or r["merchant"] == merchant), light=True):
            groups.setdefault((r.merchant, r.state, r.reason, r.hold_kind), []).append(r)
        out = [TroubleGroup(m, st, reason, kind, len(rs), [r.order_id for r in rs[:20]]) for (m, st, reason, kind), rs in groups.items()]
        return sorted(out, key=lambda g: -g.count)


def _resolve(value: Any, row: dict[str, Any]) -> Any:
    """Column expressions the SQL stores accept in `fields` (none are used with the fake today)."""
    if hasattr(value, "compile"):
        raise TypeError("SQL expressions cannot be used with the in-memory store")
    return value


# ---------------------------------------------------------------------------------------- shipments
class MemoryShipmentStore:
    def __init__(self, b: MemoryBackend):
        self.b = b

    async def _select(self, pred) -> list[ShipmentRecord]:
        async with self.b.gate():
            return [ShipmentRecord.from_row(copy.copy(r)) for r in sorted(self.b.t.shipments.values(), key=lambda r: r["id"]) if pred(r)]

    async def by_ids(self, merchant: str, shipment_ids: Iterable[str]) -> dict[str, ShipmentRecord]:
        ids = set(shipment_ids)
        return {r.shipment_id: r for r in await self._select(lambda r: r["merchant"] == merchant and r["shipment_id"] in ids)}

    async def of_orders(self, pks: Iterable[int]) -> dict[int, list[ShipmentRecord]]:
        pks = set(pks)
        out: dict[int, list[ShipmentRecord]] = {pk: [] for pk in pks}
        for r in await self._select(lambda r: r["order_pk"] in pks):
            out[r.order_pk].append(r)
        return out

    async def upsert(self, merchant: str, shipments: Sequence[dict[str, Any]]) -> None:
        async with self.b.gate():
            now = self.b.now()
            index = {r["shipment_id"]: r for r in self.b.t.shipments.values() if r["merchant"] == merchant}
            for s in {s["shipment_id"]: s for s in shipments}.values():
                row = index.get(s["shipment_id"])
                if row is None:
                    pk = self.b.t.new_id()
                    row = dict(id=pk, merchant=merchant, order_pk=None, reason="", tracking="", shipment_json="", received_at=now,
                               posted_at=None, warehouse_acked_at=None, state=ShipmentState.pending)
                    row.update(s)
                    self.b.t.shipments[pk] = index[s["shipment_id"]] = row
                elif row["state"] != ShipmentState.posted:
                    row.update(s)

    async def mark_posted(self, merchant: str, shipment_ids: Sequence[str]) -> None:
        ids = set(shipment_ids)
        async with self.b.gate():
            for r in self.b.t.shipments.values():
                if r["merchant"] == merchant and r["shipment_id"] in ids:
                    r.update(state=ShipmentState.posted, posted_at=self.b.now())

    async def needing_ack(self, merchant: str, limit: int = 500) -> list[ShipmentRecord]:
        return (await self._select(lambda r: r["merchant"] == merchant and r["state"] == ShipmentState.posted and r["warehouse_acked_at"] is None))[:limit]

    async def mark_acked(self, merchant: str, shipment_ids: Iterable[str]) -> None:
        ids = set(shipment_ids)
        async with self.b.gate():
            for r in self.b.t.shipments.values():
                if r["merchant"] == merchant and r["shipment_id"] in ids:
                    r["warehouse_acked_at"] = self.b.now()

    async def listing(self, merchant: str | None = None, state: str | None = None, limit: int = 200) -> list[ShipmentRecord]:
        return (await self._select(lambda r: (not merchant or r["merchant"] == merchant) and (not state or r["state"] == state)))[:limit]


# ---------------------------------------------------------------------------------------- tasks
class MemoryTaskStore:
    def __init__(self, b: MemoryBackend):
        self.b = b

    async def put(self, merchant: str, kind: str, key: str, payload: Any, *, replace: bool = False) -> None:
        await self.put_many(merchant, [dict(kind=kind, key=key, payload=payload, replace=replace)])

    async def put_many(self, merchant: str, tasks: Sequence[dict[str, Any]]) -> None:
        async with self.b.gate():
            now = self.b.now()
            index = {(r["kind"], r["key"]): r for r in self.b.t.tasks.values() if r["merchant"] == merchant}
            for x in tasks:
                row = index.get((x["kind"], x["key"]))
                if row is None:
                    pk = self.b.t.new_id()
                    row = dict(id=pk, merchant=merchant, kind=x["kind"], key=x["key"], payload=dumps(x["payload"]), state=TS.pending, attempts=0,
                               next_attempt_at=None, lease_owner="", lease_until=None, last_error="", failing_since=None, created_at=now, updated_at=now)
                    self.b.t.tasks[pk] = index[(x["kind"], x["key"])] = row
                elif x.get("replace"):
                    was_tried = row["attempts"] or row["state"] != TS.pending or tried_payload(row["payload"])
                    row.update(payload=dumps(mark_tried(x["payload"]) if was_tried else x["payload"]), state=TS.pending, attempts=0,
                               next_attempt_at=None, updated_at=now, last_error="", failing_since=None)

    async def claim(self, merchant: str, kind: str, *, owner: str, lease_seconds: float, limit: int) -> list[TaskRecord]:
        async with self.b.gate():
            now = self.b.now()
            due = [r for r in sorted(self.b.t.tasks.values(), key=lambda r: r["id"])
                   if r["merchant"] == merchant and r["kind"] == kind
                   and (r["state"] == TS.pending or (r["state"] == TS.running and r["lease_until"] is not None and r["lease_until"] < now))
                   and (r["next_attempt_at"] is None or r["next_attempt_at"] <= now)][:limit]
            for r in due:
                r.update(state=TS.running, lease_owner=owner, lease_until=now + timedelta(seconds=lease_seconds), attempts=r["attempts"] + 1, updated_at=now)
            return [TaskRecord.from_row(copy.copy(r)) for r in due]

    async def finish(self, task_ids: Sequence[int], *, state: str, next_attempt_at: datetime | None = None, error: str = "",
                     count_attempt: bool = True) -> None:
        async with self.b.gate():
            now = self.b.now()
            for pk in task_ids:
                r = self.b.t.tasks.get(pk)
                if r is None:
                    continue
                r.update(state=state, next_attempt_at=next_attempt_at, last_error=error[:2000], lease_owner="", updated_at=now)
                if state == TS.done:
                    r["failing_since"] = None
                elif error:
                    r["failing_since"] = r["failing_since"] or now
                if not count_attempt:
                    r["attempts"] -= 1

    async def listing(self, merchant: str | None = None, kind: str | None = None, state: str | None = None) -> list[TaskRecord]:
        async with self.b.gate():
            return [TaskRecord.from_row(copy.copy(r)) for r in sorted(self.b.t.tasks.values(), key=lambda r: r["id"])
                    if (merchant is None or r["merchant"] == merchant) and (kind is None or r["kind"] == kind) and (state is None or r["state"] == state)]

    async def retry_failed(self, merchant: str | None, kind: str, key: str | None = None) -> int:
        n = 0
        async with self.b.gate():
            for r in self.b.t.tasks.values():
                if r["kind"] == kind and r["state"] == TS.failed and (not merchant or r["merchant"] == merchant) and (not key or r["key"] == key):
                    r.update(state=TS.pending, attempts=0, next_attempt_at=None, updated_at=self.b.now())
                    n += 1
        return n

    async def overdue(self, merchants: Sequence[str], kind: str, before: datetime, *, limit: int = 1000) -> list[TaskRecord]:
        ms = set(merchants)
        async with self.b.gate():
            rows = [r for r in self.b.t.tasks.values() if r["merchant"] in ms and r["kind"] == kind
                    and (r["state"] == TS.failed or (r["state"] in (TS.pending, TS.running) and r["created_at"] < before))]
            return [TaskRecord.from_row(copy.copy(r)) for r in sorted(rows, key=lambda r: (r["merchant"], r["id"]))[:limit]]

    async def recover(self) -> int:
        n = 0
        async with self.b.gate():
            for r in self.b.t.tasks.values():
                if r["state"] == TS.running:
                    r.update(state=TS.pending, lease_owner="", updated_at=self.b.now())
                    n += 1
        return n

    async def renew(self, owner: str, seconds: float) -> None:
        async with self.b.gate():
            for r in self.b.t.tasks.values():
                if r["lease_owner"] == owner and r["state"] == TS.running:
                    r["lease_until"] = self.b.now() + timedelta(seconds=seconds)


# ---------------------------------------------------------------------------------------- runs, cursors, workers
_RUN = dict(last_started_at=None, last_finished_at=None, last_success_at=None, last_outcome="", last_error="", last_summary="",
            stopped_because="", resumes_at=None, paused_until=None, pause_reason="", note="", lease_owner="", lease_until=None)


def _may_run(row: dict[str, Any], owner: str, now: datetime, honour_pause: bool) -> bool:
    """As `runs._may_run`: no live lease of another owner, and (with `honour_pause`) not paused."""
    if honour_pause and row["paused_until"] is not None and row["paused_until"] > now:
        return False
    return row["lease_until"] is None or row["lease_until"] < now or row["lease_owner"] == owner


class MemoryRunStore:
    def __init__(self, b: MemoryBackend):
        self.b = b

    def _row(self, merchant: str, service: str) -> dict[str, Any]:
        return self.b.t.runs.setdefault((merchant, service), dict(_RUN, merchant=merchant, service=service))

    async def _set(self, merchant: str, service: str, **values: Any) -> None:
        async with self.b.gate():
            self._row(merchant, service).update(values)

    async def started(self, merchant: str, service: str) -> None:
        await self._set(merchant, service, last_started_at=self.b.now())

    async def finished(self, merchant: str, service: str, *, outcome: str, summary: dict[str, Any], error: str = "",
                       stopped_because: str = "", resumes_at: datetime | None = None, release: str = "") -> None:
        values = ended_values(self.b.now(), outcome, summary, error, stopped_because, resumes_at)
        async with self.b.gate():  # the lease is checked and let go in one step, as the SQL store does
            row = self._row(merchant, service)
            if release and row["lease_owner"] == release:
                values.update(lease_owner="", lease_until=None)
            row.update(values)

    async def pause(self, merchant: str, service: str, until: datetime | None, reason: str) -> None:
        await self._set(merchant, service, paused_until=until, pause_reason=reason)

    async def note(self, merchant: str, service: str, note: str) -> None:
        await self._set(merchant, service, note=note)

    async def begin_pass(self, merchant: str, service: str, owner: str, seconds: float, *, honour_pause: bool = True) -> ServiceRun | None:
        async with self.b.gate():
            row = self._row(merchant, service)
            now = self.b.now()
            if _may_run(row, owner, now, honour_pause):
                row.update(lease_owner=owner, lease_until=now + timedelta(seconds=seconds), last_started_at=now)
                return None
            return ServiceRun.from_row(copy.copy(row))

    async def idle_pass(self, merchant: str, service: str, owner: str, *, honour_pause: bool = True, no_orders_in: Iterable[str] = (),
                        no_alerts_in: Iterable[str] = (), no_own_alerts_in: Iterable[str] = ()) -> bool:
        states, categories, own = {str(s) for s in no_orders_in}, set(no_alerts_in), set(no_own_alerts_in)
        async with self.b.gate():
            row = self.b.t.runs.get((merchant, service))
            now = self.b.now()
            if row is None or not _may_run(row, owner, now, honour_pause):
                return False
            if any(o["merchant"] == merchant and o["state"] in states for o in self.b.t.orders.values()) \
                    or any(a["merchant"] == merchant and a["state"] == AlertState.open
                           and (a["category"] in categories or a["category"] in own and a["key"] == service) for a in self.b.t.alerts.values()):
                return False
            row.update(last_started_at=now, lease_owner="", lease_until=None, **ended_values(now, "done"))
            return True

    async def release(self, merchant: str, service: str, owner: str) -> None:
        async with self.b.gate():
            row = self._row(merchant, service)
            if row["lease_owner"] == owner:
                row.update(lease_owner="", lease_until=None)

    async def renew(self, owner: str, seconds: float) -> None:
        async with self.b.gate():
            for row in self.b.t.runs.values():
                if row["lease_owner"] == owner:
                    row["lease_until"] = self.b.now() + timedelta(seconds=seconds)

    async def clear_leases(self) -> None:
        async with self.b.gate():
            for row in self.b.t.runs.values():
                row.update(lease_owner="", lease_until=None)

    async def listing(self, merchant: str | None = None) -> list[ServiceRun]:
        async with self.b.gate():
            return [ServiceRun.from_row(copy.copy(r)) for k, r in sorted(self.b.t.runs.items()) if not merchant or r["merchant"] == merchant]


class MemoryCursorStore:
    def __init__(self, b: MemoryBackend):
        self.b = b

    async def get(self, merchant: str, name: str) -> str | None:
        async with self.b.gate():
            return self.b.t.cursors.get((merchant, name))

    async def set(self, merchant: str, name: str, value: str) -> None:
        async with self.b.gate():
            self.b.t.cursors[(merchant, name)] = value


class MemoryWorkerStore:
    def __init__(self, b: MemoryBackend):
        self.b = b

    async def register(self, worker: WorkerRecord) -> None:
        async with self.b.gate():
            self.b.t.workers[worker.worker_id] = {k: getattr(worker, k) for k in WorkerRecord.columns}

    async def seen(self, worker_id: str, **changes: Any) -> None:
        async with self.b.gate():
            if worker_id in self.b.t.workers:
                self.b.t.workers[worker_id].update(seen_at=self.b.now(), **changes)

    async def listing(self) -> list[WorkerRecord]:
        async with self.b.gate():
            return [WorkerRecord.from_row(copy.copy(r)) for r in sorted(self.b.t.workers.values(), key=lambda r: r["seen_at"], reverse=True)]


# ---------------------------------------------------------------------------------------- events, alerts, inventory
class MemoryEventStore:
    def __init__(self, b: MemoryBackend):
        self.b = b

    async def log(self, rows: Sequence[dict[str, Any]]) -> None:
        async with self.b.gate():
            for r in rows:
                self.b.t.event_log.append({**BLANK, **r, "id": self.b.t.new_id()})

    async def listing(self, *, merchant: str | None = None, order_id: str | None = None, kind: str | None = None,
                      limit: int = 100) -> list[EventRecord]:
        async with self.b.gate():
            rows = [r for r in self.b.t.event_log if (not merchant or r["merchant"] == merchant) and (not kind or r["kind"] == kind)
                    and (not order_id or r["order_id"] == order_id or order_id in r["request_body"])]
            return [EventRecord.from_row(dict(r)) for r in rows[-limit:]] if limit else []

    async def prune(self, older_than: datetime) -> int:
        async with self.b.gate():
            before = len(self.b.t.event_log)
            self.b.t.event_log = [r for r in self.b.t.event_log if r["at"] >= older_than]
            return before - len(self.b.t.event_log)


class MemoryAlertStore:
    def __init__(self, b: MemoryBackend):
        self.b = b

    async def raise_many(self, items: Sequence[Item], *, now: datetime) -> int:
        new = 0
        async with self.b.gate():
            index = {(r["merchant"], r["category"], r["key"]): r for r in self.b.t.alerts.values()}
            for merchant, category, key, message in items:
                key = key[:KEY_MAX]
                fresh = dict(state=AlertState.open, count=1, first_at=now, last_at=now, sent_at=None, delivered_at=None, resolved_at=None, message=message)
                row = index.get((merchant, category, key))
                if row is None:
                    pk = self.b.t.new_id()
                    row = self.b.t.alerts[pk] = index[(merchant, category, key)] = dict(id=pk, merchant=merchant, category=category, key=key, **fresh)
                    new += 1
                elif row["state"] == AlertState.resolved:
                    row.update(fresh)
                    new += 1
                else:
                    row.update(count=row["count"] + 1, last_at=now, message=message)
        return new

    async def _select(self, pred, key=lambda r: r["id"], reverse: bool = False) -> list[AlertRecord]:
        async with self.b.gate():
            return [AlertRecord.from_row(copy.copy(r)) for r in sorted(self.b.t.alerts.values(), key=key, reverse=reverse) if pred(r)]

    async def open(self, merchant: str | None = None, category: str | None = None, *, unsent_only: bool = False) -> list[AlertRecord]:
        return await self._select(lambda r: r["state"] == AlertState.open and (merchant is None or r["merchant"] == merchant)
                                  and (category is None or r["category"] == category) and (not unsent_only or r["sent_at"] is None))

    async def resolve(self, merchant: str, category: str | Sequence[str], key: str | None = None, *, except_keys: Iterable[str] = (),
                      now: datetime | None = None) -> int:
        keep = {k[:KEY_MAX] for k in except_keys}
        categories = {category} if isinstance(category, str) else set(category)
        n = 0
        async with self.b.gate():
            for r in self.b.t.alerts.values():
                if r["merchant"] == merchant and r["category"] in categories and r["state"] == AlertState.open \
                        and (key is None or r["key"] == key[:KEY_MAX]) and r["key"] not in keep:
                    r.update(state=AlertState.resolved, resolved_at=now or self.b.now())
                    n += 1
        return n

    async def listing(self, merchant: str | None = None, state: str | None = None, *, limit: int = 500) -> list[AlertRecord]:
        rows = await self._select(lambda r: (merchant is None or r["merchant"] == merchant) and (state is None or r["state"] == state),
                                  key=lambda r: (r["last_at"], r["id"]), reverse=True)
        return rows[:limit]

    async def claim_unsent(self) -> list[AlertRecord]:
        return await self._select(lambda r: r["state"] == AlertState.open and r["sent_at"] is None)

    async def _stamp(self, alert_ids: Sequence[int], **values: Any) -> None:
        async with self.b.gate():
            for pk in alert_ids:
                if pk in self.b.t.alerts:
                    self.b.t.alerts[pk].update(values)

    async def mark_sent(self, alert_ids: Sequence[int], *, now: datetime) -> None:
        await self._stamp(alert_ids, sent_at=now)

    async def mark_delivered(self, alert_ids: Sequence[int], *, now: datetime) -> None:
        await self._stamp(alert_ids, delivered_at=now)


class MemoryInventoryStore:
    def __init__(self, b: MemoryBackend):
        self.b = b

    async def pushed(self, merchant: str) -> dict[str, int]:
        async with self.b.gate():
            return {sku: q for (m, sku), q in self.b.t.pushed.items() if m == merchant}

    async def record_pushed(self, merchant: str, quantities: dict[str, int]) -> None:
        async with self.b.gate():
            for sku, q in quantities.items():
                self.b.t.pushed[(merchant, sku)] = q


class MemoryLedgerStore:
    def __init__(self, b: MemoryBackend):
        self.b = b

    async def request(self, merchant: str, lines: Sequence[dict[str, Any]]) -> list[str]:
        new = []
        async with self.b.gate():
            now = self.b.now()
            known = {(r["merchant"], r["order_id"], r["sku"]) for r in self.b.t.consumptions.values()}
            for x in lines:
                key = (merchant, x["order_id"], x["sku"])
                if key in known:
                    continue
                known.add(key)
                pk = self.b.t.new_id()
                self.b.t.consumptions[pk] = dict(id=pk, merchant=merchant, order_id=x["order_id"], sku=x["sku"], quantity=str(x["quantity"]),
                                                 consumed="0", source=x["source"], state="pending", draws="", reason="", attempts=0,
                                                 next_attempt_at=None, lease_owner="", lease_until=None, created_at=now, updated_at=now)
                new.append(f"{x['order_id']}:{x['sku']}")
        return new

    async def claim(self, merchant: str, *, owner: str, lease_seconds: float, limit: int) -> list[Any]:
        from connector.store.records import ConsumptionRecord

        async with self.b.gate():
            now = self.b.now()
            due = [r for r in sorted(self.b.t.consumptions.values(), key=lambda r: r["id"]) if r["merchant"] == merchant
                   and (r["state"] == "pending" or (r["state"] == "consuming" and r["lease_until"] is not None and r["lease_until"] < now))
                   and (r["next_attempt_at"] is None or r["next_attempt_at"] <= now)][:limit]
            for r in due:
                r.update(state="consuming", lease_owner=owner, lease_until=now + timedelta(seconds=lease_seconds), attempts=r["attempts"] + 1, updated_at=now)
            return [ConsumptionRecord.from_row(copy.copy(r)) for r in due]

    async def save(self, pk: int, *, state: str, draws: list[dict[str, Any]], consumed: str, reason: str = "",
                   next_attempt_at: Any = None, release: bool = False) -> None:
        async with self.b.gate():
            r = self.b.t.consumptions[pk]
            r.update(state=state, draws=json.dumps(draws, default=str), consumed=consumed, reason=reason[:2000], updated_at=self.b.now(),
                     next_attempt_at=next_attempt_at)
            if release:
                r.update(lease_owner="", lease_until=None)

    async def listing(self, merchant: str | None = None, *, order_id: str | None = None, state: str | None = None,
                      limit: int = 500) -> list[Any]:
        from connector.store.records import ConsumptionRecord

        async with self.b.gate():
            rows = [r for r in sorted(self.b.t.consumptions.values(), key=lambda r: r["id"])
                    if (merchant is None or r["merchant"] == merchant) and (order_id is None or r["order_id"] == order_id)
                    and (state is None or r["state"] == state)]
            return [ConsumptionRecord.from_row(copy.copy(r)) for r in rows[:limit]]

    async def retry(self, merchant: str, order_id: str) -> int:
        n = 0
        async with self.b.gate():
            for r in self.b.t.consumptions.values():
                if r["merchant"] == merchant and r["order_id"] == order_id and r["state"] in ("unknown_item", "short", "failed", "held"):
                    r.update(state="pending", attempts=0, next_attempt_at=None, lease_owner="", updated_at=self.b.now())
                    n += 1
        return n

    async def recover(self) -> int:
        n = 0
        async with self.b.gate():
            for r in self.b.t.consumptions.values():
                if r["state"] == "consuming":
                    r.update(state="pending", lease_owner="", lease_until=None)
                    n += 1
        return n
