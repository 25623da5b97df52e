"""The contract every warehouse adapter must keep, as a reusable test suite.

A warehouse adapter's test module subclasses `WarehouseContract` (named `Test...` so pytest collects
it) and provides two fixtures:

- `adapter`: a ready adapter instance talking to the warehouse's sandbox (closed by the fixture);
- `warehouse`: a `WarehouseDriver` for that sandbox: what the suite needs to arrange and observe
  things the adapter API cannot (faults, shipping, stock, what was really created).
  `tests.support.warehouse.KitDriver` makes one of any sandbox kit.

Every adapter with a sandbox kit registered (entry-point group `connector.sandboxes`) also runs
the suite through its kit alone: tests/adapters/test_kit_contract.py.

The suite speaks only the domain and the driver, never a vendor's URLs, so a ShipStation,
Extensiv or file-drop adapter can run it against its own sandbox. A driver that cannot do
something (a file drop cannot lose a reply) raises NotImplementedError and the tests needing it
are skipped, saying so. Tests that need a capability the adapter does not declare check that the
flag is honestly off instead.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol

import pytest

from connector.domain import Address, CancelOutcome, CreateResult, Order, Shipment, StockLevel, WarehouseLine, WarehouseOrder
from connector.errors import InDoubtError, PermanentError, RateLimitedError, VendorError


class WarehouseDriver(Protocol):
    """Test-side control of a warehouse sandbox.

    Faults are named by the adapter operation they hit, not by URL:
    "create", "find", "shipments", "ack", "stock", "skus", "ship_methods", "cancel" (the cancel
    call itself, not the lookup before it).
    `kind` is an HTTP status (429, 500, 503...), "timeout" or "reset"; `after=True` lets the
    warehouse do the work and then loses the reply.
    """

    skus: list[str]  # at least two SKUs the warehouse knows (order lines use them)
    ship_method: str  # a ship method the warehouse accepts
    warehouse_ids: list[str]  # at least two warehouse (fulfillment center) ids

    def orders_created(self, reference: str) -> int:
        """How many warehouse orders really exist for `reference` (the at-most-once check)."""

    def fail_next(self, operation: str, kind: int | str, *, after: bool = False) -> None:
        """Make the next call of `operation` fail as `kind`. NotImplementedError if impossible."""

    def ship(self, reference: str, *, split: bool = False, void_first: bool = False, tracking: str | None = None) -> None:
        """Ship a created order now: in two shipments (`split`), after voiding a first label
        (`void_first`), or with the label's tracking number forced to `tracking` (e.g. "  ")."""

    def set_stock(self, sku: str, warehouse_id: str, available: int, on_hand: int | None = None) -> None:
        """Put stock on a warehouse's shelf: `available` is what can be promised."""


def make_order(warehouse: WarehouseDriver, reference: str | None = None, quantities: tuple[int, ...] = (2, 1)) -> WarehouseOrder:
    """A complete, valid order for this warehouse: one line per quantity, over its known SKUs."""
    reference = reference or f"ct-{uuid.uuid4().hex[:12]}"
    lines = [
        WarehouseLine(sku=warehouse.skus[i % len(warehouse.skus)], quantity=q, description=f"Item {i}", unit_price=Decimal("9.99"))
        for i, q in enumerate(quantities)
    ]
    ship_to = Address(
        first_name="Ada", last_name="Lovelace", address1="12 Analytical Way", city="Springfield",
        state="IL", postal_code="62701", country_code="US", phone="555-0100", email="ada@example.com",
    )
    cart = Order(
        order_id=reference.split("-", 1)[-1], created_at=datetime.now(UTC), ship_to=ship_to, email=ship_to.email,
        total=Decimal("29.97"), ship_method="Ground",
    )
    return WarehouseOrder(reference=reference, order=cart, ship_method=warehouse.ship_method, lines=lines)


