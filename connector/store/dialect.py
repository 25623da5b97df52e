"""The SQLite / PostgreSQL differences in one object, and `Db`: an engine (or one open
transaction) plus the dialect and the clock, which every SQL store of a concern is built on.

- SQLite: one writer at a time (`BEGIN IMMEDIATE`, set up in `engine.py`), so a claim needs no
  row lock; a single machine, so the app's clock serves for leases too.
- PostgreSQL: replicas claim with `FOR UPDATE SKIP LOCKED`, and leases are stamped and compared
  with the database's clock, so clock skew between replica machines cannot expire a live lease.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Table, func, text
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql import Select

from connector.clock import SYSTEM, Clock
from connector.store.engine import READ_ONLY

CHUNK = 500  # ids per IN (...) list: well under both databases' parameter limits


class Dialect:
    """What differs between the two databases, asked for by name instead of `if sqlite:`."""

    def __init__(self, name: str):
        self.name = name
        self.sqlite = name == "sqlite"

    def insert_ignore(self, table: Table, *index: str):
        """INSERT that skips rows whose unique key exists (another replica got there first)."""
        module = sqlite_dialect if self.sqlite else pg_dialect
        return module.insert(table).on_conflict_do_nothing(index_elements=list(index))

    def claim(self, query: Select) -> Select:
        """Row locks for claims on PostgreSQL; SQLite's BEGIN IMMEDIATE already serialises writers."""
        return query if self.sqlite else query.with_for_update(skip_locked=True)

    def lock(self, query: Select) -> Select:
        """Lock the rows read for a compare-and-set (waiting, not skipping) on PostgreSQL."""
        return query if self.sqlite else query.with_for_update()

    def lease_now(self, clock: Clock) -> Any:
        """'Now' for leases: the database's clock on PostgreSQL (shared by every replica)."""
        return clock.now() if self.sqlite else func.now()

    def lease_until(self, clock: Clock, seconds: float) -> Any:
        return clock.now() + timedelta(seconds=seconds) if self.sqlite else func.now() + timedelta(seconds=seconds)


class Db:
    """An engine, or one open transaction on it, with the dialect and the clock.

    Every SQL store method runs in `write()` or `read()`: its own short transaction, or the
    caller's when the store was bound to one by `Store.atomic()`."""

    def __init__(self, engine: AsyncEngine, dialect: Dialect, clock: Clock = SYSTEM, *,
                 conn: AsyncConnection | None = None, deadline_ms: int | None = None):
        self.engine, self.dialect, self.clock = engine, dialect, clock
        self.conn = conn
        self.deadline_ms = deadline_ms

    @property
    def sqlite(self) -> bool:
        return self.dialect.sqlite

    def now(self) -> datetime:
        return self.clock.now()

    def bound(self, conn: AsyncConnection) -> Db:
        return Db(self.engine, self.dialect, self.clock, conn=conn, deadline_ms=self.deadline_ms)

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        if self.conn is not None:
            yield self.conn
            return
        async with self.engine.begin() as conn:
            if self.deadline_ms and not self.sqlite:
                # Fail fast instead of queueing behind a lock (the webhook path: UltraCart retries).
                await conn.execute(text(f"SET LOCAL lock_timeout = {int(self.deadline_ms)}"))
                await conn.execute(text(f"SET LOCAL statement_timeout = {int(self.deadline_ms)}"))
            yield conn

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        if self.conn is not None:
            yield self.conn
            return
        async with self.engine.connect() as conn:
            if self.sqlite:
                await conn.execution_options(**{READ_ONLY: True})
            yield conn


def chunks(items: Sequence[Any], size: int = CHUNK) -> list[Sequence[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]
