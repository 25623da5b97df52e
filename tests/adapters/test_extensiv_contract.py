"""The shared warehouse contract, run for Extensiv against ExtensivSandbox on loopback (real HTTP).

Extensiv publishes no machine-readable spec, so there is no OpenAPI document in
../shared/specs to validate this traffic against; test_extensiv_adapter.py checks the request
shapes against the research facts instead.
"""

from __future__ import annotations

import uuid

import httpx
import pytest

from adapters.extensiv import ExtensivAdapter
from connector.errors import ConfigurationError, InDoubtError, PermanentError
from connector.sandbox.extensiv import ExtensivKit, ExtensivSandbox
from tests.adapters.contract import WarehouseContract, make_order
from tests.support.warehouse import KitDriver, fresh_context, opened, served

MERCHANT = "ct"  # the contract's references are "ct-<hex>": `{merchant}-{id}` for merchant "ct"

@pytest.fixture
def sandbox():
    with served(ExtensivSandbox(client_id="ct-client", products=["SKU-1", "SKU-2", "SKU-3"])) as sb:
        yield sb



def config_for(sandbox: ExtensivSandbox, **overrides) -> dict:
    return {
        "adapter": "extensiv",
        "base_url": sandbox.url,
        "client_id": sandbox.client_id,
        "client_secret": sandbox.client_secret,
        "tpl": sandbox.tpl,  # without braces: the adapter adds them
        "user_login_id": sandbox.user_login_id,
        "customer_id": sandbox.customer_id,
        "facility_id": 1,
        **overrides,
    }


@pytest.fixture
async def adapter(sandbox):
    async with opened(ExtensivAdapter(config_for(sandbox), fresh_context(MERCHANT))) as adapter:
        yield adapter


@pytest.fixture
def warehouse(sandbox) -> KitDriver:
    return KitDriver(ExtensivKit(sandbox, ("UPS|Ground",), ("SKU-1", "SKU-2")))


class TestExtensivContract(WarehouseContract):
    """Extensiv keeps the shared warehouse contract."""

    async def test_a_repeat_is_found_before_anything_is_sent(self, adapter, sandbox, warehouse) -> None:
        order, first = await self.created(adapter, warehouse)
        again = await adapter.create_order(order)
        assert again.already_existed and again.warehouse_order_id == first.warehouse_order_id
        assert sandbox.create_attempts[order.reference] == 1  # the lookup answered; no second POST
        assert sandbox.create_count == 1

    async def test_without_unique_references_a_lost_reply_still_creates_once(self, adapter, sandbox, warehouse) -> None:
        # The customer option that makes Extensiv refuse a repeated referenceNum is off: only
        # the lookup stands between a resend and a second order at the packing station.
        sandbox.unique_references = False
        order = make_order(warehouse, reference=f"{MERCHANT}-{uuid.uuid4().hex[:8]}")
        warehouse.fail_next("create", 502, after=True)
        with pytest.raises(InDoubtError):
            await adapter.create_order(order)
        result = await adapter.create_order(order)
        assert result.already_existed
        assert warehouse.orders_created(order.reference) == 1

    async def test_an_expired_token_is_replaced_once(self, adapter, sandbox, warehouse) -> None:
        await adapter.check()
        issued = sandbox.tokens_issued
        sandbox.expire_tokens()  # Extensiv revoked it, or it lapsed before our schedule said
        order, result = await self.created(adapter, warehouse)
        assert result.warehouse_order_id and sandbox.tokens_issued == issued + 1
        assert warehouse.orders_created(order.reference) == 1

    async def test_cancelled_and_other_channel_orders_are_not_reported(self, adapter, sandbox, warehouse) -> None:
        cancelled, _ = await self.created(adapter, warehouse)
        sandbox.cancel(cancelled.reference)
        foreign = sandbox.create({
            "customerIdentifier": {"id": sandbox.customer_id}, "facilityIdentifier": {"id": 1},
            "referenceNum": "AMZ-114-0000001", "shipTo": {"companyName": "X", "address1": "1 Way", "city": "Reno", "country": "US"},
            "orderItems": [{"itemIdentifier": {"sku": "SKU-1"}, "qty": 1}],
        })
        sandbox.ship_all()
        refs = {s.reference for s in await adapter.shipments_since(self.since())}
        assert cancelled.reference not in refs and foreign["ReferenceNum"] not in refs

    async def test_unknown_sku_is_refused_with_extensivs_hint(self, adapter, warehouse) -> None:
        order = make_order(warehouse, reference=f"{MERCHANT}-{uuid.uuid4().hex[:8]}")
        order.lines[0].sku = "NOPE-1"
        with pytest.raises(PermanentError, match="NOPE-1"):
            await adapter.create_order(order)

    @pytest.mark.parametrize("field, value", [("client_secret", "wrong"), ("tpl", "0b9c2f3e-1111-4a4a-9e9e-000000000000"), ("user_login_id", 7)])
    async def test_bad_credentials_are_a_configuration_error(self, sandbox, field, value) -> None:
        adapter = ExtensivAdapter(config_for(sandbox, **{field: value}), fresh_context(MERCHANT))
        try:
            with pytest.raises(ConfigurationError):
                await adapter.check()
        finally:
            await adapter.aclose()

    @pytest.mark.parametrize("field, value, match", [("customer_id", 99, "customer 99"), ("facility_id", 5, "facility 5")])
    async def test_check_names_a_wrong_customer_or_facility(self, sandbox, field, value, match) -> None:
        adapter = ExtensivAdapter(config_for(sandbox, **{field: value}), fresh_context(MERCHANT))
        try:
            with pytest.raises(ConfigurationError, match=match):
                await adapter.check()
        finally:
            await adapter.aclose()


class TestExtensivSandbox:
    """What the demo, integration tests and bench rely on beyond the contract."""

    async def test_lists_omit_details_unless_asked(self, adapter, sandbox, warehouse) -> None:
        order, _ = await WarehouseContract().created(adapter, warehouse)
        token = await adapter.tokens.token()
        async with httpx.AsyncClient(base_url=sandbox.url, headers={"Authorization": f"Bearer {token}"}) as client:
            rql = f'ReferenceNum=="{order.reference}"'
            bare = (await client.get("/orders", params={"rql": rql})).json()["ResourceList"][0]
            full = (await client.get("/orders", params={"rql": rql, "detail": "All"})).json()["ResourceList"][0]
            bad = await client.get("/orders", params={"rql": "ReadOnly.Nonsense==1"})
        assert "OrderItems" not in bare and "Packages" not in bare["ReadOnly"]
        assert full["OrderItems"] and full["ReadOnly"]["Packages"] == []
        assert bad.status_code == 400 and bad.json()["ErrorCode"] == "InvalidRql"

    async def test_shipping_moves_stock_and_state_reports_it(self, adapter, sandbox, warehouse) -> None:
        warehouse.set_stock("SKU-1", "1", available=10)
        order, _ = await WarehouseContract().created(adapter, warehouse, quantities=(3,))
        assert sandbox.stock["SKU-1"][1] == {"available": 7, "on_hand": 10, "allocated": 3}
        warehouse.ship(order.reference)
        assert sandbox.stock["SKU-1"][1] == {"available": 7, "on_hand": 7, "allocated": 0}
        async with httpx.AsyncClient(base_url=sandbox.url) as client:
            state = (await client.get("/_sandbox/state")).json()
        assert state["create_count"] == 1 and state["tokens_issued"] == 1
        assert state["requests"]["POST /orders"] == 1
