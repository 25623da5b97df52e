"""Inventory upload against the sandboxes over real HTTP: ShipBob stock per fulfillment center ->
the quantities the store should sell -> only what changed posted to UltraCart."""

from __future__ import annotations

from datetime import timedelta

import pytest

from connector.config import from_dict
from connector.pipeline.inventory import FULL_PUSH_CURSOR
from connector.runtime import Runtime, build_runtime
from connector.sandbox.samples import make_order
from connector.clock import utcnow
from connector.store import Store

pytestmark = pytest.mark.asyncio

POST_PATH = "/fulfillment/distribution_centers/DFLT/inventory"
KIT = {"GIFT-SET": {"BONE-5LB": 1, "TREAT": 2}}  # as configured by the Flow


def shelves(flow) -> None:
    """BONE-5LB in both fulfillment centers (fulfillable 7 + 5, far more on hand), TREAT and a
    leash in one each. The Flow's config sells BONE-5LB as "Bone" and has the GIFT-SET kit."""
    flow.sb.set_stock("BONE-5LB", 10, 7, on_hand=20)
    flow.sb.set_stock("BONE-5LB", 11, 5, on_hand=9)
    flow.sb.set_stock("TREAT", 10, 9, on_hand=30)
    flow.sb.set_stock("LEASH-RED", 11, 3, on_hand=3)


async def push(rt):
    [r] = await rt.run_once(service="inventory_upload")
    return r


async def configured(flow, inventory: dict, **merchant):
    """A runtime whose merchant has this inventory block (and other blocks replaced whole)."""
    data = flow.config_dict()
    data["merchants"][0]["inventory"] = inventory
    data["merchants"][0].update(merchant)
    cfg = from_dict(data, file="<test>")
    return await build_runtime(cfg, store=await Store.open(cfg.daemon.database_url), worker_id="test-worker")


def posted(flow) -> list[dict[str, int]]:
    """Each inventory call UltraCart received, as {itemId: quantity}."""
    return [{r["itemId"]: r["quantity"] for r in post} for post in flow.uc.inventory_posts]


@pytest.mark.parametrize("inventory, expected", [
    # Only configured items: "Bone" from BONE-5LB in both centers, the kit from what its parts make
    # (min(12 / 1, 9 / 2) = 4), which the minimum level turns into 0.
    ({"minimum_level": 5}, {"Bone": 12, "GIFT-SET": 0}),
    # Every stocked SKU under its own name as well; the 3 leashes fall below the minimum.
    ({"minimum_level": 4, "push_by_alias": False}, {"Bone": 12, "GIFT-SET": 4, "TREAT": 9, "LEASH-RED": 0}),
    ({"exclude_warehouses": ["11"]}, {"Bone": 7, "GIFT-SET": 4}),
])
async def test_the_store_gets_fulfillable_stock_summed_mapped_and_clamped(flow, inventory, expected):
    shelves(flow)
    rt = await configured(flow, inventory)
    try:
        r = await push(rt)
        assert r.ok, r
        [sent] = posted(flow)
        assert {k: v for k, v in sent.items() if k != "BONE-5LB"} == expected
        assert r.did["clamped"] == sum(1 for sku, q in expected.items() if q == 0)
        assert r.did["full_push"] == 1  # the first run sends everything
    finally:
        await rt.aclose()


async def test_only_changed_quantities_are_posted_and_nothing_when_nothing_changed(flow, runtime):
    shelves(flow)
    await push(runtime)
    assert posted(flow) == [{"Bone": 12, "GIFT-SET": 4}]
    flow.sb.set_stock("BONE-5LB", 10, 6)  # the kit is still limited by TREAT: 4
    r = await push(runtime)
    assert r.did["changed"] == 1 and r.did["full_push"] == 0
    assert posted(flow)[1:] == [{"Bone": 11}]
    r = await push(runtime)
    assert r.ok and r.did["changed"] == 0 and r.did["inventory_posts"] == 0
    assert flow.uc.requests["inventory"] == 2
    assert await runtime.store.inventory.pushed("acme") == {"Bone": 11, "GIFT-SET": 4}


