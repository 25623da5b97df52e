"""The HTTP listener on `[daemon].listen`: the UltraCart webhook receiver, probes, metrics and
the daemon's control endpoint.

- `POST /webhooks/ultracart/{merchant}`: orders pushed by UltraCart (`fulfillment_transmit`,
  `order_create`) enter the same intake as polling (stored once; the store absorbs repeats);
  acknowledged to UltraCart by the next download pass. UltraCart wants an answer within 30 s, so
  nothing here calls a vendor, and a locked database fails fast (503) so UltraCart retries.
  Refusals (401 for a wrong password or an unknown merchant alike, 413, 400) are counted in the
  metrics, never written to the database: a stranger cannot grow it.
- `/healthz` answers while the process serves; `/readyz` also checks that the database answers
  and takes writes, and that the scheduler runs (503 otherwise, with the reason).
- `/metrics`: Prometheus exposition (see `connector.metrics`).
- `POST /control/reload` (from loopback only): reload the config, as SIGHUP does.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import binascii
import hmac
import json
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import anyio.to_thread
import structlog
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from adapters.ultracart.parse import WebhookParseError, parse_webhook
from connector import metrics
from connector.config import SERVICES
from connector.tokens import CONTROL_HEADER, WAREHOUSE_SECRET, WAREHOUSE_TOKEN, control_token
from connector.health import database_fault
from connector.lifecycle import Actor
from connector.pipeline.context import ServiceContext
from connector.pipeline.changes import take_cart_copies
from connector.pipeline.intake import prepare_orders, take_in
from connector.pipeline.ledger import ask_to_consume, consumes_on
from connector.runtime import Runtime
from connector.untrusted import UntrustedInput, check_shape, loads_bounded

MAX_BODY = 10 * 1024 * 1024  # UltraCart caps a delivery at 900 KB; ten times that is plainly wrong
MAX_EVENTS = 10_000  # UltraCart batches tens of events; a delivery of millions is an attack
MAX_DEPTH = 64
BODY_SECONDS = 30.0  # a body trickling in longer than UltraCart waits for our answer is not UltraCart
LOG_BODY_CHARS = 20_000  # per event in the event log; the full redacted order is kept on the order row
LOG_ROWS = 50  # event-log rows per delivery at most; the rest are summarised in one row
INTAKE_EVENTS = frozenset({"fulfillment_transmit", "order_create"})
# What changed after hand-off: applied to orders the connector knows (connector.pipeline.changes).
CHANGE_EVENTS = frozenset({"order_reject", "order_refund", "order_stage_change", "order_update", "order_delete", "fulfillment_hold"})
SHIPPING_STAGE = "Shipping Department"
PROBE_SECONDS = 5.0

log = structlog.get_logger("connector.web")


class Refusals:
    """One log line per kind of refusal per minute, with how many there were: a flood of bad
    requests must not become a flood of log lines."""

    def __init__(self, every: float = 60.0):
        self.every = every
        self.counts: Counter[str] = Counter()
        self.last: dict[str, float] = {}

    def note(self, kind: str, **detail: Any) -> None:
        self.counts[kind] += 1
        now = time.monotonic()
        if now - self.last.get(kind, -self.every) >= self.every:
            n, self.counts[kind] = self.counts[kind], 0
            self.last[kind] = now
            log.warning("webhook rejected", outcome=kind, refused_since_last_line=n, **detail)


@dataclass
class Daemon:
    """What the listener needs to know of the daemon around it."""

    healthy: Callable[[], bool] = lambda: True
    reload: Callable[[], Awaitable[str]] | None = None
    kick: Callable[[str, str], None] | None = None  # start a merchant's service pass now (work arrived)


_LOOPBACK = ("127.0.0.1", "::1", "localhost")
_FORWARDED = ("x-forwarded-for", "forwarded", "x-real-ip")


async def _control_refused(request: Request, runtime: Runtime) -> JSONResponse | None:
    """From this machine only, never through a proxy (a local proxy makes every caller look local),
    and with the control token."""
    if request.client is None or request.client.host not in _LOOPBACK or any(h in request.headers for h in _FORWARDED):
        return JSONResponse({"error": "control requests are accepted from this machine only, not through a proxy"}, status_code=403)
    try:
        expected = await control_token(runtime.store.with_deadline())
    except Exception as exc:  # noqa: BLE001
        return JSONResponse({"error": f"database: {database_fault(exc) or type(exc).__name__}"}, status_code=503)
    given = request.headers.get(CONTROL_HEADER, "")
    if not expected or not hmac.compare_digest(given.encode(), expected.encode()):
        return JSONResponse({"error": "missing or wrong control token (the command line reads it from the database)"}, status_code=403)
    return None


def build_app(runtime: Runtime, daemon: Daemon | Callable[[], bool] | None = None) -> Starlette:
    if daemon is None or callable(daemon) and not isinstance(daemon, Daemon):
        daemon = Daemon(healthy=daemon or (lambda: True))
    exposition = metrics.MetricsExposition()
    receiver = WebhookReceiver(runtime, daemon.kick)

    async def healthz(_: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    async def readyz(_: Request) -> JSONResponse:
        health = runtime.health
        try:
            await asyncio.wait_for(runtime.store.ping(), PROBE_SECONDS)
            await asyncio.wait_for(runtime.store.probe_write(), PROBE_SECONDS)
        except Exception as exc:  # noqa: BLE001 - any database failure means not ready
            if health.database_failed(database_fault(exc) or type(exc).__name__, runtime.clock.now()):
                log.error("database fault", error=health.database.what)
            await runtime.store.reset()
        else:
            if health.database_ok() is not None:
                log.warning("database works again")
        problems = health.problems()
        if not daemon.healthy():
            problems.append("scheduler: not running")
        body: dict[str, Any] = {"merchants": sorted(runtime.contexts)}
        notes = await _notes(runtime)
        if notes:
            body["warnings"] = notes
        if problems:
            return JSONResponse({"status": "not ready", "problems": problems, **body}, status_code=503)
        return JSONResponse({"status": "ready", **body})

    async def metrics_page(_: Request) -> Response:
        # The database is read here, in the event loop, before rendering: prometheus collectors
        # are synchronous and must not do I/O of their own.
        try:
            snapshot = await metrics.read_store(runtime.store, runtime.contexts)
        except Exception as exc:  # noqa: BLE001 - counters are still worth serving; store_up says 0
            log.warning("metrics: the database could not be read", error=database_fault(exc) or type(exc).__name__)
            snapshot = metrics.StoreSnapshot(ok=False)
        snapshot.database_fault = runtime.health.database is not None
        return Response(exposition.render(snapshot), media_type=CONTENT_TYPE_LATEST)

    async def reload(request: Request) -> JSONResponse:
        if (refused := await _control_refused(request, runtime)) is not None:
            return refused
        if daemon.reload is None:
            return JSONResponse({"error": "this process does not reload"}, status_code=404)
        message = await daemon.reload()
        ok = not message.startswith("config error")
        return JSONResponse({"reloaded": ok, "message": message}, status_code=200 if ok else 422)

    async def kick(request: Request) -> JSONResponse:
        """An operator command changed orders (release, retry, cancel...): start that merchant's
        service now instead of at its next schedule. From this machine only, like reload."""
        if (refused := await _control_refused(request, runtime)) is not None:
            return refused
        try:
            asked = loads_bounded(await request.body(), max_depth=4, max_bytes=64_000)
            merchants, service = [str(m) for m in asked["merchants"]][:10_000], str(asked["service"])
        except (UntrustedInput, ValueError, KeyError, TypeError):
            return JSONResponse({"error": "expected {\"merchants\": [...], \"service\": \"...\"}"}, status_code=400)
        if service not in SERVICES:
            return JSONResponse({"error": f"unknown service {service!r}"}, status_code=400)
        from connector.pipeline.services import SERVICES as RUNNABLE

        # Only merchants the service really runs for (not off by config, not a dry run's writes).
        known = [m for m in merchants if m in runtime.contexts and not RUNNABLE[service].disabled(runtime.contexts[m])]
        if daemon.kick is not None:
            for m in known:
                daemon.kick(m, service)
        return JSONResponse({"started": known if daemon.kick is not None else []})

    routes: list[Any] = [
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", metrics_page),
        Route("/control/reload", reload, methods=["POST"]),
        Route("/control/kick", kick, methods=["POST"]),
        Route("/webhooks/ultracart/{merchant}", receiver.handle, methods=["POST"]),
        Route("/webhooks/warehouse/{merchant}/{token}", WarehouseHooks(runtime, daemon.kick).handle, methods=["POST"]),
    ]
    if runtime.config.console.enabled:
        from connector.console import build_console  # the web console, served under /ui

        routes.append(Mount("/ui", app=build_console(runtime, kick=daemon.kick)))
    return Starlette(routes=routes)


async def _notes(runtime: Runtime) -> list[str]:
    """Conditions worth showing that do not make the process unready."""
    from connector.alerts import delivery_failing_since

    try:
        since, error = await delivery_failing_since(runtime.store)
    except Exception:  # noqa: BLE001 - the database problem is reported on its own
        return []
    return [f"alert e-mails failing since {since:%Y-%m-%d %H:%M:%S}Z: {error[:200]}"] if since else []


# ------------------------------------------------------------------------------ webhooks
class Rejected(Exception):
    """A delivery refused before its events were looked at: HTTP status, metric outcome, reason."""

    def __init__(self, status: int, outcome: str, reason: str, headers: dict[str, str] | None = None, *, record: bool = False):
        super().__init__(reason)
        self.status, self.outcome, self.reason, self.headers, self.record = status, outcome, reason, headers, record


@dataclass
class EventOutcome:
    """What became of one event of a delivery: stored, duplicate, changed or ignored (with the reason)."""

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


CHALLENGE = {"WWW-Authenticate": 'Basic realm="connector webhooks", charset="UTF-8"'}


class WebhookReceiver:
    """`POST /webhooks/ultracart/{merchant}`: authenticate, bound, parse, store, record, answer."""

    def __init__(self, runtime: Runtime, kick: Callable[[str, str], None] | None = None):
        self.runtime = runtime
        self.kick = kick
        self.refusals = Refusals()

    async def handle(self, request: Request) -> JSONResponse:
        d = Delivery(merchant=request.path_params["merchant"][:64], path=request.url.path)
        ctx = self.runtime.contexts.get(d.merchant)
        try:
            _authenticate(request, ctx)  # an unknown merchant is refused exactly like a wrong password
            assert ctx is not None
            body = await _read_body(request)
            d.size = len(body)
            outcomes, prepared, changes, shipped = await anyio.to_thread.run_sync(_digest, ctx, body)
        except Rejected as r:
            return await self._reject(d, r, request, ctx)
        except Exception as exc:  # noqa: BLE001 - a bug must still leave its trace, bounded
            log.error("webhook: the delivery could not be read", merchant=d.merchant, delivery=d.id, error=f"{type(exc).__name__}: {str(exc)[:200]}")
            return await self._reject(d, Rejected(500, "error", f"internal error: {type(exc).__name__}", record=True), request, ctx)
        try:
            # A locked database fails within a couple of seconds: UltraCart retries a 503, and
            # polling catches up anyway; holding the request for a minute helps nobody.
            fast = dataclasses.replace(ctx, store=self.runtime.store.with_deadline())
            taken = await take_in(fast, prepared, source="webhook", actor=Actor.webhook)
            for o, obj in changes:  # in delivery order: a later event of the same order sees the earlier one
                done = await take_cart_copies(fast, [obj], event=o.event, actor=Actor.webhook)
                if done.get(o.order_id):
                    o.outcome, o.reason = "changed", done[o.order_id]
                else:
                    o.outcome, o.reason = "ignored", "nothing new" if o.order_id in done else f"{o.event}: recorded only"
            for o, order in shipped:
                asked = await ask_to_consume(fast, order, source="order_ship")
                o.outcome, o.reason = ("consume", f"{len(asked)} line(s) to consume") if asked else ("duplicate", "already asked")
        except Exception as exc:  # noqa: BLE001
            log.error("webhook: the orders could not be stored", merchant=ctx.id, delivery=d.id, error=database_fault(exc) or type(exc).__name__)
            return await self._reject(d, Rejected(503, "error", "the orders could not be stored; retry later", record=False), request, ctx)
        for o in outcomes:
            if o.outcome == "intake":
                o.outcome = "stored" if o.order_id in taken.new else "changed" if o.order_id in taken.replaced else "duplicate"
                taken.new.discard(o.order_id)
        counts = Counter(o.outcome for o in outcomes)
        reply = {"delivery_id": d.id, "received": len(outcomes), "stored": counts["stored"], "changed": counts["changed"],
                 "duplicates": counts["duplicate"], "ignored": counts["ignored"]}
        if shipped:
            reply["to_consume"] = counts["consume"]
        await self._record(d, 200, _event_rows(d, outcomes, reply))
        metrics.webhook(ctx.id, "accepted")
        if self.kick is not None and (counts["stored"] or counts["changed"]):
            # Seconds, not a minute: deliver now, acknowledge to UltraCart just as fast, and carry
            # out any cancel at the warehouse at once.
            self.kick(ctx.id, "order_delivery")
            self.kick(ctx.id, "order_download")
            if changes:
                self.kick(ctx.id, "order_changes")
        if self.kick is not None and counts["consume"]:
            self.kick(ctx.id, "ledger_consume")
        log.info("webhook received", merchant=ctx.id, delivery=d.id, bytes=d.size, ms=d.ms(),
                 **{k: reply[k] for k in ("received", "stored", "changed", "duplicates", "ignored")})
        return JSONResponse(reply, headers={"X-Request-Id": d.id})

    async def _reject(self, d: Delivery, r: Rejected, request: Request, ctx: ServiceContext | None) -> JSONResponse:
        # The merchant label only for configured merchants: a stranger must not mint new series.
        metrics.webhook(d.merchant if ctx is not None else "", r.outcome)
        client = request.client.host if request.client else ""
        self.refusals.note(r.outcome, status=r.status, client=client, reason=r.reason[:200], bytes=d.size, merchant=d.merchant if ctx else "(unknown)")
        if r.record and ctx is not None:
            await self._record(d, r.status, [_log_row(d, r.status, response_body=json.dumps({"error": r.reason}), error=r.reason)])
        return JSONResponse({"error": r.reason, "delivery_id": d.id}, status_code=r.status, headers=r.headers)

    async def _record(self, d: Delivery, status: int, rows: list[dict[str, Any]]) -> None:
        for row in rows:
            row["duration_ms"] = d.ms()
            row["at"] = self.runtime.clock.now()
        try:
            await self.runtime.store.with_deadline().events.log(rows)
        except Exception as exc:  # noqa: BLE001 - the orders are stored; a lost audit row must not fail the delivery
            log.error("webhook: the event log could not be written", merchant=d.merchant, delivery=d.id, error=database_fault(exc) or type(exc).__name__)


def _event_rows(d: Delivery, outcomes: list[EventOutcome], reply: dict[str, Any]) -> list[dict[str, Any]]:
    """The event-log rows of an accepted delivery: one per event for the first LOG_ROWS, then one
    summary row (a delivery of a million events must not write a million rows)."""
    rows = [_log_row(d, 200, order_id=o.order_id, request_body=o.log_body, response_body=f"{o.event}: {o.outcome}", error=o.reason)
            for o in outcomes[:LOG_ROWS]]
    rest = outcomes[LOG_ROWS:]
    if rest:
        kinds = Counter(f"{o.event}: {o.outcome}" for o in rest)
        rows.append(_log_row(d, 200, response_body=json.dumps({"not_recorded_one_by_one": dict(kinds.most_common(50))})[:LOG_BODY_CHARS],
                             error=f"{len(rest)} more event(s) summarised"))
    return rows or [_log_row(d, 200, response_body=json.dumps(reply))]


def _log_row(d: Delivery, status: int, **kw: Any) -> dict[str, Any]:
    row = dict(merchant=d.merchant, kind="webhook", vendor="ultracart", order_id="", method="POST", url=d.path,
               status=status, request_id=d.id, duration_ms=None, request_body="", response_body="", error="")
    row.update(kw)
    return row


def _authenticate(request: Request, ctx: ServiceContext | None) -> None:
    """HTTP Basic against the merchant's webhook credentials, compared in constant time. An
    unknown merchant gets the same 401 as a wrong password: no one learns which ids exist."""
    uc = ctx.merchant.ultracart if ctx is not None else None
    expected_user = uc.webhook_username.encode() if uc else b"\0unknown"
    expected_password = uc.webhook_password.encode() if uc and uc.webhook_password else b"\0unset"
    user = password = b""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "basic":
        try:
            user, _, password = base64.b64decode(token.strip(), validate=True).partition(b":")
        except (binascii.Error, ValueError):
            pass
    # Both comparisons always run, so the timing tells nothing about which half was wrong.
    ok_user = hmac.compare_digest(user, expected_user)
    ok_password = hmac.compare_digest(password, expected_password)
    if ctx is None:
        raise Rejected(401, "unknown_merchant", "unauthorized", CHALLENGE)
    if not uc.webhook_password:
        log.warning("webhook refused: no ultracart.webhook_password is configured for this merchant; "
                    "set webhook_username and webhook_password to accept webhooks", merchant=ctx.id)
        raise Rejected(401, "not_configured", "unauthorized", CHALLENGE)
    if not (ok_user & ok_password):
        raise Rejected(401, "unauthorized", "unauthorized", CHALLENGE)


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


def _digest(ctx: ServiceContext, body: bytes) -> tuple[list[EventOutcome], Any, list[tuple[EventOutcome, dict]], list[tuple[EventOutcome, Any]]]:
    """Parse a delivery and sort its events (CPU only, run off the event loop): the orders for
    the intake are prepared like polled ones, changes to known orders are set aside for
    `take_cart_copies`, everything else is `ignored` with the reason."""
    if not body.strip():
        raise Rejected(400, "malformed", "body is empty", record=True)
    try:
        events = parse_webhook(loads_bounded(body, max_depth=MAX_DEPTH, max_bytes=MAX_BODY))
    except (UntrustedInput, WebhookParseError) as exc:
        raise Rejected(400, "malformed", ctx.redactor.text(str(exc))[:300], record=True) from None
    except RecursionError:  # compressed events inflate into JSON parsed on its own
        raise Rejected(400, "malformed", f"events nested too deeply (more than {MAX_DEPTH} levels)", record=True) from None
    if len(events) > MAX_EVENTS:
        raise Rejected(413, "too_many_events", f"{len(events)} events in one delivery; at most {MAX_EVENTS}", record=True)
    outcomes: list[EventOutcome] = []
    intake: list[tuple[EventOutcome, dict]] = []
    changes: list[tuple[EventOutcome, dict]] = []
    shipped: list[tuple[EventOutcome, Any]] = []
    for name, obj in events:
        order_id = str(obj.get("order_id") or "").strip()[:200]
        if name == "order_ship" and order_id and consumes_on(ctx, "order_ship") and not _other_merchant(ctx, obj):
            o = EventOutcome(name, order_id, "consume")
            outcomes.append(o)
            prepared_ship = prepare_orders(ctx, [obj])
            row = prepared_ship.rows[0] if prepared_ship.rows else None
            if row is None or not row.order_json:
                o.outcome, o.reason = "ignored", f"order_ship for {order_id}: unreadable ({row.reason.text if row and row.reason else 'no order'})"
            else:
                o.log_body = f"{{{json.dumps(name)}: {row.raw_json}}}"[:LOG_BODY_CHARS]
                from connector.domain import Order

                shipped.append((o, Order.model_validate_json(row.order_json)))
            continue
        if name in CHANGE_EVENTS and order_id and not _not_ours(ctx, obj):
            o = EventOutcome(name[:100], order_id, "change")
            outcomes.append(o)
            o.log_body = _safe_dump(ctx, {name: obj}) if len(outcomes) <= LOG_ROWS else ""
            changes.append((o, obj))
            continue
        reason = _not_for_intake(ctx, name, obj, order_id)
        o = EventOutcome(name[:100], order_id, "ignored" if reason else "intake", reason)
        outcomes.append(o)
        if reason:
            if len(outcomes) <= LOG_ROWS:
                o.log_body = _safe_dump(ctx, {name: obj})
        else:
            intake.append((o, obj))
    prepared = prepare_orders(ctx, [obj for _, obj in intake])
    # Every intake order has an id, so rows and intake pair up one to one. Redacting is the
    # costly step of a large delivery: the event log reuses the row's redacted payload.
    for (o, _), row in zip(intake, prepared.rows, strict=True):
        o.order_id = row.order_id
        o.log_body = f"{{{json.dumps(o.event)}: {row.raw_json}}}"[:LOG_BODY_CHARS]
    return outcomes, prepared, changes, shipped


def _safe_dump(ctx: ServiceContext, value: Any) -> str:
    try:
        check_shape(value, max_depth=MAX_DEPTH)
    except UntrustedInput as exc:
        return json.dumps({"not_kept": str(exc)[:200]})
    return json.dumps(ctx.redactor.data(value), default=str)[:LOG_BODY_CHARS]


def _not_for_intake(ctx: ServiceContext, name: str, order: dict, order_id: str) -> str:
    """Why this event does not bring an order for this merchant's DC ("" when it does)."""
    if name not in INTAKE_EVENTS:
        return f"{name[:100]}: recorded only"
    if not order_id:
        return "no order_id: cannot be stored"
    return _not_ours(ctx, order) or _stage(name, order)


