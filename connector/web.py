"""The HTTP listener on `[daemon].listen`: the UltraCart webhook receiver, probes and metrics.

- `POST /webhooks/ultracart/{merchant}`: orders pushed by UltraCart (`fulfillment_transmit`,
  `order_create`) enter the same intake as polling: stored once (the store absorbs repeats) and
  acknowledged by the next order-download pass, never from the request. UltraCart wants an
  answer within 30 s, so nothing here calls a vendor. Other events are only written to the event log.
- `/healthz` answers while the process serves; `/readyz` also checks that the database answers
  and the scheduler runs (503 otherwise, with the reason).
- `/metrics`: Prometheus exposition (see `connector.metrics`).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import anyio.to_thread
import structlog
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from adapters.ultracart.parse import WebhookParseError, parse_webhook
from connector import metrics
from connector.pipeline.context import ServiceContext
from connector.pipeline.orders import prepare_orders
from connector.redact import DEFAULT as REDACT
from connector.runtime import Runtime
from connector.store import NewOrder, utcnow

MAX_BODY = 10 * 1024 * 1024  # UltraCart caps a delivery at 900 KB; ten times that is plainly wrong
BODY_SECONDS = 30.0  # a body trickling in longer than UltraCart waits for our answer is not UltraCart
LOG_BODY_CHARS = 20_000  # per event in the event log; the full redacted order is kept on the order row
INTAKE_EVENTS = frozenset({"fulfillment_transmit", "order_create"})
SHIPPING_STAGE = "Shipping Department"
PROBE_SECONDS = 5.0

log = structlog.get_logger("connector.web")


def build_app(runtime: Runtime, scheduler_running: Callable[[], bool]) -> Starlette:
    exposition = metrics.MetricsExposition()
    receiver = WebhookReceiver(runtime)

    async def healthz(_: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    async def readyz(_: Request) -> JSONResponse:
        problems = []
        try:
            await asyncio.wait_for(runtime.store.ping(), PROBE_SECONDS)
        except Exception as exc:  # noqa: BLE001 - any database failure means not ready
            problems.append(f"database: {_brief(exc)}")
        if not scheduler_running():
            problems.append("scheduler: not running")
        if problems:
            return JSONResponse({"status": "not ready", "problems": problems}, status_code=503)
        return JSONResponse({"status": "ready", "merchants": sorted(runtime.contexts)})

    async def metrics_page(_: Request) -> Response:
        # The database is read here, in the event loop, before rendering: prometheus collectors
        # are synchronous and must not do I/O of their own.
        try:
            snapshot = await metrics.read_store(runtime.store, runtime.contexts)
        except Exception as exc:  # noqa: BLE001 - counters are still worth serving; store_up says 0
            log.warning("metrics: the database could not be read", error=_brief(exc))
            snapshot = metrics.StoreSnapshot(ok=False)
        return Response(exposition.render(snapshot), media_type=CONTENT_TYPE_LATEST)

    return Starlette(routes=[
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", metrics_page),
        Route("/webhooks/ultracart/{merchant}", receiver.handle, methods=["POST"]),
    ])


def _brief(exc: BaseException) -> str:
    """An error in one line: database errors carry the SQL and its parameters (order payloads)
    on the lines after the first, which have no place in a log or a probe answer."""
    first = (str(exc).splitlines() or [""])[0]
    return f"{type(exc).__name__}: {REDACT.text(first)[:200]}"


def parse_listen(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    return (host or "127.0.0.1").strip("[]"), int(port)


# ------------------------------------------------------------------------------ webhooks
class Rejected(Exception):
    """A delivery refused before its events were looked at: HTTP status, metric outcome, reason."""

    def __init__(self, status: int, outcome: str, reason: str, headers: dict[str, str] | None = None):
        super().__init__(reason)
        self.status, self.outcome, self.reason, self.headers = status, outcome, reason, headers


@dataclass
class EventOutcome:
    """What became of one event of a delivery: stored, duplicate or ignored (with the reason)."""

    event: str
    order_id: str
    outcome: str
    reason: str = ""
    log_body: str = ""  # the redacted event, for the event log


@dataclass
class Delivery:
    """One POST: its id (returned to the sender and kept on every event-log row) and bookkeeping."""

    merchant: str
    path: str
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:16])
    started: float = field(default_factory=time.perf_counter)
    size: int = 0

    def ms(self) -> float:
        return round((time.perf_counter() - self.started) * 1000, 1)


class WebhookReceiver:
    """`POST /webhooks/ultracart/{merchant}`: authenticate, bound, parse, store, record, answer."""

    def __init__(self, runtime: Runtime):
        self.runtime = runtime

    async def handle(self, request: Request) -> JSONResponse:
        d = Delivery(merchant=request.path_params["merchant"][:64], path=request.url.path)
        client = request.client.host if request.client else ""
        try:
            ctx = self._context(d)
            _authenticate(request, ctx, d)
            body = await _read_body(request)
            d.size = len(body)
            outcomes, rows = await anyio.to_thread.run_sync(_digest, ctx, body)
        except Rejected as r:
            return await self._reject(d, r, client)
        except Exception as exc:  # noqa: BLE001 - a bug must still leave its trace in the event log
            log.exception("webhook: the delivery could not be read", merchant=d.merchant, delivery=d.id)
            return await self._reject(d, Rejected(500, "error", f"internal error: {type(exc).__name__}"), client)
        try:
            new = set(await ctx.store.ingest_orders(ctx.id, ctx.dc, rows, source="webhook", actor="webhook"))
        except Exception as exc:  # noqa: BLE001 - the sender retries a 503; polling catches up anyway
            log.error("webhook: the orders could not be stored", merchant=ctx.id, delivery=d.id, error=_brief(exc))
            return await self._reject(d, Rejected(503, "error", "the orders could not be stored; retry later"), client)
        for o in outcomes:
            if o.outcome == "intake":
                # The first copy of an order in this delivery is the stored one; any repeat is a duplicate.
                o.outcome = "stored" if o.order_id in new else "duplicate"
                new.discard(o.order_id)
        counts = {k: sum(o.outcome == k for o in outcomes) for k in ("stored", "duplicate", "ignored")}
        reply = {"delivery_id": d.id, "received": len(outcomes), "stored": counts["stored"],
                 "duplicates": counts["duplicate"], "ignored": counts["ignored"]}
        await self._record(d, 200, [
            _log_row(d, 200, order_id=o.order_id, request_body=o.log_body, response_body=f"{o.event}: {o.outcome}", error=o.reason)
            for o in outcomes
        ] or [_log_row(d, 200, response_body=json.dumps(reply))])
        metrics.webhook(ctx.id, "accepted")
        log.info("webhook received", merchant=ctx.id, delivery=d.id, bytes=d.size, ms=d.ms(),
                 **{k: reply[k] for k in ("received", "stored", "duplicates", "ignored")})
        return JSONResponse(reply, headers={"X-Request-Id": d.id})

    def _context(self, d: Delivery) -> ServiceContext:
        ctx = self.runtime.contexts.get(d.merchant)
        if ctx is None:
            raise Rejected(404, "unknown_merchant", "unknown merchant")
        return ctx

    async def _reject(self, d: Delivery, r: Rejected, client: str) -> JSONResponse:
        known = d.merchant in self.runtime.contexts
        # The merchant label only for configured merchants: a stranger must not mint new series.
        metrics.webhook(d.merchant if known else "", r.outcome)
        log.warning("webhook rejected", merchant=d.merchant if known else "(unknown)", delivery=d.id, status=r.status,
                    reason=r.reason, bytes=d.size, client=client)
        await self._record(d, r.status, [_log_row(d, r.status, response_body=json.dumps({"error": r.reason}), error=r.reason)])
        return JSONResponse({"error": r.reason, "delivery_id": d.id}, status_code=r.status, headers=r.headers)

    async def _record(self, d: Delivery, status: int, rows: list[dict[str, Any]]) -> None:
        for row in rows:
            row["duration_ms"] = d.ms()
        try:
            await self.runtime.store.log_events(rows)
        except Exception as exc:  # noqa: BLE001 - the orders are stored; a lost audit row must not fail the delivery
            log.error("webhook: the event log could not be written", merchant=d.merchant, delivery=d.id, error=_brief(exc))


def _log_row(d: Delivery, status: int, **kw: Any) -> dict[str, Any]:
    row = dict(at=utcnow(), merchant=REDACT.text(d.merchant), kind="webhook", vendor="ultracart", order_id="", method="POST", url=d.path,
               status=status, request_id=d.id, duration_ms=None, request_body="", response_body="", error="")
    row.update(kw)
    return row


def _authenticate(request: Request, ctx: ServiceContext, d: Delivery) -> None:
    """HTTP Basic against the merchant's webhook credentials, compared in constant time."""
    uc = ctx.merchant.ultracart
    challenge = {"WWW-Authenticate": 'Basic realm="connector webhooks", charset="UTF-8"'}
    if not uc.webhook_password:
        log.warning("webhook refused: no ultracart.webhook_password is configured for this merchant; "
                    "set webhook_username and webhook_password to accept webhooks", merchant=ctx.id, delivery=d.id)
        raise Rejected(401, "not_configured", "unauthorized", challenge)
    user = password = b""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "basic":
        try:
            user, _, password = base64.b64decode(token.strip(), validate=True).partition(b":")
        except (binascii.Error, ValueError):
            pass
    # Both comparisons always run, so the timing tells nothing about which half was wrong.
    ok_user = hmac.compare_digest(user, uc.webhook_username.encode())
    ok_password = hmac.compare_digest(password, uc.webhook_password.encode())
    if not (ok_user & ok_password):
        raise Rejected(401, "unauthorized", "unauthorized", challenge)


