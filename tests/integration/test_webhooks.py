"""The webhook receiver served on loopback by uvicorn, against a real Runtime and the sandboxes.

The app runs in the test's own event loop (as in the daemon, where the scheduler and the web
server share one loop), so the Runtime's database engine is used from a single loop.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gzip
import json
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support.pg import database_text
import uvicorn
from structlog.testing import capture_logs

from connector.runtime import Runtime
from connector.sandbox.samples import make_order
from connector.web import MAX_BODY, build_app

pytestmark = pytest.mark.asyncio

USER, PASSWORD = "acme", "s3cret-hook"
CARD = "4111111111111111"


@contextlib.asynccontextmanager
async def serve(app) -> AsyncIterator[str]:
    """Serve an ASGI app with uvicorn on a loopback port, in the current event loop."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="critical", access_log=False, lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)
        sock.close()


@dataclass
class Hook:
    """A served app and a client that posts webhook deliveries to it."""

    rt: Runtime
    client: httpx.AsyncClient
    url: str
    db: Path

    async def post(self, body, *, merchant: str = "acme", auth=(USER, PASSWORD), **kw) -> httpx.Response:
        if not isinstance(body, bytes | str):
            body = json.dumps(body)
        return await self.client.post(f"/webhooks/ultracart/{merchant}", content=body, auth=auth,
                                      headers={"Content-Type": "application/json"}, **kw)

    async def webhook_log(self) -> list:
        return [r for r in await self.rt.store.events.listing(limit=10_000) if r.kind == "webhook"]

    def db_bytes(self) -> bytes:
        return database_text(self.rt.config.daemon.database_url)


@pytest.fixture
async def hook(flow):
    flow.overrides["acme"] = {"ultracart": {"webhook_username": USER, "webhook_password": PASSWORD}}
    rt = await flow.runtime()
    try:
        async with serve(build_app(rt, lambda: True)) as url, httpx.AsyncClient(base_url=url, timeout=30) as client:
            yield Hook(rt, client, url, Path(flow.database_url.removeprefix("sqlite:///")))
    finally:
        await rt.aclose()


def events(*pairs) -> list[dict]:
    return [{name: order} for name, order in pairs]


async def states(rt) -> dict[str, int]:
    return {s: n for (_, s), n in (await rt.store.orders.counts_by_state("acme")).items()}


async def test_a_delivery_is_stored_once_and_acknowledged_by_the_next_download_pass(flow, hook):
    body = {"events": events(("fulfillment_transmit", make_order("DEMO-0001")), ("order_create", make_order("DEMO-0002")))}
    r = await hook.post(body)
    assert r.status_code == 200, r.text
    assert {k: r.json()[k] for k in ("received", "stored", "duplicates", "ignored")} == {"received": 2, "stored": 2, "duplicates": 0, "ignored": 0}
    [row] = await hook.rt.store.orders.find("DEMO-0001", "acme")
    assert row.source == "webhook" and row.state == "received" and row.acked_at is None
    assert sum(flow.uc.requests.values()) == 0  # the request itself never calls UltraCart

    again = await hook.post(body)  # UltraCart retries the delivery
    assert again.json()["stored"] == 0 and again.json()["duplicates"] == 2
    flow.uc.queue("DFLT", [make_order("DEMO-0001")])  # ... and the DC queue has it too
    [download] = await hook.rt.run_once(service="order_download")
    assert download.ok and download.did["new"] == 0 and download.did["acknowledged"] == 2
    assert sorted(flow.uc.acknowledged) == ["DEMO-0001", "DEMO-0002"]
    assert flow.uc.queued("DFLT") == []
    # The other way round: polled first, then delivered by webhook.
    flow.uc.queue("DFLT", [make_order("DEMO-0003")])
    await hook.rt.run_once(service="order_download")
    late = await hook.post({"events": events(("fulfillment_transmit", make_order("DEMO-0003")))})
    assert late.json()["stored"] == 0 and late.json()["duplicates"] == 1
    await hook.rt.run_once(service="order_delivery")
    assert await states(hook.rt) == {"at_warehouse": 3}
    assert flow.sb.create_count == 3

    logged = await hook.webhook_log()
    assert [(e.order_id, e.response_body) for e in logged if e.request_id == r.json()["delivery_id"]] == [
        ("DEMO-0001", "fulfillment_transmit: stored"), ("DEMO-0002", "order_create: stored")]
    assert all(e.status == 200 and e.vendor == "ultracart" for e in logged)
    assert json.loads(logged[0].request_body)["fulfillment_transmit"]["order_id"] == "DEMO-0001"  # the event, redacted
    assert [row.source for row in await hook.rt.store.orders.find("DEMO-0003", "acme")] == ["poll"]


