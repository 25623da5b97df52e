"""Database engines: URL translation, SQLite durability settings, and migrations on start."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def async_url(url: str) -> str:
    """The config's URL -> an async driver URL (sqlite -> aiosqlite, postgresql -> psycopg)."""
    if url.startswith("sqlite:///") or url == "sqlite://":
        return "sqlite+aiosqlite" + url[len("sqlite") :]
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def sqlite_path(url: str) -> Path | None:
    """The database file of a SQLite URL (None for in-memory)."""
    if not is_sqlite(url):
        return None
    path = url.split(":///", 1)[1] if ":///" in url else ""
    return Path(path) if path and path != ":memory:" else None


class DatabaseBusy(RuntimeError):
    """Another connector process already runs on this SQLite file."""


class SqliteLock:
    """An exclusive lock beside a SQLite database: one daemon per file.

    SQLite's own locks protect each transaction, not the claims that span them: two daemons on one
    file could not tell a dead process's claim from a live one's. Held for the process lifetime;
    the kernel releases it when the process dies, even by SIGKILL.
    """

    def __init__(self, db_path: Path):
        self.path = Path(str(db_path) + ".lock")
        self._fh = None

    def acquire(self) -> None:
        import fcntl
        import os

        fh = open(self.path, "a+")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            fh.close()
            raise DatabaseBusy(f"{self.path.with_suffix('')} is in use by {holder}; run one connector per SQLite file "
                               "(use PostgreSQL to run several replicas)") from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()}\n")
        fh.flush()
        self._fh = fh

    def release(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


BUSY_MS = 30_000  # how long a writer waits for SQLite's lock before "database is locked"
READ_ONLY = "connector_read_only"  # execution option: a read needs no write lock


def make_engine(url: str, *, busy_ms: int = BUSY_MS) -> AsyncEngine:
    url = async_url(url)
    if is_sqlite(url):
        # The pool's rollback of every connection it takes back is left to `_sqlite_durability`:
        # only one still inside a transaction needs it (each is a round trip to aiosqlite's thread).
        engine = create_async_engine(url, connect_args={"timeout": busy_ms / 1000}, pool_reset_on_return=None)
        _sqlite_durability(engine, busy_ms)
    else:
        engine = create_async_engine(url, pool_size=10, max_overflow=10, pool_pre_ping=True)
    return engine


def _sqlite_durability(engine: AsyncEngine, busy_ms: int) -> None:
    """WAL, synchronous=FULL, busy_timeout, foreign keys, and BEGIN IMMEDIATE for every write.

    pysqlite's own transaction handling is switched off so that SQLAlchemy's BEGIN is the one
    that runs: IMMEDIATE takes the write lock up front, so two writers queue on busy_timeout
    instead of failing with "database is locked" half-way through. Reads (marked READ_ONLY)
    begin deferred: under WAL they never wait for a writer.
    """

    @event.listens_for(engine.sync_engine, "connect")
    def _connect(dbapi_connection, _record) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in ("journal_mode=WAL", "synchronous=FULL", f"busy_timeout={int(busy_ms)}", "foreign_keys=ON"):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "reset")
    def _reset(dbapi_connection, _record, state) -> None:
        # Back in the pool: roll back what is still open (a pass that failed mid-transaction); a
        # committed or rolled back connection is clean already. (The pool's own reset is off.)
        if state.asyncio_safe and not state.terminate_only and dbapi_connection.driver_connection.in_transaction:
            dbapi_connection.rollback()

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(conn) -> None:
        conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get(READ_ONLY) else "BEGIN IMMEDIATE")


def _upgrade(sync_connection) -> None:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = sync_connection
    command.upgrade(cfg, "head")


MIGRATION_LOCK = 7_285_001  # advisory lock id: replicas starting together migrate one at a time


async def migrate(engine: AsyncEngine) -> None:
    """Apply every pending Alembic migration (run on each start; a no-op when up to date)."""
    async with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATION_LOCK})
        await conn.run_sync(_upgrade)
