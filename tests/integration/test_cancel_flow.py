"""Cancels through the engine, against each warehouse sandbox that can cancel: the order_changes
pass asks the adapter and records what the warehouse said (the contract suite checks the
adapters alone; this checks that the engine reads their answers as they mean them).

- a waiting order is cancelled at the warehouse, and never ships;
- a shipped one is too late: `cancel_failed` with the warehouse's words and a `cancel_too_late` alert;
- a lost answer is looked up on the next try, not asked again.
"""

from __future__ import annotations

import pytest

from connector import operator as op
from tests.support.flow import Flow
from tests.support.warehouse import deliver, orders, states

pytestmark = pytest.mark.asyncio

WAREHOUSES = ("shipbob", "shipstation", "shipstation-v2")


@pytest.fixture(params=WAREHOUSES)
def flow(request, tmp_path):
    f = Flow(tmp_path, warehouse=request.param)
    yield f
    f.close()


async def changes(rt) -> None:
    [r] = await rt.run_once(service="order_changes")
    assert r.ok and not r.error, r


async def test_cancel_waiting_and_shipped_orders(flow, runtime) -> None:
    rt = runtime
    flow.uc.queue("DFLT", orders(2))
    await deliver(rt)
    assert await states(rt) == {"at_warehouse": 2}
    assert flow.kit.ship("acme-DEMO-0002")  # left the building before the cancel
    for order_id in ("DEMO-0001", "DEMO-0002"):
        [done] = await op.cancel(rt.store, order_id, reason="customer cancelled")
        assert done.ok, done
    await changes(rt)
    assert await states(rt) == {"cancelled": 1, "cancel_failed": 1}
    [cancelled] = await rt.store.orders.find("DEMO-0001")
    [late] = await rt.store.orders.find("DEMO-0002")
    assert (cancelled.state, late.state) == ("cancelled", "cancel_failed")
    assert f"cancelled at {flow.kit.name}" in " ".join(e.reason for e in await rt.store.orders.timeline(cancelled.id))
    assert "too late to cancel" in late.reason
    [alert] = await rt.store.alerts.open("acme", "cancel_too_late")
    assert alert.key == "DEMO-0002" and "could not be cancelled at the warehouse" in alert.message
    assert not await rt.store.alerts.open("acme", "cancel_by_hand")
    # The cancelled order never ships: nothing waits at the warehouse any more.
    assert not flow.kit.ship("acme-DEMO-0001")


async def test_a_lost_cancel_answer_is_looked_up_not_asked_again(flow, runtime) -> None:
    rt = runtime
    flow.uc.queue("DFLT", orders(1))
    await deliver(rt)
    flow.kit.fail_next("cancel", 502, after=True)  # the warehouse cancels it; its answer is lost
    [done] = await op.cancel(rt.store, "DEMO-0001", reason="customer cancelled")
    assert done.ok
    for _ in range(2):  # the retry comes in the next pass, after a backoff
        await changes(rt)
        if await states(rt) == {"cancelled": 1}:
            break
        rt.clock.advance(600)
    assert await states(rt) == {"cancelled": 1}
    [row] = await rt.store.orders.find("DEMO-0001")
    reasons = " ".join(e.reason for e in await rt.store.orders.timeline(row.id))
    assert "the warehouse already shows it cancelled" in reasons
    assert not await rt.store.alerts.open("acme")
