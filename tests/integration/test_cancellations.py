"""Orders change after hand-off, end to end through the sandboxes: the merchant rejects an order in
UltraCart (the UltraCart sandbox's own `reject`), the connector learns of it by webhook or by its
re-read of open orders, and ShipBob's sandbox cancels it, or refuses because it was picked."""

from __future__ import annotations

import asyncio
import time

from connector.web import build_app
from tests.integration.test_webhooks import serve
from tests.support.warehouse import deliver, orders, states

USER, PASSWORD = "acme", "s3cret-hook"


async def _alerts(rt, category: str) -> list:
    return [a for a in await rt.store.alerts.listing() if a.category == category]


async def test_a_rejected_order_at_the_warehouse_is_cancelled_there_by_the_re_read(flow, runtime):
    flow.uc.queue("DFLT", orders(3))
    await deliver(runtime)
    assert await states(runtime) == {"at_warehouse": 3}
    flow.uc.reject("DEMO-0002", reason="customer changed their mind")

    [r] = await runtime.run_once(service="order_changes")
    assert r.ok, r
    assert await states(runtime) == {"at_warehouse": 2, "cancelled": 1}
    assert flow.sb.orders["acme-DEMO-0002"]["status"] == "Cancelled"
    assert dict(flow.sb.cancel_attempts) == {"acme-DEMO-0002": 1}
    [row] = await runtime.store.orders.find("DEMO-0002")
    moves = [(e.from_state, e.to_state) for e in await runtime.store.orders.timeline(row.id)]
    assert ("at_warehouse", "cancelling") in moves and ("cancelling", "cancelled") in moves

    flow.kit.ship_all()  # the warehouse ships what it still holds: never the cancelled order
    await runtime.run_once(service="shipment_upload")
    assert await states(runtime) == {"confirmed": 2, "cancelled": 1}
    [again] = await runtime.run_once(service="order_changes")
    assert again.ok and dict(flow.sb.cancel_attempts) == {"acme-DEMO-0002": 1}, "a cancelled order is never cancelled twice"


async def test_a_picked_order_cannot_be_cancelled_and_the_alert_says_what_to_do(flow, runtime):
    flow.uc.queue("DFLT", orders(2))
    await deliver(runtime)
    flow.sb.pick("acme-DEMO-0001")
    flow.uc.reject("DEMO-0001")
    await runtime.run_once(service="order_changes")
    assert await states(runtime) == {"at_warehouse": 1, "cancel_failed": 1}
    [row] = await runtime.store.orders.find("DEMO-0001")
    assert "picked" in (row.reason or "").lower(), row.reason
    [alert] = await _alerts(runtime, "cancel_too_late")
    assert "DEMO-0001" in alert.key or "DEMO-0001" in alert.message


async def test_an_order_rejected_before_it_was_sent_is_never_sent(flow, runtime):
    flow.overrides["acme"] = {"orders": {"hold_minutes": 600}}
    rt = await flow.runtime()
    try:
        flow.uc.queue("DFLT", orders(2))
        await deliver(rt)
        assert await states(rt) == {"held": 2}  # waiting out hold_minutes, the window for exactly this
        flow.uc.reject("DEMO-0001")
        await rt.run_once(service="order_changes")
        rt.clock.advance(601 * 60)
        await rt.run_once(service="order_delivery")
        assert await states(rt) == {"cancelled": 1, "at_warehouse": 1}
        assert "acme-DEMO-0001" not in flow.sb.orders and not flow.sb.cancel_attempts
    finally:
        await rt.aclose()


async def test_the_reject_webhook_starts_the_cancel_without_waiting_for_the_re_read(flow):
    flow.overrides["acme"] = {"ultracart": {"webhook_username": USER, "webhook_password": PASSWORD}}
    rt = await flow.runtime()
    try:
        flow.uc.queue("DFLT", orders(2))
        await deliver(rt)
        async with serve(build_app(rt, lambda: True)) as url:
            flow.uc.webhooks.subscribe(f"{url}/webhooks/ultracart/acme", events=("order_reject",), username=USER, password=PASSWORD,
                                       expansion="item,shipping,billing,summary")
            flow.uc.reject("DEMO-0002", reason="fraud")
            await _until(lambda: _cancel_requested(rt, "DEMO-0002"))
        reads_before = flow.uc.requests["orders_batch"]
        [r] = await rt.run_once(service="order_changes")
        assert r.ok
        assert await states(rt) == {"at_warehouse": 1, "cancelled": 1}
        assert flow.sb.orders["acme-DEMO-0002"]["status"] == "Cancelled"
        assert dict(flow.sb.cancel_attempts) == {"acme-DEMO-0002": 1}
        assert flow.uc.requests["orders_batch"] >= reads_before  # the re-read still runs as the backstop
    finally:
        await rt.aclose()


async def _cancel_requested(rt, order_id: str) -> bool:
    [row] = await rt.store.orders.find(order_id)
    return row.state in ("cancelling", "cancelled") or row.cancel_requested is not None


async def _until(condition, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not await condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)
