"""Warehouse shipment webhooks end to end: `connector webhooks register` subscribes the ShipBob
sandbox to the receiver (build_app served by uvicorn on loopback, in the test's event loop), the
sandbox ships an order and posts a signed `order.shipped`, the receiver kicks the daemon's
shipment_upload pass, and the tracking reaches the UltraCart sandbox.

The scheduler is never started: no poll runs, so whatever reaches UltraCart came by the webhook.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from adapters.shipbob.mapping import webhook_signature
from connector.cli.hooks import _register
from connector.tokens import warehouse_secret
from connector.config import from_dict
from connector.scheduler import Daemon as Scheduler
from connector.web import WAREHOUSE_TOKEN, Daemon, WarehouseHooks, build_app
from tests.integration.test_webhooks import serve
from tests.support.warehouse import deliver, flow_fixture, orders

pytestmark = pytest.mark.asyncio

# Orders never ship by themselves (a shipments read would ship them): only `ship()` does.
flow = flow_fixture(databases=("sqlite", "postgres"), ship_after_s=3600)


async def until(check: Callable[[], Any], what: str, timeout: float = 10.0) -> Any:
    """Wait (polling, never a fixed sleep) until `check()` is truthy; fail naming `what`."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


class Wired:
    """The receiver served, the daemon's kick wired to it, and the webhooks registered."""

    def __init__(self, flow, rt, scheduler: Scheduler, url: str, client: httpx.AsyncClient):
        self.flow, self.rt, self.scheduler, self.url, self.client = flow, rt, scheduler, url, client
        self.kicks: list[tuple[str, str]] = []
        self.token = self.secret = self.printed = ""

    def kick(self, merchant: str, service: str) -> None:
        self.kicks.append((merchant, service))
        self.scheduler.kick(merchant, service)

    async def settled(self) -> None:
        """Every delivery made so far answered and every kicked pass finished."""
        await asyncio.to_thread(self.flow.sb.hooks.wait)
        await until(lambda: not self.scheduler.running and not any(t for t in asyncio.all_tasks() if t.get_name().startswith("kick ")),
                    "the kicked passes to finish")

    async def post(self, body: bytes, *, token: str | None = None, secret: str | None = None, at: float | None = None,
                   msg_id: str = "msg_test", topic: str = "order.shipped") -> httpx.Response:
        """A delivery signed as ShipBob signs (with our secret unless told otherwise)."""
        stamp = str(int(time.time() if at is None else at))
        key = base64.b64decode(self.secret if secret is None else secret)
        headers = {"webhook-id": msg_id, "webhook-timestamp": stamp, "x-webhook-topic": topic,
                   "webhook-signature": webhook_signature(key, msg_id, stamp, body), "Content-Type": "application/json"}
        return await self.client.post(f"/webhooks/warehouse/acme/{self.token if token is None else token}", content=body, headers=headers)


@pytest.fixture
async def wired(flow, capsys):
    rt = await flow.runtime()
    scheduler = Scheduler(rt)
    holder: dict[str, Wired] = {}
    app = build_app(rt, Daemon(kick=lambda m, s: holder["w"].kick(m, s)))
    try:
        async with serve(app) as url, httpx.AsyncClient(base_url=url, timeout=30) as client:
            w = holder["w"] = Wired(flow, rt, scheduler, url, client)
            data = flow.config_dict()
            data["daemon"]["public_url"] = url
            assert await _register(from_dict(data, file="<test>"), "acme") == 0
            printed = capsys.readouterr().out
            assert "acme: shipbob: subscribed" in printed and "signed" in printed, printed
            w.token = await rt.store.cursors.get("acme", WAREHOUSE_TOKEN)
            w.secret = await warehouse_secret(rt.store, "acme", create=False)
            assert w.token and len(w.secret) == 32
            yield w
            await w.settled()
    finally:
        await rt.aclose()


