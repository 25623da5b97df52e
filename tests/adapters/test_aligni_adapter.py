"""The Aligni ledger adapter against respx: request shapes, XML reading, paging, errors, redaction.

Aligni publishes no machine-readable spec, so the shapes are checked against its documented
examples (api.aligni.com/v2/part.html, /v2/inventory_units.html, /v2/inventory_units/search.html)
and the research notes (../shared/research/changes-aligni-peers.md, section 1); the XML answers
in tests/fixtures/aligni follow those examples.
"""

from __future__ import annotations

import json
import logging
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
import respx
from pydantic import ValidationError

from adapters.aligni import AligniConfig, AligniLedger
from adapters.aligni import adapter as adapter_module
from adapters.base import AdapterContext
from adapters.http import CallRecord
from adapters.ledger import InsufficientInventoryError, LedgerItem, LedgerUnit, UnitChangedError
from connector.errors import (
    ConfigurationError,
    InDoubtError,
    PermanentError,
    RateLimitedError,
    TransientError,
    VendorError,
)
from connector.redact import Redactor

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "aligni"
ROOT = "https://acme.aligni.com"
XML = "application/xml"


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def xml(body: bytes | str, status: int = 200, pagination: dict | None = None, **headers: str) -> httpx.Response:
    h = {"Content-Type": "application/xml; charset=utf-8", **headers}
    if pagination is not None:
        h["X-Pagination"] = json.dumps(pagination)
    return httpx.Response(status, content=body if isinstance(body, bytes) else body.encode(), headers=h)


def paging(page: int, pages: int, per_page: int = 100) -> dict:
    return {"total_entries": pages * per_page, "total_pages": pages, "per_page": per_page, "current_page": page,
            "first_page": page == 1, "last_page": page == pages, "previous_page": page - 1 or None,
            "next_page": page + 1 if page < pages else None, "out_of_range": False}


def unit_xml(uid: str = "214", quantity: str = "40", available: str | None = None) -> str:
    return (f"<inventory_unit><id>{uid}</id><quantity>{quantity}</quantity>"
            f"<quantity_available>{available or quantity}</quantity_available>"
            "<inventory_location>Main Warehouse - Finished Goods</inventory_location>"
            "<lot_code>BN-2601</lot_code><created_at>2026-01-05T09:00:00+00:00</created_at></inventory_unit>")


@pytest.fixture
def token() -> str:
    return f"tok_{uuid.uuid4().hex[:20]}"  # a fresh credential: the limiter is per token, process-wide


@pytest.fixture
def api(token) -> str:
    return f"{ROOT}/api/v2/{token}"


@pytest.fixture
def router(api):
    with respx.mock(base_url=api, assert_all_called=False, using="httpx") as r:
        yield r


@pytest.fixture
def records() -> list[CallRecord]:
    return []


@pytest.fixture
async def adapter(router, token, records):
    a = AligniLedger({"adapter": "aligni", "site": "acme", "api_token": token},
                     AdapterContext(merchant="acme", on_call=records.append, redactor=Redactor()))
    yield a
    await a.aclose()


ITEM = LedgerItem(sku="BONE-5LB", item_id="801", description="TJ's Doggie Bones (5 lbs.)")
UNIT = LedgerUnit(id="214", item_id="801", quantity=Decimal(40), quantity_available=Decimal(35))


def params(call) -> dict[str, str]:
    return dict(call.request.url.params)


# -- config -----------------------------------------------------------------------------------


