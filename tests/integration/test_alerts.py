"""Alerts end to end: raised, deduplicated, queued through the outbox and delivered to a real
SMTP server on loopback (aiosmtpd), read back as the administrator would read them."""

from __future__ import annotations

import json
import socket
from datetime import timedelta
from email import message_from_bytes
from email.policy import default as email_policy

import pytest
from aiosmtpd.controller import Controller

from connector import alerts
from connector.config import from_dict
from connector.clock import FakeClock, utcnow
from connector.lifecycle import Actor, HoldKind, hold
from connector.store import NewOrder, Store
from tests.support.states import advance

pytestmark = pytest.mark.asyncio

UC_KEY, WEBHOOK_PW, SB_TOKEN, SMTP_PW = "uc-key-9f8e7d-secret", "hook-pw-4c3b2a", "sb-token-77aa11-secret", "smtp-pw-0x5e5e"


class Inbox:
    """aiosmtpd handler keeping every accepted message."""

    def __init__(self):
        self.messages: list[dict] = []

    async def handle_DATA(self, server, session, envelope):
        msg = message_from_bytes(envelope.content, policy=email_policy)
        self.messages.append(dict(to=sorted(envelope.rcpt_tos), raw=envelope.content.decode(), subject=str(msg["subject"]),
                                  body=msg.get_content(), message_id=str(msg["message-id"])))
        return "250 OK"

    def to(self, addr: str) -> list[dict]:
        return [m for m in self.messages if addr in m["to"]]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Smtp:
    """A loopback SMTP server that can be stopped and started again on the same port."""

    def __init__(self):
        self.port, self.inbox, self.controller = free_port(), Inbox(), None

    def start(self) -> Smtp:
        self.controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port)
        self.controller.start()
        return self

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


@pytest.fixture
def smtp():
    server = Smtp()
    yield server
    server.stop()


@pytest.fixture
async def store(tmp_path):
    s = await Store.open(f"sqlite:///{tmp_path}/t.db", clock=FakeClock(utcnow()))
    yield s
    await s.close()


async def digest(store: Store, cfg, now):
    """A digest pass at `now` (the store's clock moved there: claims and backoffs read it)."""
    store.clock.set(now)
    return await alerts.send_digests(store, cfg, now=now)


def merchant(mid: str, **extra) -> dict:
    return {
        "id": mid,
        "ultracart": {"merchant_id": "DEMO", "api_key": UC_KEY, "distribution_center": mid.upper(), "base_url": "http://127.0.0.1:9",
                      "webhook_username": mid, "webhook_password": WEBHOOK_PW},
        "warehouse": {"adapter": "shipbob", "base_url": "http://127.0.0.1:9", "token": SB_TOKEN, "channel_id": 1},
        **extra,
    }


def config(smtp: Smtp, *, email_to=("ops@3pl.test",), merchants=None):
    return from_dict({
        "alerts": {"email_to": list(email_to), "email_from": "connector@3pl.test", "smtp_host": "127.0.0.1",
                   "smtp_port": smtp.port, "smtp_password": SMTP_PW, "digest_minutes": 15},
        "merchants": merchants or [merchant("acme")],
    }, file="<test>")


async def test_repeats_make_one_line_with_the_count_and_advice(store, smtp):
    smtp.start()
    cfg, t0 = config(smtp), utcnow()
    for i in range(5):
        await alerts.raise_alert(store, "acme", "unknown_sku", "NOPE-1", "Order DEMO-0001: SKU NOPE-1 is not known at the warehouse",
                                 now=t0 + timedelta(minutes=i))
    stats = await digest(store, cfg, t0 + timedelta(minutes=5))
    assert stats["queued"] == 1 and stats["sent"] == 1
    [mail] = smtp.inbox.messages
    assert mail["to"] == ["ops@3pl.test"]
    assert mail["body"].count("SKU NOPE-1 is not known") == 1
    assert "5 times since" in mail["body"]
    assert "Unknown SKU (1)" in mail["body"] and "== acme ==" in mail["body"]
    assert alerts.CATEGORIES["unknown_sku"].advice in mail["body"]
    assert "acme (1)" in mail["subject"]
    # Raised again after it was sent: counted quietly, never e-mailed again ...
    await alerts.raise_alert(store, "acme", "unknown_sku", "NOPE-1", "again", now=t0 + timedelta(minutes=30))
    assert (await digest(store, cfg, t0 + timedelta(minutes=31)))["queued"] == 0
    [row] = await store.alerts.listing("acme")
    assert row.count == 6 and row.state == "open"
    # ... until it is resolved and comes back.
    assert await store.alerts.resolve("acme", "unknown_sku", "NOPE-1") == 1
    await alerts.raise_alert(store, "acme", "unknown_sku", "NOPE-1", "back again", now=t0 + timedelta(minutes=40))
    assert (await digest(store, cfg, t0 + timedelta(minutes=41)))["sent"] == 1
    assert "back again" in smtp.inbox.messages[-1]["body"] and "once, at" in smtp.inbox.messages[-1]["body"]