def _other_merchant(ctx: ServiceContext, order: dict) -> str:
    merchant_id = str(order.get("merchant_id") or "").strip()
    expected = ctx.merchant.ultracart.merchant_id
    if merchant_id and expected and merchant_id.upper() != expected.upper():
        return f"order of UltraCart merchant {merchant_id[:40]!r}, not {expected!r}"
    return ""


def _not_ours(ctx: ServiceContext, order: dict) -> str:
    """Why this order is not one of this merchant's DC ("" when it is)."""
    other = _other_merchant(ctx, order)
    if other:
        return other
    items = order.get("items")
    codes = {str(i.get("distribution_center_code") or "").strip().upper() for i in items if isinstance(i, dict)} if isinstance(items, list) else set()
    codes.discard("")
    # No DC on any item (a trimmed expansion): accepted, the queue is ours. A DC list without
    # ours: another fulfillment house's order.
    if codes and ctx.dc.upper() not in codes:
        return f"for distribution center {', '.join(sorted(codes))[:100]}, not {ctx.dc}"
    return ""


def _stage(name: str, order: dict) -> str:
    stage = str(order.get("current_stage") or "").strip()
    if name == "order_create" and stage != SHIPPING_STAGE:
        # order_create fires at checkout, possibly before payment or fraud review; the order
        # comes again by fulfillment_transmit or the DC queue once it reaches shipping.
        return f"order_create in stage {stage[:60]!r}: not released to shipping yet"
    return ""


