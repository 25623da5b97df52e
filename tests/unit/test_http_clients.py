"""Many merchants means many HTTP clients: each must not carry its own copy of the CA bundle."""

from __future__ import annotations

import asyncio

from adapters.http import HttpClient


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        return int(f.read().split("VmRSS:")[1].split()[0]) / 1024


def test_two_hundred_clients_share_one_tls_context_and_cost_little_memory():
    HttpClient("warm", "https://example.invalid", headers={})  # the one shared context is built here
    before = _rss_mb()
    clients = [HttpClient(f"v{i}", "https://example.invalid", headers={"Authorization": f"Bearer {i}"}) for i in range(200)]
    grown = _rss_mb() - before
    # A context of its own each would load the CA bundle 200 times (about 0.8 MB apiece).
    assert grown < 40, f"200 clients grew RSS by {grown:.0f} MB"
    asyncio.run(_close(clients))


async def _close(clients) -> None:
    for c in clients:
        await c.aclose()
