"""Reports shared by the command line and the console: the status document (what `connector
status` shows, as JSON-ready data). Nothing here prints."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any


def display_url(url: str) -> str:
    """A database URL safe to show (the password hidden)."""
    if url.startswith("sqlite"):
        return url
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001
        return url.split("://", 1)[0] + "://***"


def _mtime(path: str) -> datetime | None:
    try:
        return datetime.fromtimestamp(Path(path).stat().st_mtime, timezone.utc)
    except OSError:
        return None


async def status_doc(store: Any, cfg: Any, merchant: str | None) -> dict[str, Any]:
    """Everything `status` shows, as a JSON-ready document (also used by the console)."""
    from connector.alerts import delivery_failing_since

    now = datetime.now(timezone.utc)
    runs = await store.runs.listing(merchant)
    counts = await store.orders.counts_by_state(merchant)
    holds = await store.orders.reasons("held", merchant)
    failed = await store.orders.listing(state="failed", merchant=merchant, limit=20)
    tasks_failed = [t for t in await store.tasks.listing(merchant, state="failed") if t.merchant]
    orphans = await store.shipments.listing(merchant, state="orphan")
    open_alerts = await store.alerts.open(merchant)
    since, error = await delivery_failing_since(store)
    merchants = [merchant] if merchant else sorted({m.id for m in cfg.merchants} | {m for m, _ in counts})
    doc: dict[str, Any] = {
        "config": {"file": cfg.source, "modified_at": _mtime(cfg.source)},
        "database": display_url(cfg.daemon.database_url),
        "listen": cfg.daemon.listen,
        "daemons": [dict(worker=w.worker_id, started_at=w.started_at, seen_at=w.seen_at, running=not w.stopped and (now - w.seen_at).total_seconds() < cfg.daemon.lease_seconds,
                         config_file=w.config_path, config_modified_at=w.config_mtime, config_loaded_at=w.config_loaded_at, listen=w.listen)
                    for w in await store.workers.listing()][:10],
        "alert_delivery": {"failing_since": since, "error": error},
        "merchants": [],
    }
    for m in merchants:
        conf = next((c for c in cfg.merchants if c.id == m), None)
        doc["merchants"].append({
            "id": m,
            "configured": conf is not None,
            "enabled": bool(conf and conf.enabled),
            "dry_run": bool(conf and conf.dry_run),
            "services": [dict(service=r.service, last_run=r.last_finished_at, last_success=r.last_success_at, outcome=r.last_outcome,
                              did=r.summary, stopped_because=r.stopped_because, resumes_at=r.resumes_at,
                              paused_until=r.paused_until if r.paused(now) else None, pause_reason=r.pause_reason if r.paused(now) else "",
                              error=r.last_error, note=r.note)
                         for r in runs if r.merchant == m],
            "orders": {s: n for (mm, s), n in sorted(counts.items()) if mm == m},
            "held": [dict(reason=reason, count=n) for (mm, reason), n in sorted(holds.items()) if mm == m],
            "failed": [dict(order_id=f.order_id, error=f.last_error or f.reason) for f in failed if f.merchant == m],
            "failed_tasks": [dict(kind=t.kind, key=t.key, error=t.last_error) for t in tasks_failed if t.merchant == m],
            "orphan_shipments": [dict(shipment_id=s.shipment_id, reference=s.reference, tracking=s.tracking) for s in orphans if s.merchant == m],
            "open_alerts": [dict(category=a.category, key=a.key, count=a.count, message=a.message) for a in open_alerts if a.merchant == m],
        })
    return doc


def ago(ts: datetime | None, now: datetime | None = None) -> str:
    """How long ago (or, for a time still to come, in how long) `ts` was: "3m ago", "in 2h",
    "never". The command line and the console say it the same way."""
    if ts is None:
        return "never"
    aware = ts if ts.tzinfo else ts.replace(tzinfo=timezone.utc)
    seconds = int(((now or datetime.now(timezone.utc)) - aware).total_seconds())
    if seconds < 0:
        return f"in {_span(-seconds)}"
    return f"{_span(seconds)} ago"


def _span(seconds: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
