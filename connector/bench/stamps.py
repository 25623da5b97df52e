"""`python -m connector.bench.stamps ultracart|shipbob ...`: the sandbox processes of
`connector.sandbox.serve` (same arguments) for the latency phase, plus `GET /_sandbox/stamps`:
when each order was created at ShipBob and when each order's tracking reached UltraCart, on the
machine's monotonic clock (`time.monotonic()`: CLOCK_MONOTONIC, one clock for every process on
Linux, so the bench compares them with its own).

- UltraCart: `{"tracking": {order_id: {"at": t, "posts": n, "records": m}}}`: `at` is when the
  first shipments post carrying the order was answered, `posts` how many shipments posts carried
  it (the phase checks that it is exactly one) and `records` in how many records (a parcel each).
- ShipBob (every account): `{"created": {reference_id: {"at": t, "attempts": n}}}`: `at` is the
  moment the sandbox stored the order, `attempts` the create calls that named the reference.

ShipBob's orders never ship by themselves here (`ship_after_s` an hour): only the bench's
`/_sandbox/ship` ships one, so a shipments read by the connector cannot ship an order before
the bench starts its clock."""

from __future__ import annotations

import time
from typing import Any

from starlette.types import Receive, Scope, Send

from connector.sandbox import serve

NEVER_S = 3600.0


class UltraCartStamps:
    """The UltraCart sandbox process; every shipments post stamped when it is answered."""

    def __init__(self, inner: serve.UltraCartProcess):
        self.inner = inner
        self.seen = 0  # shipment posts already stamped
        self.tracking: dict[str, dict[str, Any]] = {}

    def _stamp(self) -> None:
        uc = self.inner.sandbox
        now = time.monotonic()
        with uc._lock:
            posts = uc._shipment_posts[self.seen:]
            self.seen += len(posts)
        for post in posts:
            for record in post:
                entry = self.tracking.setdefault(str(record.get("order_id")), {"at": now, "posts": 0, "records": 0})
                entry["records"] += 1
            for order_id in {str(record.get("order_id")) for record in post}:
                self.tracking[order_id]["posts"] += 1

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/_sandbox/stamps":
            self._stamp()
            await serve._reply(send, 200, {"tracking": self.tracking})
            return
        await self.inner(scope, receive, send)
        if scope["type"] == "http" and scope["path"].endswith("/shipments"):
            self._stamp()


class ShipBobStamps:
    """The ShipBob sandbox process (its accounts), with creation times exposed."""

    def __init__(self, inner: serve.ShipBobProcess):
        self.inner = inner
        for sb in inner.accounts:
            sb.ship_after_s = NEVER_S

    def created(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for sb in self.inner.accounts:
            with sb._lock:
                for ref, at in sb._created_at.items():
                    out[ref] = {"at": at, "attempts": sb.create_attempts.get(ref, 0)}
        return out

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/_sandbox/stamps":
            await serve._reply(send, 200, {"created": self.created()})
            return
        await self.inner(scope, receive, send)


def main(argv: list[str] | None = None) -> None:
    args = serve.parse_args(argv)
    if args.kind == "ultracart":
        app: Any = UltraCartStamps(serve.UltraCartProcess(args))
    elif args.kind == "shipbob":
        app = ShipBobStamps(serve.ShipBobProcess(args))
    else:
        raise SystemExit("the latency phase stamps the ultracart and shipbob sandboxes only")
    serve.serve_blocking(app, args.host, args.port, args.ready_file)


if __name__ == "__main__":
    main()
