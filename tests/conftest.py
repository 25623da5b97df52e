"""Shared fixtures: a merchant wired to the loopback sandboxes (`flow`)."""

from __future__ import annotations

import os

import pytest

from tests.support.flow import Flow

POSTGRES_URL = os.environ.get("CONNECTOR_TEST_POSTGRES_URL", "")


@pytest.fixture
def flow(tmp_path):
    f = Flow(tmp_path)
    yield f
    f.close()


@pytest.fixture
async def runtime(flow):
    rt = await flow.runtime()
    yield rt
    await rt.aclose()
