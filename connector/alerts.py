"""Alerts: the catalogue of problems an administrator is told about, and e-mail digests.

- `raise_alert` records a problem, deduplicated by (merchant, category, key): an administrator
  hears about each problem once, not once per pass, and again only after it was resolved.
- `send_digests` (a scheduler job) queues at most one digest per `digest_minutes` through the
  outbox, then sends due e-mails over SMTP. A digest task stays in the outbox until the SMTP
  server has accepted it, so neither a crash nor a mail outage loses an alert.
- `check_stuck` raises `order_stuck` / `tracking_not_posted` for orders that stopped moving,
  and resolves those alerts when the orders move again.

E-mails go to `[alerts] email_to` (every merchant) and to a merchant's own `email_to` (its
alerts only). Every text passes through the redactor: no secret ever leaves in an e-mail.
"""

from __future__ import annotations

import asyncio
from uuid import uuid4
import smtplib
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any

import structlog

from connector import metrics
from connector.clock import utcnow
from connector.config import AlertsConfig, Config
from connector.lifecycle import TaskState
from connector.redact import DEFAULT as REDACT
from connector.redact import Redactor
from connector.retry import RetryPolicy
from connector.store import Store
from connector.store.alerts import KEY_MAX
from connector.store.tasks import ALERT_EMAIL, failing_since

EMAIL_MERCHANT, EMAIL_TASK = ALERT_EMAIL  # alert e-mails are the connector's own tasks, not one merchant's
DIGEST_CURSOR = "alerts.last_digest_at"

log = structlog.get_logger("connector.alerts")


@dataclass(frozen=True)
class Category:
    """A kind of problem: its e-mail heading and what the administrator should do about it."""

    title: str
    advice: str


