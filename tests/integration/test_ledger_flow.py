"""Stock consumed in the merchant's inventory ledger (Aligni) when orders ship, through the
UltraCart, ShipBob and Aligni simulators on loopback: by UltraCart's order_ship webhook and by
this connector's own confirmation, each line once, from the units the configured rule picks."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import httpx
import pytest

from connector.sandbox.aligni import AligniKit
from connector.sandbox.samples import make_order
from connector.web import build_app
from tests.integration.test_alerts import Smtp
from tests.integration.test_webhooks import PASSWORD, USER, events, serve
from tests.support.flow import Flow
from tests.support.warehouse import orders

pytestmark = pytest.mark.asyncio
T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
# WIDGET units: (quantity, lot code, datecode, created on day N); 6 are shipped.
WIDGETS = [(5, "LOT-10", "2026-03", 2), (9, "LOT-2", "2026-01", 1), (4, "LOT-1", "2026-02", 3)]


@pytest.fixture
def ledger(flow: Flow):
    kits: list[AligniKit] = []

    def make(unit_selection: str = "fifo", consume_on=("order_ship", "confirmed"), **merchant) -> AligniKit:
        kit = AligniKit(token="ledger-token-" + unit_selection, unit_selection=unit_selection)
        block = kit.start()
        block["consume_on"] = list(consume_on)
        flow.overrides["acme"] = {"ledger": block, "ultracart": {"webhook_username": USER, "webhook_password": PASSWORD}, **merchant}
        kits.append(kit)
        return kit

    yield make
    for kit in kits:
        kit.stop()


def widgets(kit: AligniKit) -> list[str]:
    return [kit.sandbox.add_unit("WIDGET", q, lot_code=lot, datecode=dc, created_at=T0 + timedelta(days=day)) for q, lot, dc, day in WIDGETS]


async def ship_webhook(rt, *orders_) -> httpx.Response:
    async with serve(build_app(rt)) as url, httpx.AsyncClient(base_url=url) as client:
        body = json.dumps({"events": events(*[("order_ship", o) for o in orders_])})
        return await client.post("/webhooks/ultracart/acme", content=body, auth=(USER, PASSWORD))


@pytest.mark.parametrize("rule, expected", [
    ("fifo", {1: 6}),  # the oldest unit first: the second (day 1) has 9
    ("lifo", {2: 4, 0: 2}),
    ("largest_first", {1: 6}),
    ("smallest_first", {2: 4, 0: 2}),
    ("lot_code", {2: 4, 1: 2}),  # LOT-1, then LOT-2 (numbers compared as numbers: LOT-10 last)
    ("datecode", {1: 6}),  # 2026-01 first
])
async def test_an_order_ship_webhook_consumes_the_units_the_rule_picks_once(flow, ledger, rule, expected):
    kit = ledger(rule)
    units = widgets(kit)
    rt = await flow.runtime()
    try:
        order = make_order("SHIP-1", merchant_id="DEMO", items=[("WIDGET", 6)])
        r = await ship_webhook(rt, order)
        assert r.status_code == 200 and r.json()["to_consume"] == 1
        report = await rt.run_service("acme", "ledger_consume")
        assert report.did["consumed"] == 1, report
        taken = {i: int(Decimal(q) - kit.sandbox.quantity(u)) for i, (u, (q, *_)) in enumerate(zip(units, WIDGETS)) if kit.sandbox.quantity(u) != Decimal(q)}
        assert taken == expected, (rule, taken)
        # The same webhook again (UltraCart retries) consumes nothing more.
        assert (await ship_webhook(rt, order)).json()["to_consume"] == 0
        await rt.run_service("acme", "ledger_consume")
        assert {i: int(Decimal(q) - kit.sandbox.quantity(u)) for i, (u, (q, *_)) in enumerate(zip(units, WIDGETS)) if kit.sandbox.quantity(u) != Decimal(q)} == expected
        [c] = await rt.store.ledger.listing("acme", order_id="SHIP-1")
        assert c.state == "done" and c.consumed == "6"
    finally:
        await rt.aclose()


async def test_orders_this_connector_confirms_are_consumed_through_aliases_and_kits(flow, ledger):
    kit = ledger(consume_on=("confirmed",))
    before = kit.stock()
    rt = await flow.runtime()
    try:
        flow.uc.queue("DFLT", [make_order("DEMO-0001", items=[("Bone", 2)]), make_order("DEMO-0002", items=(), kit={"GIFT-SET": {"BONE-5LB": 1, "TREAT": 2}})])
        for service in ("order_download", "order_delivery"):
            await rt.run_service("acme", service)
        flow.sb.ship_all()
        await rt.run_service("acme", "shipment_upload")
        await rt.run_service("acme", "ledger_consume")
        after = kit.stock()
        assert before["BONE-5LB"] - after["BONE-5LB"] == 3  # 2 by the alias, 1 in the gift set
        assert before["TREAT"] - after["TREAT"] == 2
        [row] = await rt.store.orders.find("DEMO-0001")
        assert any("aligni: consumed BONE-5LB x2" in e.reason for e in await rt.store.orders.timeline(row.id))
    finally:
        await rt.aclose()


async def test_unknown_and_short_items_each_send_one_email_with_exact_figures(flow, ledger):
    smtp = Smtp().start()
    try:
        kit = ledger()
        kit.sandbox.add_unit("SCARCE", 2, lot_code="L1")
        kit.sandbox.add_unit("SCARCE", 1, lot_code="L2")
        data_alerts = {"email_to": ["ops@3pl.test"], "email_from": "c@3pl.test", "smtp_host": "127.0.0.1", "smtp_port": smtp.port}
        rt = await flow.runtime()
        rt.config.alerts = rt.config.alerts.model_validate(data_alerts)
        try:
            await ship_webhook(rt, make_order("SHIP-2", merchant_id="DEMO", items=[("NO-SUCH-ITEM", 1), ("SCARCE", 5)]))
            await rt.run_service("acme", "ledger_consume")
            await ship_webhook(rt, make_order("SHIP-2", merchant_id="DEMO", items=[("NO-SUCH-ITEM", 1), ("SCARCE", 5)]))  # repeated: nothing new
            await rt.run_service("acme", "ledger_consume")
            await rt.alerts_pass(force=True)
            [mail] = smtp.inbox.messages
            body = mail["body"]
            assert "aligni has no item NO-SUCH-ITEM" in body and "SHIP-2" in body
            assert "SCARCE: 5 shipped; consumed 3 (2 from unit" in body and "1 from unit" in body and "2 short" in body
            assert body.count("SHIP-2:SCARCE") <= 1 and len([a for a in await rt.store.alerts.open("acme")]) == 2
        finally:
            await rt.aclose()
    finally:
        smtp.stop()


@pytest.mark.parametrize("flow", ["sqlite"], indirect=True)
async def test_a_kill_between_the_ledger_call_and_its_record_never_consumes_twice(flow, ledger):
    kit = ledger()
    [unit] = [kit.sandbox.add_unit("KILLME", 10, lot_code="K")]
    rt = await flow.runtime()
    try:
        await ship_webhook(rt, make_order("SHIP-3", merchant_id="DEMO", items=[("KILLME", 4)]))
    finally:
        await rt.aclose()
    cfg = flow.write_toml()
    cmd = [sys.executable, "-m", "connector", "run", "--once", "-c", str(cfg), "--service", "ledger_consume"]
    killed = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env={**os.environ, "CONNECTOR_FAILPOINT": "after_consume_before_record"})
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr
    assert kit.sandbox.quantity(unit) == 6  # consumed, not recorded
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stdout + again.stderr
    assert kit.sandbox.quantity(unit) == 6, "read back, found applied, not consumed again"
    status = json.loads(subprocess.run([sys.executable, "-m", "connector", "status", "-c", str(cfg), "--json"], capture_output=True, text=True).stdout)
    [run] = [s for s in status["merchants"][0]["services"] if s["service"] == "ledger_consume"]
    assert run["did"]["consumed"] == 1


async def test_stock_from_the_ledger_reaches_ultracart_clamped(flow, ledger):
    ledger(inventory={"source": "ledger", "minimum_level": 5, "push_by_alias": False})
    rt = await flow.runtime()
    try:
        r = await rt.run_service("acme", "inventory_upload")
        assert r.ok and r.did["pushed"] >= 6, r
        pushed = flow.uc.inventory_levels()
        assert pushed["LEASH-BLUE"] == 0, "3 available < minimum 5"
        assert pushed.get("BONE-5LB", pushed.get("Bone", 0)) > 0 and all(q >= 0 for q in pushed.values()), pushed
    finally:
        await rt.aclose()