def test_config_names_the_mistakes() -> None:
    ok = AligniConfig(site=" Acme ", api_token="oid3vLgynoy_Yl1gZkrgkLEq3J")
    assert (ok.site, ok.root, ok.rate_per_minute, ok.sku_field) == ("acme", "https://acme.aligni.com", 30, "partnumber")
    with pytest.raises(ValidationError, match="subdomain only"):
        AligniConfig(site="acme.aligni.com", api_token="oid3vLgynoy_Yl1gZkrgkLEq3J")
    with pytest.raises(ValidationError, match="no spaces"):
        AligniConfig(site="acme", api_token="oid3v Lgynoy_Yl1g")
    with pytest.raises(ValidationError, match="at least 8"):
        AligniConfig(site="acme", api_token="short")
    with pytest.raises(ValidationError, match="https://"):
        AligniConfig(site="acme", api_token="oid3vLgynoy_Yl1gZkrgkLEq3J", base_url="acme.aligni.com")
    with pytest.raises(ValidationError, match="location"):  # the engine's keys are not the adapter's
        AligniConfig(site="acme", api_token="oid3vLgynoy_Yl1gZkrgkLEq3J", location="Main Warehouse")
    odd = AligniConfig(site="acme", api_token="a/b+c=d%e")
    assert odd.token_segment == "a%2Fb%2Bc%3Dd%25e" and set(odd.secrets()) == {"a/b+c=d%e", "a%2Fb%2Bc%3Dd%25e"}


# -- request shapes ---------------------------------------------------------------------------


async def test_calls_are_xml_with_the_token_in_the_path(adapter, router, token) -> None:
    route = router.get("/part").mock(return_value=xml(fixture("parts-page-1.xml"), pagination={**paging(1, 1), "total_entries": 3}))
    text = await adapter.check()
    assert text == "Aligni site acme at https://acme.aligni.com (API v2), 3 parts"
    request = route.calls.last.request
    assert request.url.path == f"/api/v2/{token}/part" and request.url.host == "acme.aligni.com"
    assert params(route.calls.last) == {"page": "1", "per_page": "1"}
    assert (request.headers["Accept"], request.headers["Content-Type"]) == (XML, XML)
    assert not request.content


async def test_parts_are_read_page_by_page_by_x_pagination(adapter, router) -> None:
    route = router.get("/part").mock(side_effect=[
        xml(fixture("parts-page-1.xml"), pagination=paging(1, 2, 2)),
        xml(fixture("parts-page-2.xml"), pagination=paging(2, 2, 2)),
    ])
    found = await adapter.find_items(["TREAT", "BONE-5LB", " BONE-5LB ", "C0603C104K4RACTU", "nope"])
    assert {k: v.item_id for k, v in found.items()} == {"TREAT": "802", "BONE-5LB": "801", " BONE-5LB ": "801"}
    assert found["BONE-5LB"] == ITEM
    assert [params(c) for c in route.calls] == [{"page": "1", "per_page": "100"}, {"page": "2", "per_page": "100"}]


async def test_without_the_header_full_pages_mean_more(router, token) -> None:
    page = "<parts>" + "".join(f"<part><id>{i}</id><partnumber>P{i}</partnumber></part>" for i in range(2)) + "</parts>"
    last = "<parts><part><id>9</id><partnumber>P9</partnumber></part></parts>"
    route = router.get("/part").mock(side_effect=[xml(page), xml(page.replace("P0", "Q0").replace("P1", "Q1").replace("<id>0", "<id>5").replace("<id>1", "<id>6")), xml(last)])
    a = AligniLedger({"adapter": "aligni", "site": "acme", "api_token": token, "per_page": 2}, AdapterContext(merchant="acme"))
    try:
        assert set(await a.find_items(["P0", "Q1", "P9"])) == {"P0", "Q1", "P9"}
    finally:
        await a.aclose()
    assert [params(c)["page"] for c in route.calls] == ["1", "2", "3"]


async def test_pagination_that_goes_backwards_is_refused(adapter, router) -> None:
    router.get("/part").mock(return_value=xml(fixture("parts-page-1.xml"), pagination={**paging(1, 2), "next_page": 1}))
    with pytest.raises(TransientError, match="back to page 1"):
        await adapter.find_items(["BONE-5LB"])


