"""The naive loop (`connector bench --baseline`) against the real sandbox processes: it drains the
queue and creates every order with an address at ShipBob exactly once."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from connector.bench.baseline import naive_loop, sdk_available
from connector.bench.harness import SandboxProcess
from connector.bench.options import SHIP_METHODS
from connector.sandbox.samples import demo_orders

pytestmark = pytest.mark.slow  # soak, replicas and bench: CI runs them; `pytest -m 'not slow'` skips them locally


@pytest.fixture
def sandboxes(tmp_path):
    uc = SandboxProcess("ultracart", ["--api-key", "K", "--dcs", "BASE"], tmp_path)
    sb = SandboxProcess("shipbob", ["--token", "T"], tmp_path)

    async def start() -> None:
        await asyncio.gather(uc.start(), sb.start())

    try:
        asyncio.run(start())
        yield uc, sb
    finally:
        uc.stop()
        sb.stop()


@pytest.mark.parametrize("client", ["httpx", "sdk"])
def test_naive_loop_creates_every_order_once(sandboxes, client):
    if client == "sdk" and not sdk_available():
        pytest.skip("ultracart-rest-sdk is not installed (the bench extra)")
    uc, sb = sandboxes
    httpx.post(uc.url + "/_sandbox/generate", json={"dc": "BASE", "prefix": "N", "count": 130}).raise_for_status()
    queued = demo_orders("N", 130, distribution_center="BASE")
    with_address = {o["order_id"] for o in queued if (o.get("shipping") or {}).get("address1")}
    assert len(with_address) == 129  # demo_orders holds one order without a street

    done = naive_loop(uc_url=uc.url, api_key="K", dc="BASE", sb_url=sb.url, token="T", channel_id=1, ship_methods=SHIP_METHODS, client=client)

    assert (done.orders, done.fetches, done.acks, done.skipped, done.failed) == (130, 3, 2, 1, 0)
    assert done.client.startswith("ultracart-rest-sdk" if client == "sdk" else "httpx")
    warehouse = httpx.get(sb.url + "/_sandbox/state").json()
    assert set(warehouse["orders"]) == with_address
    assert warehouse["create_attempts"] == dict.fromkeys(with_address, 1)
    assert warehouse["create_count"] == done.created == done.posted == 129
    cart = httpx.get(uc.url + "/_sandbox/counters").json()
    assert cart["queued"] == 0 and cart["acknowledged"] == 130
    figures = done.figures()
    assert done.cpu_s > 0 and figures["cpu_ms_per_order"] > 0 and figures["wall_s"] >= figures["cpu_s"] * 0.5


def test_unknown_client_is_refused(sandboxes):
    uc, sb = sandboxes
    with pytest.raises(ValueError):
        naive_loop(uc_url=uc.url, api_key="K", dc="BASE", sb_url=sb.url, token="T", channel_id=1, ship_methods=SHIP_METHODS, client="curl")