# ------------------------------------------------------------------------------ warehouse webhooks
WAREHOUSE_BODY = 1024 * 1024


class WarehouseHooks:
    """`POST /webhooks/warehouse/{merchant}/{token}`: a warehouse says something shipped (or was
    cancelled, or put on hold). The body is only a hint: the connector reads the shipments through
    the warehouse's API (a shipment_upload pass, started at once), never from the webhook alone.
    Authenticated by the secret path token `connector webhooks register` made (compared in
    constant time) and, where the warehouse can carry one, by the secret made beside it
    (`verify_webhook`: ShipBob's signature, ShipStation v2's header); the same size and parse
    limits as UltraCart's; a repeat or an out-of-order delivery only starts one more read, which
    is idempotent."""

    SECRET = WAREHOUSE_SECRET  # the cursor holding what a signing warehouse signs deliveries with

    def __init__(self, runtime: Runtime, kick: Callable[[str, str], None] | None):
        self.runtime, self.kick = runtime, kick
        self.refusals = Refusals()

    async def handle(self, request: Request) -> JSONResponse:
        merchant = request.path_params["merchant"][:64]
        ctx = self.runtime.contexts.get(merchant)
        expected = secret = ""
        if ctx is not None and ctx.warehouse is not None:
            try:
                cursors = self.runtime.store.with_deadline().cursors
                expected = await cursors.get(merchant, WAREHOUSE_TOKEN) or ""
                secret = (await cursors.get(merchant, self.SECRET) or "") if expected else ""
            except Exception as exc:  # noqa: BLE001 - the warehouse retries; polling catches up anyway
                log.error("warehouse webhook: the database did not answer", error=database_fault(exc) or type(exc).__name__)
                return JSONResponse({"error": "retry later"}, status_code=503)
        given = request.path_params["token"].encode()
        if not (hmac.compare_digest(given, (expected or "\0none").encode()) and expected):
            metrics.webhook(merchant if ctx is not None else "", "unauthorized")
            self.refusals.note("warehouse_unauthorized", status=401)
            return JSONResponse({"error": "unauthorized"}, status_code=401)
        try:
            body = await _read_body(request)
            if len(body) > WAREHOUSE_BODY:
                raise Rejected(413, "too_large", f"body exceeds {WAREHOUSE_BODY} bytes")
            if not ctx.warehouse.verify_webhook(request.headers, body, secret):  # the raw body, before any parsing
                raise Rejected(401, "unauthorized", "bad or missing signature")
            hints = ctx.warehouse.webhook_hints(loads_bounded(body, max_depth=MAX_DEPTH, max_bytes=WAREHOUSE_BODY)) if body.strip() else []
            topic = request.headers.get("x-webhook-topic", "")[:100]  # ShipBob names the topic in a header
            hints = [h if h.get("topic") or not topic else {**h, "topic": topic} for h in hints]
        except Rejected as r:
            metrics.webhook(merchant, r.outcome)
            if r.status == 401:
                self.refusals.note("warehouse_bad_signature", status=401)
            return JSONResponse({"error": r.reason}, status_code=r.status)
        except (UntrustedInput, ValueError) as exc:
            metrics.webhook(merchant, "malformed")
            return JSONResponse({"error": f"malformed: {str(exc)[:200]}"}, status_code=400)
        held = [h for h in hints if h.get("topic", "").endswith("on_hold")]
        if held:
            await ctx.alert([(ctx.id, "warehouse_hold", str(h.get("reference") or h.get("id") or "?"),
                              f"{ctx.warehouse.name} put shipment {h.get('id') or '?'} (reference {h.get('reference') or '?'}) on hold: ask the "
                              "warehouse why (stock, address check)") for h in held])
        await self._record(merchant, body, hints)
        metrics.webhook(merchant, "accepted")
        if self.kick is not None:
            self.kick(merchant, "shipment_upload")
        return JSONResponse({"accepted": len(hints)})

    async def _record(self, merchant: str, body: bytes, hints: list[dict[str, Any]]) -> None:
        row = dict(at=self.runtime.clock.now(), merchant=merchant, kind="webhook", vendor=self.runtime.contexts[merchant].warehouse.name,
                   method="POST", url=f"/webhooks/warehouse/{merchant}/***", status=200,
                   request_body=self.runtime.redactor.text(body[:LOG_BODY_CHARS].decode("utf-8", "replace")),
                   response_body=json.dumps(hints[:50], default=str)[:LOG_BODY_CHARS])
        try:
            await self.runtime.store.with_deadline().events.log([row])
        except Exception as exc:  # noqa: BLE001
            log.error("warehouse webhook: the event log could not be written", error=database_fault(exc) or type(exc).__name__)
