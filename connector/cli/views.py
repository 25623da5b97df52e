"""The operator's views: `status`, `orders`, `order`, `events`, `alerts` (each with `--json`)."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any, Optional

import typer

from connector.cli.common import (EXIT_ATTENTION, EXIT_FAILED, EXIT_OK, EXIT_USAGE, ConfigOpt, JsonOpt, MerchantOpt, check_merchant,
                                  check_state, display_url, load_config, run_async, with_store)
from connector.cli.output import emit_json, fail, rule, say, table, utc
from connector.reports import ago
from connector.reports import status_doc

ATTENTION = ("paused", "failed")  # a service whose last pass ended so makes `status` exit 3


def register(app: typer.Typer) -> None:
    app.command()(status)
    app.command()(orders)
    app.command()(order)
    app.command()(events)
    app.command()(alerts)


# ----------------------------------------------------------------------------- status
def status(config: Optional[str] = ConfigOpt, merchant: Optional[str] = MerchantOpt, as_json: bool = JsonOpt) -> None:
    """Per merchant: each service's last pass, orders by state, holds, failures; exit 3 when a
    service is paused or its last pass failed."""
    cfg = load_config(config, quiet=as_json)
    check_merchant(cfg, merchant)
    doc = run_async(with_store(cfg, lambda s: status_doc(s, cfg, merchant)))
    if as_json:
        emit_json(doc)
    else:
        _print_status(doc)
    attention = any(s["outcome"] in ATTENTION or s["paused_until"] for m in doc["merchants"] for s in m["services"])
    raise typer.Exit(EXIT_ATTENTION if attention else EXIT_OK)


def _print_status(doc: dict[str, Any]) -> None:
    say(f"config {doc['config']['file']} (modified {utc(doc['config']['modified_at'])}); database {doc['database']}; listen {doc['listen']}")
    for d in doc["daemons"]:
        if d["running"]:
            stale = d["config_modified_at"] and d["config_loaded_at"] and d["config_modified_at"] > d["config_loaded_at"]
            say(f"daemon {d['worker']}: running since {utc(d['started_at'])}, config {d['config_file']} loaded {ago(d['config_loaded_at'])}"
                + (" -- the file changed since: run `connector reload`" if stale else ""))
    if not any(d["running"] for d in doc["daemons"]):
        say("daemon: none running with this database")
    if doc["alert_delivery"]["failing_since"]:
        say(f"alert e-mails failing since {utc(doc['alert_delivery']['failing_since'])}: {doc['alert_delivery']['error']}")
    for m in doc["merchants"]:
        rule(m["id"] + ("" if m["configured"] else " (not in the config)") + (" [dry run]" if m["dry_run"] else ""))
        rows = []
        for s in m["services"]:
            state = s["note"] or (f"paused until {utc(s['paused_until'])}: {s['pause_reason']}" if s["paused_until"] else
                                  s["outcome"] + (f": {s['stopped_because']}" if s["stopped_because"] else "") + (f" [{s['error']}]" if s["error"] and s["outcome"] != "paused" else ""))
            if s["resumes_at"] and not s["paused_until"]:
                state += f" (resumes {utc(s['resumes_at'])})"
            did = ", ".join(f"{k} {v}" for k, v in (s["did"] or {}).items() if v) or "-"
            rows.append((s["service"], ago(s["last_run"]), ago(s["last_success"]), state, did))
        table(("service", "last run", "last success", "last pass", "it did"), rows)
        say("orders: " + (", ".join(f"{s} {n}" for s, n in m["orders"].items()) or "none"))
        for h in m["held"]:
            say(f"  held {h['count']:>5}  {h['reason']}")
        for f in m["failed"]:
            say(f"  failed {f['order_id']}: {f['error']}")
        for t in m["failed_tasks"]:
            say(f"  {t['kind']} failed for {t['key']}: {t['error']}")
        for o in m["orphan_shipments"]:
            say(f"  shipment {o['shipment_id']} for unknown order {o['reference']}")
        if m["open_alerts"]:
            say(f"  open alerts: {len(m['open_alerts'])} (`connector alerts -m {m['id']}`)")


# ----------------------------------------------------------------------------- orders
def orders(config: Optional[str] = ConfigOpt, state: Optional[str] = typer.Option(None, "--state"), merchant: Optional[str] = MerchantOpt,
           limit: int = typer.Option(200, "--limit", min=1, help="at most this many (the newest are last)"),
           show_all: bool = typer.Option(False, "--all", help="every matching order"), as_json: bool = JsonOpt) -> None:
    """List orders (optionally of one state or merchant)."""
    cfg = load_config(config, quiet=as_json)
    check_state(state)

    async def go(store: Any) -> tuple[int, list[Any]]:
        known = {m for m, _ in await store.orders.counts_by_state()}
        check_merchant(cfg, merchant, known)
        total = await store.orders.count(state=state, merchant=merchant)
        rows = await store.orders.listing(state=state, merchant=merchant, limit=(total or 1) if show_all else limit)
        return total, rows

    total, rows = run_async(with_store(cfg, go))
    if as_json:
        emit_json({"total": total, "shown": len(rows), "orders": [_order_row(r) for r in rows]})
        return
    table(("merchant", "order", "state", "attempts", "warehouse id", "updated", "reason / last error"),
          [(r.merchant, r.order_id, r.state, r.attempts, r.warehouse_order_id, ago(r.updated_at), r.reason or r.last_error) for r in rows])
    if len(rows) < total:
        say(f"{len(rows)} of {total} orders shown (--limit N for more, --all for every one)")


def _order_row(r: Any) -> dict[str, Any]:
    hold = r.hold
    return dict(merchant=r.merchant, order_id=r.order_id, reference=r.reference, state=r.state, reason=r.reason,
                hold={"kind": hold.kind, "details": dict(hold.details)} if hold else None, attempts=r.attempts,
                warehouse_order_id=r.warehouse_order_id, received_at=r.received_at, updated_at=r.updated_at, last_error=r.last_error,
                next_attempt_at=r.next_attempt_at, source=r.source)


# ----------------------------------------------------------------------------- one order
def order(order_id: str, config: Optional[str] = ConfigOpt, merchant: Optional[str] = MerchantOpt, as_json: bool = JsonOpt) -> None:
    """One order: where it is and why, its timeline, shipments, and what was (or would be) sent."""
    cfg = load_config(config, quiet=as_json)

    async def go(store: Any) -> list[dict[str, Any]]:
        docs = []
        for r in await store.orders.find(order_id, merchant):
            doc = _order_row(r)
            doc.update(acknowledged=r.acked_at is not None, cancel_requested=r.cancel_requested.text if r.cancel_requested else "",
                       timeline=[dict(at=e.at, from_state=e.from_state, to_state=e.to_state, by=e.actor, why=e.reason, request_id=e.request_id)
                                 for e in await store.orders.timeline(r.id)],
                       shipments=[dict(shipment_id=s.shipment_id, state=s.state, tracking=s.tracking, reason=s.reason)
                                  for s in (await store.shipments.of_orders([r.id]))[r.id]],
                       warehouse_order=json.loads(r.warehouse_json) if r.warehouse_json else None,
                       dry_run_request=json.loads(r.sent_request) if r.sent_request else None)
            docs.append(doc)
        return docs

    docs = run_async(with_store(cfg, go))
    if not docs:
        fail(f"no order {order_id}")
        raise typer.Exit(EXIT_FAILED)
    if as_json:
        emit_json(docs)
        return
    for d in docs:
        rule(f"{d['merchant']} {d['order_id']}")
        say(f"state {d['state']}" + (f" ({d['reason']})" if d["reason"] else "") + f"; reference {d['reference']}; warehouse id {d['warehouse_order_id'] or '-'}")
        say(f"received {utc(d['received_at'])} via {d['source']}; acknowledged to UltraCart: {'yes' if d['acknowledged'] else 'not yet'}; attempts {d['attempts']}")
        if d["last_error"]:
            say(f"last error: {d['last_error']}")
        if d["cancel_requested"]:
            say(f"cancellation requested: {d['cancel_requested']}")
        table(("when (UTC)", "from", "to", "by", "why"),
              [(utc(e["at"]), e["from_state"], e["to_state"], e["by"], e["why"] + (f" [request {e['request_id']}]" if e["request_id"] else ""))
               for e in d["timeline"]])
        for s in d["shipments"]:
            say(f"shipment {s['shipment_id']}: {s['state']} {s['tracking']} {s['reason']}")
        wo = d["warehouse_order"]
        if wo:
            lines = ", ".join(f"{ln['sku']} x{ln['quantity']}" for ln in wo.get("lines", []))
            say(f"sent (or to be sent) to the warehouse as {wo.get('reference')}: {lines}; ship method {wo.get('ship_method') or '(warehouse default)'}")
        if d["dry_run_request"]:
            say("a live run would send this request body (dry run):")
            say(json.dumps(d["dry_run_request"], indent=2))


# ----------------------------------------------------------------------------- events
def events(config: Optional[str] = ConfigOpt, merchant: Optional[str] = MerchantOpt, order_id: Optional[str] = typer.Option(None, "--order"),
           limit: int = typer.Option(50, "--limit", min=1), full: bool = typer.Option(False, "--full", help="print the (redacted) bodies"),
           as_json: bool = JsonOpt) -> None:
    """The event log: vendor calls and webhooks, newest last, bodies redacted."""
    cfg = load_config(config, quiet=as_json)
    check_merchant(cfg, merchant)
    rows = run_async(with_store(cfg, lambda s: s.events.listing(merchant=merchant, order_id=order_id, limit=limit)))
    if as_json:
        keys = ("at", "merchant", "kind", "vendor", "order_id", "method", "url", "status", "request_id", "duration_ms", "error")
        emit_json([{**{k: getattr(e, k) for k in keys}, **({"request_body": e.request_body, "response_body": e.response_body} if full else {})}
                   for e in rows])
        return
    for e in rows:
        say(f"{utc(e.at)} {e.merchant} {e.kind} {e.method} {e.url} -> {e.status or e.error} {e.duration_ms or 0:.0f}ms"
            + (f" [request {e.request_id}]" if e.request_id else ""))
        if full:
            if e.request_body:
                say("  request: " + e.request_body[:4000])
            if e.response_body:
                say("  response: " + e.response_body[:4000])


# ----------------------------------------------------------------------------- alerts
def alerts(config: Optional[str] = ConfigOpt, merchant: Optional[str] = MerchantOpt,
           state: str = typer.Option("open", "--state", help="open, resolved, or all"),
           resolve: Optional[str] = typer.Option(None, "--resolve", help="close CATEGORY or CATEGORY:KEY (with --merchant)"),
           as_json: bool = JsonOpt) -> None:
    """Alerts raised (deduplicated): what, how often, since when, and whether the e-mail was delivered."""
    cfg = load_config(config, quiet=as_json)
    check_merchant(cfg, merchant)
    if state not in ("open", "resolved", "all"):
        fail(f"unknown --state {state!r}; one of: open, resolved, all")
        raise typer.Exit(EXIT_USAGE)

    async def go(store: Any) -> int:
        from connector.alerts import delivery_failing_since

        if resolve:
            category, _, key = resolve.partition(":")
            n = await store.alerts.resolve(merchant or "", category, key or None)
            say(f"resolved {n} alert(s)")
            return EXIT_OK if n else EXIT_FAILED
        rows = await store.alerts.listing(merchant, None if state == "all" else state)
        since, error = await delivery_failing_since(store)
        if as_json:
            emit_json([dict(merchant=a.merchant, category=a.category, key=a.key, state=a.state, count=a.count, first_at=a.first_at,
                            last_at=a.last_at, queued_at=a.sent_at, delivered_at=a.delivered_at, resolved_at=a.resolved_at, message=a.message)
                       for a in rows])
            return EXIT_OK
        table(("merchant", "category", "key", "times", "first", "last", "e-mail", "detail"),
              [(a.merchant or "-", a.category, a.key, a.count, ago(a.first_at), ago(a.last_at), _mail(a, since, error), a.message[:200]) for a in rows])
        return EXIT_OK

    raise typer.Exit(run_async(with_store(cfg, go)))


def _mail(a: Any, failing_since: datetime | None, error: str) -> str:
    """What happened to the alert's e-mail, truthfully: delivered, waiting (and why), or not yet queued."""
    if a.delivered_at:
        return f"delivered {ago(a.delivered_at)}"
    if a.sent_at:
        if failing_since:
            return f"not delivered: failing since {utc(failing_since)} ({error[:80]})"
        return f"queued {ago(a.sent_at)}, not yet delivered"
    return "not yet queued"
