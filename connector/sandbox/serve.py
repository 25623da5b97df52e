"""One sandbox in its own process, in the foreground (used by `connector bench`):

    python -m connector.sandbox.serve ultracart --port 0 --ready-file F --api-key K [--dcs DFLT,DC2]
    python -m connector.sandbox.serve shipbob --port 0 --ready-file F --token T [--accounts M] [--products N]
    python -m connector.sandbox.serve WAREHOUSE --port 0 --ready-file F [--token T] [--config-file C]
    common: [--latency-ms L] [--rate-limit R] [--host 127.0.0.1]

WAREHOUSE is any registered sandbox kit (entry-point group `connector.sandboxes`, a third
party's included) that serves HTTP; `--config-file` receives the `[merchants.warehouse]` block
pointing at it (JSON), and `--token` is the kit's credential.

Why a process: the bench measures the connector's CPU and memory; a sandbox in a thread of the
connector's process would be counted as the connector's. The URL is written to the ready file
once the server listens (port 0 = any free port). SIGTERM stops it.

On top of each sandbox's own control API this adds, for a parent process:
- `GET /_sandbox/counters`: request and injected-fault counters only. `/_sandbox/state` carries
  every order and shipment (megabytes at 10,000 orders); parsing that in the bench would distort
  the connector's memory figures.
- UltraCart `POST /_sandbox/generate {"dc", "prefix", "count", "seed"}`: queue `demo_orders`
  made here, so the bench process never holds 10,000 order documents.
- ShipBob `POST [/a{i}]/_sandbox/catalog {"skus": K, "change_every": 0}`: K generated SKUs
  (`SKU-000001`...) with stock in two fulfillment centers; `change_every: 100` then adds one unit
  to every 100th of them (a 1% change), without the bench building 100,000 stock entries.
- ShipBob `--accounts M`: M independent accounts (token `T-i`, own channel, stock and rate
  window), account i under the path prefix `/a{i}` (account 0 is also served at `/`), so M
  merchants do not read each other's shipments.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from connector.sandbox.faults import Faults
from connector.sandbox.kits import KITS, WarehouseKit, make_kit
from connector.sandbox.samples import demo_orders
from connector.sandbox.server import serve_blocking
from connector.sandbox.shipbob import ShipBobSandbox
from connector.sandbox.ultracart import UltraCartSandbox

# The catalog the sample orders use (demo SKUs) and the ship methods the bench config maps to.
CATALOG = ("BONE-5LB", "TREAT", "LEASH-RED", "LEASH-BLUE", "BOWL-L", "COLLAR-M")
SHIP_METHODS = ("Standard", "Expedited", "2-Day")
FULFILLMENT_CENTERS = (10, 11)


def generated_sku(i: int) -> str:
    """The name of the i-th generated catalog SKU (the bench computes the same names)."""
    return f"SKU-{i:06d}"


async def _reply(send: Send, status: int, body: Any) -> None:
    data = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]})
    await send({"type": "http.response.body", "body": data})


async def _read_json(receive: Receive) -> Any:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    raw = b"".join(chunks)
    return json.loads(raw) if raw else {}


def _faults(args: argparse.Namespace) -> Faults:
    return Faults(latency_ms=args.latency_ms, rate_limit_per_minute=args.rate_limit)


def stock_catalog(sb: ShipBobSandbox, skus: int, change_every: int = 0) -> None:
    """Shelve `skus` generated SKUs in both fulfillment centers (deterministic quantities), or,
    with `change_every`, add one unit to every `change_every`-th of them in the first one."""
    first, second = FULFILLMENT_CENTERS
    for n in range(1, skus + 1):
        sku = generated_sku(n)
        if change_every:
            if n % change_every == 0:
                with sb._lock:
                    sb.stock[sku][first]["fulfillable"] += 1
            continue
        sb.set_stock(sku, first, 50 + n % 50)
        sb.set_stock(sku, second, n % 7)


class UltraCartProcess:
    """The UltraCart sandbox plus `/_sandbox/counters` and `/_sandbox/generate`."""

    def __init__(self, args: argparse.Namespace):
        dcs = tuple(d for d in args.dcs.split(",") if d)
        self.sandbox = UltraCartSandbox(api_key=args.api_key, merchant_id="BENCH", distribution_centers=dcs)
        self.sandbox.faults.update({"latency_ms": args.latency_ms, "rate_limit_per_minute": args.rate_limit})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/_sandbox/counters":
            uc = self.sandbox
            with uc._lock:
                body = {"requests": dict(uc.requests), "faults": dict(uc.faults.counts),
                        "queued": sum(len(q) for q in uc._queues.values()), "acknowledged": len(uc._acknowledged),
                        "tracking_records": sum(len(p) for p in uc._shipment_posts),
                        "inventory_items": sum(len(p) for p in uc._inventory_posts)}
            await _reply(send, 200, body)
        elif scope["type"] == "http" and scope["path"] == "/_sandbox/generate":
            spec = await _read_json(receive)
            dc = str(spec.get("dc") or self.sandbox.distribution_centers[0])
            # Orders in a DC's queue carry that DC on their lines, as UltraCart's do.
            orders = demo_orders(str(spec["prefix"]), int(spec["count"]), seed=int(spec.get("seed", 7)), distribution_center=dc)
            self.sandbox.queue(dc, orders)
            await _reply(send, 200, {"queued": len(orders)})
        else:
            await self.sandbox.app(scope, receive, send)


class ShipBobProcess:
    """M ShipBob accounts behind path prefixes, plus aggregated `/_sandbox/counters`."""

    def __init__(self, args: argparse.Namespace):
        self.accounts: list[ShipBobSandbox] = []
        for i in range(args.accounts):
            token = args.token if args.accounts == 1 else f"{args.token}-{i}"
            sb = ShipBobSandbox(token=token, channel_id=1, products=CATALOG, ship_methods=SHIP_METHODS,
                                fulfillment_centers={fc: f"FC {fc}" for fc in FULFILLMENT_CENTERS},
                                split_every=args.split_every, void_every=args.void_every, faults=_faults(args))
            stock_catalog(sb, args.products)
            self.accounts.append(sb)

    def _counters(self) -> dict[str, Any]:
        requests: dict[str, int] = {}
        faults: dict[str, int] = {}
        created = 0
        for sb in self.accounts:
            with sb._lock:
                for key, n in sb.requests.items():
                    requests[key] = requests.get(key, 0) + n
                for key, n in sb.faults.counts.items():
                    faults[key] = faults.get(key, 0) + n
                created += sb.create_count
        return {"requests": requests, "faults": faults, "created": created}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.accounts[0].app(scope, receive, send)
            return
        path = scope["path"]
        if path == "/_sandbox/counters":
            await _reply(send, 200, self._counters())
            return
        target = self.accounts[0]
        if path.startswith("/a") and "/" in path[1:]:
            head, rest = path[2:].split("/", 1)
            if head.isdigit() and int(head) < len(self.accounts):
                target = self.accounts[int(head)]
                path = "/" + rest
                scope = dict(scope, path=path, raw_path=path.encode())
        if path == "/_sandbox/catalog":
            spec = await _read_json(receive)
            stock_catalog(target, int(spec.get("skus", 0)), int(spec.get("change_every", 0)))
            await _reply(send, 200, {"skus": len(target.stock)})
            return
        await target.app(scope, receive, send)


class KitProcess:
    """Any registered warehouse kit's HTTP sandbox, plus `/_sandbox/counters`."""

    def __init__(self, args: argparse.Namespace):
        self.kit: WarehouseKit = make_kit(args.kind, products=CATALOG, ship_methods=SHIP_METHODS, credential=args.token,
                                          split_every=args.split_every, void_every=args.void_every)
        if self.kit.app is None:
            raise SystemExit(f"the {args.kind} sandbox has no HTTP server to serve")
        if self.kit.faults is not None:
            self.kit.faults.update({"latency_ms": args.latency_ms, "rate_limit_per_minute": args.rate_limit})

    def counters(self) -> dict[str, Any]:
        sandbox = getattr(self.kit, "sandbox", None)
        return {"requests": dict(getattr(sandbox, "requests", {}) or {}),
                "faults": dict(self.kit.faults.counts) if self.kit.faults is not None else {}, "created": self.kit.created()}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/_sandbox/counters":
            await _reply(send, 200, self.counters())
        else:
            await self.kit.app(scope, receive, send)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m connector.sandbox.serve", description=__doc__.split("\n\n")[0])
    parser.add_argument("kind", choices=("ultracart", *sorted(KITS)))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--ready-file", help="write the URL here once listening")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="added to every API reply (not the control API)")
    parser.add_argument("--rate-limit", type=int, default=0, help="requests per sliding minute, then 429 (0 = none)")
    parser.add_argument("--api-key", default="sandbox-key", help="UltraCart simple key")
    parser.add_argument("--dcs", default="DFLT", help="UltraCart distribution centers, comma separated")
    parser.add_argument("--token", default="sandbox-token", help="the warehouse credential (ShipBob account i of several: TOKEN-i)")
    parser.add_argument("--config-file", help="a warehouse other than ShipBob: write its [merchants.warehouse] block here (JSON)")
    parser.add_argument("--accounts", type=int, default=1, help="ShipBob accounts, under /a0, /a1, ...")
    parser.add_argument("--products", type=int, default=0, help="ShipBob: generated SKUs with stock, besides the sample catalog")
    parser.add_argument("--split-every", type=int, default=9, help="ShipBob: every Nth order ships in two parcels")
    parser.add_argument("--void-every", type=int, default=13, help="ShipBob: every Nth order has a voided first label")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    app: ASGIApp
    if args.kind == "ultracart":
        app = UltraCartProcess(args)
    elif args.kind == "shipbob":
        app = ShipBobProcess(args)
    else:
        app = KitProcess(args)
    serve_blocking(app, args.host, args.port, args.ready_file, on_ready=_config_writer(app, args))


def _config_writer(app: ASGIApp, args: argparse.Namespace):
    """Once the URL is known, write the warehouse block pointing at it (`--config-file`)."""
    if not (args.config_file and isinstance(app, KitProcess)):
        return None

    def write(url: str) -> None:
        block = app.kit.warehouse_config(url, Path(args.config_file).parent)
        Path(args.config_file).write_text(json.dumps(block, indent=1))

    return write


if __name__ == "__main__":
    main()
