"""The bad-input catalogue: each bad order gets its clear reason while the good ones flow."""

from __future__ import annotations

import pytest

from connector.sandbox.samples import make_order

pytestmark = pytest.mark.asyncio


def catalogue() -> dict[str, tuple[dict, str | None]]:
    """order id -> (payload, expected hold reason prefix; None = must flow)."""
    def with_items(order_id, items):
        o = make_order(order_id)
        o["items"] = items
        return o

    item = make_order("X")["items"][0]
    qty = lambda q: [{**item, "quantity": q}]  # noqa: E731
    no_billing = make_order("BAD-0009")
    no_billing.pop("billing", None)
    no_billing.pop("summary", None)
    no_billing.pop("payment", None)
    unicode = make_order("BAD-0010", address={"first_name": "Zoë", "last_name": "Øster-Łukasiewicz 王", "address1": "Straße 1 ✓",
                                              "city": "München", "postal_code": "80331", "country_code": "DE"})
    return {
        "BAD-0001": (with_items("BAD-0001", [{**item, "quantity": "abc"}]), "malformed order"),
        "BAD-0002": (with_items("BAD-0002", "not a list"), "malformed order"),
        "BAD-0003": (with_items("BAD-0003", qty(0)), "zero quantity"),
        "BAD-0004": (with_items("BAD-0004", qty(-2)), "negative quantity"),
        "BAD-0005": (with_items("BAD-0005", qty(1.5)), "fractional quantity"),
        "BAD-0006": (with_items("BAD-0006", []), "order has no items"),
        "BAD-0007": (with_items("BAD-0007", [{**item, "quantity": 1}, {**item, "quantity": 2, "item_index": 2}]), None),
        "BAD-0008": (make_order("BAD-0008", items=[("TREAT", 1.0)]), None),  # 1.0 is a whole quantity
        "BAD-0009": (no_billing, None),
        "BAD-0010": (unicode, None),
        "BAD-0011": (make_order("BAD-0011", address={"address1": "", "city": ""}), "missing ship-to address"),
        "BAD-0012": (make_order("BAD-0012", items=[("NOPE-" + "x" * 300, 1)]), "unknown SKU"),
    }


async def test_each_bad_order_is_held_with_its_reason_and_the_others_flow(flow, runtime):
    cases = catalogue()
    good = [make_order(f"GOOD-{i}") for i in range(5)]
    flow.uc.queue("DFLT", good[:2] + [payload for payload, _ in cases.values()] + good[2:])
    results = await runtime.run_once(service="order_download") + await runtime.run_once(service="order_delivery")
    assert all(r.ok for r in results), results
    rows = {r.order_id: r for r in await runtime.store.orders.listing(limit=1000)}
    for order_id, (_, reason) in cases.items():
        row = rows[order_id]
        if reason is None:
            assert row.state == "at_warehouse", (order_id, row.state, row.reason)
        else:
            assert row.state == "held" and row.reason.startswith(reason) or reason in row.reason, (order_id, row.reason)
    for g in good:
        assert rows[g["order_id"]].state == "at_warehouse"
    assert set(flow.uc.acknowledged) == set(rows), "every stored order, bad or good, is acknowledged"
    merged = flow.sb.orders["acme-BAD-0007"]["products"]
    assert len(merged) == 1 and merged[0]["quantity"] == 3, "the same SKU on two lines is one line of 3"
    assert "Straße 1 ✓" in str(flow.sb.orders["acme-BAD-0010"]) and "王" in str(flow.sb.orders["acme-BAD-0010"])


async def test_huge_free_text_still_flows_within_the_warehouse_limits(flow, runtime):
    big = make_order("BIG-1", gift={"gift": True, "gift_message": "Happy birthday! " * 600},
                     internal={"merchant_notes": "n" * 20000}, checkout={"comments": "ü" * 5000})
    flow.uc.queue("DFLT", [make_order("GOOD-1"), big])
    await runtime.run_once(service="order_download")
    await runtime.run_once(service="order_delivery")
    rows = {r.order_id: r for r in await runtime.store.orders.listing()}
    assert rows["GOOD-1"].state == rows["BIG-1"].state == "at_warehouse"
    sent = flow.sb.orders["acme-BIG-1"]
    assert 0 < len(sent.get("gift_message") or "") <= 500  # ShipBob's documented limit
