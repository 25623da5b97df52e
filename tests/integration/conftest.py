"""Integration tests run against both stores: SQLite, and PostgreSQL when
CONNECTOR_TEST_POSTGRES_URL is set (skipped with that reason otherwise)."""

from __future__ import annotations

from tests.support.warehouse import flow_fixture

flow = flow_fixture(databases=("sqlite", "postgres"))