async def test_one_digest_per_interval(store, smtp):
    smtp.start()
    cfg, t0 = config(smtp), utcnow()
    await alerts.raise_alert(store, "acme", "orphan_shipment", "S1", "Shipment S1 has no order", now=t0)
    assert (await digest(store, cfg, t0))["sent"] == 1
    await alerts.raise_alert(store, "acme", "orphan_shipment", "S2", "Shipment S2 has no order", now=t0 + timedelta(minutes=1))
    assert (await digest(store, cfg, t0 + timedelta(minutes=5)))["queued"] == 0  # waits for the digest
    assert (await digest(store, cfg, t0 + timedelta(minutes=15)))["sent"] == 1
    assert [("S2" in m["body"], "S1" in m["body"]) for m in smtp.inbox.messages] == [(False, True), (True, False)]


async def test_digests_grouped_by_recipients(store, smtp):
    smtp.start()
    cfg = config(smtp, merchants=[merchant("acme", email_to=["owner@acme.test"]), merchant("beta", email_to=["ops@3pl.test"]),
                                  merchant("gamma")])
    for m, sku in (("acme", "A-1"), ("acme", "A-2"), ("beta", "B-1"), ("gamma", "G-1")):
        await alerts.raise_alert(store, m, "unknown_sku", sku, f"SKU {sku} is not known")
    await alerts.raise_alert(store, "beta", "configuration", "order_download", "UltraCart 401: invalid key")
    await digest(store, cfg, utcnow())
    inbox = smtp.inbox
    assert len(inbox.messages) == 2
    [ops] = inbox.to("ops@3pl.test")  # listed globally and by beta: one e-mail, not two
    [owner] = inbox.to("owner@acme.test")
    assert ops["to"] == ["ops@3pl.test"] and owner["to"] == ["owner@acme.test"]
    assert all(f"== {m} ==" in ops["body"] for m in ("acme", "beta", "gamma"))
    assert all(f"SKU {s} is not known" in ops["body"] for s in ("A-1", "A-2", "B-1", "G-1"))
    assert "== beta ==" not in owner["body"] and "B-1" not in owner["body"]
    assert "A-1" in owner["body"] and "A-2" in owner["body"]
    assert alerts.CATEGORIES["configuration"].title in ops["body"] and alerts.CATEGORIES["configuration"].advice in ops["body"]
    assert ops["body"].index("Unknown SKU") < ops["body"].index("== gamma ==")
    assert all(a.sent_at is not None for a in await store.alerts.listing())


async def test_alerts_nobody_would_receive_wait_unsent(store, smtp):
    smtp.start()
    cfg = config(smtp, email_to=())
    await alerts.raise_alert(store, "acme", "malformed_order", "X1", "cannot parse order X1")
    assert (await digest(store, cfg, utcnow()))["queued"] == 0
    assert [a.sent_at for a in await store.alerts.open()] == [None]


async def test_no_secret_in_the_email(store, smtp):
    smtp.start()
    cfg = config(smtp)
    detail = f"UltraCart said 401 for key {UC_KEY}; token {SB_TOKEN}; webhook {WEBHOOK_PW}; smtp {SMTP_PW}; card 4111 1111 1111 1111"
    await alerts.raise_alert(store, "acme", "configuration", "order_download", detail)
    await digest(store, cfg, utcnow())
    [mail] = smtp.inbox.messages
    for secret in (UC_KEY, SB_TOKEN, WEBHOOK_PW, SMTP_PW, "4111"):
        assert secret not in mail["raw"] and secret not in mail["body"]
    assert "UltraCart said 401 for key ***" in mail["body"]