CATEGORIES: dict[str, Category] = {
    "unknown_sku": Category(
        "Unknown SKU",
        "The warehouse does not know this SKU, so the order is held. Add the product at the warehouse, or map the "
        "store SKU to a warehouse SKU ([merchants.skus] aliases, aliases_file or kits) and `connector reload`; held "
        "orders are released by the next delivery pass once the SKU is known."),
    "unmapped_ship_method": Category(
        "Unmapped shipping method",
        "Add the UltraCart shipping method to [merchants.ship_methods] (or set orders.default_ship_method) and "
        "`connector reload`; held orders are released by the next delivery pass."),
    "missing_address": Category(
        "Missing or invalid ship-to address",
        "Correct the ship-to address of the order in UltraCart, then `connector refresh ORDER` (it re-reads the order "
        "and sends it once the address is complete); or ship it by hand and `connector skip ORDER --reason TEXT`."),
    "configuration": Category(
        "Credentials or distribution center rejected",
        "The merchant's service is paused and retried every few minutes; the other merchants go on. Check the "
        "UltraCart API key and distribution center and the warehouse credentials in the config "
        "(`connector check --online`), then `connector reload`."),
    "order_failed": Category(
        "Order could not be created at the warehouse",
        "Read the warehouse's error in the timeline (`connector order ORDER`), fix the cause (often order data the "
        "warehouse rejects: correct it in UltraCart and `connector refresh ORDER`), then `connector retry ORDER`; or "
        "create it by hand and `connector skip ORDER --reason TEXT`."),
    "order_stuck": Category(
        "Order not moving",
        "Look at the order's timeline (`connector order ORDER`). Not yet at the warehouse: check `connector status` "
        "for a held order's reason, a paused service or repeated errors. At the warehouse but unshipped: ask the "
        "warehouse why (stock, address check, a hold on their side)."),
    "tracking_not_posted": Category(
        "Tracking not posted to UltraCart",
        "The order shipped but UltraCart has not accepted its tracking, so the customer has not been told. The post "
        "is retried automatically; check the error (`connector status`), fix it, and use `connector resend-tracking "
        "ORDER` if it failed for good."),
    "inventory_failing": Category(
        "Inventory upload failing",
        "Stock levels are not reaching UltraCart, so the store may sell what is not there. Check the error in "
        "`connector status`, the credentials, and the [merchants.inventory] settings."),
    "insufficient_inventory": Category(
        "Order for more than is available",
        "A store order asks for more units than the warehouse has. Restock or change the order, and check the "
        "inventory settings (buffer, minimum_level) so the store stops selling stock that is not there. Part of "
        "the order may already have been processed."),
    "orphan_shipment": Category(
        "Shipment with no known order",
        "The warehouse shipped something whose reference matches no order the connector sent (an order made by "
        "hand or by another system). No tracking was posted: post it in UltraCart by hand if it belongs to a store "
        "order."),
    "malformed_order": Category(
        "Order could not be read",
        "The order from UltraCart could not be read, or carried control characters or nesting the connector will not "
        "send as they are (the reason names the field), so it was not sent. Correct it in UltraCart and `connector "
        "refresh ORDER`; or create it at the warehouse by hand and `connector skip ORDER --reason TEXT`."),
    "invalid_lines": Category(
        "Order lines that cannot be sent",
        "An order has no items, or a line with a missing, fractional, zero, negative or implausible quantity (above "
        "orders.max_line_quantity). Correct the order in UltraCart, then `connector refresh ORDER`; or raise "
        "max_line_quantity and `connector reload`; or `connector skip ORDER --reason ...`."),
    "ultracart_acks_ignored": Category(
        "UltraCart is not accepting acknowledgements",
        "UltraCart keeps returning orders the connector acknowledged, so the queue does not drain (nothing is sent twice: "
        "repeats are absorbed). Check the distribution center in UltraCart (Configuration > Shipping > Distribution "
        "Centers) and the API key's permissions; `connector status` shows when it last happened."),
    "unknown_item": Category(
        "Item unknown to the inventory ledger",
        "An order shipped but the inventory ledger (e.g. Aligni) has no item for this SKU, so nothing was consumed for that "
        "line. Add the item in the ledger (or map the store SKU in [merchants.skus] and `connector reload`), then "
        "`connector consume ORDER`."),
    "ledger_check": Category(
        "Inventory ledger needs a look",
        "A consumption may or may not have happened (the unit changed in some other way too), or the ledger did not end "
        "where it should. Nothing more is consumed for that line: check the unit's history in the ledger, correct it "
        "by hand if needed, then `connector consume ORDER`."),
    "cancel_too_late": Category(
        "Cancelled in UltraCart, too late at the warehouse",
        "The order was rejected or refunded in UltraCart after the warehouse had picked, packed or shipped it. "
        "Intercept the parcel with the carrier or arrange a return; the order is listed by "
        "`connector orders --state cancel_failed`."),
    "cancel_by_hand": Category(
        "Cancel the order at the warehouse by hand",
        "The warehouse's API cannot cancel orders. Cancel the named warehouse order there, then "
        "`connector cancel ORDER --done` to record it."),
    "cancel_failed": Category(
        "The warehouse refused a cancel",
        "Read the warehouse's answer in the detail; cancel the order there by hand, then `connector cancel ORDER --done`."),
    "shipped_before_cancel": Category(
        "Shipped before it was cancelled",
        "UltraCart rejected or refunded an order that had already shipped. Intercept the parcel with the carrier or "
        "arrange a return, and tell the merchant."),
    "changed_after_handoff": Category(
        "Order changed in UltraCart after it reached the warehouse",
        "The detail names exactly what changed (address, items, refunds) and the warehouse order. Make the same change "
        "at the warehouse by hand: its API cannot take it."),
    "held_after_handoff": Category(
        "Order put on hold in UltraCart after it reached the warehouse",
        "Hold the named warehouse order at the warehouse if it must not ship; release it there when UltraCart releases it."),
    "warehouse_hold": Category(
        "The warehouse put a shipment on hold",
        "Ask the warehouse why (stock, an address check, a carrier problem); the order ships when they release it."),
    "warehouse_data": Category(
        "Bad data from the warehouse",
        "A file or record from the warehouse could not be read (the detail names it). Ask the warehouse to correct and resend it.",
    ),
}
OTHER = Category("Other problem", "Read the detail and the connector's log.")