async def _read_body(request: Request) -> bytes:
    """The body, refused past MAX_BODY: by the declared length first, then by counting what
    arrives (a chunked or lying client), so memory never holds more than the limit."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.strip().isdigit():
            raise Rejected(400, "malformed", "Content-Length is not a number")
        if int(declared) > MAX_BODY:
            raise Rejected(413, "too_large", f"body of {int(declared)} bytes exceeds the limit of {MAX_BODY}")
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(BODY_SECONDS):
            async for chunk in request.stream():
                size += len(chunk)
                if size > MAX_BODY:
                    raise Rejected(413, "too_large", f"body exceeds the limit of {MAX_BODY} bytes")
                chunks.append(chunk)
    except TimeoutError:
        raise Rejected(408, "timeout", f"body not received within {BODY_SECONDS:.0f} s ({size} bytes arrived)") from None
    except ClientDisconnect:
        raise Rejected(400, "malformed", f"client disconnected after {size} bytes of the body") from None
    return b"".join(chunks)


def _digest(ctx: ServiceContext, body: bytes) -> tuple[list[EventOutcome], list[NewOrder]]:
    """Parse a delivery and sort its events (CPU only, run off the event loop): the orders for
    the intake become store rows, everything else is `ignored` with the reason."""
    try:
        events = parse_webhook(body)
    except WebhookParseError as exc:
        raise Rejected(400, "malformed", REDACT.text(str(exc))[:300]) from None
    outcomes: list[EventOutcome] = []
    intake: list[tuple[EventOutcome, dict]] = []
    for name, obj in events:
        order_id = str(obj.get("order_id") or "").strip()[:200]
        reason = _not_for_intake(ctx, name, obj, order_id)
        o = EventOutcome(name[:100], order_id, "ignored" if reason else "intake", reason)
        outcomes.append(o)
        if reason:
            o.log_body = json.dumps({name: REDACT.data(obj)}, default=str)[:LOG_BODY_CHARS]
        else:
            intake.append((o, obj))
    rows, _ = prepare_orders(ctx, [obj for _, obj in intake])  # redacts each raw payload before it becomes a row
    # Every intake order has an id, so rows and intake pair up one to one. Redacting is the
    # costly step of a large delivery: the event log reuses the row's redacted payload.
    for (o, _), row in zip(intake, rows, strict=True):
        o.log_body = f"{{{json.dumps(o.event)}: {row.raw_json}}}"[:LOG_BODY_CHARS]
    return outcomes, rows


def _not_for_intake(ctx: ServiceContext, name: str, order: dict, order_id: str) -> str:
    """Why this event does not bring an order for this merchant's DC ("" when it does)."""
    if name not in INTAKE_EVENTS:
        return f"{name[:100]}: recorded only"
    if not order_id:
        return "no order_id: cannot be stored"
    merchant_id = str(order.get("merchant_id") or "").strip()
    expected = ctx.merchant.ultracart.merchant_id
    if merchant_id and expected and merchant_id.upper() != expected.upper():
        return f"order of UltraCart merchant {merchant_id[:40]!r}, not {expected!r}"
    items = order.get("items")
    codes = {str(i.get("distribution_center_code") or "").strip().upper() for i in items if isinstance(i, dict)} if isinstance(items, list) else set()
    codes.discard("")
    # No DC on any item (a trimmed expansion): accepted, the queue is ours. A DC list without
    # ours: another fulfillment house's order.
    if codes and ctx.dc.upper() not in codes:
        return f"for distribution center {', '.join(sorted(codes))[:100]}, not {ctx.dc}"
    stage = str(order.get("current_stage") or "").strip()
    if name == "order_create" and stage != SHIPPING_STAGE:
        # order_create fires at checkout, possibly before payment or fraud review; the order
        # comes again by fulfillment_transmit or the DC queue once it reaches shipping.
        return f"order_create in stage {stage[:60]!r}: not released to shipping yet"
    return ""
