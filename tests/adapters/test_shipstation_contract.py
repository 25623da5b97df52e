"""The shared warehouse contract, run for ShipStation v1 against ShipStationSandbox on loopback
(real HTTP).

There is no official v1 spec file: every request the adapter sends, and the paging fields of
every list the sandbox answers, are checked against the documented v1 facts instead
(`ShipStationV1Facts`, see test_shipstation_adapter.py).
"""

from __future__ import annotations

import base64

import httpx
import pytest

from adapters.shipstation import ShipStationAdapter
from connector.errors import ConfigurationError, PermanentError, RateLimitedError
from connector.sandbox.shipstation import ShipStationKit, ShipStationSandbox, kit
from tests.adapters.contract import WarehouseContract, make_order
from tests.adapters.test_shipstation_adapter import ShipStationV1Facts
from tests.support.openapi import ValidatingTransport
from tests.support.warehouse import KitDriver, fresh_context, opened, served

MERCHANT = "ct"  # the contract's references are `ct-<hex>`: `{merchant}-{order id}`


@pytest.fixture
def sandbox():
    with served(ShipStationSandbox(api_key="ct-key", api_secret="ct-secret", products=["SKU-1", "SKU-2", "SKU-3"])) as sb:
        yield sb


def config_for(sandbox: ShipStationSandbox, **extra) -> dict:
    return {"adapter": "shipstation", "base_url": sandbox.url, "api_key": sandbox.api_key, "api_secret": sandbox.api_secret,
            "store_id": 310001, **extra}



@pytest.fixture
async def adapter(sandbox):
    transport = ValidatingTransport(ShipStationV1Facts(), responses=True)
    async with opened(ShipStationAdapter(config_for(sandbox), fresh_context(MERCHANT, transport=transport)), transport) as adapter:
        yield adapter


@pytest.fixture
def warehouse(sandbox) -> KitDriver:
    return KitDriver(ShipStationKit(sandbox, ("ups:ups_ground",), 310001, ("SKU-1", "SKU-2")))