# check_stuck thresholds: how long before an order that stopped moving is worth a human's time.
STUCK_NOT_AT_WAREHOUSE = timedelta(hours=4)  # received but not created at the warehouse
STUCK_UNSHIPPED = timedelta(days=3)  # at the warehouse but not (fully) shipped
TRACKING_OVERDUE = timedelta(hours=4)  # shipped but tracking not accepted by UltraCart
STUCK_QUERY_LIMIT = 1000

SMTP_TIMEOUT_S = 30.0  # per socket operation; the whole send is bounded by SEND_TIMEOUT_S
SEND_TIMEOUT_S = 90.0
LEASE_S = 300.0  # longer than any send, so a live sender never loses its claim
SEND_BATCH = 20
# Mail outages are retried for ever (capped backoff); a server that refuses the message itself
# (5xx: bad sender, recipients, credentials) is retried max_attempts times, then `failed`.
EMAIL_RETRY = RetryPolicy(max_attempts=10, base_seconds=30, max_backoff_seconds=900)
LINES_PER_CATEGORY = 50  # a digest stays readable when a thousand orders share one cause
DETAIL_MAX = 2000


async def raise_alert(store: Store, merchant: str, category: str, key: str, detail: str, *, now: datetime | None = None,
                      redactor: Redactor = REDACT) -> None:
    """Tell the administrator about a problem (once; repeats are counted quietly).

    `key` makes it distinct within its category: the SKU, the ship method, the order id, the
    service. The detail is redacted before it is stored. Only the store's own errors propagate.
    """
    if category not in CATEGORIES:
        log.warning("alert with an unknown category", category=category)
    detail = redactor.text(str(detail))[:DETAIL_MAX]
    if await store.alerts.raise_many([(merchant, category, str(key), detail)], now=now or utcnow()):
        log.warning("alert raised", merchant=merchant, category=category, key=key, detail=detail)


def recipients_for(config: Config) -> Callable[[str], list[str]]:
    """merchant -> the addresses that get its alerts (the 3PL's and the merchant's own)."""
    own = {m.id: list(m.email_to) for m in config.merchants}
    return lambda merchant: [*config.alerts.email_to, *own.get(merchant, [])]


def render_digest(alerts: Sequence[Any], *, redactor=REDACT) -> dict[str, str]:
    """A plain-text digest: one section per merchant, one block per category with its advice,
    one line per alert (what happened, how many times, since when)."""
    by_merchant: dict[str, dict[str, list[Any]]] = {}
    for a in alerts:
        by_merchant.setdefault(a.merchant, {}).setdefault(a.category, []).append(a)
    order = list(CATEGORIES)
    lines = [f"The connector needs your attention: {_plural(len(alerts), 'new problem')}.", ""]
    for merchant in sorted(by_merchant):
        lines += [f"== {merchant or 'connector (all merchants)'} ==", ""]
        cats = sorted(by_merchant[merchant], key=lambda c: (order.index(c) if c in order else len(order), c))
        for cat in cats:
            info, rows = CATEGORIES.get(cat, OTHER), by_merchant[merchant][cat]
            lines.append(f"{info.title} ({len(rows)})" + ("" if cat in CATEGORIES else f" [{cat}]"))
            for a in rows[:LINES_PER_CATEGORY]:
                lines.append(f"  - {a.message or a.key}")
                lines.append(f"    {_times(a)}")
            if len(rows) > LINES_PER_CATEGORY:
                lines.append(f"  ... and {len(rows) - LINES_PER_CATEGORY} more (`connector alerts`)")
            lines += [f"  What to do: {info.advice}", ""]
    lines += ["--", "Each problem is e-mailed once; it is e-mailed again only if it is resolved and comes back.",
              "Open alerts are listed by `connector alerts`."]
    counts = ", ".join(f"{m or 'connector'} ({sum(map(len, c.values()))})" for m, c in sorted(by_merchant.items()))
    subject = f"[connector] {_plural(len(alerts), 'alert')}: {counts}"
    return {"subject": redactor.text(subject), "body": redactor.text("\n".join(lines) + "\n")}