async def test_the_part_list_is_cached_and_refreshed_by_what_changed(adapter, router, monkeypatch) -> None:
    route = router.get("/part").mock(side_effect=[
        xml(fixture("parts-page-1.xml"), pagination=paging(1, 1)),
        xml(fixture("parts-page-2.xml"), pagination=paging(1, 1)),
        xml("<parts/>", pagination=paging(1, 1)),
    ])
    assert set(await adapter.find_items(["BONE-5LB"])) == {"BONE-5LB"}
    read_at = datetime.now(UTC)
    assert set(await adapter.find_items(["BONE-5LB"])) == {"BONE-5LB"} and route.call_count == 1, "cached"
    # Within a minute of the last read, a SKU not in the cache costs no call...
    assert await adapter.find_items(["TREAT"]) == {} and route.call_count == 1
    # ...later it reads the parts changed since the last read (with slack for clocks), once.
    monkeypatch.setattr(adapter_module, "DELTA_EVERY_S", 0.0)
    assert set(await adapter.find_items(["TREAT"])) == {"TREAT"} and route.call_count == 2
    since = datetime.fromisoformat(params(route.calls[1])["filter[updated_on][gte]"])
    assert abs((read_at - adapter_module.DELTA_SLACK - since).total_seconds()) < 5
    assert await adapter.find_items(["NOPE"]) == {} and route.call_count == 3
    assert set(await adapter.find_items(["BONE-5LB", "TREAT"])) == {"BONE-5LB", "TREAT"}, "a refresh keeps what it had"
    monkeypatch.setattr(adapter_module, "DELTA_EVERY_S", 60.0)
    assert await adapter.find_items(["NOPE"]) == {} and route.call_count == 3, "an unknown SKU cannot spend the budget"


async def test_the_whole_part_list_is_read_again_after_parts_refresh_s(adapter, router) -> None:
    route = router.get("/part").mock(side_effect=[
        xml(fixture("parts-page-1.xml"), pagination=paging(1, 1)),
        xml(fixture("parts-page-2.xml"), pagination=paging(1, 1)),
    ])
    assert set(await adapter.find_items(["BONE-5LB"])) == {"BONE-5LB"}
    adapter._full_at -= adapter.config.parts_refresh_s  # an hour later
    assert await adapter.find_items(["BONE-5LB"]) == {}, "a part gone from Aligni is forgotten"
    assert "filter[updated_on][gte]" not in params(route.calls[1])


async def test_a_sku_can_be_the_manufacturer_part_number(router, token) -> None:
    router.get("/part").mock(return_value=xml(fixture("parts-page-1.xml"), pagination=paging(1, 1)))
    a = AligniLedger({"adapter": "aligni", "site": "acme", "api_token": token, "sku_field": "manufacturer_pn"},
                     AdapterContext(merchant="acme"))
    try:
        found = await a.find_items(["TJ-DB-5", "BONE-5LB"])
    finally:
        await a.aclose()
    assert {k: v.item_id for k, v in found.items()} == {"TJ-DB-5": "801"}


async def test_a_sku_on_two_parts_is_an_error_naming_them(adapter, router) -> None:
    twice = "<parts><part><id>5</id><partnumber>X</partnumber></part><part><id>6</id><partnumber>X</partnumber></part></parts>"
    router.get("/part").mock(return_value=xml(twice, pagination=paging(1, 1)))
    with pytest.raises(PermanentError, match="'X' is the partnumber of 2 Aligni parts \\(ids 5, 6\\)"):
        await adapter.find_items(["X"])


async def test_units_are_searched_by_part_and_filtered_to_the_place(adapter, router) -> None:
    route = router.get("/inventory_units/search").mock(return_value=xml(fixture("units-search.xml"), pagination=paging(1, 1)))
    units = await adapter.units(ITEM, "Main Warehouse", "Finished Goods")
    assert params(route.calls.last) == {"field0": "part_id", "comparison0": "contains", "term0": "801", "page": "1", "per_page": "100"}
    # 216 is on QA hold, 217 another part (1801 contains 801), 218 in "Main Warehouse Annex".
    assert [u.id for u in units] == ["214", "215"]
    first = units[0]
    assert first.model_dump() == {
        "id": "214", "item_id": "801", "quantity": Decimal(40), "quantity_available": Decimal(35),
        "location": "Main Warehouse", "sublocation": "Finished Goods", "bin": "Top Shelf", "lot_code": "BN-2601",
        "datecode": "2601", "serial": "", "created_at": datetime(2026, 1, 5, 9, tzinfo=UTC),
    }
    assert units[1].quantity == Decimal("0.50") and units[1].created_at is None
    assert [u.id for u in await adapter.units(ITEM, "main warehouse")] == ["214", "215", "216"]
    assert [u.id for u in await adapter.units(ITEM, "Main Warehouse", "5")] == ["216"], "a sublocation by Aligni's id"


