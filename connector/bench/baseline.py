"""The naive loop a merchant could write in an afternoon, measured beside the connector on the same
queue (`connector bench --baseline`).

Synchronous and storage-free: read the UltraCart distribution center's queue, acknowledge each
batch, then one `httpx.Client.post` per order to ShipBob's create endpoint with a minimal mapped
body; orders without a street or city are skipped (a script would fail them at ShipBob). No
durable state, no redaction, no event log, no retries.

The UltraCart side uses the official `ultracart-rest-sdk` (`FulfillmentApi`) when it is installed
(`pip install 'ultracart-connector[bench]'`), as the performance issue's naive script does, and
plain `httpx.Client` calls on the same endpoints otherwise; the figures name the client used.

Only the loop is measured (`time.process_time` of this process while it runs; the sandboxes are
other processes); clients are built before and closed after.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

UC_API_VERSION = "2017-03-01"  # what UltraCart's REST API (and its SDK) sends
SHIPBOB_API_VERSION = "2026-01"  # the first path segment, as the ShipBob adapter's default
CLIENTS = ("auto", "sdk", "httpx")


def sdk_available() -> bool:
    from importlib import import_module

    try:
        import_module("ultracart.api.fulfillment_api")
    except ImportError:
        return False
    return True


@dataclass
class NaiveResult:
    client: str
    orders: int = 0  # fetched from the queue (each acknowledged)
    fetches: int = 0
    acks: int = 0
    posted: int = 0
    created: int = 0  # 200/201 answers
    failed: int = 0  # any other answer
    skipped: int = 0  # no street or city
    wall_s: float = 0.0
    cpu_s: float = 0.0

    def figures(self) -> dict[str, Any]:
        per = round(self.cpu_s * 1000 / self.orders, 3) if self.orders else None
        return {"client": self.client, "orders": self.orders, "fetches": self.fetches, "acks": self.acks, "posted": self.posted,
                "created": self.created, "failed": self.failed, "skipped": self.skipped, "wall_s": round(self.wall_s, 3),
                "cpu_s": round(self.cpu_s, 3), "cpu_ms_per_order": per,
                "per_second": round(self.orders / self.wall_s, 1) if self.wall_s else 0.0}


class _HttpxQueue:
    """The Fulfillment API's queue with plain httpx calls."""

    def __init__(self, base_url: str, api_key: str, dc: str):
        self.http = httpx.Client(base_url=base_url, timeout=60,
                                 headers={"x-ultracart-simple-key": api_key, "X-UltraCart-Api-Version": UC_API_VERSION})
        self.path = f"/fulfillment/distribution_centers/{quote(dc, safe='')}"

    def fetch(self) -> list[dict[str, Any]]:
        r = self.http.get(self.path + "/orders")
        r.raise_for_status()
        return r.json()["orders"]

    def ack(self, order_ids: list[str]) -> None:
        self.http.put(self.path + "/acknowledgements", json=order_ids).raise_for_status()

    @staticmethod
    def get(obj: Any, name: str) -> Any:
        return obj.get(name) if obj is not None else None

    def close(self) -> None:
        self.http.close()


class _SdkQueue:
    """The Fulfillment API's queue through the official SDK (models, not dicts)."""

    def __init__(self, base_url: str, api_key: str, dc: str):
        from ultracart.api.fulfillment_api import FulfillmentApi
        from ultracart.api_client import ApiClient
        from ultracart.configuration import Configuration

        config = Configuration(host=base_url)
        config.api_key["x-ultracart-simple-key"] = api_key
        self.client = ApiClient(configuration=config, header_name="X-UltraCart-Api-Version", header_value=UC_API_VERSION)
        self.api, self.dc = FulfillmentApi(self.client), dc

    def fetch(self) -> list[Any]:
        return list(self.api.get_distribution_center_orders(self.dc).orders or [])

    def ack(self, order_ids: list[str]) -> None:
        self.api.acknowledge_orders(self.dc, order_ids)

    @staticmethod
    def get(obj: Any, name: str) -> Any:
        return getattr(obj, name, None) if obj is not None else None

    def close(self) -> None:
        self.client.close()


def shipbob_body(order: Any, get: Any, ship_methods: dict[str, str]) -> dict[str, Any] | None:
    """The smallest body ShipBob accepts; None when the order has no street or city."""
    ship = get(order, "shipping")
    if not (get(ship, "address1") and get(ship, "city")):
        return None
    products = [{"reference_id": get(i, "merchant_item_id"), "name": get(i, "description") or get(i, "merchant_item_id"),
                 "quantity": int(get(i, "quantity") or 1)}
                for i in get(order, "items") or [] if not get(i, "kit")]  # a kit ships as its components
    name = f"{get(ship, 'first_name') or ''} {get(ship, 'last_name') or ''}".strip() or get(ship, "company") or "Customer"
    return {"reference_id": get(order, "order_id"), "order_number": get(order, "order_id"), "type": "DTC",
            "shipping_method": ship_methods.get(get(ship, "shipping_method") or "", "Standard"),
            "recipient": {"name": name, "phone_number": get(ship, "day_phone"),
                          "address": {"address1": get(ship, "address1"), "address2": get(ship, "address2"), "city": get(ship, "city"),
                                      "state": get(ship, "state_region"), "zip_code": get(ship, "postal_code"),
                                      "country": get(ship, "country_code") or "US"}},
            "products": products}


def naive_loop(*, uc_url: str, api_key: str, dc: str, sb_url: str, token: str, channel_id: int, ship_methods: dict[str, str],
               client: str = "auto") -> NaiveResult:
    """Drain the DC's queue into ShipBob the naive way; returns what it did and what it cost."""
    if client not in CLIENTS:
        raise ValueError(f"client must be one of {', '.join(CLIENTS)}")
    use_sdk = client == "sdk" or (client == "auto" and sdk_available())
    queue = _SdkQueue(uc_url, api_key, dc) if use_sdk else _HttpxQueue(uc_url, api_key, dc)
    shipbob = httpx.Client(base_url=sb_url, timeout=60, headers={"Authorization": f"Bearer {token}", "shipbob_channel_id": str(channel_id)})
    result = NaiveResult(client="ultracart-rest-sdk + httpx" if use_sdk else "httpx")
    get, create = queue.get, f"/{SHIPBOB_API_VERSION}/order"
    try:
        t0, c0 = time.perf_counter(), time.process_time()
        while True:
            orders = queue.fetch()
            result.fetches += 1
            if not orders:
                break
            queue.ack([get(o, "order_id") for o in orders])
            result.acks += 1
            result.orders += len(orders)
            for order in orders:
                body = shipbob_body(order, get, ship_methods)
                if body is None:
                    result.skipped += 1
                    continue
                answer = shipbob.post(create, json=body)
                result.posted += 1
                if answer.status_code in (200, 201):
                    result.created += 1
                else:
                    result.failed += 1
        result.cpu_s, result.wall_s = time.process_time() - c0, time.perf_counter() - t0
    finally:
        queue.close()
        shipbob.close()
    return result
