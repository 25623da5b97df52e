"""Hostile input and a sick machine never stop the flow or leak a secret (the probe's findings).

Each test reproduces one finding; the bad-input catalogue (test_bad_input.py) feeds every
malformed order through both intake paths."""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
import socket
import sqlite3
import time

import httpx
import pytest

from connector.pipeline.orders import evaluate_orders
from connector.sandbox.samples import make_order
from connector.web import LOG_ROWS, build_app
from tests.integration.test_webhooks import PASSWORD, USER, events, serve
from tests.support.warehouse import orders

pytestmark = pytest.mark.asyncio


def nested(depth: int) -> object:
    value: object = "bottom"
    for _ in range(depth):
        value = [value]
    return value


async def test_a_600_deep_order_is_held_and_the_orders_behind_it_flow(flow, runtime):
    deep = make_order("DEEP-1", custom_field_1=nested(600))
    flow.uc.queue("DFLT", [deep] + orders(3))
    r = await runtime.run_service("acme", "order_download")
    assert r.ok and r.did["new"] == 4 and set(flow.uc.acknowledged) == {"DEEP-1", "DEMO-0001", "DEMO-0002", "DEMO-0003"}
    await runtime.run_service("acme", "order_delivery")
    [row] = await runtime.store.orders.find("DEEP-1")
    assert row.state == "held" and row.hold_kind == "unsafe_text" and "nested deeper than" in row.reason
    assert len(row.raw_json) < 1000, "the payload that cannot be kept safely is not kept"
    assert flow.kit.created() == 3
    [alert] = await runtime.store.alerts.open("acme", "malformed_order")
    assert alert.key == "DEEP-1"


@pytest.mark.parametrize("where", ["sku", "order_id", "note"])
async def test_nul_and_control_characters_hold_the_order_on_both_databases(flow, runtime, where):
    bad = make_order("NUL-1" if where != "order_id" else "NUL\x00-1", items=[("BONE\x00-5LB" if where == "sku" else "BONE-5LB", 1)],
                     checkout={"comments": "hi\x00\x07 there" if where == "note" else "hi"})
    flow.uc.queue("DFLT", [bad] + orders(2))
    r = await runtime.run_service("acme", "order_download")
    assert r.ok, r
    await runtime.run_service("acme", "order_delivery")
    [row] = await runtime.store.orders.find("NUL-1")
    assert row.state == "held" and row.hold_kind == "unsafe_text", row.reason
    assert {"sku": "items[0].merchant_item_id", "order_id": "order_id", "note": "checkout.comments"}[where] in row.reason
    assert "NUL\x00-1" in flow.uc.acknowledged if where == "order_id" else "NUL-1" in flow.uc.acknowledged
    assert flow.kit.created() == 2  # the others flow


async def test_a_200_with_a_garbage_body_leaves_that_order_in_doubt_and_releases_the_others(flow, runtime):
    flow.uc.queue("DFLT", orders(4))
    await runtime.run_once(service="order_download")
    await evaluate_orders(runtime.contexts["acme"])
    flow.sb.faults.script = [{"method": "POST", "path": "/2026-01/order", "status": 200, "after": True,
                              "body": "<html><body>502 Bad Gateway (proxy)</body></html>"}]
    r = await runtime.run_service("acme", "order_delivery")
    assert r.ok and r.did["in_doubt"] == 1 and r.did["created"] == 3, r
    by_state = {o.order_id: o.state for o in await runtime.store.orders.listing()}
    assert sorted(by_state.values()) == ["at_warehouse"] * 3 + ["in_doubt"], by_state
    assert not any(o.lease_owner for o in await runtime.store.orders.listing()), "no claim is left held"
    r = await runtime.run_service("acme", "order_delivery")  # the doubt is looked up: it was created
    assert r.did["doubt_found"] == 1 and flow.kit.created() == 4
    assert all(n == 1 for n in flow.kit.create_attempts().values())


async def test_webhook_refusals_are_counted_not_written(flow, runtime):
    flow.overrides["acme"] = {"ultracart": {"webhook_username": USER, "webhook_password": PASSWORD}}
    rt = await flow.runtime()
    try:
        async with serve(build_app(rt)) as url, httpx.AsyncClient(base_url=url) as client:
            for _ in range(50):
                assert (await client.post("/webhooks/ultracart/acme", content=b"{}", auth=(USER, "guess"))).status_code == 401
                assert (await client.post("/webhooks/ultracart/nobody", content=b"{}", auth=(USER, PASSWORD))).status_code == 401
        assert await rt.store.events.listing(limit=1000) == []
    finally:
        await rt.aclose()


async def test_a_delivery_of_many_non_order_events_writes_a_bounded_number_of_rows(flow, runtime):
    flow.overrides["acme"] = {"ultracart": {"webhook_username": USER, "webhook_password": PASSWORD}}
    rt = await flow.runtime()
    try:
        many = [{"item_update": {"merchant_item_id": f"SKU-{i}"}} for i in range(5000)]
        packed = base64.b64encode(gzip.compress(json.dumps({"events": many}).encode())).decode()
        async with serve(build_app(rt)) as url, httpx.AsyncClient(base_url=url, timeout=60) as client:
            r = await client.post("/webhooks/ultracart/acme", content=json.dumps({"events": packed}), auth=(USER, PASSWORD))
            assert r.status_code == 200 and r.json()["ignored"] == 5000
            too_many = [{"item_update": {}}] * 20_001
            r = await client.post("/webhooks/ultracart/acme", content=json.dumps({"events": too_many}), auth=(USER, PASSWORD))
            assert r.status_code == 413 and "events in one delivery" in r.json()["error"]
            deep = json.dumps({"events": [{"fulfillment_transmit": make_order("D-1", custom_field_1=nested(600))}]})
            r = await client.post("/webhooks/ultracart/acme", content=deep, auth=(USER, PASSWORD))
            assert r.status_code == 400 and "nested" in r.json()["error"]
        rows = await rt.store.events.listing(limit=100_000)
        assert LOG_ROWS < len(rows) <= LOG_ROWS + 5, len(rows)
        assert any("4950 more event(s) summarised" in e.error for e in rows)
    finally:
        await rt.aclose()


