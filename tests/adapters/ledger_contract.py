"""The contract every inventory ledger adapter must keep, as a reusable test suite.

A ledger adapter's test module subclasses `LedgerContract` (named `Test...` so pytest collects it)
and provides two fixtures:

- `ledger`: a `LedgerDriver` for the ledger's sandbox: what the suite needs to arrange and
  observe things the adapter API cannot (items and units, faults, the ledger's own quantities);
- `adapter`: a ready adapter instance talking to that sandbox (closed by the fixture). Tests
  arrange the ledger before their first call, so an adapter may read the item master lazily.

The suite speaks only the ledger protocol (adapters.ledger) and the driver, never a vendor's
URLs, so any ledger can run it. A driver that cannot do something raises NotImplementedError and
the tests needing it are skipped, saying so.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol

import pytest

from adapters.ledger import (
    ConsumeResult,
    InsufficientInventoryError,
    LedgerItem,
    LedgerUnit,
    UnitChangedError,
    consumption_outcome,
)
from connector.domain import StockLevel
from connector.errors import InDoubtError, PermanentError, RateLimitedError, TransientError, VendorError
from mappings.units import pick_units

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


class LedgerDriver(Protocol):
    """Test-side control of a ledger sandbox.

    Faults are named by the adapter operation they hit: "find" (the item lookup), "units" (the
    unit search), "unit" (reading one unit, before and after a consumption), "consume" (the
    adjustment itself), "stock". `kind` is an HTTP status, "timeout" or "reset"; `after=True`
    lets the ledger do the work and then loses the reply.
    """

    location: str
    sublocation: str
    other_sublocation: str  # another sublocation of the same location, never touched

    def add_item(self, sku: str) -> None: ...

    def add_unit(self, sku: str, quantity: int, *, sublocation: str | None = None, reserved: int = 0,
                 lot_code: str = "", datecode: str = "", created_at: datetime | None = None) -> str:
        """A unit of the item at (location, sublocation or the driver's default); returns its id."""

    def quantity(self, unit_id: str) -> Decimal | None:
        """The ledger's own quantity of the unit (None when it no longer exists)."""

    def change(self, unit_id: str, quantity: int) -> None:
        """Someone else sets the unit's quantity in the ledger."""

    def memos(self, unit_id: str) -> list[str]:
        """The comments of the unit's adjustments, oldest first."""

    def fail_next(self, operation: str, kind: int | str, *, after: bool = False) -> None: ...


def sku() -> str:
    return f"CT-{uuid.uuid4().hex[:8].upper()}"


def _fault(ledger: LedgerDriver, operation: str, kind: int | str, *, after: bool = False) -> None:
    try:
        ledger.fail_next(operation, kind, after=after)
    except NotImplementedError:
        pytest.skip(f"this ledger's sandbox cannot inject {kind} on {operation}")


class LedgerContract:
    """The shared contract suite. Subclass as `TestXxxLedgerContract` and provide `adapter`, `ledger`."""

    # -- helpers ------------------------------------------------------------------------------

    @staticmethod
    async def item(adapter: Any, name: str) -> LedgerItem:
        found = await adapter.find_items([name])
        assert name in found, f"{name} was added to the ledger"
        return found[name]

    @staticmethod
    async def one_unit(adapter: Any, ledger: LedgerDriver, item: LedgerItem, unit_id: str) -> LedgerUnit:
        [unit] = [u for u in await adapter.units(item, ledger.location, ledger.sublocation) if u.id == unit_id]
        return unit

    @staticmethod
    def stocked(ledger: LedgerDriver, quantity: int = 10, **kw: Any) -> tuple[str, str]:
        name = sku()
        ledger.add_item(name)
        return name, ledger.add_unit(name, quantity, **kw)

    # -- setup --------------------------------------------------------------------------------

    async def test_check_describes_the_connection(self, adapter: Any, ledger: LedgerDriver) -> None:
        self.stocked(ledger)
        text = await adapter.check(ledger.location, ledger.sublocation)
        assert isinstance(text, str) and text.strip()

    async def test_capabilities_are_declared(self, adapter: Any) -> None:
        assert isinstance(adapter.name, str) and adapter.name
        for flag in ("consume", "stock", "lots", "created_at"):
            assert isinstance(getattr(adapter.capabilities, flag), bool), flag

    # -- items --------------------------------------------------------------------------------

    async def test_find_items_known_and_unknown(self, adapter: Any, ledger: LedgerDriver) -> None:
        a, b = sku(), sku()
        ledger.add_item(a)
        ledger.add_item(b)
        found = await adapter.find_items([a, b, "NO-SUCH-SKU"])
        assert set(found) == {a, b}, "an unknown SKU is absent, not an error"
        assert found[a].sku == a and found[a].item_id and found[a].item_id != found[b].item_id
        assert await adapter.find_items([]) == {}

    # -- units --------------------------------------------------------------------------------

    async def test_units_only_at_the_location_and_sublocation(self, adapter: Any, ledger: LedgerDriver) -> None:
        name = sku()
        ledger.add_item(name)
        here = ledger.add_unit(name, 7, lot_code="L-7", datecode="2601", created_at=T0)
        ledger.add_unit(name, 50, sublocation=ledger.other_sublocation)
        other_item = sku()
        ledger.add_item(other_item)
        ledger.add_unit(other_item, 9)
        item = await self.item(adapter, name)
        units = await adapter.units(item, ledger.location, ledger.sublocation)
        assert [u.id for u in units] == [here]
        (unit,) = units
        assert (unit.item_id, unit.quantity, unit.quantity_available) == (item.item_id, 7, 7)
        if adapter.capabilities.lots:
            assert (unit.lot_code, unit.datecode) == ("L-7", "2601")
        if adapter.capabilities.created_at:
            assert unit.created_at == T0
        everywhere = await adapter.units(item, ledger.location)
        assert {u.quantity for u in everywhere} == {7, 50}, "without a sublocation: the whole location"

    async def test_reading_a_unit_back(self, adapter: Any, ledger: LedgerDriver) -> None:
        name, unit_id = self.stocked(ledger, 6, reserved=2)
        item = await self.item(adapter, name)
        unit = await adapter.unit(item, unit_id)
        assert unit is not None and (unit.id, unit.quantity, unit.quantity_available) == (unit_id, 6, 4)
        assert await adapter.unit(item, "999999") is None

    # -- consumption --------------------------------------------------------------------------

    async def test_consume(self, adapter: Any, ledger: LedgerDriver) -> None:
        name, unit_id = self.stocked(ledger, 10)
        item = await self.item(adapter, name)
        unit = await self.one_unit(adapter, ledger, item, unit_id)
        result = await adapter.consume(item, unit, Decimal(3), "order ct-1 shipped")
        assert isinstance(result, ConsumeResult)
        assert (result.unit_id, result.quantity, result.quantity_before, result.quantity_after) == (unit_id, 3, 10, 7)
        assert result.already_applied is False
        assert ledger.quantity(unit_id) == 7
        try:
            assert ledger.memos(unit_id)[-1] == "order ct-1 shipped"
        except NotImplementedError:
            pass

    async def test_a_shipped_quantity_drawn_over_several_units(self, adapter: Any, ledger: LedgerDriver) -> None:
        name = sku()
        ledger.add_item(name)
        old = ledger.add_unit(name, 4, created_at=T0)
        mid = ledger.add_unit(name, 5, created_at=T0 + timedelta(days=1))
        new = ledger.add_unit(name, 9, created_at=T0 + timedelta(days=2))
        item = await self.item(adapter, name)
        pick = pick_units(await adapter.units(item, ledger.location, ledger.sublocation), 11, "fifo")
        assert pick.complete
        for draw in pick.draws:
            await adapter.consume(item, draw.unit, draw.quantity, "order ct-2 shipped")
        if adapter.capabilities.created_at:
            assert (ledger.quantity(old), ledger.quantity(mid), ledger.quantity(new)) == (0, 0, 7)
        assert sum(ledger.quantity(u) or 0 for u in (old, mid, new)) == 18 - 11

    async def test_repeating_a_consumption_reads_back_instead_of_consuming_twice(self, adapter: Any, ledger: LedgerDriver) -> None:
        name, unit_id = self.stocked(ledger, 10)
        item = await self.item(adapter, name)
        unit = await self.one_unit(adapter, ledger, item, unit_id)
        first = await adapter.consume(item, unit, Decimal(4), "order ct-3 shipped")
        again = await adapter.consume(item, unit, Decimal(4), "order ct-3 shipped")  # the same snapshot, resent
        assert first.already_applied is False and again.already_applied is True
        assert again.quantity_after == 6
        assert ledger.quantity(unit_id) == 6

    async def test_consuming_a_whole_unit_and_repeating_it(self, adapter: Any, ledger: LedgerDriver) -> None:
        name, unit_id = self.stocked(ledger, 5)
        item = await self.item(adapter, name)
        unit = await self.one_unit(adapter, ledger, item, unit_id)
        result = await adapter.consume(item, unit, Decimal(5))
        assert result.quantity_after == 0 and ledger.quantity(unit_id) in (0, None)
        assert (await adapter.consume(item, unit, Decimal(5))).already_applied is True

    @pytest.mark.parametrize("kind", [500, "timeout", "reset"])
    async def test_lost_reply_is_in_doubt_and_the_read_back_says_it_happened(self, adapter: Any, ledger: LedgerDriver, kind) -> None:
        name, unit_id = self.stocked(ledger, 10)
        item = await self.item(adapter, name)
        unit = await self.one_unit(adapter, ledger, item, unit_id)
        _fault(ledger, "consume", kind, after=True)
        with pytest.raises(InDoubtError):
            await adapter.consume(item, unit, Decimal(3), "order ct-4 shipped")
        assert ledger.quantity(unit_id) == 7, "the ledger did it"
        assert consumption_outcome(unit.quantity, Decimal(3), await adapter.unit(item, unit_id)) == "applied"
        # Even a blind resend (the engine resends only after reading back) must not consume twice.
        assert (await adapter.consume(item, unit, Decimal(3))).already_applied is True
        assert ledger.quantity(unit_id) == 7

    @pytest.mark.parametrize("kind", [503, "timeout"])
    async def test_failed_consumption_is_in_doubt_and_the_read_back_says_it_did_not(self, adapter: Any, ledger: LedgerDriver, kind) -> None:
        name, unit_id = self.stocked(ledger, 10)
        item = await self.item(adapter, name)
        unit = await self.one_unit(adapter, ledger, item, unit_id)
        _fault(ledger, "consume", kind, after=False)
        with pytest.raises(InDoubtError):
            await adapter.consume(item, unit, Decimal(3))
        assert ledger.quantity(unit_id) == 10, "a consumption is never retried inside the call"
        assert consumption_outcome(unit.quantity, Decimal(3), await adapter.unit(item, unit_id)) == "not_applied"
        result = await adapter.consume(item, unit, Decimal(3))  # now the engine may send it again
        assert result.already_applied is False and ledger.quantity(unit_id) == 7

    async def test_insufficient_inventory_consumes_nothing(self, adapter: Any, ledger: LedgerDriver) -> None:
        name, unit_id = self.stocked(ledger, 10, reserved=4)  # 6 available
        item = await self.item(adapter, name)
        unit = await self.one_unit(adapter, ledger, item, unit_id)
        with pytest.raises(InsufficientInventoryError) as caught:
            await adapter.consume(item, unit, Decimal(7))
        assert isinstance(caught.value, PermanentError) and "6" in str(caught.value)
        assert ledger.quantity(unit_id) == 10
        assert (await adapter.consume(item, unit, Decimal(6))).quantity_after == 4

    async def test_a_unit_changed_by_someone_else_is_not_adjusted(self, adapter: Any, ledger: LedgerDriver) -> None:
        name, unit_id = self.stocked(ledger, 10)
        item = await self.item(adapter, name)
        unit = await self.one_unit(adapter, ledger, item, unit_id)
        ledger.change(unit_id, 9)
        with pytest.raises(UnitChangedError):
            await adapter.consume(item, unit, Decimal(3))
        assert ledger.quantity(unit_id) == 9
        fresh = await self.one_unit(adapter, ledger, item, unit_id)
        assert (await adapter.consume(item, fresh, Decimal(3))).quantity_after == 6

    async def test_consuming_nothing_or_less_is_refused(self, adapter: Any, ledger: LedgerDriver) -> None:
        name, unit_id = self.stocked(ledger, 10)
        item = await self.item(adapter, name)
        unit = await self.one_unit(adapter, ledger, item, unit_id)
        for bad in (Decimal(0), Decimal(-2)):
            with pytest.raises(ValueError):
                await adapter.consume(item, unit, bad)
        assert ledger.quantity(unit_id) == 10

    # -- errors -------------------------------------------------------------------------------

    async def test_429_is_rate_limited_with_retry_after(self, adapter: Any, ledger: LedgerDriver) -> None:
        name, _ = self.stocked(ledger)
        item = await self.item(adapter, name)
        _fault(ledger, "units", 429)
        with pytest.raises(RateLimitedError) as caught:
            await adapter.units(item, ledger.location, ledger.sublocation)
        assert caught.value.retry_after is not None and caught.value.retry_after > 0

    async def test_5xx_on_a_read_is_retried_in_call(self, adapter: Any, ledger: LedgerDriver) -> None:
        name, unit_id = self.stocked(ledger)
        item = await self.item(adapter, name)
        _fault(ledger, "units", 503)
        assert [u.id for u in await adapter.units(item, ledger.location, ledger.sublocation)] == [unit_id]
        _fault(ledger, "unit", "timeout")
        assert (await adapter.unit(item, unit_id)).quantity == 10

    @pytest.mark.parametrize("operation", ["find", "units", "unit", "stock"])
    async def test_5xx_on_reads_ends_transient(self, adapter: Any, ledger: LedgerDriver, operation) -> None:
        name, unit_id = self.stocked(ledger)
        item = LedgerItem(sku=name, item_id="0") if operation == "find" else await self.item(adapter, name)
        for _ in range(5):  # more than any in-call retry budget
            _fault(ledger, operation, 503)
        with pytest.raises(VendorError) as caught:
            if operation == "find":
                await adapter.find_items([name])
            elif operation == "units":
                await adapter.units(item, ledger.location, ledger.sublocation)
            elif operation == "unit":
                await adapter.unit(item, unit_id)
            else:
                await adapter.stock_levels(ledger.location, ledger.sublocation)
        assert isinstance(caught.value, TransientError)

    async def test_5xx_before_a_consumption_changes_nothing(self, adapter: Any, ledger: LedgerDriver) -> None:
        name, unit_id = self.stocked(ledger, 10)
        item = await self.item(adapter, name)
        unit = await self.one_unit(adapter, ledger, item, unit_id)
        for _ in range(5):
            _fault(ledger, "unit", 503)  # the read before the adjustment
        with pytest.raises(TransientError):
            await adapter.consume(item, unit, Decimal(2))
        assert ledger.quantity(unit_id) == 10

    # -- stock --------------------------------------------------------------------------------

    async def test_stock_levels_at_the_location(self, adapter: Any, ledger: LedgerDriver) -> None:
        a, b = sku(), sku()
        ledger.add_item(a)
        ledger.add_item(b)
        ledger.add_unit(a, 5)
        ledger.add_unit(a, 3, reserved=1)
        ledger.add_unit(a, 40, sublocation=ledger.other_sublocation)
        ledger.add_unit(b, 2, reserved=2)
        if not adapter.capabilities.stock:
            assert adapter.capabilities.stock is False
            return
        levels = {lv.sku: lv for lv in await adapter.stock_levels(ledger.location, ledger.sublocation)}
        assert all(isinstance(lv, StockLevel) for lv in levels.values())
        assert (levels[a].on_hand, levels[a].available) == (8, 7)
        assert (levels[b].on_hand, levels[b].available) == (2, 0)
        assert all(lv.available >= 0 and lv.on_hand >= 0 for lv in levels.values())
        whole = {lv.sku: lv for lv in await adapter.stock_levels(ledger.location)}
        assert whole[a].on_hand == 48
