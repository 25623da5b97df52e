"""`connector sandbox`: the UltraCart and warehouse simulators on loopback with realistic orders
queued and a ready-to-use config, served until Ctrl-C, so a new user can try every command
against a fake account.

A small control API (printed at start) queues more orders, ships what the warehouse holds and
changes stock, so the flow can be driven by hand:

    curl -X POST 'http://127.0.0.1:PORT/queue?count=10'
    curl -X POST  http://127.0.0.1:PORT/ship
    curl -X POST 'http://127.0.0.1:PORT/stock?sku=TREAT&quantity=3'
"""

from __future__ import annotations

import itertools
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from connector.demo import PRODUCTS, SB_TOKEN, STOCK, UC_KEY, config_toml, demo_config
from connector.sandbox.kits import make_kit
from connector.sandbox.samples import demo_orders, onboarding_catalog, onboarding_history
from connector.sandbox.server import SandboxServer
from connector.sandbox.ultracart import UltraCartSandbox


class Playground:
    """The simulators, their config file and the control API, until `stop()`."""

    def __init__(self, folder: Path, *, warehouse: str = "shipbob", orders: int = 20):
        self.folder = folder
        # A catalog and a month of order history with planted mismatches, for `connector onboard demo`.
        self.uc = UltraCartSandbox(api_key=UC_KEY, merchant_id="DEMO", distribution_centers=("DFLT",),
                                   catalog=onboarding_catalog(), history=onboarding_history(datetime.now(timezone.utc)))
        self.kit = make_kit(warehouse, products=PRODUCTS, ship_methods=("Standard", "Expedited", "2-Day"), credential=SB_TOKEN)
        for sku, per_fc in STOCK.items():
            for fc, qty in zip(self.kit.warehouse_ids(), per_fc):
                self.kit.set_stock(sku, fc, qty)
        self._lock = threading.Lock()
        self._batches = itertools.count(1)
        self.servers: list[SandboxServer] = []
        self.uc_server = self._start(self.uc.app)
        self.wh_server = self._start(self.kit.app) if self.kit.app is not None else None
        self.control = self._start(self._control_app())
        self.queue(orders)
        folder.mkdir(parents=True, exist_ok=True)
        raw = demo_config(self.uc_server.url, self.kit.warehouse_config(self.wh_server.url if self.wh_server else "", folder),
                          self.kit.ship_methods, "sqlite:///connector.db")
        raw["daemon"]["listen"] = "127.0.0.1:8080"
        raw["daemon"]["log_level"] = "info"
        self.config_path = folder / "connector.toml"
        self.config_path.write_text(config_toml(raw, "`connector sandbox`: its merchant and sandboxes (they run until its Ctrl-C)"))

    def _start(self, app: Any) -> SandboxServer:
        server = SandboxServer(app).start()
        self.servers.append(server)
        return server

    def queue(self, count: int) -> int:
        with self._lock:
            batch = next(self._batches)
            orders = demo_orders("DEMO", count)
            for o in orders:  # fresh ids per batch: each batch is new orders, not repeats
                o["order_id"] = f"SBX{batch}-{o['order_id']}"
            self.uc.queue("DFLT", orders)
            return len(orders)

    def _control_app(self) -> Starlette:
        async def queue(request: Request) -> JSONResponse:
            count = int(request.query_params.get("count", "10"))
            return JSONResponse({"queued": self.queue(max(1, min(count, 1000)))})

        async def ship(_: Request) -> JSONResponse:
            with self._lock:
                self.kit.ship_all()
            return JSONResponse({"shipped": "every order the warehouse holds"})

        async def stock(request: Request) -> JSONResponse:
            sku = request.query_params.get("sku", "")
            quantity = int(request.query_params.get("quantity", "0"))
            fc = request.query_params.get("warehouse") or self.kit.warehouse_ids()[0]
            with self._lock:
                self.kit.set_stock(sku, fc, quantity)
            return JSONResponse({"sku": sku, "warehouse": fc, "available": quantity})

        return Starlette(routes=[Route("/queue", queue, methods=["POST"]), Route("/ship", ship, methods=["POST"]),
                                 Route("/stock", stock, methods=["POST"])])

    def describe(self) -> list[str]:
        c = self.control.url
        return [
            f"UltraCart sandbox: {self.uc_server.url} (merchant DEMO, distribution center DFLT, API key {UC_KEY})",
            f"{self.kit.name} sandbox: {self.wh_server.url if self.wh_server else '(files in ' + str(self.folder) + ')'}",
            f"config written: {self.config_path}",
            "in another terminal:",
            f"  connector run -c {self.config_path}          # the daemon against the sandboxes",
            f"  connector status -c {self.config_path}",
            f"  connector onboard demo -c {self.config_path}   # the go-live check: finds the planted SKU and method mismatches",
            f"  curl -X POST '{c}/queue?count=10'     # queue more orders at UltraCart",
            f"  curl -X POST {c}/ship                 # ship everything the warehouse holds",
            f"  curl -X POST '{c}/stock?sku=TREAT&quantity=3'   # change stock",
            "Ctrl-C stops the sandboxes.",
        ]

    def stop(self) -> None:
        for server in reversed(self.servers):
            server.stop()
