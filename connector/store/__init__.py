"""The Store: the only code that touches the database, as small interfaces, one per concern,
each returning records (never rows):

    store.orders     OrderStore      intake, compare-and-set moves (lifecycle-checked), claims, reads
    store.shipments  ShipmentStore   warehouse shipments and their tracking bookkeeping
    store.tasks      TaskStore       the outbox (tracking posts, alert e-mails, cancels), leased
    store.runs       RunStore        service passes, pauses, replica leases
    store.cursors    CursorStore     bookmarks
    store.workers    WorkerStore     running processes and their config
    store.events     EventStore      the event log
    store.alerts     AlertStore      deduplicated alerts
    store.inventory  InventoryStore  quantities UltraCart accepted
    store.ledger     LedgerStore     order lines' stock to consume in an inventory ledger

Each has a SQL implementation (SQLite or PostgreSQL; the differences in `dialect.py`) and an
in-memory fake (`memory.py`) that pass one shared test suite. Work that must commit together
(shipments read + the order moves and tracking posts they cause + the cursor) runs in
`async with store.atomic() as tx:`, where `tx` has the same interfaces bound to one transaction.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import select

from connector.clock import SYSTEM, Clock
from connector.store.alerts import SqlAlertStore
from connector.store.dialect import Db, Dialect
from connector.store.engine import is_sqlite, make_engine, migrate
from connector.store.events import SqlEventStore
from connector.store.inventory import SqlInventoryStore
from connector.store.ledger import SqlLedgerStore
from connector.store.orders import Move, Search, SqlOrderStore, TroubleGroup
from connector.store.records import (AlertRecord, EventRecord, IngestResult, NewOrder, OrderRecord, ServiceRun, ShipmentRecord,
                                     TaskRecord, TimelineEntry, WorkerRecord)
from connector.store.runs import SqlCursorStore, SqlRunStore, SqlWorkerStore
from connector.store.shipments import SqlShipmentStore
from connector.store.tasks import SqlTaskStore

__all__ = [
    "Search", "TroubleGroup", "AlertRecord", "EventRecord", "IngestResult", "Move", "NewOrder", "OrderRecord", "ServiceRun", "ShipmentRecord", "Store",
    "TaskRecord", "TimelineEntry", "WorkerRecord",
]

FAST_MS = 2_000  # the webhook path: answer 503 within this on a locked database (UltraCart waits 30 s)


class Store:
    """The facade over the concern stores (see the module docstring)."""

    def __init__(self, parts: dict[str, Any], backend: Any):
        self.orders = parts["orders"]
        self.shipments = parts["shipments"]
        self.tasks = parts["tasks"]
        self.runs = parts["runs"]
        self.cursors = parts["cursors"]
        self.workers = parts["workers"]
        self.events = parts["events"]
        self.alerts = parts["alerts"]
        self.inventory = parts["inventory"]
        self.ledger = parts["ledger"]
        self.backend = backend

    # ------------------------------------------------------------------ opening
    @classmethod
    async def open(cls, url: str, *, clock: Clock = SYSTEM, migrate_schema: bool = True) -> Store:
        """The SQL store at `url` (migrated to the newest schema unless told not to)."""
        engine = make_engine(url)
        try:
            if migrate_schema:
                await migrate(engine)
        except BaseException:
            await engine.dispose()
            raise
        return SqlBackend(url, engine, clock).store()

    @classmethod
    def memory(cls, *, clock: Clock = SYSTEM) -> Store:
        """The in-memory fake: the same interfaces, for fast unit tests."""
        from connector.store.memory import MemoryBackend

        return MemoryBackend(clock).store()

    # ------------------------------------------------------------------ backend
    @property
    def url(self) -> str:
        return self.backend.url

    @property
    def sqlite(self) -> bool:
        return self.backend.sqlite

    @property
    def clock(self) -> Clock:
        return self.backend.clock

    def atomic(self):
        """`async with store.atomic() as tx:` the same interfaces in one transaction."""
        return self.backend.atomic()

    def with_deadline(self, ms: int = FAST_MS) -> Store:
        """The same store, but a statement waiting longer than `ms` for a lock fails instead
        (for request paths whose caller would rather retry)."""
        return self.backend.with_deadline(ms)

    async def ping(self) -> None:
        """Raise unless the database answers (and, for SQLite, is still the file it opened)."""
        await self.backend.ping()

    def check_file(self) -> None:
        """Raise DatabaseReplaced when the SQLite file was deleted or swapped under us (a stat:
        cheap enough before every pass and every acknowledgement; writes to an unlinked file
        would succeed and be lost)."""
        self.backend.check_file()

    async def probe_write(self) -> None:
        """Raise unless a write commits (a read-only or full disk answers reads but not writes)."""
        await self.backend.probe_write()

    async def close(self) -> None:
        await self.backend.close()

    async def reset(self) -> None:
        """After a database fault: drop pooled connections so the next use opens fresh ones (a
        connection opened while the file was read-only stays read-only)."""
        await self.backend.reset()

    # ------------------------------------------------------------------ across concerns
    async def renew_leases(self, owner: str, seconds: float) -> None:
        """Heartbeat: push back the expiry of everything `owner` holds (orders being sent, tasks
        being run, service passes), so only a dead worker's claims ever expire."""
        await self.orders.renew_claims(owner, seconds)
        await self.tasks.renew(owner, seconds)
        await self.runs.renew(owner, seconds)

    async def recover_all(self) -> tuple[int, int]:
        """At start with the single-daemon lock held (SQLite): every claim is a dead process's.
        Orders left submitting become in_doubt; tasks left running are due again."""
        n_orders = await self.orders.recover_claims()
        n_tasks = await self.tasks.recover() + await self.ledger.recover()
        await self.runs.clear_leases()
        return n_orders, n_tasks


