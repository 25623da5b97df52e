"""A throwaway PostgreSQL schema per test, on the server named by CONNECTOR_TEST_POSTGRES_URL."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

ENV = "CONNECTOR_TEST_POSTGRES_URL"
SKIP_REASON = f"{ENV} is not set (PostgreSQL tests need a server; .ci/run sets it)"


def postgres_url() -> str:
    url = os.environ.get(ENV, "")
    if not url:
        pytest.skip(SKIP_REASON)
    return url


@contextmanager
def fresh_schema() -> Iterator[str]:
    """Yield a database URL whose search_path is a new, empty schema; drop it afterwards."""
    import psycopg

    url = postgres_url()
    plain = url.replace("postgresql+psycopg://", "postgresql://").replace("postgresql+asyncpg://", "postgresql://")
    schema = "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in url else "?"
    try:
        yield f"{url}{sep}options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(plain, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def database_text(url: str, sqlite_file=None) -> bytes:
    """Everything stored, as bytes to grep for secrets: the SQLite files, or every row of every
    table of the test's PostgreSQL schema rendered as text."""
    if url.startswith("sqlite"):
        from pathlib import Path

        db = Path(sqlite_file or url.split(":///", 1)[1])
        return b"".join(p.read_bytes() for p in db.parent.glob(db.name + "*") if p.is_file())
    import psycopg

    plain, _, query = url.replace("postgresql+psycopg://", "postgresql://").partition("?")
    schema = query.split("search_path%3D", 1)[1].split("&")[0]
    out = []
    with psycopg.connect(plain, autocommit=True) as conn:
        tables = [r[0] for r in conn.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (schema,))]
        for table in tables:
            for (row,) in conn.execute(f'SELECT t::text FROM "{schema}"."{table}" t'):
                out.append(row)
    return "\n".join(out).encode()