def _ordered(order: WarehouseOrder) -> dict[str, int]:
    out: dict[str, int] = {}
    for line in order.lines:
        out[line.sku] = out.get(line.sku, 0) + line.quantity
    return out


def _shipped(shipments: list[Shipment]) -> dict[str, int]:
    out: dict[str, int] = {}
    for s in shipments:
        for line in s.lines:
            out[line.sku] = out.get(line.sku, 0) + line.quantity
    return out


def _fault(warehouse: WarehouseDriver, operation: str, kind: int | str, *, after: bool = False) -> None:
    try:
        warehouse.fail_next(operation, kind, after=after)
    except NotImplementedError:
        pytest.skip(f"this warehouse's sandbox cannot inject {kind} on {operation}")


class _Unknown:
    """Enough of a driver to make an order no warehouse is asked to create."""

    skus = ["CT-ANY"]
    ship_method = "ground"


SINCE_SLACK = timedelta(hours=1)


class WarehouseContract:
    """The shared contract suite. Subclass as `TestXxxContract` and provide `adapter`, `warehouse`."""

    # -- helpers ------------------------------------------------------------------------------

    @staticmethod
    def since() -> datetime:
        return datetime.now(UTC) - SINCE_SLACK

    async def created(self, adapter: Any, warehouse: WarehouseDriver, **kw: Any) -> tuple[WarehouseOrder, CreateResult]:
        order = make_order(warehouse, **kw)
        return order, await adapter.create_order(order)

    async def shipments_for(self, adapter: Any, reference: str) -> list[Shipment]:
        return [s for s in await adapter.shipments_since(self.since()) if s.reference == reference]

    # -- setup --------------------------------------------------------------------------------

    async def test_check_describes_the_connection(self, adapter: Any) -> None:
        text = await adapter.check()
        assert isinstance(text, str) and text.strip()

    async def test_capabilities_are_declared(self, adapter: Any) -> None:
        from adapters.base import WarehouseAdapter

        assert isinstance(adapter, WarehouseAdapter)  # every attribute and method the engine uses
        assert isinstance(adapter.name, str) and adapter.name
        for flag in ("inventory", "shipment_ack", "cancel", "bulk_create", "sku_catalog", "ship_method_catalog", "webhooks",
                     "update_address", "update_lines"):
            assert isinstance(getattr(adapter.capabilities, flag), bool), flag

    async def test_capabilities_claim_only_what_the_adapter_has(self, adapter: Any) -> None:
        # A claimed capability switches a service on: the method behind it must be the adapter's
        # own, not the base's "cannot" default (nor missing, for a method no protocol has yet).
        from adapters.base import WarehouseAdapterBase

        if adapter.capabilities.cancel:
            assert type(adapter).cancel_order is not WarehouseAdapterBase.cancel_order, "cancel claimed, cancel_order not written"
        else:
            result = await adapter.cancel_order(f"{adapter.name}-never-sent")
            assert result.outcome.value == "by_hand" and result.reason
        if adapter.capabilities.bulk_create:
            assert callable(getattr(adapter, "create_orders", None)), "bulk_create claimed, create_orders not written"
        if adapter.capabilities.inventory:
            assert type(adapter).stock_levels is not WarehouseAdapterBase.stock_levels
        if adapter.capabilities.webhooks:
            for method in ("register_webhooks", "webhook_urls", "webhook_hints"):
                assert getattr(type(adapter), method) is not getattr(WarehouseAdapterBase, method), f"webhooks claimed, {method} not written"
        else:
            with pytest.raises(NotImplementedError):
                await adapter.register_webhooks("https://connector.example/never")
            assert await adapter.webhook_urls() == set()
        if adapter.capabilities.update_address or adapter.capabilities.update_lines:
            assert type(adapter).update_order is not WarehouseAdapterBase.update_order, "an update claimed, update_order not written"
        else:
            with pytest.raises(NotImplementedError):
                await adapter.update_order(make_order(_Unknown()), "never-sent", address=True, lines=True)

    async def test_webhook_hints_never_fail_on_a_hostile_body(self, adapter: Any) -> None:
        # The body is untrusted: any JSON shape gives a list of dicts (maybe empty), never an error.
        for body in (None, 1, "x", [], {}, [1, "a", None], {"topic": 5}, {"data": [None]}, {"data": "x", "event": []},
                     {"resource_url": 7}, {"order": {"id": {"deep": 1}}}, {"shipments": "nope"}):
            hints = adapter.webhook_hints(body)
            assert isinstance(hints, list) and all(isinstance(h, dict) for h in hints), body
            assert all(isinstance(h.get("topic", ""), str) for h in hints), body

    async def test_what_the_engine_reads_is_there_before_any_read(self, adapter: Any) -> None:
        # The engine reads `problems` and `snapshot_at` directly after each pass.
        assert list(adapter.problems) == []
        assert adapter.snapshot_at is None

    async def test_catalogues(self, adapter: Any, warehouse: WarehouseDriver) -> None:
        skus = await adapter.known_skus()
        methods = await adapter.known_ship_methods()
        if adapter.capabilities.sku_catalog:
            assert set(warehouse.skus) <= skus
        else:
            assert skus is None
        if adapter.capabilities.ship_method_catalog:
            assert warehouse.ship_method in methods
        else:
            assert methods is None

    # -- create, exactly once -----------------------------------------------------------------

    async def test_create(self, adapter: Any, warehouse: WarehouseDriver) -> None:
        order, result = await self.created(adapter, warehouse)
        assert result.reference == order.reference
        assert result.warehouse_order_id
        assert result.already_existed is False
        assert warehouse.orders_created(order.reference) == 1

    async def test_duplicate_create_returns_the_existing_order(self, adapter: Any, warehouse: WarehouseDriver) -> None:
        order, first = await self.created(adapter, warehouse)
        again = await adapter.create_order(order)
        assert again.already_existed is True
        assert again.warehouse_order_id == first.warehouse_order_id
        assert again.reference == order.reference
        assert warehouse.orders_created(order.reference) == 1

    async def test_find_order_by_reference(self, adapter: Any, warehouse: WarehouseDriver) -> None:
        order, result = await self.created(adapter, warehouse)
        found = await adapter.find_order(order.reference)
        assert found is not None
        assert (found.warehouse_order_id, found.reference) == (result.warehouse_order_id, order.reference)
        assert await adapter.find_order(f"never-{uuid.uuid4().hex[:8]}") is None

    async def test_a_create_request_shows_the_order_and_writes_nothing(self, adapter: Any, warehouse: WarehouseDriver) -> None:
        """What a dry run shows: the request a live create would send, carrying the reference
        and the SKUs, with nothing created at the warehouse."""
        order = make_order(warehouse)
        shown = json.dumps(await adapter.create_request(order), default=str)
        assert order.reference in shown and all(line.sku in shown for line in order.lines)
        assert warehouse.orders_created(order.reference) == 0
        assert await adapter.find_order(order.reference) is None

    @pytest.mark.parametrize("kind", [500, "timeout"])
    async def test_lost_create_reply_is_in_doubt_then_found(self, adapter: Any, warehouse: WarehouseDriver, kind: int | str) -> None:
        order = make_order(warehouse)
        _fault(warehouse, "create", kind, after=True)
        with pytest.raises(InDoubtError):
            await adapter.create_order(order)
        found = await adapter.find_order(order.reference)
        assert found is not None, "the warehouse created it: the lookup must find it"
        # The engine resends only after the lookup; even a blind resend must not duplicate.
        again = await adapter.create_order(order)
        assert again.already_existed and again.warehouse_order_id == found.warehouse_order_id
        assert warehouse.orders_created(order.reference) == 1

    @pytest.mark.parametrize("kind", [500, 502, "timeout", "reset"])
    async def test_a_lost_create_is_in_doubt_and_not_resent(self, adapter: Any, warehouse: WarehouseDriver, kind: int | str) -> None:
        # The create's reply never comes (a 5xx, no answer in time, a dropped connection): the
        # outcome is unknown, so the adapter says so and does not send it again in the same call.
        # The fault is spent on the first try, so a resend would have created the order.
        order = make_order(warehouse)
        _fault(warehouse, "create", kind)
        with pytest.raises(InDoubtError):
            await adapter.create_order(order)
        assert warehouse.orders_created(order.reference) == 0

    # -- errors -------------------------------------------------------------------------------

    async def test_429_is_rate_limited_with_retry_after(self, adapter: Any, warehouse: WarehouseDriver) -> None:
        _fault(warehouse, "find", 429)
        with pytest.raises(RateLimitedError) as caught:
            await adapter.find_order("ct-anything")
        assert caught.value.retry_after is not None and caught.value.retry_after > 0

    async def test_5xx_on_a_read_is_retried_in_call(self, adapter: Any, warehouse: WarehouseDriver) -> None:
        order, result = await self.created(adapter, warehouse)
        _fault(warehouse, "find", 503)
        found = await adapter.find_order(order.reference)
        assert found is not None and found.warehouse_order_id == result.warehouse_order_id

    async def test_timeout_on_a_read_is_retried_in_call(self, adapter: Any, warehouse: WarehouseDriver) -> None:
        order, result = await self.created(adapter, warehouse)
        _fault(warehouse, "find", "timeout")
        found = await adapter.find_order(order.reference)
        assert found is not None and found.warehouse_order_id == result.warehouse_order_id

    async def test_errors_are_vendor_errors(self, adapter: Any, warehouse: WarehouseDriver) -> None:
        for _ in range(5):  # more than any in-call retry budget
            _fault(warehouse, "find", 503)
        with pytest.raises(VendorError) as caught:
            await adapter.find_order("ct-anything")
        assert caught.value.error_class.value == "transient"

    # -- shipments ----------------------------------------------------------------------------

    async def test_full_shipment(self, adapter: Any, warehouse: WarehouseDriver) -> None:
        order, result = await self.created(adapter, warehouse)
        warehouse.ship(order.reference)
        shipments = await self.shipments_for(adapter, order.reference)
        assert len(shipments) == 1
        (s,) = shipments
        assert s.shipment_id and not s.voided
        assert s.tracking_numbers and all(t == t.strip() and t for t in s.tracking_numbers)
        assert _shipped(shipments) == _ordered(order)
        assert s.warehouse_order_id in ("", result.warehouse_order_id)

    async def test_split_shipment(self, adapter: Any, warehouse: WarehouseDriver) -> None:
        order, _ = await self.created(adapter, warehouse)
        warehouse.ship(order.reference, split=True)
        shipments = await self.shipments_for(adapter, order.reference)
        assert len(shipments) == 2
        assert len({s.shipment_id for s in shipments}) == 2
        assert _shipped(shipments) == _ordered(order)

    async def test_voided_label_is_ignored_or_flagged(self, adapter: Any, warehouse: WarehouseDriver) -> None:
        order, _ = await self.created(adapter, warehouse)
        warehouse.ship(order.reference, void_first=True)
        shipments = await self.shipments_for(adapter, order.reference)
        live = [s for s in shipments if not s.voided]
        voided = [s for s in shipments if s.voided]
        assert len(live) == 1 and live[0].tracking_numbers
        assert _shipped(live) == _ordered(order)
        assert not {t for s in voided for t in s.tracking_numbers} & set(live[0].tracking_numbers)

    async def test_blank_tracking_numbers_are_dropped(self, adapter: Any, warehouse: WarehouseDriver) -> None:
        order, _ = await self.created(adapter, warehouse)
        warehouse.ship(order.reference, tracking="   ")
        for s in await self.shipments_for(adapter, order.reference):
            assert s.tracking_numbers == []

    async def test_acknowledged_shipments_are_not_read_again(self, adapter: Any, warehouse: WarehouseDriver) -> None:
        acked, _ = await self.created(adapter, warehouse)
        other, _ = await self.created(adapter, warehouse)
        warehouse.ship(acked.reference)
        warehouse.ship(other.reference)
        first = await self.shipments_for(adapter, acked.reference)
        assert first
        if not adapter.capabilities.shipment_ack:
            await adapter.acknowledge_shipments(first)  # must be harmless
            return
        await adapter.acknowledge_shipments(first)
        after = await adapter.shipments_since(self.since())
        assert not {s.shipment_id for s in first} & {s.shipment_id for s in after}
        assert any(s.reference == other.reference for s in after), "acknowledging one order must not hide others"

    # -- cancel -------------------------------------------------------------------------------
    # The engine reads `cancelled` as "it will not ship", so only the warehouse saying so counts;
    # after a lost answer it asks `find_order(...).cancelled` before cancelling again.

    async def test_cancel_a_waiting_order(self, adapter: Any, warehouse: WarehouseDriver) -> None:
        order, created = await self.created(adapter, warehouse)
        result = await adapter.cancel_order(order.reference)
        assert result.reference == order.reference
        if not adapter.capabilities.cancel:
            assert result.outcome is CancelOutcome.by_hand and order.reference in result.reason
            return
        assert result.outcome is CancelOutcome.cancelled, result.reason
        assert result.warehouse_order_id in ("", created.warehouse_order_id)
        found = await adapter.find_order(order.reference)
        assert found is not None and found.cancelled, "a cancelled order must look cancelled to the lookup"

    async def test_cancel_twice_is_cancelled_twice(self, adapter: Any, warehouse: WarehouseDriver) -> None:
        if not adapter.capabilities.cancel:
            pytest.skip("no cancel capability")
        order, _ = await self.created(adapter, warehouse)
        first = await adapter.cancel_order(order.reference)
        again = await adapter.cancel_order(order.reference)
        assert (first.outcome, again.outcome) == (CancelOutcome.cancelled, CancelOutcome.cancelled), (first.reason, again.reason)

    async def test_cancel_after_it_shipped_is_too_late(self, adapter: Any, warehouse: WarehouseDriver) -> None:
        order, _ = await self.created(adapter, warehouse)
        warehouse.ship(order.reference)
        result = await adapter.cancel_order(order.reference)
        if not adapter.capabilities.cancel:
            assert result.outcome is CancelOutcome.by_hand
            return
        assert result.outcome is CancelOutcome.too_late
        assert result.reason.strip(), "too_late carries the warehouse's reason"
        found = await adapter.find_order(order.reference)
        assert found is not None and not found.cancelled

    async def test_cancel_of_an_order_the_warehouse_lacks_is_refused(self, adapter: Any) -> None:
        # The engine cancels only orders it recorded as created: a warehouse that has no such
        # order must not be read as "cancelled" (the order may be elsewhere and still ship).
        if not adapter.capabilities.cancel:
            pytest.skip("no cancel capability")
        with pytest.raises(PermanentError):
            await adapter.cancel_order(f"ct-never-{uuid.uuid4().hex[:8]}")

    # 502: a 5xx whose body no vendor documents (the sandboxes' injected fault body is generic).
    @pytest.mark.parametrize("kind", [502, "timeout"])
    async def test_a_lost_cancel_reply_is_unknown_then_looked_up(self, adapter: Any, warehouse: WarehouseDriver, kind: int | str) -> None:
        if not adapter.capabilities.cancel:
            pytest.skip("no cancel capability")
        order, _ = await self.created(adapter, warehouse)
        _fault(warehouse, "cancel", kind, after=True)
        result = await adapter.cancel_order(order.reference)
        assert result.outcome is CancelOutcome.unknown
        found = await adapter.find_order(order.reference)
        assert found is not None and found.cancelled, "the warehouse did cancel it: the lookup must say so"
        assert (await adapter.cancel_order(order.reference)).outcome is CancelOutcome.cancelled

    async def test_a_cancel_that_never_happened_is_unknown_not_resent(self, adapter: Any, warehouse: WarehouseDriver) -> None:
        # The fault is spent on the first try: a resend inside the call would have cancelled it.
        if not adapter.capabilities.cancel:
            pytest.skip("no cancel capability")
        order, _ = await self.created(adapter, warehouse)
        _fault(warehouse, "cancel", 503)
        assert (await adapter.cancel_order(order.reference)).outcome is CancelOutcome.unknown
        found = await adapter.find_order(order.reference)
        assert found is not None and not found.cancelled
        assert (await adapter.cancel_order(order.reference)).outcome is CancelOutcome.cancelled

    # -- updates after hand-off ----------------------------------------------------------------
    # The engine calls update_order only for what the flags claim; a refusal must be a
    # PermanentError (it alerts with what to change by hand), never a silent success.

    @staticmethod
    def edited(order: WarehouseOrder) -> WarehouseOrder:
        """The same order with a new ship-to street and one more unit on its first line."""
        cart = order.order.model_copy(update={"ship_to": order.order.ship_to.model_copy(update={"address1": "99 Edited Avenue"})})
        lines = [order.lines[0].model_copy(update={"quantity": order.lines[0].quantity + 1}), *order.lines[1:]]
        return order.model_copy(update={"order": cart, "lines": lines})

    @staticmethod
    def update_flags(adapter: Any) -> dict[str, bool]:
        caps = adapter.capabilities
        if not (caps.update_address or caps.update_lines):
            pytest.skip("no update capability")
        return {"address": caps.update_address, "lines": caps.update_lines}

    async def test_update_a_waiting_order_twice_is_harmless(self, adapter: Any, warehouse: WarehouseDriver) -> None:
        flags = self.update_flags(adapter)
        order, created = await self.created(adapter, warehouse)
        changed = self.edited(order)
        first = await adapter.update_order(changed, created.warehouse_order_id, **flags)
        again = await adapter.update_order(changed, created.warehouse_order_id, **flags)
        assert isinstance(first, str) and first.strip() and isinstance(again, str) and again.strip()
        assert warehouse.orders_created(order.reference) == 1, "an update must never make a second order"
        found = await adapter.find_order(order.reference)
        assert found is not None and found.warehouse_order_id == created.warehouse_order_id and not found.cancelled

    async def test_update_after_it_shipped_is_refused_in_the_warehouse_words(self, adapter: Any, warehouse: WarehouseDriver) -> None:
        flags = self.update_flags(adapter)
        order, created = await self.created(adapter, warehouse)
        warehouse.ship(order.reference)
        with pytest.raises(PermanentError) as refused:
            await adapter.update_order(self.edited(order), created.warehouse_order_id, **flags)
        assert str(refused.value).strip()
        assert warehouse.orders_created(order.reference) == 1

    # -- stock --------------------------------------------------------------------------------

    async def test_stock_levels_per_warehouse(self, adapter: Any, warehouse: WarehouseDriver) -> None:
        if not adapter.capabilities.inventory:
            assert adapter.capabilities.inventory is False
            return
        sku = warehouse.skus[0]
        first, second = warehouse.warehouse_ids[:2]
        warehouse.set_stock(sku, first, available=5, on_hand=7)
        warehouse.set_stock(sku, second, available=3)
        levels = {(lv.sku, lv.warehouse_id): lv for lv in await adapter.stock_levels()}
        assert all(isinstance(lv, StockLevel) for lv in levels.values())
        assert (levels[(sku, first)].available, levels[(sku, first)].on_hand) == (5, 7)
        assert (levels[(sku, second)].available, levels[(sku, second)].on_hand) == (3, 3)
        assert all(lv.available >= 0 and lv.on_hand >= 0 for lv in levels.values())