def _times(a: Any) -> str:
    first = f"{a.first_at:%Y-%m-%d %H:%M} UTC"
    if a.count <= 1:
        return f"once, at {first}"
    return f"{a.count} times since {first} (last at {a.last_at:%Y-%m-%d %H:%M} UTC)"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


async def queue_digest(store: Store, config: Config, *, now: datetime, min_interval: timedelta | None = None,
                       redactor: Redactor = REDACT) -> int:
    """In one transaction: take the unsent open alerts, queue one `alert_email` task per group of
    addresses that should see the same alerts, and mark those alerts sent (queued). A crash either
    leaves the alerts unsent (queued again next time) or leaves a task retried until the SMTP
    server accepts it; never neither. With `min_interval`, nothing is queued if the last digest
    was queued less than that long ago. Returns the number of e-mails queued."""
    recipients = recipients_for(config)
    redactor.add(*config.secrets())
    async with store.atomic() as tx:
        if min_interval is not None:
            last = await tx.cursors.get(EMAIL_MERCHANT, DIGEST_CURSOR)
            if last and now - datetime.fromisoformat(last) < min_interval:
                return 0
        rows = await tx.alerts.claim_unsent()
        groups = _group_by_recipients(rows, recipients)
        sent: list[int] = []
        for to, members in groups:
            payload = dict(render_digest(members, redactor=redactor), to=list(to), alert_ids=[r.id for r in members])
            await tx.tasks.put(EMAIL_MERCHANT, EMAIL_TASK, uuid4().hex, payload)
            sent += [r.id for r in members]
        if not sent:
            return 0
        await tx.alerts.mark_sent(sent, now=now)
        await tx.cursors.set(EMAIL_MERCHANT, DIGEST_CURSOR, now.isoformat())
        return len(groups)


def _group_by_recipients(rows: Sequence[Any], recipients: Callable[[str], Sequence[str]]) -> list[tuple[tuple[str, ...], list[Any]]]:
    """Addresses that should see exactly the same alerts share one e-mail.

    The 3PL's address sees every merchant; a merchant's own address sees its alerts only; an
    address in both lists gets one e-mail, not two."""
    seen_by: dict[str, list[Any]] = {}
    for r in rows:
        for addr in dict.fromkeys(a.strip() for a in recipients(r.merchant) if a and a.strip()):
            seen_by.setdefault(addr, []).append(r)
    groups: dict[tuple[int, ...], tuple[list[str], list[Any]]] = {}
    for addr, members in seen_by.items():
        ids = tuple(r.id for r in members)
        groups.setdefault(ids, ([], members))[0].append(addr)
    return [(tuple(addrs), members) for addrs, members in groups.values()]