async def test_a_bare_array_of_events_is_accepted(hook):
    r = await hook.post(events(("fulfillment_transmit", make_order("DEMO-0010"))))
    assert r.status_code == 200 and r.json()["stored"] == 1
    assert await states(hook.rt) == {"received": 1}


async def test_compressed_events_are_inflated_and_their_card_data_is_not_stored(hook):
    order = make_order("DEMO-0020", payment={"credit_card": {"card_number": CARD}})
    packed = base64.b64encode(gzip.compress(json.dumps(events(("fulfillment_transmit", order))).encode())).decode()
    r = await hook.post({"events": packed})
    assert r.status_code == 200 and r.json()["stored"] == 1
    [row] = await hook.rt.store.orders.find("DEMO-0020", "acme")
    assert CARD not in row.raw_json and "DEMO-0020" in row.raw_json
    assert CARD.encode() not in hook.db_bytes()


async def test_wrong_or_missing_credentials_are_refused_with_a_challenge(hook):
    body = {"events": events(("fulfillment_transmit", make_order("DEMO-0030")))}
    for auth in [(USER, "wrong"), ("mallory", PASSWORD), None]:
        r = await hook.post(body, auth=auth)
        assert r.status_code == 401, auth
        assert r.headers["WWW-Authenticate"].startswith("Basic")
    r = await hook.client.post("/webhooks/ultracart/acme", content=json.dumps(body), headers={"Authorization": "Basic !!not-base64"})
    assert r.status_code == 401
    assert await states(hook.rt) == {}
    # Refusals are counted in the metrics, never written: a stranger cannot grow the database.
    assert await hook.webhook_log() == []


async def test_an_unknown_merchant_is_refused_like_a_wrong_password(hook):
    """A stranger must not learn which merchant ids exist: the same 401, the same challenge."""
    r = await hook.post({"events": []}, merchant="nobody")
    wrong = await hook.post({"events": []}, auth=(USER, "wrong"))
    assert r.status_code == wrong.status_code == 401
    assert r.headers["WWW-Authenticate"] == wrong.headers["WWW-Authenticate"] and r.json()["error"] == wrong.json()["error"]
    assert await hook.webhook_log() == []


async def test_a_merchant_without_a_webhook_password_refuses_webhooks_and_says_so(flow, runtime):
    async with serve(build_app(runtime, lambda: True)) as url, httpx.AsyncClient(base_url=url) as client:
        with capture_logs() as logs:
            r = await client.post("/webhooks/ultracart/acme", content=b'{"events": []}', auth=("acme", ""))
    assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Basic")
    assert any("no ultracart.webhook_password is configured" in e["event"] and e["merchant"] == "acme" for e in logs)


@pytest.mark.parametrize("body, why", [
    (b"{not json", "not JSON"),
    (b"", "empty"),
    (b'{"orders": []}', "no 'events' key"),
    (b'{"events": "bm90IGNvbXByZXNzZWQ="}', "not JSON"),
    (b"\xff\xfe\x00", "not UTF-8"),
])
async def test_malformed_bodies_are_400_and_logged_without_payload(hook, body, why):
    with capture_logs() as logs:
        r = await hook.post(body)
    assert r.status_code == 400 and why in r.json()["error"]
    [logged] = await hook.webhook_log()
    assert logged.status == 400 and why in logged.error and logged.request_body == ""
    [line] = [e for e in logs if e["event"] == "webhook rejected"]
    assert line["bytes"] == len(body) and why in line["reason"]


