"""Put a stored order in a given state the way the connector would (legal moves only), for tests
that need an order at the warehouse, shipped, and so on."""

from __future__ import annotations

from connector.lifecycle import Actor, OrderState
from connector.store import Move, Store

S = OrderState
PATH = {S.ready: [(S.ready, Actor.order_delivery)],
        S.at_warehouse: [(S.ready, Actor.order_delivery), (S.submitting, Actor.order_delivery), (S.at_warehouse, Actor.order_delivery)],
        S.failed: [(S.ready, Actor.order_delivery), (S.submitting, Actor.order_delivery), (S.failed, Actor.order_delivery)],
        S.in_doubt: [(S.ready, Actor.order_delivery), (S.submitting, Actor.order_delivery), (S.in_doubt, Actor.order_delivery)]}
PATH[S.shipped] = PATH[S.at_warehouse] + [(S.shipped, Actor.shipment_upload)]


async def advance(store: Store, pk: int, state: str, reason: str = "test", **fields) -> None:
    """Move a received order along the lifecycle to `state`; `fields` are set on the last move."""
    steps = PATH[S(state)]
    current = S((await store.orders.get(pk)).state)
    for i, (to, actor) in enumerate(steps):
        last = i == len(steps) - 1
        extra = dict(fields) if last else {}
        if to == S.ready and "warehouse_json" not in extra:
            extra.setdefault("warehouse_json", "")
        assert await store.orders.move(Move(pk, to, (current,), reason, extra or None), actor=actor), f"{current} -> {to}"
        current = to