async def test_smtp_down_keeps_the_email_until_the_server_is_back(store, smtp):
    cfg, t0 = config(smtp), utcnow()  # nothing listens on smtp.port yet
    await alerts.raise_alert(store, "acme", "order_failed", "DEMO-0007", "ShipBob 422: invalid zip", now=t0)
    stats = await digest(store, cfg, t0)
    assert stats == {"queued": 1, "sent": 0, "retrying": 1, "failed": 0}
    [task] = await store.tasks.listing(kind="alert_email")
    assert task.state == "pending" and task.attempts == 1 and task.next_attempt_at > t0 and task.last_error
    # Still down: retried at its time, still kept.
    await digest(store, cfg, t0 + timedelta(minutes=2))
    [task] = await store.tasks.listing(kind="alert_email")
    assert task.state == "pending" and task.attempts == 2
    # Server back: delivered, once.
    smtp.start()
    stats = await digest(store, cfg, t0 + timedelta(hours=1))
    assert stats["sent"] == 1
    [mail] = smtp.inbox.messages
    assert "ShipBob 422: invalid zip" in mail["body"]
    assert [t.state for t in await store.tasks.listing(kind="alert_email")] == ["done"]
    await digest(store, cfg, t0 + timedelta(hours=2))
    assert len(smtp.inbox.messages) == 1


async def test_crash_mid_send_loses_nothing(tmp_path, smtp):
    smtp.start()
    url = f"sqlite:///{tmp_path}/t.db"
    cfg, t0 = config(smtp), utcnow()
    first = await Store.open(url, clock=FakeClock(t0))
    await alerts.raise_alert(first, "acme", "inventory_failing", "inventory_upload", "UltraCart 503", now=t0)
    await alerts.queue_digest(first, cfg, now=t0)
    # The process claims the e-mail and dies before the SMTP server answers.
    [claimed] = await first.tasks.claim("", "alert_email", owner="dead-worker", lease_seconds=alerts.LEASE_S, limit=10)
    await first.close()
    second = await Store.open(url, clock=FakeClock(t0))
    try:
        assert (await digest(second, cfg, t0 + timedelta(seconds=10)))["sent"] == 0  # still leased
        stats = await digest(second, cfg, t0 + timedelta(seconds=alerts.LEASE_S + 1))
        assert stats["sent"] == 1
        [mail] = smtp.inbox.messages
        assert "UltraCart 503" in mail["body"] and claimed.key in mail["message_id"]
    finally:
        await second.close()


async def test_stuck_orders_and_overdue_tracking(store, smtp):
    smtp.start()
    cfg = config(smtp)
    await store.orders.ingest("acme", "DFLT", [
        NewOrder("DEMO-0001", "acme-DEMO-0001", "{}", "{}"),
        NewOrder("DEMO-0002", "acme-DEMO-0002", "{}", "{}"),
        NewOrder("DEMO-0003", "acme-DEMO-0003", "{}", "{}", state="held", reason=hold(HoldKind.unknown_sku, skus=["X"])),
    ], source="poll", actor=Actor.order_download)
    pks = {r.order_id: r.id for r in await store.orders.listing()}
    await advance(store, pks["DEMO-0002"], "at_warehouse", "created", warehouse_order_id="SB-2")
    await store.tasks.put("acme", "post_tracking", "acme-DEMO-0009", {"order_pk": 9, "shipment_ids": ["S9"], "body": {"order_id": "DEMO-0009"}})

    # Nothing is late yet.
    assert (await alerts.check_stuck(store, cfg, now=utcnow()))["new_alerts"] == 0

    soon = utcnow() + timedelta(hours=5)
    stats = await alerts.check_stuck(store, cfg, now=soon)
    assert stats["new_alerts"] == 3
    opened = {(a.category, a.key) for a in await store.alerts.open("acme")}
    # A held order is stuck too: a hold nobody resolves must not wait unseen.
    assert opened == {("order_stuck", "DEMO-0001:not_at_warehouse"), ("order_stuck", "DEMO-0003:not_at_warehouse"),
                      ("tracking_not_posted", "acme-DEMO-0009")}
    await alerts.check_stuck(store, cfg, now=soon + timedelta(minutes=15))  # a repeat pass only counts
    assert {a.count for a in await store.alerts.open("acme")} == {2}

    await digest(store, cfg, soon)
    [mail] = smtp.inbox.messages
    assert "Order DEMO-0001 was received 5 hours ago and is still not at the warehouse" in mail["body"]
    assert "Tracking for order DEMO-0009 has waited 5 hours" in mail["body"]
    assert alerts.CATEGORIES["order_stuck"].advice in mail["body"]

    # DEMO-0001 reaches the warehouse, the tracking is accepted; days later both orders sit unshipped.
    await advance(store, pks["DEMO-0001"], "at_warehouse", "created")
    [task] = await store.tasks.listing(kind="post_tracking")
    await store.tasks.finish([task.id], state="done")
    later = utcnow() + timedelta(days=4)
    await alerts.check_stuck(store, cfg, now=later)
    opened = {a.key for a in await store.alerts.open("acme")}
    assert opened == {"DEMO-0001:unshipped", "DEMO-0002:unshipped", "DEMO-0003:not_at_warehouse"}
    resolved = {a.key for a in await store.alerts.listing("acme", state="resolved")}
    assert resolved == {"DEMO-0001:not_at_warehouse", "acme-DEMO-0009"}