class TestShipStationContract(WarehouseContract):
    """ShipStation v1 keeps the shared warehouse contract (no inventory: that test checks the flag)."""

    async def test_a_repeat_is_looked_up_not_sent(self, adapter, sandbox, warehouse) -> None:
        order, _ = await self.created(adapter, warehouse)
        again = await adapter.create_order(order)
        assert again.already_existed
        assert sandbox.create_attempts[order.reference] == 1  # the lookup answered: nothing resent
        assert (sandbox.create_count, sandbox.update_count) == (1, 0)

    async def test_a_blind_resend_only_updates_the_same_order(self, adapter, sandbox, warehouse) -> None:
        # What protects an order when the lookup is wrong (a race): ShipStation upserts by orderKey.
        order, first = await self.created(adapter, warehouse)
        async with httpx.AsyncClient(base_url=sandbox.url, headers=adapter.http.client.headers) as client:
            from adapters.shipstation import mapping

            reply = (await client.post("/orders/createorder", json=mapping.order_body(order, store_id=310001))).json()
        assert str(reply["orderId"]) == first.warehouse_order_id and reply["modifyDate"] != reply["createDate"]
        assert (sandbox.create_count, sandbox.update_count) == (1, 1)

    async def test_a_shipped_order_is_never_overwritten(self, adapter, sandbox, warehouse) -> None:
        order, first = await self.created(adapter, warehouse)
        warehouse.ship(order.reference)
        again = await adapter.create_order(order)
        assert again.already_existed and again.warehouse_order_id == first.warehouse_order_id
        assert sandbox.order(order.reference)["orderStatus"] == "shipped"
        assert sandbox.create_attempts[order.reference] == 1

    async def test_an_update_re_posts_the_same_order_with_the_new_address_and_items(self, adapter, sandbox, warehouse) -> None:
        order, first = await self.created(adapter, warehouse, quantities=(2, 1))
        with sandbox._lock:  # what a packer changed in ShipStation meanwhile: kept by the update
            sandbox.orders[int(first.warehouse_order_id)].update(orderStatus="on_hold", internalNotes="fragile")
        changed = self.edited(order)
        said = await adapter.update_order(changed, first.warehouse_order_id, address=True, lines=True)
        assert said == f"ShipStation order {first.warehouse_order_id}: ship-to address and items re-posted"
        held = sandbox.order(order.reference)
        assert str(held["orderId"]) == first.warehouse_order_id and (sandbox.create_count, sandbox.update_count) == (1, 1)
        assert (held["orderStatus"], held["internalNotes"]) == ("on_hold", "fragile")
        assert held["shipTo"]["street1"] == "99 Edited Avenue"
        assert [(i["sku"], i["quantity"]) for i in held["items"]] == [(line.sku, line.quantity) for line in changed.lines]

    async def test_an_update_of_a_cancelled_order_is_refused_and_sends_nothing(self, adapter, sandbox, warehouse) -> None:
        order, first = await self.created(adapter, warehouse)
        assert (await adapter.cancel_order(order.reference)).outcome.value == "cancelled"
        attempts = sandbox.create_attempts[order.reference]
        with pytest.raises(PermanentError, match="is cancelled: only orders awaiting payment or shipment, or on hold, can be updated"):
            await adapter.update_order(self.edited(order), first.warehouse_order_id, address=True, lines=False)
        assert sandbox.create_attempts[order.reference] == attempts

    async def test_order_lands_in_the_store_with_its_codes(self, adapter, sandbox, warehouse) -> None:
        order, _ = await self.created(adapter, warehouse)
        stored = sandbox.order(order.reference)
        assert (stored["carrierCode"], stored["serviceCode"], stored["advancedOptions"]["storeId"]) == ("ups", "ups_ground", 310001)
        assert stored["orderNumber"] == order.order.order_id

    async def test_an_unknown_service_is_refused(self, adapter, warehouse) -> None:
        from connector.errors import PermanentError

        order = make_order(warehouse).model_copy(update={"ship_method": "ups:ups_teleport"})
        assert "ups:ups_teleport" not in await adapter.known_ship_methods()
        with pytest.raises(PermanentError, match="ups_teleport"):
            await adapter.create_order(order)

    async def test_other_merchants_labels_are_not_read(self, adapter, sandbox, warehouse) -> None:
        other = ShipStationAdapter(config_for(sandbox), fresh_context("globex"))
        try:
            theirs = await other.create_order(make_order(warehouse, reference="globex-X1"))
        finally:
            await other.aclose()
        ours, _ = await self.created(adapter, warehouse)
        sandbox.ship_all()
        refs = {s.reference for s in await adapter.shipments_since(self.since())}
        assert refs == {ours.reference} and theirs.reference not in refs

    async def test_cancel_keeps_what_the_warehouse_changed(self, adapter, sandbox, warehouse) -> None:
        order, _ = await self.created(adapter, warehouse)
        with sandbox._lock:  # changed in ShipStation's screens after the hand-off
            stored = sandbox.orders[sandbox.by_key[order.reference]]
            stored.update(orderStatus="on_hold", holdUntilDate="2026-03-10T00:00:00.0000000", internalNotes="gift wrap",
                          serviceCode="ups_2nd_day_air")
        result = await adapter.cancel_order(order.reference)
        assert result.outcome.value == "cancelled"
        stored = sandbox.order(order.reference)
        assert stored["orderStatus"] == "cancelled"
        assert (stored["holdUntilDate"], stored["internalNotes"], stored["serviceCode"]) == (
            "2026-03-10T00:00:00.0000000", "gift wrap", "ups_2nd_day_air")
        assert [(i["sku"], i["quantity"]) for i in stored["items"]] == [(line.sku, line.quantity) for line in order.lines]
        assert (sandbox.create_count, sandbox.update_count) == (1, 1)
        assert sandbox.ship(order.reference) == []

    async def test_a_label_bought_between_the_read_and_the_re_post_is_too_late(self, adapter, sandbox, warehouse, monkeypatch) -> None:
        order, _ = await self.created(adapter, warehouse)
        read = adapter._order_record
        calls = []

        async def read_then_ship(reference):
            found = await read(reference)
            if not calls:
                sandbox.ship(order.reference)
            calls.append(reference)
            return found

        monkeypatch.setattr(adapter, "_order_record", read_then_ship)
        result = await adapter.cancel_order(order.reference)
        assert result.outcome.value == "too_late"
        assert f"is shipped: Order {order.order.order_id} is shipped and can no longer be updated." in result.reason
        assert sandbox.order(order.reference)["orderStatus"] == "shipped" and len(calls) == 2

    async def test_unknown_credentials_are_a_configuration_error(self, sandbox) -> None:
        adapter = ShipStationAdapter(config_for(sandbox, api_secret="wrong"), fresh_context(MERCHANT))
        try:
            with pytest.raises(ConfigurationError):
                await adapter.check()
        finally:
            await adapter.aclose()

    async def test_unknown_store_is_a_configuration_error(self, sandbox) -> None:
        adapter = ShipStationAdapter(config_for(sandbox, store_id=4), fresh_context(MERCHANT))
        try:
            with pytest.raises(ConfigurationError, match="store_id 4"):
                await adapter.check()
        finally:
            await adapter.aclose()


