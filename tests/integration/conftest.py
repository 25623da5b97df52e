"""Integration tests run against both stores: SQLite, and PostgreSQL when
CONNECTOR_TEST_POSTGRES_URL is set (skipped with that reason otherwise)."""

from __future__ import annotations

import pytest

from tests.support.flow import Flow
from tests.support.pg import fresh_schema


@pytest.fixture(params=["sqlite", "postgres"])
def flow(request, tmp_path):
    if request.param == "sqlite":
        f = Flow(tmp_path)
        yield f
        f.close()
        return
    with fresh_schema() as url:
        f = Flow(tmp_path, database_url=url)
        yield f
        f.close()
