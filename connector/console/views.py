"""The data each console page shows, read through the Store and scoped to who is asking: a
merchant login reads its own merchant's rows only (every query below is filtered by it, not the
template). Nothing here renders or writes."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import Any

from connector.console.auth import Principal
from connector.console.render import pretty
from connector.lifecycle import LIVE_SHIPMENTS, NOT_SENT, AT_WAREHOUSE, SHIPPED, HoldKind, OrderState
from connector.reports import status_doc
from connector.store import OrderRecord, Search, TroubleGroup

S = OrderState
PAGE = 50
EVENT_WINDOW = 2_000  # events read to filter by status (the store filters by merchant and order only)
EVENTS_SHOWN = 200  # on an order's page
EVENT_LIMITS = (50, 200, 500)  # the event log page: a few hundred redacted bodies weigh megabytes
STATES = [s.value for s in OrderState]
HOLD_KINDS = [k.value for k in HoldKind]
STATUSES = {"": "any status", "ok": "2xx (ok)", "error": "errors (4xx, 5xx, no answer)", "4xx": "4xx", "5xx": "5xx"}


class NotFound(LookupError):
    """Nothing there, or nothing this login may see: answered alike (404)."""


# ----------------------------------------------------------------------------- overview
def service_state(s: dict[str, Any]) -> str:
    """One word for a service's condition, from `status_doc`'s service entry."""
    if s.get("paused_until"):
        return "paused"
    return {"done": "ok", "failed": "failing", "throttled": "throttled", "interrupted": "interrupted",
            "paused": "paused"}.get(s.get("outcome") or "", s.get("outcome") or "not run")


async def overview(rt: Any, who: Principal) -> dict[str, Any]:
    doc = await status_doc(rt.store, rt.config, who.merchant)
    doc["now"] = rt.clock.now()
    text = rt.redactor.text
    for m in doc["merchants"]:
        m["oldest_pending"] = await rt.store.orders.oldest_pending(m["id"])
        for s in m["services"]:
            s["state"] = service_state(s)
            detail = s["pause_reason"] or s["stopped_because"] or (s["error"] if s["state"] != "ok" else "") or s["note"]
            s["detail"] = text(detail or "")
            s["did_text"] = ", ".join(f"{k} {v}" for k, v in (s["did"] or {}).items() if v)
        m["failed"] = [dict(f, error=text(f["error"] or "")) for f in m["failed"]]
        m["failed_tasks"] = [dict(t, error=text(t["error"] or "")) for t in m["failed_tasks"]]
        m["open_alerts"] = [dict(a, message=text(a["message"] or "")) for a in m["open_alerts"]]
        m["trouble"] = sum(n for st, n in m["orders"].items() if st in ("held", "failed", "in_doubt", "cancel_failed"))
    if who.merchant is not None:  # the 3PL's machinery is not the merchant's business
        for key in ("config", "database", "listen", "daemons", "alert_delivery"):
            doc.pop(key, None)
    else:
        doc["global_alerts"] = [a for a in await rt.store.alerts.open("") if a.merchant == ""]
        doc["alert_delivery"]["error"] = text(doc["alert_delivery"]["error"] or "")
    return doc


# ----------------------------------------------------------------------------- orders
@dataclass
class OrderFilter:
    """The orders search as a person fills it in (strings), checked and turned into a `Search`."""

    text: str = ""
    merchant: str = ""
    state: str = ""
    hold: str = ""
    since: str = ""
    until: str = ""

    FIELDS = ("text", "merchant", "state", "hold", "since", "until")
    PUBLIC = ("merchant", "state", "hold", "since", "until")  # may appear in a URL (no personal data)

    @classmethod
    def from_mapping(cls, data: Any) -> OrderFilter:
        return cls(**{k: str(data.get(k) or "").strip()[:200] for k in cls.FIELDS})

    def as_dict(self) -> dict[str, str]:
        return {k: getattr(self, k) for k in self.FIELDS if getattr(self, k)}

    def problems(self, merchants: list[str]) -> list[str]:
        out = []
        if self.state and self.state not in STATES:
            out.append(f"unknown state {self.state!r}")
        if self.hold and self.hold not in HOLD_KINDS:
            out.append(f"unknown hold reason {self.hold!r}")
        if self.merchant and self.merchant not in merchants:
            out.append(f"unknown merchant {self.merchant!r}")
        for name in ("since", "until"):
            if getattr(self, name) and _day(getattr(self, name)) is None:
                out.append(f"{name}: not a date (YYYY-MM-DD): {getattr(self, name)!r}")
        return out

    def search(self, who: Principal, page: int) -> Search:
        since, until = _day(self.since), _day(self.until)
        return Search(merchant=self.merchant or None, merchants=who.scope, state=self.state or None, text=self.text,
                      hold_kind=self.hold or None,
                      since=datetime.combine(since, time(), timezone.utc) if since else None,
                      until=datetime.combine(until + timedelta(days=1), time(), timezone.utc) if until else None,  # the whole day
                      limit=PAGE, offset=(page - 1) * PAGE)


def _day(text: str) -> date | None:
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def merchants_of(rt: Any, who: Principal) -> list[str]:
    return [who.merchant] if who.merchant else sorted(m.id for m in rt.config.merchants)


async def orders(rt: Any, who: Principal, f: OrderFilter, page: int) -> dict[str, Any]:
    merchants = merchants_of(rt, who)
    problems = f.problems(merchants)
    rows, total = ([], 0) if problems else await rt.store.orders.search(f.search(who, page))
    return dict(filter=f, problems=problems, rows=rows, total=total, page=page, pages=max(1, -(-total // PAGE)),
                merchants=merchants, states=STATES, hold_kinds=HOLD_KINDS)


# ----------------------------------------------------------------------------- one order
async def order(rt: Any, who: Principal, merchant: str, order_id: str) -> dict[str, Any]:
    if not who.sees(merchant):
        raise NotFound(order_id)  # another merchant's order is "not found", never "forbidden"
    rows = [r for r in await rt.store.orders.find(order_id, merchant) if r.merchant == merchant]
    if not rows:
        raise NotFound(order_id)
    text = rt.redactor.text
    shipments = await rt.store.shipments.of_orders([r.id for r in rows])
    events = await rt.store.events.listing(merchant=merchant, order_id=order_id, limit=EVENTS_SHOWN)
    copies = []
    for r in rows:
        copies.append(dict(
            row=r, timeline=await rt.store.orders.timeline(r.id), shipments=shipments.get(r.id, []),
            warehouse=r.warehouse_order, warehouse_json=pretty(text(r.warehouse_json)) if r.warehouse_json else "",
            cart=r.order, last_error=text(r.last_error), actions=actions_for(r, shipments.get(r.id, [])),
            cancel_requested=r.cancel_requested.text if r.cancel_requested else ""))
    return dict(merchant=merchant, order_id=order_id, copies=copies, events=[_event(rt, e) for e in reversed(events)])


def actions_for(r: OrderRecord, shipments: list[Any]) -> list[str]:
    """The actions that make sense for an order in its state (the operator code refuses the rest)."""
    state = S(r.state)
    out = []
    if state == S.held:
        out.append("release")
    if state == S.failed:
        out.append("retry")
    if state in NOT_SENT:
        out += ["refresh", "hold", "skip"] if state != S.held else ["refresh", "skip"]
    if state == S.skipped:
        out.append("unskip")
    if any(s.state in LIVE_SHIPMENTS for s in shipments) or state in SHIPPED:
        out.append("resend_tracking")
    if state in NOT_SENT or state in AT_WAREHOUSE or state in (S.submitting, S.in_doubt, S.cancel_failed):
        out.append("cancel")
    if state == S.cancel_failed:
        out.append("cancel_done")
    return out


def _event(rt: Any, e: Any) -> dict[str, Any]:
    text = rt.redactor.text
    return dict(at=e.at, merchant=e.merchant, kind=e.kind, vendor=e.vendor, order_id=e.order_id, method=e.method, url=text(e.url or ""),
                status=e.status, request_id=e.request_id, duration_ms=e.duration_ms, error=text(e.error or ""),
                request=pretty(text(e.request_body)) if e.request_body else "", response=pretty(text(e.response_body)) if e.response_body else "",
                bad=bool(e.error) or (e.status or 0) >= 400)


# ----------------------------------------------------------------------------- error queue
def group_key(g: TroubleGroup) -> str:
    """A short stable name for a group, for its URL (the reason text stays out of URLs)."""
    return hashlib.sha256(f"{g.merchant}\0{g.state}\0{g.reason}".encode()).hexdigest()[:16]


async def queue(rt: Any, who: Principal) -> dict[str, Any]:
    groups = await rt.store.orders.trouble(who.merchant)
    by_state: dict[str, list[dict[str, Any]]] = {}
    for g in groups:
        by_state.setdefault(g.state, []).append(dict(group=g, key=group_key(g), reason=rt.redactor.text(g.reason or "")))
    return dict(by_state=by_state, total=sum(g.count for g in groups))


async def find_group(rt: Any, who: Principal, key: str) -> TroubleGroup:
    for g in await rt.store.orders.trouble(who.merchant):
        if group_key(g) == key:
            return g
    raise NotFound(key)


async def group(rt: Any, who: Principal, key: str, page: int) -> dict[str, Any]:
    g = await find_group(rt, who, key)
    rows, total = await rt.store.orders.search(Search(merchant=g.merchant, merchants=who.scope, state=g.state, reason=g.reason,
                                                      limit=PAGE, offset=(page - 1) * PAGE))
    return dict(group=g, key=key, reason=rt.redactor.text(g.reason or ""), rows=rows, total=total, page=page,
                pages=max(1, -(-total // PAGE)), actions=GROUP_ACTIONS.get(g.state, []))


# What a whole group can be asked to do, by the state its orders are in.
GROUP_ACTIONS = {
    "held": ["release", "refresh", "skip", "cancel"],
    "failed": ["retry", "refresh", "skip", "cancel"],
    "in_doubt": ["cancel"],
    "cancel_failed": ["cancel", "cancel_done"],
}


async def group_order_ids(rt: Any, g: TroubleGroup, limit: int) -> list[str]:
    rows, _ = await rt.store.orders.search(Search(merchant=g.merchant, state=g.state, reason=g.reason, limit=limit))
    return [r.order_id for r in rows]


# ----------------------------------------------------------------------------- alerts, events
async def alerts(rt: Any, who: Principal, state: str) -> dict[str, Any]:
    state = state if state in ("open", "resolved", "all") else "open"
    rows = await rt.store.alerts.listing(who.merchant, None if state == "all" else state)
    text = rt.redactor.text
    return dict(state=state, rows=[dict(a=a, message=text(a.message or "")) for a in rows])


def status_matches(status: int | None, error: str, wanted: str) -> bool:
    code = status or 0
    return {"": True, "ok": 200 <= code < 300 and not error, "error": bool(error) or code >= 400 or code == 0,
            "4xx": 400 <= code < 500, "5xx": code >= 500}.get(wanted, True)


async def events(rt: Any, who: Principal, merchant: str, order_id: str, status: str, limit: int = EVENT_LIMITS[0]) -> dict[str, Any]:
    merchants = merchants_of(rt, who)
    problems = []
    if merchant and merchant not in merchants:
        problems.append(f"unknown merchant {merchant!r}")
    if status not in STATUSES:
        problems.append(f"unknown status filter {status!r}")
    rows: list[Any] = []
    if not problems:
        scope = who.merchant or merchant or None
        found = await rt.store.events.listing(merchant=scope, order_id=order_id or None, limit=EVENT_WINDOW)
        rows = [e for e in reversed(found) if status_matches(e.status, e.error, status)][:limit]
    return dict(merchant=merchant, order_id=order_id, status=status, statuses=STATUSES, merchants=merchants, problems=problems,
                rows=[_event(rt, e) for e in rows], window=EVENT_WINDOW, shown=limit, limits=EVENT_LIMITS)