@pytest.mark.parametrize("flow", ["sqlite"], indirect=True)
async def test_a_locked_database_answers_webhooks_503_within_seconds(flow):
    flow.overrides["acme"] = {"ultracart": {"webhook_username": USER, "webhook_password": PASSWORD}}
    rt = await flow.runtime()
    locker = sqlite3.connect(flow.tmp / "connector.db", isolation_level=None)
    try:
        async with serve(build_app(rt)) as url, httpx.AsyncClient(base_url=url, timeout=60) as client:
            body = json.dumps({"events": events(("fulfillment_transmit", make_order("DEMO-0001")))})
            locker.execute("BEGIN IMMEDIATE")  # another writer holds the database
            started = time.monotonic()
            r = await client.post("/webhooks/ultracart/acme", content=body, auth=(USER, PASSWORD))
            waited = time.monotonic() - started
            locker.execute("ROLLBACK")
            assert r.status_code == 503 and "retry" in r.json()["error"]
            assert waited < 15, f"UltraCart waits 30 s; we answered after {waited:.1f} s"
            assert (await client.post("/webhooks/ultracart/acme", content=body, auth=(USER, PASSWORD))).json()["stored"] == 1
    finally:
        locker.close()
        await rt.aclose()


async def test_lines_for_other_distribution_centers_are_never_sent(flow, runtime):
    mixed = make_order("MIX-1", items=[("BONE-5LB", 2), ("TREAT", 1, {"distribution_center_code": "OTHER"})])
    theirs = make_order("THEIRS-1", items=[("BONE-5LB", 1, {"distribution_center_code": "OTHER"})])
    flow.uc.queue("DFLT", [mixed, theirs])
    await runtime.run_once(service="order_download")
    await runtime.run_service("acme", "order_delivery")
    sent = flow.sb.orders["acme-MIX-1"]["products"]
    assert [(p["reference_id"], p["quantity"]) for p in sent] == [("BONE-5LB", 2)]
    [row] = await runtime.store.orders.find("THEIRS-1")
    assert row.state == "skipped" and "no line for this distribution center" in row.reason and "OTHER" in row.reason
    assert "acme-THEIRS-1" not in flow.sb.orders


@pytest.mark.parametrize("quantity, words", [(None, "no quantity for SKU"), ("missing", "no quantity for SKU"),
                                             (10 ** 12, "more than max_line_quantity 1000"), (1001, "more than max_line_quantity 1000")])
async def test_missing_or_absurd_quantities_hold_the_order_and_alert(flow, runtime, quantity, words):
    o = make_order("QTY-1")
    if quantity == "missing":
        del o["items"][0]["quantity"]
    else:
        o["items"][0]["quantity"] = quantity
    flow.uc.queue("DFLT", [o] + orders(1))
    await runtime.run_once(service="order_download")
    await runtime.run_service("acme", "order_delivery")
    [row] = await runtime.store.orders.find("QTY-1")
    assert row.state == "held" and row.hold_kind == "invalid_lines" and words in row.reason, row.reason
    assert "acme-QTY-1" not in flow.sb.orders and flow.kit.created() == 1
    [alert] = await runtime.store.alerts.open("acme", "invalid_lines")
    assert alert.key == "QTY-1"


async def test_a_queue_that_ignores_acknowledgements_raises_one_alert_and_says_so_in_status(flow, runtime):
    flow.uc.queue("DFLT", orders(3))
    flow.uc.ignore_acks = True  # UltraCart keeps handing the same orders back
    for _ in range(3):
        r = await runtime.run_service("acme", "order_download")
        assert r.did["queue_ignores_acks"] == 1 and "same 3 order(s)" in r.stopped_because
    [alert] = await runtime.store.alerts.open("acme", "ultracart_acks_ignored")
    assert alert.count == 3 and alert.key == "DFLT"
    assert len(await runtime.store.orders.listing()) == 3, "nothing stored twice"
    flow.uc.ignore_acks = False
    await runtime.run_service("acme", "order_download")
    assert await runtime.store.alerts.open("acme", "ultracart_acks_ignored") == []


async def test_the_listener_drops_a_connection_whose_headers_never_arrive(monkeypatch, runtime):
    from connector import listener

    monkeypatch.setattr(listener, "HEADER_SECONDS", 0.5)
    monkeypatch.setattr(listener, "MAX_CONNECTIONS", 5)
    sock = listener.bind("127.0.0.1:0")
    server = listener.server(build_app(runtime), sock)
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            await asyncio.sleep(0.01)
        port = sock.getsockname()[1]
        idle = []
        for _ in range(8):  # slowloris: open, send half a request line, wait
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            idle.append(s)
        await asyncio.sleep(1.0)
        closed = 0
        for s in idle:
            s.settimeout(2)
            try:
                closed += s.recv(1024) == b""
            except (ConnectionResetError, socket.timeout):
                closed += 1
            s.close()
        assert closed == 8, "every idle connection was dropped (by the header deadline or the cap)"
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            assert (await client.get("/healthz")).status_code == 200  # and the listener still serves
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, 10)
        sock.close()