async def send_digests(store: Store, config: Config, *, now: datetime, worker_id: str = "alerts", force: bool = False,
                       redactor: Redactor = REDACT) -> dict[str, int]:
    """Queue a digest of the unsent alerts (at most one per `digest_minutes`, unless `force`),
    then send the due digest e-mails. Safe to call every minute: that only makes retries prompt.
    An alert is marked delivered only when the SMTP server accepted its e-mail."""
    interval = None if force else timedelta(minutes=config.alerts.digest_minutes)
    queued = await queue_digest(store, config, now=now, min_interval=interval, redactor=redactor)
    stats = {"queued": queued, "sent": 0, "retrying": 0, "failed": 0}
    tasks = await store.tasks.claim(EMAIL_MERCHANT, EMAIL_TASK, owner=worker_id, lease_seconds=LEASE_S, limit=SEND_BATCH)
    for i, task in enumerate(tasks):
        try:
            refused = await asyncio.wait_for(asyncio.to_thread(_deliver, config.alerts, task.key, task.data), SEND_TIMEOUT_S)
        except Exception as exc:  # any failure leaves the e-mail in the outbox; nothing is dropped
            outage = not _permanent(exc)
            await _failed(store, task, exc, now=now, outage=outage, stats=stats, redactor=redactor)
            if outage and tasks[i + 1 :]:
                # The server is unreachable: the other e-mails wait too, without spending an attempt.
                await store.tasks.finish([t.id for t in tasks[i + 1 :]], state=TaskState.pending,
                                         next_attempt_at=now + timedelta(seconds=EMAIL_RETRY.base_seconds),
                                         error="not tried: the SMTP server was unreachable", count_attempt=False)
                stats["retrying"] += len(tasks) - i - 1
                break
            continue
        await store.tasks.finish([task.id], state=TaskState.done)
        await store.alerts.mark_delivered(list(task.data.get("alert_ids") or ()), now=now)
        metrics.alert_sent("digest")
        stats["sent"] += 1
        if refused:
            log.warning("alert e-mail: some recipients refused", refused=sorted(refused))
    return stats


async def delivery_failing_since(store: Store) -> tuple[datetime | None, str]:
    """Since when alert e-mails have been failing (and the last error), or (None, "")."""
    return await failing_since(store.tasks, EMAIL_MERCHANT, EMAIL_TASK)


async def _failed(store: Store, task: Any, exc: BaseException, *, now: datetime, outage: bool, stats: dict[str, int], redactor: Redactor) -> None:
    error = redactor.text(f"{type(exc).__name__}: {exc}")
    if not outage and task.attempts >= EMAIL_RETRY.max_attempts:
        await store.tasks.finish([task.id], state=TaskState.failed, error=error)
        stats["failed"] += 1
        log.error("alert e-mail refused for good (re-queue with retry_tasks)", task=task.key, error=error)
        return
    await store.tasks.finish([task.id], state=TaskState.pending, next_attempt_at=now + timedelta(seconds=EMAIL_RETRY.backoff(task.attempts)), error=error)
    stats["retrying"] += 1
    log.warning("alert e-mail not sent; will retry", task=task.key, error=error)