async def test_a_refused_part_search_falls_back_to_the_location(adapter, router) -> None:
    route = router.get("/inventory_units/search").mock(side_effect=lambda request: (
        xml(fixture("errors-422.xml").replace(b"Quantity available may not be negative", b"Unknown field"), 422)
        if request.url.params.get("field0") == "part_id"
        else xml(fixture("units-search.xml"), pagination=paging(1, 1))))
    assert [u.id for u in await adapter.units(ITEM, "Main Warehouse", "Finished Goods")] == ["214", "215"]
    assert [u.id for u in await adapter.units(ITEM, "Main Warehouse", "Finished Goods")] == ["214", "215"]
    assert [params(c)["field0"] for c in route.calls] == ["part_id", "inventory_location", "inventory_location"]
    assert params(route.calls.last)["term0"] == "Main Warehouse - Finished Goods"


async def test_reading_one_unit(adapter, router) -> None:
    route = router.get("/parts/801/inventory_units/214").mock(return_value=xml(fixture("unit-show.xml")))
    router.get("/parts/801/inventory_units/999").mock(return_value=xml("<errors><error>Not found</error></errors>", 404))
    unit = await adapter.unit(ITEM, "214")
    assert unit is not None and (unit.item_id, unit.quantity, unit.quantity_available, unit.bin) == ("801", 40, 35, "Top Shelf")
    assert not route.calls.last.request.url.params
    assert await adapter.unit(ITEM, "999") is None


# -- consumption ------------------------------------------------------------------------------


def consume_routes(router, before: str = "40", after: str = "38", put: httpx.Response | None = None):
    show = router.get("/parts/801/inventory_units/214").mock(side_effect=[
        xml(unit_xml(quantity=before, available=str(Decimal(before) - 5))), xml(unit_xml(quantity=after))])
    adjust = router.put("/parts/801/inventory_units/214/adjust_quantity").mock(return_value=put or xml(unit_xml(quantity=after)))
    return show, adjust


async def test_consume_reads_adjusts_by_a_signed_amount_and_reads_back(adapter, router) -> None:
    show, adjust = consume_routes(router)
    result = await adapter.consume(ITEM, UNIT, Decimal("2.00"), "UltraCart order DEMO-0001 shipped")
    assert (result.quantity_before, result.quantity, result.quantity_after, result.already_applied) == (40, 2, 38, False)
    assert show.call_count == 2 and adjust.call_count == 1
    request = adjust.calls.last.request
    assert request.method == "PUT" and request.url.path.endswith("/parts/801/inventory_units/214/adjust_quantity")
    assert params(adjust.calls.last) == {"inventory_unit[quantity]": "-2",
                                         "inventory_unit[inventory_record][comment]": "UltraCart order DEMO-0001 shipped"}
    assert not request.content and request.headers["Content-Type"] == XML


async def test_fractions_are_sent_plainly(adapter, router) -> None:
    _, adjust = consume_routes(router, after="39.75")
    await adapter.consume(ITEM, UNIT, Decimal("0.250"))
    assert params(adjust.calls.last) == {"inventory_unit[quantity]": "-0.25"}