async def test_a_ship_webhook_brings_tracking_to_ultracart_without_a_poll(flow, wired):
    hook_url = f"{wired.url}/webhooks/warehouse/acme/{wired.token}"
    assert await wired.rt.contexts["acme"].warehouse.webhook_urls() == {hook_url}
    [sub] = flow.sb.webhooks.values()
    assert sub["_secret"] == "whsec_" + wired.secret  # ShipBob signs with the secret kept beside the token

    flow.uc.queue("DFLT", orders(2))
    await deliver(wired.rt)
    [parcel] = flow.sb.ship("acme-DEMO-0001")
    await until(lambda: flow.uc.tracking("DEMO-0001"), "tracking of DEMO-0001 at UltraCart")
    assert flow.uc.tracking("DEMO-0001") == [parcel["tracking"]["tracking_number"]]
    assert flow.uc.tracking("DEMO-0002") == []  # not shipped, not posted
    assert wired.kicks == [("acme", "shipment_upload")]
    [delivery] = flow.sb.hooks.deliveries()
    assert (delivery.topic, delivery.status, delivery.http_status) == ("order.shipped", "delivered", 200)
    await wired.settled()
    assert flow.sb.tracking_uploaded() == [parcel["id"]]  # acknowledged at ShipBob too
    logged = [e for e in await wired.rt.store.events.listing(limit=1000) if e.kind == "webhook" and e.vendor == "shipbob"]
    assert len(logged) == 1 and "acme-DEMO-0001" in logged[0].response_body and wired.token not in logged[0].url

    # ShipBob delivers the same event again (its retry): one more read, no second post.
    flow.sb.hooks.redeliver(delivery.id)
    await wired.settled()
    assert [d.http_status for d in flow.sb.hooks.deliveries()] == [200, 200]
    assert len(wired.kicks) == 2
    assert [s["order_id"] for post in flow.uc.shipment_posts for s in post] == ["DEMO-0001"]

    # `connector check --online` sees the subscriptions; another URL would be reported missing.
    from connector.onboarding import warehouse_hooks

    ctx = wired.rt.contexts["acme"]
    assert (await warehouse_hooks(ctx, wired.url, hook_url)).status == "ok"
    missing = await warehouse_hooks(ctx, wired.url, f"{wired.url}/webhooks/warehouse/acme/other")
    assert missing.status == "warning" and "webhooks register" in missing.detail

    # Registering again changes nothing at ShipBob.
    lines = await wired.rt.contexts["acme"].warehouse.register_webhooks(hook_url, wired.secret)
    assert lines == ["already subscribed: order.shipped, order.shipment.cancelled, order.shipment.on_hold"]
    assert len(flow.sb.webhooks) == 1


async def test_a_lost_webhook_is_caught_by_the_backstop_poll(flow, wired):
    flow.uc.queue("DFLT", orders(1))
    await deliver(wired.rt)
    for sub in flow.sb.webhooks.values():
        sub["url"] = sub["url"].replace(wired.token, "stale-token")  # the delivery is refused (401): lost to us
    [parcel] = flow.sb.ship("acme-DEMO-0001")
    await wired.settled()
    assert [d.http_status for d in flow.sb.hooks.deliveries()] == [401] and wired.kicks == []
    assert flow.uc.tracking("DEMO-0001") == []
    [report] = await wired.rt.run_once(service="shipment_upload")  # the scheduled poll, run by hand
    assert report.ok and flow.uc.tracking("DEMO-0001") == [parcel["tracking"]["tracking_number"]]


async def test_bad_token_forged_or_stale_signature_are_refused(flow, wired):
    body = json.dumps({"id": 1, "reference_id": "acme-DEMO-0001", "shipments": []}).encode()
    assert (await wired.post(body, token="not-the-token")).status_code == 401
    assert (await wired.post(body, token="")).status_code in (401, 404, 405)  # no token: not even routed
    forged = base64.b64encode(b"\x01" * 24).decode()
    assert (await wired.post(body, secret=forged)).status_code == 401
    assert (await wired.post(body, at=time.time() - 3600)).status_code == 401  # a captured delivery replayed later
    unsigned = await wired.client.post(f"/webhooks/warehouse/acme/{wired.token}", content=body)
    assert unsigned.status_code == 401
    assert (await wired.post(b'{"id": ', msg_id="m2")).status_code == 400  # signed, but not JSON
    assert (await wired.post(b"x" * 2_000_000)).status_code == 413
    assert wired.kicks == []  # none of these started anything
    assert (await wired.post(body)).status_code == 200 and wired.kicks == [("acme", "shipment_upload")]