def _permanent(exc: BaseException) -> bool:
    """A 5xx answer is about the message or the account: retrying soon will not help."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return all(code >= 500 for code, _ in exc.recipients.values())
    if isinstance(exc, smtplib.SMTPResponseException):
        return exc.smtp_code >= 500
    return isinstance(exc, smtplib.SMTPNotSupportedError | KeyError | ValueError | TypeError)


def _deliver(cfg: AlertsConfig, task_key: str, payload: dict[str, Any]) -> dict[str, Any]:
    """Send one e-mail (blocking: run in a thread). Returns the recipients refused, if only some were."""
    msg = EmailMessage()
    msg["From"] = cfg.email_from
    msg["To"] = ", ".join(payload["to"])
    msg["Subject"] = payload["subject"]
    msg["Date"] = formatdate(usegmt=True)
    # Stable per digest: if a resend follows a lost "250 OK", mail clients can see the repeat.
    msg["Message-ID"] = f"<{task_key}@{cfg.email_from.rpartition('@')[2] or 'connector'}>"
    msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies to a robot
    msg.set_content(payload["body"])
    implicit_tls = cfg.smtp_port == 465
    cls = smtplib.SMTP_SSL if implicit_tls else smtplib.SMTP
    kw = {"context": ssl.create_default_context()} if implicit_tls else {}
    with cls(cfg.smtp_host, cfg.smtp_port, timeout=SMTP_TIMEOUT_S, **kw) as smtp:
        if cfg.smtp_starttls and not implicit_tls:
            smtp.starttls(context=ssl.create_default_context())
        if cfg.smtp_username:
            smtp.login(cfg.smtp_username, cfg.smtp_password)
        return smtp.send_message(msg, from_addr=cfg.email_from, to_addrs=list(payload["to"]))


async def check_stuck(store: Store, config: Config, *, now: datetime, not_at_warehouse_after: timedelta = STUCK_NOT_AT_WAREHOUSE,
                      unshipped_after: timedelta = STUCK_UNSHIPPED, tracking_after: timedelta = TRACKING_OVERDUE) -> dict[str, int]:
    """Raise `order_stuck` and `tracking_not_posted` for orders that stopped moving (held ones
    included); resolve the ones that moved again (so a later relapse is e-mailed afresh)."""
    merchants = [m.id for m in config.merchants if m.enabled]
    if not merchants:
        return {}
    late = await store.orders.not_at_warehouse_since(merchants, now - not_at_warehouse_after, limit=STUCK_QUERY_LIMIT)
    idle = await store.orders.unshipped_since(merchants, now - unshipped_after, limit=STUCK_QUERY_LIMIT)
    overdue = await store.tasks.overdue(merchants, "post_tracking", now - tracking_after, limit=STUCK_QUERY_LIMIT)
    items: list[tuple[str, str, str, str]] = []
    for r in late:
        why = r.last_error or r.reason
        items.append((r.merchant, "order_stuck", f"{r.order_id}:not_at_warehouse",
                      f"Order {r.order_id} was received {_age(now - r.received_at)} ago and is still not at the warehouse "
                      f"(state {r.state}, {_plural(r.attempts, 'attempt')}{': ' + why if why else ''})."))
    for r in idle:
        items.append((r.merchant, "order_stuck", f"{r.order_id}:unshipped",
                      f"Order {r.order_id} has been at the warehouse (order {r.warehouse_order_id or '?'}) for "
                      f"{_age(now - r.updated_at)} without {'shipping' if r.state == 'at_warehouse' else 'shipping the rest'}."))
    for t in overdue:
        items.append((t.merchant, "tracking_not_posted", t.key,
                      f"Tracking for order {_order_of(t.data) or t.key} has waited {_age(now - t.created_at)} for UltraCart "
                      f"({t.state}, {_plural(t.attempts, 'attempt')}{': ' + t.last_error if t.last_error else ''})."))
    new = await store.alerts.raise_many([(m, c, k, REDACT.text(d)[:DETAIL_MAX]) for m, c, k, d in items], now=now)
    resolved = 0
    enabled = set(merchants)
    for category, complete in (("order_stuck", len(late) < STUCK_QUERY_LIMIT and len(idle) < STUCK_QUERY_LIMIT),
                               ("tracking_not_posted", len(overdue) < STUCK_QUERY_LIMIT)):
        if not complete:
            continue  # a truncated read cannot tell "moved on" from "not read"
        # One read of what is open for every merchant (a thousand merchants asked one by one
        # cost more than all their idle passes), then a write only for the ones that moved on.
        keep = {(m, k[:KEY_MAX]) for m, c, k, _ in items if c == category}  # keys as stored
        moved_on = {a.merchant for a in await store.alerts.open(category=category)
                    if a.merchant in enabled and (a.merchant, a.key) not in keep}
        for m in sorted(moved_on):  # one write per merchant with something to close
            resolved += await store.alerts.resolve(m, category, except_keys=[k for mm, k in keep if mm == m], now=now)
    return {"not_at_warehouse": len(late), "unshipped": len(idle), "tracking_overdue": len(overdue), "new_alerts": new, "resolved": resolved}


def _order_of(data: Any) -> str:
    try:
        return str(data["body"]["order_id"])
    except (KeyError, TypeError):
        return ""


def _age(delta: timedelta) -> str:
    hours = delta.total_seconds() / 3600
    if hours >= 48:
        return f"{hours / 24:.0f} days"
    if hours >= 1:
        return f"{hours:.0f} hours"
    return f"{delta.total_seconds() / 60:.0f} minutes"
