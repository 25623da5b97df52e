"""The ledger contract, run for Aligni against AligniSandbox on loopback (real HTTP), plus what is
Aligni's own: how `adjust_quantity` may read its number, the read-back check, the rate budget,
the token in the URL path, the part_id search fallback.

Aligni publishes no machine-readable spec (there is nothing in ../shared/specs to validate
against); test_aligni_adapter.py checks the request shapes against Aligni's documented examples.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from decimal import Decimal

import pytest

from adapters.aligni import AligniLedger
from adapters.base import AdapterContext
from adapters.http import CallRecord
from adapters.ledger import ReadBackMismatchError, UnitChangedError, consumption_outcome
from connector.errors import ConfigurationError, PermanentError, RateLimitedError, VendorError
from connector.redact import Redactor
from connector.sandbox.aligni import AligniKit, AligniSandbox
from tests.adapters.ledger_contract import LedgerContract, T0, sku
from tests.support.warehouse import opened, served

LOCATION, SUBLOCATION, OTHER = "Main Warehouse", "Finished Goods", "QA Hold"


class AligniDriver:
    """`LedgerDriver` over an AligniSandbox running in this process."""

    location, sublocation, other_sublocation = LOCATION, SUBLOCATION, OTHER

    def __init__(self, sandbox: AligniSandbox):
        self.sandbox = sandbox
        api = f"/api/v2/{sandbox.token}"
        self.routes = {
            "find": ("GET", f"{api}/part"),
            "units": ("GET", f"{api}/inventory_units/search"),
            "stock": ("GET", f"{api}/inventory_units/search"),
            "unit": ("GET", f"{api}/parts/"),
            "consume": ("PUT", f"{api}/parts/"),
        }

    def add_item(self, name: str) -> None:
        self.sandbox.add_part(name, f"{name} (contract)")

    def add_unit(self, name: str, quantity: int, *, sublocation: str | None = None, reserved: int = 0,
                 lot_code: str = "", datecode: str = "", created_at: datetime | None = None) -> str:
        return self.sandbox.add_unit(name, quantity, location=LOCATION, sublocation=sublocation or SUBLOCATION,
                                     reserved=reserved, lot_code=lot_code, datecode=datecode, created_at=created_at or T0)

    def quantity(self, unit_id: str) -> Decimal | None:
        return self.sandbox.quantity(unit_id)

    def change(self, unit_id: str, quantity: int) -> None:
        self.sandbox.set_quantity(unit_id, quantity)

    def memos(self, unit_id: str) -> list[str]:
        return [h["comment"] for h in self.sandbox.history(unit_id) if h["reading"] != "ui"]

    def fail_next(self, operation: str, kind: int | str, *, after: bool = False) -> None:
        method, path = self.routes[operation]
        self.sandbox.faults.script.append({"method": method, "path": path, "status": kind, "after": after})


def token() -> str:
    # A token per test: the rate limiter is per credential and process-wide.
    return f"tok{uuid.uuid4().hex}"


def config_for(sandbox: AligniSandbox, **overrides) -> dict:
    return {"adapter": "aligni", "site": "contract", "api_token": sandbox.token, "base_url": sandbox.url, **overrides}


# Both relative readings of adjust_quantity run the whole contract: Aligni's documented manual
# rule (a leading sign is relative) and a plain relative parameter.
@pytest.fixture(params=["signed", "relative"])
def sandbox(request):
    with served(AligniSandbox(token(), adjust_mode=request.param)) as sb:
        yield sb


@pytest.fixture
async def adapter(sandbox):
    async with opened(AligniLedger(config_for(sandbox), AdapterContext(merchant="ct"))) as a:
        yield a


@pytest.fixture
def ledger(sandbox) -> AligniDriver:
    return AligniDriver(sandbox)


class TestAligniLedgerContract(LedgerContract):
    pass


# -- Aligni's own -----------------------------------------------------------------------------


@pytest.fixture
def site():
    """A default sandbox (Aligni's signed reading, 30 calls a minute)."""
    with served(AligniSandbox(token())) as sb:
        yield sb


async def ready(sb: AligniSandbox, quantity: int = 10, *, context: AdapterContext | None = None, **config):
    """An adapter, an item with one unit of `quantity`, and that unit as read."""
    name = sku()
    unit_id = sb.add_unit(name, quantity, location=LOCATION, sublocation=SUBLOCATION)
    adapter = AligniLedger(config_for(sb, **config), context or AdapterContext(merchant="ct"))
    item = (await adapter.find_items([name]))[name]
    [unit] = await adapter.units(item, LOCATION, SUBLOCATION)
    return adapter, item, unit


async def test_an_absolute_reading_refuses_the_negative_amount_and_nothing_changes() -> None:
    # Were adjust_quantity absolute, "-3" asks for a negative quantity: refused, stock intact.
    # (The unsafe choice, sending the target 7, would under a relative reading *add* 7.)
    with served(AligniSandbox(token(), adjust_mode="absolute")) as sb:
        adapter, item, unit = await ready(sb)
        async with opened(adapter):
            with pytest.raises(PermanentError) as caught:
                await adapter.consume(item, unit, Decimal(3))
            assert "refused" in str(caught.value) and "greater than or equal to 0" in str(caught.value)
            assert sb.quantity(unit.id) == 10 and sb.adjust_count == 0


async def test_a_read_back_that_disagrees_stops_with_both_numbers(site) -> None:
    adapter, item, unit = await ready(site)
    async with opened(adapter):
        site.change_after_next_adjust(unit.id, -1)  # a colleague takes one in Aligni's UI meanwhile
        with pytest.raises(ReadBackMismatchError) as caught:
            await adapter.consume(item, unit, Decimal(3), "order X shipped")
        err = caught.value
        assert (err.expected, err.found) == (7, 6)
        assert "quantity 6 where 7 was expected" in str(err) and "not adjusting again" in str(err)
        assert site.adjust_count == 1 and site.quantity(unit.id) == 6
        # The engine's read-back cannot call it applied or not: a person decides.
        assert consumption_outcome(unit.quantity, Decimal(3), await adapter.unit(item, unit.id)) == "unknown"


async def test_a_unit_removed_when_emptied_counts_as_consumed() -> None:
    with served(AligniSandbox(token(), delete_empty=True)) as sb:
        adapter, item, unit = await ready(sb, 4)
        async with opened(adapter):
            result = await adapter.consume(item, unit, Decimal(4))
            assert result.quantity_after == 0 and sb.quantity(unit.id) is None
            assert (await adapter.consume(item, unit, Decimal(4))).already_applied is True
            assert consumption_outcome(unit.quantity, Decimal(4), await adapter.unit(item, unit.id)) == "applied"
            with pytest.raises(UnitChangedError, match="no longer exists"):
                await adapter.consume(item, unit, Decimal(1))


async def test_the_memo_and_a_signed_amount_reach_aligni(site) -> None:
    adapter, item, unit = await ready(site)
    async with opened(adapter):
        await adapter.consume(item, unit, Decimal("2.5"), "UltraCart order DEMO-0007 shipped")
    [entry] = site.history(unit.id)
    assert entry["reading"] == "relative" and (entry["before"], entry["after"]) == (10, Decimal("7.5"))
    assert entry["comment"] == "UltraCart order DEMO-0007 shipped"


async def test_a_consumption_costs_three_calls(site) -> None:
    adapter, item, unit = await ready(site)
    before = dict(site.requests)
    async with opened(adapter):
        await adapter.consume(item, unit, Decimal(1))
    spent = {k: v - before.get(k, 0) for k, v in site.requests.items() if v != before.get(k, 0)}
    assert spent == {"GET /api/v2/{token}/parts/{id}/inventory_units/{id}": 2,
                     "PUT /api/v2/{token}/parts/{id}/inventory_units/{id}/adjust_quantity": 1}


async def test_without_a_part_id_search_the_location_is_searched() -> None:
    with served(AligniSandbox(token(), searchable_part_id=False)) as sb:
        name = sku()
        mine = sb.add_unit(name, 3, location=LOCATION, sublocation=SUBLOCATION)
        sb.add_unit(sku(), 8, location=LOCATION, sublocation=SUBLOCATION)
        async with opened(AligniLedger(config_for(sb), AdapterContext(merchant="ct"))) as adapter:
            item = (await adapter.find_items([name]))[name]
            assert [u.id for u in await adapter.units(item, LOCATION, SUBLOCATION)] == [mine]
            assert [u.id for u in await adapter.units(item, LOCATION, SUBLOCATION)] == [mine]
        # One refused part_id search, then location searches only.
        assert sb.faults.counts == {} and sb.requests["GET /api/v2/{token}/inventory_units/search"] == 3


async def test_the_adapter_keeps_to_thirty_calls_a_minute(site) -> None:
    adapter, item, unit = await ready(site)  # 2 calls
    async with opened(adapter):
        for _ in range(28):
            await adapter.unit(item, unit.id)
        with pytest.raises(RateLimitedError) as caught:
            await adapter.unit(item, unit.id)
        assert caught.value.retry_after and caught.value.retry_after > 2
    assert "429" not in site.faults.counts, "the adapter stopped itself before Aligni had to"


async def test_aligni_429s_beyond_its_budget(site) -> None:
    adapter, item, unit = await ready(site, rate_per_minute=1000)  # a limiter that does not know the budget
    async with opened(adapter):
        with pytest.raises(RateLimitedError) as caught:
            for _ in range(40):
                await adapter.unit(item, unit.id)
        assert caught.value.status == 429 and caught.value.retry_after
    assert site.faults.counts.get("429") == 1


async def test_a_consumption_waits_for_budget_for_all_three_calls(site) -> None:
    adapter, item, unit = await ready(site)
    async with opened(adapter):
        for _ in range(26):  # 28 of 30 spent: a consumption now could not read its unit back
            await adapter.unit(item, unit.id)
        with pytest.raises(RateLimitedError, match="rate budget"):
            await adapter.consume(item, unit, Decimal(1))
    assert site.quantity(unit.id) == 10 and site.adjust_count == 0


async def test_check_names_the_places_it_found(site) -> None:
    site.add_unit(sku(), 1, location=LOCATION, sublocation=SUBLOCATION)
    async with opened(AligniLedger(config_for(site), AdapterContext(merchant="ct"))) as adapter:
        text = await adapter.check(LOCATION, SUBLOCATION)
        assert "1 parts" in text and f"{LOCATION} - {SUBLOCATION}" in text
        assert await adapter.check()  # the token alone
        with pytest.raises(ConfigurationError, match="no inventory unit at 'Main Warehouse - Finished Good'.*Finished Goods"):
            await adapter.check(LOCATION, "Finished Good")


async def test_a_wrong_token_is_a_configuration_error(site) -> None:
    async with opened(AligniLedger(config_for(site, api_token="not-the-token"), AdapterContext(merchant="ct"))) as adapter:
        with pytest.raises(ConfigurationError, match="refused the API token"):
            await adapter.check()


async def test_stock_over_many_pages(site) -> None:
    names = [sku() for _ in range(6)]
    for i in range(60):
        site.add_unit(names[i % 6], i + 1, location=LOCATION, sublocation=SUBLOCATION if i % 5 else OTHER)
    site.faults.rate_limit_per_minute = 0
    async with opened(AligniLedger(config_for(site, per_page=7), AdapterContext(merchant="ct"))) as adapter:
        levels = {lv.sku: lv.on_hand for lv in await adapter.stock_levels(LOCATION, SUBLOCATION)}
    expected = {n: 0 for n in names}
    for i in range(60):
        if i % 5:
            expected[names[i % 6]] += i + 1
    assert levels == expected
    # Searched by the place's label: the 48 units there, ceil(48 / 7) pages.
    assert site.requests["GET /api/v2/{token}/inventory_units/search"] == 7
    assert site.requests["GET /api/v2/{token}/part"] == 1  # 6 parts fit in one page of 7


async def test_the_token_never_reaches_a_record_an_error_or_a_log_line(caplog) -> None:
    secret = token()
    with served(AligniSandbox(secret, adjust_mode="absolute", echo_path_in_errors=True)) as sb:
        records: list[CallRecord] = []
        context = AdapterContext(merchant="ct", on_call=records.append, redactor=Redactor())
        errors: list[VendorError] = []
        caplog.set_level(logging.DEBUG)  # every logger: the HTTP stack's (httpx, aiohttp) included
        adapter, item, unit = await ready(sb, context=context)
        async with opened(adapter):
            with pytest.raises(PermanentError) as refused:  # a 422 whose body repeats the URL path
                await adapter.consume(item, unit, Decimal(1))
            errors.append(refused.value)
            sb.faults.script.append({"method": "GET", "path": f"/api/v2/{secret}/parts/", "status": "reset"})
            sb.faults.script += [{"method": "GET", "path": f"/api/v2/{secret}/parts/", "status": 503}] * 3
            with pytest.raises(VendorError) as failed:
                await adapter.unit(item, unit.id)
            errors.append(failed.value)
        other = secret[:-1] + "X"  # a token Aligni does not know: its 401 repeats it in the path
        async with opened(AligniLedger(config_for(sb, api_token=other), context)) as wrong:
            with pytest.raises(ConfigurationError) as denied:  # a 401 whose body repeats the path
                await wrong.check()
            errors.append(denied.value)
    assert len(records) >= 8 and any(r.status == 422 for r in records) and any(r.status == 401 for r in records)
    assert any("***" in r.url for r in records)
    for r in records:
        assert secret not in repr(r) and other not in repr(r), r
    for err in errors:
        for t in (secret, other):
            assert t not in str(err) and t not in repr(err) and t not in err.message
        assert "/api/v2/***/" in str(err) or err.status in (None, 503), err
    for line in caplog.records:
        assert secret not in line.getMessage() and other not in line.getMessage()


async def test_the_demo_kit_serves_the_demo_catalog() -> None:
    kit = AligniKit(unit_selection="lot_code")
    block = kit.start()
    try:
        assert {k: block[k] for k in ("adapter", "location", "sublocation", "unit_selection", "consume_on")} == {
            "adapter": "aligni", "location": "Main Warehouse", "sublocation": "Finished Goods",
            "unit_selection": "lot_code", "consume_on": ["order_ship", "confirmed"],
        }
        from adapters.ledger import split_ledger_block

        engine, own = split_ledger_block(block)
        async with opened(AligniLedger(own, AdapterContext(merchant="demo"))) as adapter:
            assert "inventory units at Main Warehouse - Finished Goods" in await adapter.check(engine["location"], engine["sublocation"])
            products = ("BONE-5LB", "TREAT", "LEASH-RED", "LEASH-BLUE", "BOWL-L", "COLLAR-M")
            items = await adapter.find_items(products)
            assert set(items) == set(products)
            levels = {lv.sku: (lv.on_hand, lv.available) for lv in await adapter.stock_levels(engine["location"], engine["sublocation"])}
            assert set(levels) == set(products), "components and other places are not finished goods"
            assert levels["BONE-5LB"] == (125, 120) and levels["TREAT"] == (200, 180)
            assert {sku: Decimal(on_hand) for sku, (on_hand, _) in levels.items()} == kit.stock()
    finally:
        kit.stop()