@pytest.mark.parametrize("failure", [httpx.Response(500), httpx.Response(503), httpx.ReadTimeout("slow"), httpx.RemoteProtocolError("cut")])
async def test_a_failed_adjustment_is_in_doubt_and_never_retried(adapter, router, failure) -> None:
    router.get("/parts/801/inventory_units/214").mock(return_value=xml(unit_xml()))
    adjust = router.put("/parts/801/inventory_units/214/adjust_quantity")
    adjust.mock(side_effect=failure) if isinstance(failure, Exception) else adjust.mock(return_value=failure)
    with pytest.raises(InDoubtError, match="may or may not have happened.*read the unit back"):
        await adapter.consume(ITEM, UNIT, Decimal(2))
    assert adjust.call_count == 1


async def test_a_read_back_that_fails_leaves_the_consumption_in_doubt(adapter, router) -> None:
    show = router.get("/parts/801/inventory_units/214").mock(side_effect=[xml(unit_xml())] + [httpx.Response(503)] * 3)
    adjust = router.put("/parts/801/inventory_units/214/adjust_quantity").mock(return_value=xml(unit_xml(quantity="38")))
    with pytest.raises(InDoubtError, match="accepted taking 2 off .* could not be read back.*expected quantity 38"):
        await adapter.consume(ITEM, UNIT, Decimal(2))
    assert adjust.call_count == 1 and show.call_count == 4


async def test_a_changed_unit_is_not_adjusted(adapter, router) -> None:
    router.get("/parts/801/inventory_units/214").mock(return_value=xml(unit_xml(quantity="39")))
    adjust = router.put("/parts/801/inventory_units/214/adjust_quantity")
    with pytest.raises(UnitChangedError, match="quantity 40 then, 39 now"):
        await adapter.consume(ITEM, UNIT, Decimal(2))
    assert adjust.call_count == 0


async def test_more_than_available_is_never_asked(adapter, router) -> None:
    router.get("/parts/801/inventory_units/214").mock(return_value=xml(unit_xml(quantity="40", available="3")))
    adjust = router.put("/parts/801/inventory_units/214/adjust_quantity")
    with pytest.raises(InsufficientInventoryError, match="4 asked, 3 available \\(40 on hand\\); nothing consumed"):
        await adapter.consume(ITEM, UNIT, Decimal(4))
    assert adjust.call_count == 0


async def test_aligni_refusing_the_adjustment_says_why(adapter, router) -> None:
    consume_routes(router, put=xml(fixture("errors-422.xml"), 422))
    with pytest.raises(PermanentError) as caught:
        await adapter.consume(ITEM, UNIT, Decimal(2))
    assert caught.value.status == 422
    assert str(caught.value).endswith("had 40 on hand and 35 available: Quantity available may not be negative")


# -- answers the adapter refuses --------------------------------------------------------------


async def test_dtds_and_entities_are_refused_unparsed(adapter, router) -> None:
    router.get("/inventory_units/search").mock(return_value=xml(fixture("entity-expansion.xml")))
    with pytest.raises(PermanentError, match="declares a DTD or entities; refused"):
        await adapter.units(ITEM, "Main Warehouse")


async def test_an_answer_that_is_not_xml_is_transient(adapter, router) -> None:
    router.get("/inventory_units/search").mock(return_value=httpx.Response(200, text="<html><body>Gateway"))
    with pytest.raises(TransientError, match="not XML"):
        await adapter.units(ITEM, "Main Warehouse")


async def test_a_quantity_that_is_not_a_number_is_named(adapter, router) -> None:
    router.get("/inventory_units/search").mock(return_value=xml(
        "<inventory_units><inventory_unit><id>7</id><part_id>801</part_id><quantity>lots</quantity></inventory_unit></inventory_units>"))
    with pytest.raises(PermanentError, match="inventory unit 7 quantity is not a number: 'lots'"):
        await adapter.units(ITEM, "Main Warehouse")


# -- status -> error class --------------------------------------------------------------------


async def test_429_is_rate_limited_with_retry_after(adapter, router) -> None:
    router.get("/inventory_units/search").mock(return_value=httpx.Response(429, headers={"Retry-After": "30"}))
    with pytest.raises(RateLimitedError) as caught:
        await adapter.units(ITEM, "Main Warehouse")
    assert caught.value.retry_after == 30


