"""/metrics and /readyz served on loopback against a real Runtime after real passes.

Counters are process-wide (other tests bump them too), so they are checked as differences.
"""

from __future__ import annotations

import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from connector import metrics
from connector.domain import OrderState
from connector.sandbox.samples import make_order
from connector.store.engine import make_engine
from connector.web import build_app
from tests.integration.test_webhooks import PASSWORD, USER, serve

pytestmark = pytest.mark.asyncio


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    return {(s.name, frozenset(s.labels.items())): s.value for f in text_string_to_metric_families(text) for s in f.samples}


def value(text: str, name: str, **labels: str) -> float | None:
    return samples(text).get((name, frozenset(labels.items())))


async def scrape(client: httpx.AsyncClient) -> str:
    r = await client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    return r.text


async def test_metrics_expose_orders_services_pending_age_and_counters(flow):
    flow.overrides["acme"] = {"ultracart": {"webhook_username": USER, "webhook_password": PASSWORD}}
    rt = await flow.runtime()
    started = time.time()
    try:
        async with serve(build_app(rt, lambda: True)) as url, httpx.AsyncClient(base_url=url) as client:
            before = await scrape(client)
            flow.uc.queue("DFLT", [make_order(f"DEMO-{i:04d}") for i in range(1, 6)] + [make_order("DEMO-0099", ship_method="Pigeon")])
            assert all(r.ok for r in await rt.run_once())
            body = '{"events": [{"order_create": {"order_id": "DEMO-0100", "current_stage": "Shipping Department"}}]}'
            assert (await client.post("/webhooks/ultracart/acme", content=body, auth=(USER, PASSWORD))).status_code == 200
            assert (await client.post("/webhooks/ultracart/acme", content=body, auth=(USER, "nope"))).status_code == 401
            # An unknown merchant gets the same 401 as a wrong password: no one learns which ids exist.
            assert (await client.post("/webhooks/ultracart/who", content=body, auth=(USER, PASSWORD))).status_code == 401
            # The engine's call sites (see connector.metrics), exercised directly here.
            metrics.vendor_call("ultracart", 200)
            metrics.vendor_call("shipbob", None)
            metrics.retry("acme", "order_delivery")
            metrics.alert_sent("service_paused")
            after = await scrape(client)
    finally:
        await rt.aclose()

    assert value(after, "connector_store_up") == 1
    assert value(after, "connector_orders", merchant="acme", state="confirmed") == 5  # shipped by the sandbox, tracking posted
    assert value(after, "connector_orders", merchant="acme", state="held") == 1  # the unmapped method
    assert value(after, "connector_orders", merchant="acme", state="received") == 1  # the webhook's order
    assert value(after, "connector_orders", merchant="acme", state="failed") == 0  # every state, zeros included
    assert {st for (n, labels), _ in samples(after).items() if n == "connector_orders" for k, st in labels if k == "state"} == {s.value for s in OrderState}
    for service in ("order_download", "order_delivery", "shipment_upload", "inventory_upload"):
        success = value(after, "connector_service_last_success_timestamp_seconds", merchant="acme", service=service)
        assert success is not None and started - 1 <= success <= time.time() + 1, service
        assert value(after, "connector_service_paused", merchant="acme", service=service) == 0
    age = value(after, "connector_oldest_pending_order_age_seconds", merchant="acme")
    assert age is not None and 0 < age < time.time() - started + 5
    assert value(before, "connector_oldest_pending_order_age_seconds", merchant="acme") == 0

    def delta(name: str, **labels: str) -> float:
        return (value(after, name, **labels) or 0) - (value(before, name, **labels) or 0)

    assert delta("connector_webhooks_total", merchant="acme", outcome="accepted") == 1
    assert delta("connector_webhooks_total", merchant="acme", outcome="unauthorized") == 1
    assert delta("connector_webhooks_total", merchant="", outcome="unknown_merchant") == 1  # no label for strangers
    assert delta("connector_vendor_calls_total", vendor="ultracart", status="200") >= 1
    assert delta("connector_vendor_calls_total", vendor="shipbob", status="error") >= 1
    assert delta("connector_retries_total", merchant="acme", service="order_delivery") >= 1
    assert delta("connector_alerts_sent_total", category="service_paused") >= 1
    assert value(after, "process_resident_memory_bytes") or value(after, "process_cpu_seconds_total") is not None


async def test_two_apps_each_render_their_own_store(runtime, flow):
    flow.uc.queue("DFLT", [make_order("DEMO-0001")])
    await runtime.run_once(service="order_download")
    async with serve(build_app(runtime, lambda: True)) as a, serve(build_app(runtime, lambda: True)) as b:
        for url in (a, b):
            async with httpx.AsyncClient(base_url=url) as client:
                assert value(await scrape(client), "connector_orders", merchant="acme", state="received") == 1


async def test_readyz_is_503_when_the_database_is_unreachable(runtime, tmp_path):
    ready = {"scheduler": True}
    async with serve(build_app(runtime, lambda: ready["scheduler"])) as url, httpx.AsyncClient(base_url=url) as client:
        assert (await client.get("/readyz")).status_code == 200
        db = runtime.store.backend.db
        good = db.engine
        db.engine = make_engine(f"sqlite:///{tmp_path / 'no-such-dir' / 'gone.db'}")
        try:
            r = await client.get("/readyz")
            assert r.status_code == 503 and r.json()["problems"][0].startswith("database:")
            m = await client.get("/metrics")  # counters still served; the store gauge says why the rest is missing
            assert m.status_code == 200 and value(m.text, "connector_store_up") == 0
            assert value(m.text, "connector_orders", merchant="acme", state="received") is None
        finally:
            await db.engine.dispose()
            db.engine = good
        assert (await client.get("/readyz")).status_code == 200
        ready["scheduler"] = False
        r = await client.get("/readyz")
        assert r.status_code == 503 and r.json()["problems"] == ["scheduler: not running"]
        assert (await client.get("/healthz")).status_code == 200