async def test_a_truncated_body_is_400_and_stores_nothing(hook):
    full = json.dumps({"events": events(*[("fulfillment_transmit", make_order(f"DEMO-{i:04d}")) for i in range(40, 45)])})
    r = await hook.post(full[: len(full) // 2])
    assert r.status_code == 400 and "not JSON" in r.json()["error"]
    assert await states(hook.rt) == {}


async def test_a_body_over_10_mb_is_413_whether_declared_or_streamed(hook):
    big = b'{"events": [' + b" " * MAX_BODY + b"]}"
    r = await hook.post(big)  # declared by Content-Length
    assert r.status_code == 413

    async def chunks():  # no Content-Length: the receiver has to count
        for i in range(0, len(big), 1 << 20):
            yield big[i : i + (1 << 20)]

    r = await hook.client.post("/webhooks/ultracart/acme", content=chunks(), auth=(USER, PASSWORD))
    assert r.status_code == 413 and "exceeds" in r.json()["error"]
    assert "content-length" not in r.request.headers

    # A declared length over the limit is refused at once, before any of the body is sent.
    host, port = hook.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    auth = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    writer.write(f"POST /webhooks/ultracart/acme HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {auth}\r\n"
                 f"Content-Length: {50 * MAX_BODY}\r\n\r\n".encode())
    await writer.drain()
    status_line = await asyncio.wait_for(reader.readline(), 5)
    writer.close()
    assert status_line.startswith(b"HTTP/1.1 413")
    assert await hook.webhook_log() == []  # counted in the metrics, not written


async def test_an_order_for_another_distribution_center_is_ignored(hook):
    no_dc = make_order("DEMO-0052")
    for item in no_dc["items"]:
        del item["distribution_center_code"]
    r = await hook.post({"events": events(
        ("fulfillment_transmit", make_order("DEMO-0050", distribution_center="EAST")),
        ("fulfillment_transmit", make_order("DEMO-0051", items=[("BONE-5LB", 1), ("TREAT", 1, {"distribution_center_code": "EAST"})])),
        ("fulfillment_transmit", no_dc),
    )})
    assert r.json() | {"delivery_id": ""} == {"delivery_id": "", "received": 3, "stored": 2, "changed": 0, "duplicates": 0, "ignored": 1}
    assert await hook.rt.store.orders.find("DEMO-0050") == []
    assert {row.order_id for row in await hook.rt.store.orders.listing(merchant="acme")} == {"DEMO-0051", "DEMO-0052"}
    [ignored] = [e for e in await hook.webhook_log() if e.order_id == "DEMO-0050"]
    assert ignored.error == "for distribution center EAST, not DFLT"


async def test_other_events_are_recorded_only(flow, hook):
    r = await hook.post({"events": events(
        ("order_update", make_order("DEMO-0060")),
        ("item_update", {"merchant_item_id": "BONE-5LB"}),
        ("order_create", make_order("DEMO-0061", current_stage="Accounts Receivable")),
    )})
    assert r.status_code == 200 and r.json()["received"] == 3 and r.json()["ignored"] == 3
    assert await states(hook.rt) == {}
    logged = {e.response_body: e.error for e in await hook.webhook_log()}
    assert logged == {"order_update: ignored": "order_update: recorded only", "item_update: ignored": "item_update: recorded only",
                      "order_create: ignored": "order_create in stage 'Accounts Receivable': not released to shipping yet"}
    assert sum(flow.uc.requests.values()) == 0


async def test_a_100_event_delivery_stores_every_order_once(hook):
    """(How fast it answers is measured by `connector bench`, not asserted here.)"""
    body = json.dumps({"events": events(*[("fulfillment_transmit", make_order(f"DEMO-{i:04d}")) for i in range(100, 200)])})
    r = await hook.post(body)
    assert r.status_code == 200 and r.json()["stored"] == 100
    again = await hook.post(body)
    assert again.json()["stored"] == 0 and again.json()["duplicates"] == 100
    assert len(await hook.rt.store.orders.listing(merchant="acme")) == 100


async def test_no_card_number_or_webhook_password_reaches_the_database(hook):
    order = make_order("DEMO-0070", payment={"credit_card": {"card_number": CARD, "card_verification_number": "737"}})
    assert (await hook.post({"events": events(("fulfillment_transmit", order), ("order_update", order))})).status_code == 200
    assert (await hook.post({"events": events(("fulfillment_transmit", order))}, auth=(USER, PASSWORD + "x"))).status_code == 401
    assert (await hook.post(b'{"events": [' + CARD.encode())).status_code == 400
    assert (await hook.post({"events": events(("fulfillment_transmit", order))}, merchant="nobody")).status_code == 401
    [row] = await hook.rt.store.orders.find("DEMO-0070", "acme")
    assert json.loads(row.raw_json)["payment"]["credit_card"]["card_number"] == "***"
    data = hook.db_bytes()
    assert b"DEMO-0070" in data  # the check reads the right file
    for secret in (CARD, PASSWORD):
        assert secret.encode() not in data, secret


async def test_a_card_number_typed_into_a_note_is_not_stored(hook):
    spaced = f"{CARD[:4]} {CARD[4:8]} {CARD[8:12]} {CARD[12:]}"
    order = make_order("DEMO-0071", checkout={"comments": f"my card is {spaced}"}, shipping={"special_instructions": f"card {CARD}"})
    assert (await hook.post({"events": events(("fulfillment_transmit", order))})).json()["stored"] == 1
    data = hook.db_bytes()
    assert b"DEMO-0071" in data
    for secret in (CARD, spaced):
        assert secret.encode() not in data, secret