class TestShipStationSandbox:
    """What the demo, integration tests and bench rely on beyond the contract."""

    async def test_window_rate_limit_headers(self, adapter, sandbox) -> None:
        sandbox.faults.rate_limit_per_minute = 3
        auth = "Basic " + base64.b64encode(f"{sandbox.api_key}:{sandbox.api_secret}".encode()).decode()
        async with httpx.AsyncClient(base_url=sandbox.url, headers={"Authorization": auth}) as client:
            replies = [await client.get("/carriers") for _ in range(3)]
            limited = await client.get("/carriers")
        assert [r.headers["x-rate-limit-remaining"] for r in replies] == ["2", "1", "0"]
        assert all(r.headers["x-rate-limit-limit"] == "3" and 0 < int(r.headers["x-rate-limit-reset"]) <= 60 for r in replies)
        assert limited.status_code == 429
        assert (limited.headers["x-rate-limit-remaining"], limited.headers["x-rate-limit-reset"]) == ("0", "1")
        with pytest.raises(RateLimitedError):
            await adapter.find_order("ct-anything")

    async def test_ship_after_ships_on_the_next_shipments_read(self, adapter, sandbox, warehouse) -> None:
        sandbox.ship_after_s = 0
        order, _ = await WarehouseContract().created(adapter, warehouse)
        shipments = await adapter.shipments_since(WarehouseContract.since())
        assert [s.reference for s in shipments] == [order.reference]
        assert sandbox.order(order.reference)["orderStatus"] == "shipped"

    async def test_keyless_creates_are_new_orders_every_time(self, sandbox) -> None:
        # Why the adapter always sends orderKey: without one, ShipStation makes one up.
        auth = "Basic " + base64.b64encode(f"{sandbox.api_key}:{sandbox.api_secret}".encode()).decode()
        body = {"orderNumber": "N-1", "orderDate": "2026-03-03T21:06:07.0000000", "orderStatus": "awaiting_shipment",
                "billTo": {"name": "A"}, "shipTo": {"name": "A", "country": "US"}, "items": [{"sku": "SKU-1", "quantity": 1}]}
        async with httpx.AsyncClient(base_url=sandbox.url, headers={"Authorization": auth}) as client:
            keys = {(await client.post("/orders/createorder", json=body)).json()["orderKey"] for _ in range(2)}
            invalid = await client.post("/orders/createorder", json={"orderNumber": "N-2"})
        assert len(keys) == 2 and sandbox.create_count == 2
        assert invalid.status_code == 400 and invalid.json()["ModelState"]["apiOrder.orderDate"] == ["The orderDate field is required."]

    async def test_control_api(self, sandbox) -> None:
        async with httpx.AsyncClient(base_url=sandbox.url) as control:
            faults = await control.post("/_sandbox/faults", json={"script": [{"method": "GET", "path": "/carriers", "status": 503}]})
            assert faults.json()["script"][0]["status"] == 503
            assert (await control.post("/_sandbox/faults", json={"nonsense": 1})).status_code == 400
            auth = "Basic " + base64.b64encode(f"{sandbox.api_key}:{sandbox.api_secret}".encode()).decode()
            async with httpx.AsyncClient(base_url=sandbox.url, headers={"Authorization": auth}) as api:
                assert (await api.get("/carriers")).status_code == 503
                assert (await api.get("/carriers")).status_code == 200
                assert (await api.get("/orders", params={"pageSize": 501})).status_code == 400
                body = {"orderNumber": "C-1", "orderKey": "ctl-1", "orderDate": "2026-03-03T21:06:07.0000000",
                        "orderStatus": "awaiting_shipment", "billTo": {"name": "A"}, "shipTo": {"name": "A", "country": "US"},
                        "items": [{"sku": "SKU-1", "quantity": 1}, {"sku": "SKU-2", "quantity": 2}]}
                assert (await api.post("/orders/createorder", json=body)).status_code == 200
            shipped = (await control.post("/_sandbox/ship", json={"order_key": "ctl-1", "split": True, "void_first": True})).json()["shipped"]
            assert [s["voided"] for s in shipped] == [True, False, False]
            state = (await control.get("/_sandbox/state")).json()
        assert state["orders"]["ctl-1"]["orderStatus"] == "shipped"
        assert state["create_attempts"]["ctl-1"] == 1 and state["create_count"] == 1
        assert state["faults"] == {"503": 1}
        assert state["requests"]["GET /carriers"] == 2
        assert len(state["shipments"]) == 3


