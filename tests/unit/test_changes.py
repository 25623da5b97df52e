"""What the connector does when UltraCart changes an order after hand-off, row by row, on the
in-memory Store with fake adapters (fast; the sandbox tests prove the same end to end)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from connector.clock import FakeClock
from connector.config import from_dict
from connector.domain import CancelOutcome, CancelResult, CreateResult
from connector.errors import InDoubtError, TransientError
from connector.lifecycle import Actor, OrderState
from connector.pipeline.changes import apply_cart_copy, follow_changes
from connector.pipeline.context import ServiceContext
from connector.pipeline.intake import prepare_orders
from connector.sandbox.samples import make_order
from connector.store import Store
from tests.support.states import advance

pytestmark = pytest.mark.asyncio
S = OrderState


@dataclass
class Caps:
    inventory: bool = False
    shipment_ack: bool = False
    cancel: bool = True
    bulk_create: bool = False
    sku_catalog: bool = False
    ship_method_catalog: bool = False
    update_address: bool = False
    update_lines: bool = False


@dataclass
class FakeWarehouse:
    name: str = "fakewms"
    capabilities: Caps = field(default_factory=Caps)
    answer: CancelOutcome = CancelOutcome.cancelled
    cancels: list[str] = field(default_factory=list)
    cancelled: set[str] = field(default_factory=set)
    raises: BaseException | None = None  # what every cancel raises instead of answering

    async def cancel_order(self, reference: str) -> CancelResult:
        self.cancels.append(reference)
        if self.raises is not None:
            raise self.raises
        if self.answer is CancelOutcome.cancelled:
            self.cancelled.add(reference)
        return CancelResult(outcome=self.answer, reference=reference, reason="picked already" if self.answer is CancelOutcome.too_late else "")

    async def find_order(self, reference: str) -> CreateResult | None:
        return CreateResult(warehouse_order_id="W1", reference=reference, cancelled=reference in self.cancelled)


@dataclass
class FakeCart:
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    batch_calls: int = 0

    async def get_orders(self, order_ids: list[str]) -> list[dict[str, Any]]:
        self.batch_calls += 1
        return [self.orders[i] for i in order_ids if i in self.orders]


@pytest.fixture
def ctx():
    from adapters.ultracart import parse_order

    cfg = from_dict({"merchants": [{"id": "acme", "ultracart": {"merchant_id": "DEMO", "api_key": "k", "distribution_center": "DFLT"},
                                    "warehouse": {"adapter": "shipbob", "token": "t", "channel_id": 1}}]})
    clock = FakeClock()
    return ServiceContext(merchant=cfg.merchants[0], store=Store.memory(clock=clock), cart=FakeCart(), warehouse=FakeWarehouse(),
                          parse_order=parse_order, clock=clock)


async def stored(ctx, order: dict, state: S = S.received):
    prepared = prepare_orders(ctx, [order])
    await ctx.store.orders.ingest("acme", "DFLT", prepared.rows, source="poll", actor=Actor.order_download)
    [record] = await ctx.store.orders.find(order["order_id"])
    if state != S.received:
        await advance(ctx.store, record.id, state, warehouse_order_id="W1")
    return (await ctx.store.orders.find(order["order_id"]))[0]


def copy(ctx, order: dict):
    return prepare_orders(ctx, [order]).rows[0]


async def state_of(ctx, order_id: str) -> str:
    return (await ctx.store.orders.find(order_id))[0].state


REJECTED = dict(current_stage="Rejected", reject_dts="2026-06-01T10:00:00Z", reject_reason="fraud")


@pytest.mark.parametrize("state", [S.received, S.ready, S.failed])
async def test_an_unsent_order_rejected_in_ultracart_is_cancelled_and_never_sent(ctx, state):
    record = await stored(ctx, make_order("A-1"), state)
    did = await apply_cart_copy(ctx, record, copy(ctx, make_order("A-1", **REJECTED)), event="order_reject", actor=Actor.webhook)
    assert did.startswith("cancelled before it was sent") and await state_of(ctx, "A-1") == S.cancelled
    [row] = await ctx.store.orders.find("A-1")
    assert row.reason == "rejected in UltraCart: fraud"
    # The same copy again changes nothing.
    assert await apply_cart_copy(ctx, row, copy(ctx, make_order("A-1", **REJECTED)), event="reread", actor=Actor.order_changes) == ""


async def test_an_order_at_the_warehouse_is_cancelled_there(ctx):
    record = await stored(ctx, make_order("A-2"), S.at_warehouse)
    await apply_cart_copy(ctx, record, copy(ctx, make_order("A-2", **REJECTED)), event="order_reject", actor=Actor.webhook)
    assert await state_of(ctx, "A-2") == S.cancelling
    await follow_changes(ctx)
    assert await state_of(ctx, "A-2") == S.cancelled and ctx.warehouse.cancels == ["acme-A-2"]
    [row] = await ctx.store.orders.find("A-2")
    assert "rejected in UltraCart: fraud; cancelled at fakewms" in row.reason


async def test_too_late_at_the_warehouse_fails_the_cancel_and_says_what_to_do(ctx):
    ctx.warehouse.answer = CancelOutcome.too_late
    record = await stored(ctx, make_order("A-3"), S.at_warehouse)
    full_refund = make_order("A-3", refund_dts="2026-06-01T10:00:00Z", refund_reason="customer")
    for item in full_refund["items"]:
        item["quantity_refunded"] = item["quantity"]
    await apply_cart_copy(ctx, record, copy(ctx, full_refund), event="order_refund", actor=Actor.webhook)
    await follow_changes(ctx)
    assert await state_of(ctx, "A-3") == S.cancel_failed
    [alert] = await ctx.store.alerts.open("acme", "cancel_too_late")
    assert "picked already" in alert.message and "intercept the parcel" in alert.message


async def test_a_lost_cancel_answer_is_looked_up_not_asked_twice(ctx):
    record = await stored(ctx, make_order("A-4"), S.at_warehouse)
    await apply_cart_copy(ctx, record, copy(ctx, make_order("A-4", **REJECTED)), event="order_reject", actor=Actor.webhook)
    # A first attempt reached the warehouse and died before recording: claimed, cancelled there, task left running.
    [task] = await ctx.store.tasks.claim("acme", "cancel_order", owner="dead", lease_seconds=-1, limit=1)
    ctx.warehouse.cancelled.add("acme-A-4")
    await follow_changes(ctx)
    assert await state_of(ctx, "A-4") == S.cancelled and ctx.warehouse.cancels == [], "found cancelled by the lookup"


async def test_a_warehouse_that_never_answers_a_cancel_backs_off_then_fails_it_with_an_alert(ctx):
    ctx.warehouse.answer = CancelOutcome.unknown
    record = await stored(ctx, make_order("A-5"), S.at_warehouse)
    await apply_cart_copy(ctx, record, copy(ctx, make_order("A-5", **REJECTED)), event="order_reject", actor=Actor.webhook)
    await follow_changes(ctx)  # one ask per pass, never a spin: the next waits out a backoff
    assert ctx.warehouse.cancels == ["acme-A-5"] and await state_of(ctx, "A-5") == S.cancelling
    for _ in range(40):
        ctx.clock.advance(3600)
        await follow_changes(ctx)
        if await state_of(ctx, "A-5") == S.cancel_failed:
            break
    assert await state_of(ctx, "A-5") == S.cancel_failed
    assert 1 < len(ctx.warehouse.cancels) <= ctx.retry.max_attempts
    [alert] = [a for a in await ctx.store.alerts.listing() if a.category == "cancel_failed"]
    assert "never confirmed" in alert.message and "--done" in alert.message


@pytest.mark.parametrize("error", [TransientError("timed out reading the order", vendor="fakewms"),
                                   InDoubtError("reset after sending", vendor="fakewms"),
                                   ValueError("Expecting value: line 1 column 1 (char 0)")])
async def test_a_cancel_that_keeps_failing_ends_cancel_failed_with_an_alert_never_silently(ctx, error):
    """A warehouse that is down (its lookup times out), a lost answer, or a 200 nobody can read:
    each backs off, never spins the pass, and ends cancel_failed with an alert."""
    ctx.warehouse.raises = error
    record = await stored(ctx, make_order("A-6"), S.at_warehouse)
    await apply_cart_copy(ctx, record, copy(ctx, make_order("A-6", **REJECTED)), event="order_reject", actor=Actor.webhook)
    await follow_changes(ctx)
    assert ctx.warehouse.cancels == ["acme-A-6"] and await state_of(ctx, "A-6") == S.cancelling
    for _ in range(40):
        ctx.clock.advance(3600)
        await follow_changes(ctx)
        if await state_of(ctx, "A-6") != S.cancelling:
            break
    assert await state_of(ctx, "A-6") == S.cancel_failed
    [alert] = [a for a in await ctx.store.alerts.listing() if a.category == "cancel_failed"]
    assert "never confirmed" in alert.message
    assert not [t for t in await ctx.store.tasks.listing("acme", "cancel_order") if t.state != "done"]


async def test_a_cart_hold_holds_an_unsent_order_until_ultracart_releases_it(ctx):
    record = await stored(ctx, make_order("A-5"))
    await apply_cart_copy(ctx, record, copy(ctx, make_order("A-5", current_stage="Hold")), event="fulfillment_hold", actor=Actor.webhook)
    [row] = await ctx.store.orders.find("A-5")
    assert (row.state, row.hold_kind) == (S.held, "cart_hold")
    await apply_cart_copy(ctx, row, copy(ctx, make_order("A-5", current_stage="Shipping Department")), event="order_stage_change", actor=Actor.webhook)
    assert await state_of(ctx, "A-5") == S.received


async def test_an_edit_after_hand_off_is_alerted_naming_what_changed(ctx):
    record = await stored(ctx, make_order("A-6"), S.at_warehouse)
    await apply_cart_copy(ctx, record, copy(ctx, make_order("A-6", address={"address1": "9 New Street"})), event="order_update", actor=Actor.webhook)
    [alert] = await ctx.store.alerts.open("acme", "changed_after_handoff")
    assert "address1" in alert.message and "9 New Street" in alert.message and "W1" in alert.message
    assert await state_of(ctx, "A-6") == S.at_warehouse


async def test_a_cancel_after_shipping_is_recorded_and_alerted(ctx):
    record = await stored(ctx, make_order("A-7"), S.shipped)
    await apply_cart_copy(ctx, record, copy(ctx, make_order("A-7", **REJECTED)), event="order_reject", actor=Actor.webhook)
    assert await state_of(ctx, "A-7") == S.shipped
    [alert] = await ctx.store.alerts.open("acme", "shipped_before_cancel")
    assert alert.key == "A-7"


async def test_reconciliation_reads_open_orders_in_batches_and_applies_the_same_rules(ctx):
    for i in range(3):
        await stored(ctx, make_order(f"R-{i}"), S.at_warehouse)
    await stored(ctx, make_order("R-9"))
    ctx.cart.orders = {f"R-{i}": make_order(f"R-{i}") for i in range(3)} | {"R-9": make_order("R-9", **REJECTED)}
    ctx.cart.orders["R-1"] = make_order("R-1", **REJECTED)
    await follow_changes(ctx)
    assert ctx.cart.batch_calls == 1
    assert [await state_of(ctx, f"R-{i}") for i in (0, 1, 2, 9)] == [S.at_warehouse, S.cancelled, S.at_warehouse, S.cancelled]


def test_reason_kinds_are_unique_so_each_reads_back_as_itself():
    from connector.lifecycle import CancelKind, HoldKind, Reason, SkipKind, cancel, skip

    values = [str(k) for enum in (HoldKind, SkipKind, CancelKind) for k in enum]
    assert len(values) == len(set(values))
    assert Reason.from_json(skip(SkipKind.operator, note="phone").to_json()).text == "skipped by operator: phone"
    assert Reason.from_json(cancel(CancelKind.operator, note="phone").to_json()).text.startswith("cancelled by operator: phone")