async def test_failed_tracking_post_is_reported_at_once(store, smtp):
    cfg = config(smtp)
    await store.tasks.put("acme", "post_tracking", "S5", {"body": {"order_id": "DEMO-0005"}})
    [task] = await store.tasks.listing(kind="post_tracking")
    await store.tasks.finish([task.id], state="failed", error="UltraCart 400: unknown order")
    await alerts.check_stuck(store, cfg, now=utcnow())
    [a] = await store.alerts.open("acme", "tracking_not_posted")
    assert "DEMO-0005" in a.message and "UltraCart 400: unknown order" in a.message and "failed" in a.message


async def test_digest_payload_is_what_was_rendered(store, smtp):
    """The outbox holds the finished e-mail: a later config change cannot alter a queued digest's text."""
    cfg = config(smtp)
    await alerts.raise_alert(store, "acme", "missing_address", "DEMO-0004", "Order DEMO-0004 has no ship-to address")
    assert await alerts.queue_digest(store, cfg, now=utcnow()) == 1
    [task] = await store.tasks.listing(kind="alert_email")
    payload = json.loads(task.payload)
    assert payload["to"] == ["ops@3pl.test"] and "Order DEMO-0004 has no ship-to address" in payload["body"]
    assert len(payload["alert_ids"]) == 1 and payload["subject"].startswith("[connector] 1 alert")


async def test_stuck_order_alerts_close_per_merchant_and_a_disabled_merchants_stay(store, smtp):
    cfg = config(smtp, merchants=[merchant("acme"), merchant("globex"), merchant("initech", enabled=False)])
    long_id = "L" * 250  # an order id longer than an alert key: its key is stored cut
    for mid in ("acme", "globex", "initech"):
        await store.orders.ingest(mid, mid.upper(), [NewOrder("DEMO-0001", f"{mid}-DEMO-0001", "{}", "{}"),
                                                      NewOrder(long_id, f"{mid}-{long_id}", "{}", "{}")],
                                  source="poll", actor=Actor.order_download)
    later = utcnow() + timedelta(hours=5)
    await alerts.check_stuck(store, cfg, now=later)
    opened = sorted((a.merchant, a.key[:12]) for a in await store.alerts.open(category="order_stuck"))
    assert opened == [("acme", "DEMO-0001:no"), ("acme", "LLLLLLLLLLLL"), ("globex", "DEMO-0001:no"), ("globex", "LLLLLLLLLLLL")]
    # initech is disabled: not checked. Give it an open stuck alert of its own, which must stay.
    await store.alerts.raise_many([("initech", "order_stuck", "DEMO-0001:not_at_warehouse", "stuck")], now=later)
    # acme's DEMO-0001 reaches the warehouse: only that alert closes; the long-keyed one is still stuck and stays open.
    [pk] = [r.id for r in await store.orders.listing(merchant="acme") if r.order_id == "DEMO-0001"]
    await advance(store, pk, "at_warehouse", "created")
    stats = await alerts.check_stuck(store, cfg, now=later + timedelta(minutes=1))
    assert stats["resolved"] == 1
    still = sorted((a.merchant, a.key[:12]) for a in await store.alerts.open(category="order_stuck"))
    assert still == [("acme", "LLLLLLLLLLLL"), ("globex", "DEMO-0001:no"), ("globex", "LLLLLLLLLLLL"), ("initech", "DEMO-0001:no")]