async def test_1200_changed_skus_go_in_three_posts(flow):
    skus = [f"SKU-{i:04d}" for i in range(1200)]
    for i, sku in enumerate(skus):
        flow.sb.set_stock(sku, 10 + i % 2, 1 + i % 50)
    rt = await configured(flow, {"push_by_alias": False}, skus={})
    try:
        r = await push(rt)
        assert r.ok and r.did["stock_rows"] == 1200
        sent = posted(flow)
        assert [len(p) for p in sent] == [500, 500, 200]
        assert {k: v for p in sent for k, v in p.items()} == {sku: 1 + i % 50 for i, sku in enumerate(skus)}
        assert len(await rt.store.inventory.pushed("acme")) == 1200
        await push(rt)
        assert flow.uc.requests["inventory"] == 3
    finally:
        await rt.aclose()


async def test_orders_not_yet_at_the_warehouse_are_subtracted_once(flow, runtime):
    shelves(flow)
    flow.uc.queue("DFLT", [make_order("DEMO-0001", items=[("Bone", 2)]), make_order("DEMO-0002", items=[], kit=KIT)])
    await runtime.run_once(service="order_download")
    # ShipBob refuses both creates (nothing reached it): the orders wait, in doubt.
    flow.sb.faults.script = [{"method": "POST", "path": "/2026-01/order", "status": 500}] * 2
    await runtime.run_once(service="order_delivery")
    assert {r.state for r in await runtime.store.orders.listing()} == {"in_doubt"} and flow.sb.create_count == 0
    await push(runtime)
    # BONE-5LB: 12 - 2 (Bone) - 1 (kit); TREAT: 9 - 2 (kit) -> the kit makes min(9, 7 // 2) = 3.
    assert posted(flow) == [{"Bone": 9, "GIFT-SET": 3}]
    # Created now: ShipBob's fulfillable figures carry them, and they are not subtracted twice.
    await runtime.run_once(service="order_delivery")
    assert {r.state for r in await runtime.store.orders.listing()} == {"at_warehouse"} and flow.sb.create_count == 2
    r = await push(runtime)
    assert r.did["changed"] == 0 and len(posted(flow)) == 1


async def test_a_downloaded_order_not_yet_evaluated_is_subtracted(flow, runtime):
    shelves(flow)
    flow.uc.queue("DFLT", [make_order("DEMO-0001", items=[("Bone", 2)])])
    await runtime.run_once(service="order_download")
    await push(runtime)
    assert posted(flow) == [{"Bone": 10, "GIFT-SET": 4}]


async def test_a_refused_post_is_not_recorded_and_is_sent_again(flow, runtime):
    shelves(flow)
    await push(runtime)
    flow.sb.set_stock("BONE-5LB", 11, 1)
    flow.uc.faults.script = [{"method": "POST", "path": POST_PATH, "status": 500}] * 3  # beats the in-call retries
    r = await push(runtime)
    assert not r.ok and "500" in r.error
    assert await runtime.store.inventory.pushed("acme") == {"Bone": 12, "GIFT-SET": 4}
    assert flow.uc.inventory_levels() == {"Bone": 12, "GIFT-SET": 4}
    r = await push(runtime)
    assert r.ok and posted(flow)[1:] == [{"Bone": 8}]
    assert await runtime.store.inventory.pushed("acme") == {"Bone": 8, "GIFT-SET": 4}


async def test_everything_is_pushed_again_after_full_push_hours(flow, runtime):
    shelves(flow)
    await push(runtime)
    r = await push(runtime)
    assert r.did["full_push"] == 0 and flow.uc.requests["inventory"] == 1
    await runtime.store.cursors.set("acme", FULL_PUSH_CURSOR, (utcnow() - timedelta(hours=25)).isoformat())
    r = await push(runtime)
    assert r.did["full_push"] == 1 and r.did["changed"] == 2
    assert posted(flow) == [{"Bone": 12, "GIFT-SET": 4}] * 2
    r = await push(runtime)  # the full push moved the cursor on
    assert r.did["full_push"] == 0 and flow.uc.requests["inventory"] == 2