async def test_a_revoked_token_is_a_configuration_error(adapter, router) -> None:
    router.get("/part").mock(return_value=xml("<errors><error>Invalid API token</error></errors>", 401))
    with pytest.raises(ConfigurationError, match="refused the API token.*Invalid API token"):
        await adapter.check()


async def test_check_names_the_places_seen_when_the_location_is_wrong(adapter, router) -> None:
    router.get("/part").mock(return_value=xml(fixture("parts-page-1.xml"), pagination=paging(1, 1)))
    search = router.get("/inventory_units/search").mock(return_value=xml(fixture("units-search.xml")))
    with pytest.raises(ConfigurationError) as caught:
        await adapter.check("Main Warehouse", "Finished Good")
    assert str(caught.value).endswith(
        "no inventory unit at 'Main Warehouse - Finished Good' in Aligni; units found at: Main Warehouse - Finished Goods,"
        " Main Warehouse - QA Hold, Main Warehouse Annex - Finished Goods, main warehouse  -  finished goods")
    # The place's own label first, then the whole location to say what is there.
    assert [(params(c)["field0"], params(c)["term0"]) for c in search.calls] == [
        ("inventory_location", "Main Warehouse - Finished Good"), ("inventory_location", "Main Warehouse")]


# -- stock ------------------------------------------------------------------------------------


async def test_stock_is_summed_per_sku_and_rounded_down(adapter, router) -> None:
    search = router.get("/inventory_units/search").mock(return_value=xml(fixture("units-search.xml"), pagination=paging(1, 1)))
    parts = router.get("/part").mock(return_value=xml(fixture("parts-page-1.xml"), pagination=paging(1, 1)))
    levels = await adapter.stock_levels("Main Warehouse", "Finished Goods")
    assert [lv.model_dump() for lv in levels] == [
        # 214 (40, 35 available) + 215 (0.50): part 1801 is in no page of the part list, so it has no SKU.
        {"sku": "BONE-5LB", "warehouse_id": "Main Warehouse - Finished Goods", "on_hand": 40, "available": 35},
    ]
    assert params(search.calls.last) == {"field0": "inventory_location", "comparison0": "contains",
                                         "term0": "Main Warehouse - Finished Goods", "page": "1", "per_page": "100"}
    assert parts.call_count == 1


# -- the token never leaks --------------------------------------------------------------------


async def test_the_token_is_masked_in_records_errors_and_log_lines(router, api, token, caplog) -> None:
    records: list[CallRecord] = []
    a = AligniLedger({"adapter": "aligni", "site": "acme", "api_token": token},
                     AdapterContext(merchant="acme", on_call=records.append, redactor=Redactor()))
    # A framework's error page repeats the full URL; a transport error may carry it too.
    router.get("/part").mock(return_value=httpx.Response(404, text=f"<html><h1>No route matches [GET] {api}/part</h1></html>"))
    router.get("/inventory_units/search").mock(side_effect=httpx.ConnectError(f"cannot reach {api}/inventory_units/search"))
    router.put("/parts/801/inventory_units/214/adjust_quantity").mock(side_effect=httpx.DecodingError(f"bad gzip from {api}"))
    router.get("/parts/801/inventory_units/214").mock(return_value=xml(unit_xml()))
    caplog.set_level(logging.DEBUG)  # every logger: the HTTP stack's (httpx, aiohttp) included
    errors: list[Exception] = []
    try:
        for call in (a.check(), a.units(ITEM, "Main Warehouse"), a.consume(ITEM, UNIT, Decimal(1))):
            with pytest.raises(VendorError) as caught:
                await call
            errors.append(caught.value)
    finally:
        await a.aclose()
    assert [type(e) for e in errors] == [PermanentError, TransientError, InDoubtError]
    assert "No route matches [GET] https://acme.aligni.com/api/v2/***/part" in str(errors[0])
    for err in errors:
        assert token not in str(err) and token not in repr(err)
    assert records and all(token not in repr(r) for r in records)
    assert any("/api/v2/***/" in r.url for r in records)
    assert all(token not in rec.getMessage() for rec in caplog.records)