class SqlBackend:
    """SQLite or PostgreSQL behind the concern stores."""

    def __init__(self, url: str, engine, clock: Clock, *, deadline_ms: int | None = None, conn=None):
        self.url, self.engine, self.clock = url, engine, clock
        self.sqlite = is_sqlite(url)
        self.dialect = Dialect("sqlite" if self.sqlite else "postgresql")
        self.db = Db(engine, self.dialect, clock, conn=conn, deadline_ms=deadline_ms)
        self._fast: SqlBackend | None = None
        self._file = _path(url)  # None for PostgreSQL; parsed once (it is stat-ed before every pass)
        self._inode = _inode(self._file)

    def store(self, db: Db | None = None) -> Store:
        db = db or self.db
        parts = dict(orders=SqlOrderStore(db), shipments=SqlShipmentStore(db), tasks=SqlTaskStore(db), runs=SqlRunStore(db),
                     cursors=SqlCursorStore(db), workers=SqlWorkerStore(db), events=SqlEventStore(db), alerts=SqlAlertStore(db),
                     inventory=SqlInventoryStore(db), ledger=SqlLedgerStore(db))
        return Store(parts, self)

    @asynccontextmanager
    async def atomic(self) -> AsyncIterator[Store]:
        async with self.db.write() as conn:
            yield self.store(self.db.bound(conn))

    def with_deadline(self, ms: int) -> Store:
        if self._fast is None:
            engine = make_engine(self.url, busy_ms=ms) if self.sqlite else self.engine
            self._fast = SqlBackend(self.url, engine, self.clock, deadline_ms=ms)
        return self._fast.store()

    def check_file(self) -> None:
        if self._inode is not None and _inode(self._file) != self._inode:
            raise DatabaseReplaced(f"the database file {self._file} was deleted or replaced while the connector had it open")

    async def ping(self) -> None:
        self.check_file()
        async with self.db.read() as conn:
            await conn.execute(select(1))

    async def probe_write(self) -> None:
        from connector.store.tables import cursors

        async with self.db.write() as conn:
            # An UPDATE that matches nothing still needs the write lock and a commit.
            await conn.execute(cursors.update().where(cursors.c.merchant == "\x01probe").values(value=""))

    async def reset(self) -> None:
        path = self._file
        if path is not None and not path.exists():
            return  # never let a new, empty database be created under a running daemon
        await self.engine.dispose()
        if self._fast is not None and self._fast.engine is not self.engine:
            await self._fast.engine.dispose()
        self._inode = _inode(self._file)

    async def close(self) -> None:
        if self._fast is not None and self._fast.engine is not self.engine:
            await self._fast.engine.dispose()
        await self.engine.dispose()


class DatabaseReplaced(RuntimeError):
    """The SQLite file under a running daemon was deleted or swapped: writes would go nowhere."""


def _path(url: str):
    from connector.store.engine import sqlite_path

    return sqlite_path(url)


def _inode(path: Any) -> tuple[int, int] | None:
    if path is None:
        return None
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_dev, st.st_ino