async def test_a_delivery_naming_an_unknown_order_does_no_harm(flow, wired):
    flow.uc.queue("DFLT", orders(1))
    await deliver(wired.rt)
    for body in ({"id": 999999, "reference_id": "acme-NOPE", "shipments": [{"id": 5, "tracking": {"tracking_number": "FAKE"}}]},
                 {"id": 4, "reference_id": "someone-else-77"}, [], {"unexpected": {"deeply": ["nested"]}}):
        r = await wired.post(json.dumps(body).encode())
        assert r.status_code == 200, r.text
    await wired.settled()
    assert flow.uc.shipment_posts == []  # the body's "tracking" is never believed
    [row] = await wired.rt.store.orders.find("DEMO-0001")
    assert row.state == "at_warehouse"
    assert all(r.ok for r in await wired.rt.run_once(service="shipment_upload"))


async def test_an_on_hold_shipment_raises_an_alert(flow, wired):
    flow.uc.queue("DFLT", orders(1))
    await deliver(wired.rt)
    [held] = flow.sb.hold("acme-DEMO-0001")
    await wired.settled()
    [delivery] = flow.sb.hooks.deliveries()
    assert (delivery.topic, delivery.http_status) == ("order.shipment.on_hold", 200)
    alerts = [a for a in await wired.rt.store.alerts.listing() if a.category == "warehouse_hold"]
    assert alerts and str(held) in alerts[0].message, alerts


# -- ShipStation v2 and v1 -----------------------------------------------------------------------


@contextlib.asynccontextmanager
async def wired_for(warehouse: str, tmp_path, capsys) -> AsyncIterator[Wired]:
    """The same wiring for a merchant whose warehouse is `warehouse` (SQLite)."""
    from tests.support.flow import Flow

    f = Flow(tmp_path, warehouse=warehouse)
    rt = await f.runtime()
    scheduler = Scheduler(rt)
    holder: dict[str, Wired] = {}
    try:
        async with serve(build_app(rt, Daemon(kick=lambda m, s: holder["w"].kick(m, s)))) as url, \
                httpx.AsyncClient(base_url=url, timeout=30) as client:
            w = holder["w"] = Wired(f, rt, scheduler, url, client)
            data = f.config_dict()
            data["daemon"]["public_url"] = url
            assert await _register(from_dict(data, file="<test>"), "acme") == 0
            w.printed = capsys.readouterr().out
            w.token = await rt.store.cursors.get("acme", WAREHOUSE_TOKEN)
            w.secret = await warehouse_secret(rt.store, "acme", create=False)
            yield w
            await w.settled()
    finally:
        await rt.aclose()
        f.close()


@pytest.fixture
async def v2(tmp_path, capsys):
    async with wired_for("shipstation-v2", tmp_path, capsys) as w:
        assert "acme: shipstation-v2: subscribed track" in w.printed and "subscribed batch" in w.printed, w.printed
        yield w


@pytest.fixture
async def v1(tmp_path, capsys):
    async with wired_for("shipstation", tmp_path, capsys) as w:
        assert "acme: shipstation: subscribed SHIP_NOTIFY" in w.printed, w.printed
        yield w


