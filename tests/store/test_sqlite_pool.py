"""SQLite connections going back to the pool: the pool's blanket rollback is off (a committed
write needs none, and each is a round trip to aiosqlite's thread), so a connection that comes
back still inside a transaction must be rolled back by the engine's own reset, or it would keep
the write lock and every other writer would wait on it."""

from __future__ import annotations

from sqlalchemy import text

from connector.store.engine import make_engine


async def test_a_connection_returned_inside_a_transaction_is_rolled_back_and_frees_the_write_lock(tmp_path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'pool.db'}", busy_ms=500)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE t (x INTEGER)"))
        conn = await engine.connect()
        raw = await conn.get_raw_connection()
        await raw.driver_connection.execute("BEGIN IMMEDIATE")  # behind SQLAlchemy's back: it does not know
        await raw.driver_connection.execute("INSERT INTO t VALUES (1)")
        assert raw.driver_connection.in_transaction
        await conn.close()
        # Another writer gets the lock at once (else "database is locked" after 0.5 s), and the
        # abandoned insert is gone.
        async with engine.begin() as other:
            await other.execute(text("INSERT INTO t VALUES (2)"))
        async with engine.connect() as reader:
            assert (await reader.execute(text("SELECT x FROM t"))).scalars().all() == [2]
    finally:
        await engine.dispose()


async def test_committed_connections_are_not_rolled_back_again(tmp_path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'pool.db'}")
    rollbacks = []
    try:
        async with engine.begin() as conn:
            raw = await conn.get_raw_connection()
            real = raw.driver_connection.rollback

            async def counted():
                rollbacks.append(1)
                await real()

            raw.driver_connection.rollback = counted
            await conn.execute(text("CREATE TABLE t (x INTEGER)"))
        assert rollbacks == []
    finally:
        await engine.dispose()
