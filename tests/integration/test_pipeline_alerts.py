"""The pipeline raises the alerts an operator needs, once per cause, and resolves them."""

from __future__ import annotations

import pytest

from connector.sandbox.samples import make_order

pytestmark = pytest.mark.asyncio


async def open_alerts(rt, merchant="acme"):
    return {(a.category, a.key): a for a in await rt.store.alerts.listing(merchant, "open")}


async def test_holds_and_failures_raise_one_alert_per_cause(flow, runtime):
    flow.uc.queue("DFLT", [make_order(f"DEMO-{i}", items=[("MYSTERY-SKU", 1)]) for i in range(3)]
                  + [make_order("DEMO-7", ship_method="Pigeon: Carrier Express"), make_order("DEMO-8", address=False)])
    bad = make_order("DEMO-9")
    bad["items"] = "oops"
    flow.uc.queue("DFLT", [bad])
    await runtime.run_once(service="order_download")
    await runtime.run_once(service="order_delivery")
    alerts = await open_alerts(runtime)
    assert alerts[("unknown_sku", "MYSTERY-SKU")].count == 3, "three orders, one alert"
    assert ("unmapped_ship_method", "Pigeon: Carrier Express") in alerts
    assert ("missing_address", "DEMO-8") in alerts
    assert ("malformed_order", "DEMO-9") in alerts


async def test_a_configuration_failure_alerts_once_and_resolves_when_it_works_again(flow, runtime):
    flow.uc.queue("DFLT", [make_order("DEMO-1")])
    await runtime.run_once(service="order_download")
    good_token = flow.sb.token
    flow.sb.token = "rotated-token"  # the merchant rotated the token in ShipBob
    await runtime.run_once(service="order_delivery")
    await runtime.run_once(service="order_delivery")
    alerts = await open_alerts(runtime)
    assert alerts[("configuration", "order_delivery")].count == 2
    assert "401" in alerts[("configuration", "order_delivery")].message
    flow.sb.token = good_token
    await runtime.run_once(service="order_delivery")
    assert ("configuration", "order_delivery") not in await open_alerts(runtime)
