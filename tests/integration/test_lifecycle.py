"""The lifecycle table is the one source of the allowed moves: every move a whole flow makes
(intake, rules, sending, doubts, shipping, confirming, operator actions, cancellations) is in it."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from connector import lifecycle
from connector import operator as op
from connector.sandbox.samples import make_order
from connector.store.tables import order_events
from tests.support.warehouse import lose_a_create_reply, orders

pytestmark = pytest.mark.asyncio


async def all_moves(store) -> set[tuple[str, str, str]]:
    async with store.backend.db.read() as conn:
        rows = (await conn.execute(select(order_events.c.from_state, order_events.c.to_state, order_events.c.actor))).all()
    return {(f, t, a) for f, t, a in rows}


async def test_every_move_a_whole_flow_makes_is_in_the_table(flow, runtime):
    rt = runtime
    await lose_a_create_reply(flow, rt, "/2026-01/order", {"status": 500, "after": True})  # created, reply lost, looked up
    flow.uc.queue("DFLT", orders(3, start=4) + [make_order("DEMO-0014", ship_method="Pigeon: Carrier"), make_order("DEMO-0015", test_order=True)])
    await rt.run_once(service="order_download")
    await rt.run_once(service="order_delivery")
    await op.release(rt.store, "DEMO-0014")
    await op.skip(rt.store, "DEMO-0014", reason="duplicate")
    await op.unskip(rt.store, "DEMO-0014")
    await op.cancel(rt.store, "DEMO-0014", reason="customer cancelled")
    await op.cancel(rt.store, "DEMO-0006", reason="customer cancelled")  # at the warehouse: cancelling
    flow.sb.ship_all()
    await rt.run_once(service="shipment_upload")
    moves = await all_moves(rt.store)
    assert len(moves) >= 12
    outside = [m for m in moves if not lifecycle.allowed(m[0] or None, m[1], m[2])]
    assert outside == [], f"moves outside connector.lifecycle.MOVES: {outside}"
