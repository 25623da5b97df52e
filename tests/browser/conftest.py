"""Browser tests: the console served by uvicorn in the test's event loop, on a Runtime wired to
the loopback sandboxes, driven by headless Chromium through Playwright.

Debian's chromium is used (`/usr/bin/chromium`, or `chromium` on the PATH); no browser is ever
downloaded. The tests skip, saying so, only when Chromium cannot be found. Screenshots of the
main pages go to tests/browser/screenshots/ (ignored by git); with CONNECTOR_DOCS_SCREENSHOT=1
the overview is also written to docs/console.png for the README.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from connector.config import from_dict
from connector.console.auth import hash_password
from connector.sandbox.samples import make_order
from connector.web import Daemon, build_app
from tests.support.flow import Flow

CHROMIUM = next((p for p in ("/usr/bin/chromium", shutil.which("chromium") or "") if p and os.path.exists(p)), "")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
SHOTS = Path(__file__).parent / "screenshots"
DOCS = Path(__file__).parents[2] / "docs"
PIGEON = "Pigeon: Carrier Express"
PASSWORDS = {"alice": "alice-secret-pw", "globex-viewer": "globex-view-pw"}
USERS = [{"name": "alice", "role": "operator", "password_hash": hash_password(PASSWORDS["alice"])},
         {"name": "globex-viewer", "role": "merchant:globex", "password_hash": hash_password(PASSWORDS["globex-viewer"])}]



def pytest_collection_modifyitems(items: list[Any]) -> None:
    if CHROMIUM:
        return
    skip = pytest.mark.skip(reason="Chromium not found (/usr/bin/chromium or chromium on the PATH): apt-get install chromium")
    for item in items:
        if "tests/browser/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(skip)


@pytest.fixture
def flow(tmp_path):
    f = Flow(tmp_path, merchants=("acme", "globex"))
    yield f
    f.close()


def console_config(flow: Flow, **merchant_overrides: Any):
    for m, extra in merchant_overrides.items():
        flow.overrides[m] = extra
    data = flow.config_dict()
    data["console"] = {"users": USERS}
    return from_dict(data, file="connector.toml")


class Kicker:
    """The daemon's `kick`, for a test: start the pass now, in this loop; `drain()` awaits them."""

    def __init__(self, rt: Any):
        self.rt = rt
        self.tasks: list[asyncio.Task] = []
        self.kicked: list[tuple[str, str]] = []

    def __call__(self, merchant: str, service: str) -> None:
        self.kicked.append((merchant, service))
        self.tasks.append(asyncio.get_running_loop().create_task(self.rt.run_service(merchant, service)))

    async def drain(self) -> None:
        await asyncio.gather(*self.tasks, return_exceptions=True)


@pytest.fixture
async def served(flow) -> AsyncIterator[dict[str, Any]]:
    """acme: DEMO-0001..3 at the warehouse, DEMO-0014 and DEMO-0015 held for an unmapped ship
    method; globex: GLOBEX-0001 at the warehouse. The daemon's app on a loopback port."""
    flow.uc.queue("DFLT", [make_order(f"DEMO-{i:04d}") for i in range(1, 4)]
                  + [make_order(f"DEMO-{i:04d}", ship_method=PIGEON) for i in (14, 15)])
    flow.uc.queue("GLOBEX", [make_order("GLOBEX-0001", distribution_center="GLOBEX")])
    rt = await flow.runtime()
    await rt.apply_config(console_config(flow))
    for service in ("order_download", "order_delivery", "shipment_upload"):
        for m in ("acme", "globex"):
            assert (await rt.run_service(m, service, honour_pause=False)).ok
    await rt.start(config_path="connector.toml", listen="127.0.0.1:8080")  # the overview shows a daemon running
    kick = Kicker(rt)
    try:
        async with serve(build_app(rt, Daemon(kick=kick))) as url:
            yield dict(rt=rt, url=url + "/ui", kick=kick, flow=flow)
    finally:
        await kick.drain()
        await rt.aclose()


@contextlib.asynccontextmanager
async def serve(app: Any) -> AsyncIterator[str]:
    """uvicorn on a loopback port, in this event loop."""
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


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield b
        finally:
            await b.close()


async def shot(page: Any, name: str) -> Path:
    SHOTS.mkdir(exist_ok=True)
    path = SHOTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path