def test_kit_speaks_shipstation_codes() -> None:
    k = kit(products=("A",), ship_methods=("Standard", "Expedited", "2-Day"), credential="c")
    assert k.ship_methods == ("stamps_com:usps_priority_mail", "ups:ups_ground", "fedex:fedex_2day")
    config = k.warehouse_config("http://127.0.0.1:1", None)
    assert (config["adapter"], config["api_secret"], config["store_id"]) == ("shipstation", "c", 310001)
    k2 = kit(products=("A",), ship_methods=("dhl_express:dhl_express_worldwide",), credential="c", store_id=None)
    assert k2.ship_methods == ("dhl_express:dhl_express_worldwide",) and "store_id" not in k2.warehouse_config("", None)
    assert "dhl_express_worldwide" in k2.sandbox.carriers["dhl_express"][1]
    k.set_stock("A", "90001", 5)  # nothing to set: harmless
    assert k.warehouse_ids() == ["90001"] and k.created() == 0


class TestShipStationV1Webhooks:
    """SHIP_NOTIFY over real HTTP: subscribed once, posted when an order ships."""

    async def test_register_once_and_a_ship_notify_when_an_order_ships(self, adapter, sandbox, warehouse) -> None:
        import asyncio
        import json

        from starlette.applications import Starlette
        from starlette.responses import Response
        from starlette.routing import Route

        from connector.sandbox.server import SandboxServer

        got: list[bytes] = []

        async def receive(request):
            got.append(await request.body())
            return Response(status_code=200)

        with SandboxServer(Starlette(routes=[Route("/hook", receive, methods=["POST"])])) as receiver:
            url = f"{receiver.url}/hook"
            assert (await adapter.register_webhooks(url, "ignored"))[0].startswith("subscribed SHIP_NOTIFY")
            assert (await adapter.register_webhooks(url, "ignored"))[0].startswith("already subscribed: SHIP_NOTIFY")
            assert await adapter.webhook_urls() == {url} and len(sandbox.webhooks) == 1
            order, _ = await WarehouseContract().created(adapter, warehouse)
            assert sandbox.ship(order.reference)
            [delivery] = await asyncio.to_thread(sandbox.hooks.wait)
            assert (delivery.topic, delivery.status) == ("SHIP_NOTIFY", "delivered")
            [hint] = adapter.webhook_hints(json.loads(got[0]))
            assert hint["topic"] == "ship_notify" and hint["batch_id"]

    async def test_the_sandbox_checks_subscriptions(self, sandbox) -> None:
        auth = base64.b64encode(f"{sandbox.api_key}:{sandbox.api_secret}".encode()).decode()
        async with httpx.AsyncClient(base_url=sandbox.url, headers={"Authorization": f"Basic {auth}"}) as api:
            bad = await api.post("/webhooks/subscribe", json={"target_url": "nope", "event": "SHIPPED", "store_id": 1})
            assert bad.status_code == 400 and set(bad.json()["ModelState"]) == {"target_url", "event", "store_id"}
            made = (await api.post("/webhooks/subscribe", json={"target_url": "https://x.example/h", "event": "SHIP_NOTIFY"})).json()
            assert (await api.delete(f"/webhooks/{made['id']}")).status_code == 200
            assert (await api.delete(f"/webhooks/{made['id']}")).status_code == 404
            assert (await api.get("/webhooks")).json() == {"webhooks": []}
            assert (await api.get("/webhooks", headers={"Authorization": "Basic eDp5"})).status_code == 401