async def test_a_shipstation_v2_track_webhook_brings_tracking_to_ultracart(v2):
    flow, rt = v2.flow, v2.rt
    hook_url = f"{v2.url}/webhooks/warehouse/acme/{v2.token}"
    assert await rt.contexts["acme"].warehouse.webhook_urls() == {hook_url}
    assert all({"key": "X-Connector-Webhook-Secret", "value": v2.secret} in h["headers"] for h in flow.sb.webhooks.values())

    flow.uc.queue("DFLT", orders(1))
    await deliver(rt)
    [label] = flow.sb.ship("acme-DEMO-0001")
    await until(lambda: flow.uc.tracking("DEMO-0001"), "tracking of DEMO-0001 at UltraCart")
    assert flow.uc.tracking("DEMO-0001") == [label["tracking_number"]]
    assert v2.kicks == [("acme", "shipment_upload")]
    [delivery] = flow.sb.hooks.deliveries()
    await v2.settled()
    flow.sb.hooks.redeliver(delivery.id)
    await v2.settled()
    assert len(v2.kicks) == 2 and [s["order_id"] for post in flow.uc.shipment_posts for s in post] == ["DEMO-0001"]

    body = json.dumps({"resource_url": "https://api.shipstation.com/v2/labels/se-1/track", "resource_type": "TRACK_EVENT_V2"}).encode()
    path = f"/webhooks/warehouse/acme/{v2.token}"
    assert (await v2.client.post(path, content=body)).status_code == 401  # the secret header missing
    assert (await v2.client.post(path, content=body, headers={"X-Connector-Webhook-Secret": "guess"})).status_code == 401
    assert (await v2.client.post(f"/webhooks/warehouse/acme/{v2.token}x", content=body,
                                 headers={"X-Connector-Webhook-Secret": v2.secret})).status_code == 401
    assert len(v2.kicks) == 2
    ok = await v2.client.post(path, content=body, headers={"X-Connector-Webhook-Secret": v2.secret})
    assert ok.status_code == 200 and ok.json() == {"accepted": 1} and len(v2.kicks) == 3


async def test_a_shipstation_v1_ship_notify_brings_tracking_to_ultracart(v1):
    flow, rt = v1.flow, v1.rt
    hook_url = f"{v1.url}/webhooks/warehouse/acme/{v1.token}"
    assert await rt.contexts["acme"].warehouse.webhook_urls() == {hook_url}
    flow.uc.queue("DFLT", orders(1))
    await deliver(rt)
    [label] = flow.sb.ship("acme-DEMO-0001")
    await until(lambda: flow.uc.tracking("DEMO-0001"), "tracking of DEMO-0001 at UltraCart")
    assert flow.uc.tracking("DEMO-0001") == [label["trackingNumber"]]
    assert v1.kicks == [("acme", "shipment_upload")]
    [delivery] = flow.sb.hooks.deliveries()
    assert delivery.http_status == 200 and "X-Connector-Webhook-Secret" not in delivery.headers  # v1 can send nothing but the body
    await v1.settled()
    flow.sb.hooks.redeliver(delivery.id)
    await v1.settled()
    assert len(v1.kicks) == 2 and [s["order_id"] for post in flow.uc.shipment_posts for s in post] == ["DEMO-0001"]
    # Unsigned: the path token is all there is, so a wrong one is all that is refused.
    body = json.dumps({"resource_url": "http://127.0.0.1:1/shipments?batchId=1", "resource_type": "SHIP_NOTIFY"}).encode()
    assert (await v1.client.post(f"/webhooks/warehouse/acme/{v1.token[:-1]}", content=body)).status_code == 401
    assert (await v1.client.post(f"/webhooks/warehouse/acme/{v1.token}", content=body)).status_code == 200


async def test_the_secrets_the_connector_made_are_masked_after_a_restart(flow):
    """The path token and the signing secret live in the database, not the config: a new process
    learns them at start and masks them like the config's own secrets."""
    from connector.tokens import warehouse_secret, warehouse_url
    from connector.redact import DEFAULT

    rt = await flow.runtime()
    try:
        url = await warehouse_url(rt.store, "https://hooks.example", "acme", create=True)
        secret = await warehouse_secret(rt.store, "acme", create=True)
    finally:
        await rt.aclose()
    token = url.rsplit("/", 1)[-1]
    again = await flow.runtime()
    try:
        await again.learn_stored_secrets()
        line = f"POST {url} signed with {secret}"
        for redactor in (again.redactor, DEFAULT):
            masked = redactor.text(line)
            assert token not in masked and secret not in masked, masked
    finally:
        await again.aclose()
