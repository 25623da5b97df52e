"""`connector onboard MERCHANT`: a merchant's go-live check, read-only, against the accounts its
config names (live or sandbox).

It reads UltraCart's distribution centers, item catalog, recent orders and webhooks, and the
warehouse's credentials, SKUs, ship methods and webhooks; then it runs the order rules the daemon
uses (`mappings.rules.decide`) on every recent order, so "would hold" here is what the daemon
would do with the config as it is. The comparisons themselves are pure (`mappings.onboarding`).

Nothing is written anywhere: no acknowledgement, no order, no subscription.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from adapters.ultracart.parse import OrderParseError
from connector.errors import ConfigurationError, ConnectorError
from connector.lifecycle import HoldKind, SkipKind
from connector.pipeline.context import ServiceContext
from adapters.ultracart.catalog import parse_item
from mappings.onboarding import Coverage, MethodReport, SkuReport, check_methods, line_coverage, match_skus
from mappings.rules import decide, lines_for_dc
from mappings.skus import map_lines

# Holds the config could have prevented: these make go-live "not ready".
CONFIG_HOLDS = (HoldKind.unmapped_ship_method, HoldKind.unknown_sku)
ULTRACART_EVENTS_NEEDED = ("fulfillment_transmit",)

Progress = Callable[[str, int, int | None], None]  # (step, done so far, total or None)


@dataclass
class Check:
    """One line of the go-live check. status: `ok`; `blocking` (with this config, go-live would
    hold orders or fail: a wrong credential, DC, mapping or SKU); `failed` (a call failed for
    another reason, so it could not be checked: try again); `warning` (works, but worse than it
    could: polling instead of webhooks); `skipped` (cannot be checked here; `detail` says why)."""

    name: str
    status: str
    detail: str

    def to_json(self) -> dict[str, str]:
        return {"name": self.name, "status": self.status, "detail": self.detail}


@dataclass
class OnboardReport:
    merchant: str
    days: int
    checks: list[Check] = field(default_factory=list)
    catalog_items: int | None = None  # None: the catalog could not be read
    warehouse_skus: int | None = None  # None: the warehouse cannot list its SKUs
    warehouse_methods: list[str] | None = None
    skus: SkuReport | None = None
    methods: MethodReport | None = None
    coverage: Coverage | None = None
    orders: int | None = None  # recent orders with lines for this DC; None: they could not be read
    unreadable: list[str] = field(default_factory=list)  # recent orders that could not be parsed
    outcomes: Counter = field(default_factory=Counter)  # "ready", "held:<kind>", "skipped:<kind>"
    held: dict[str, list[str]] = field(default_factory=dict)  # hold kind -> order ids

    def add(self, name: str, status: str, detail: str) -> None:
        self.checks.append(Check(name, status, detail))

    @property
    def blocking(self) -> list[Check]:
        return [c for c in self.checks if c.status == "blocking"]

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if c.status == "failed"]

    @property
    def ready(self) -> bool:
        return not self.blocking and not self.failed

    def to_json(self) -> dict[str, Any]:
        s, m, c = self.skus, self.methods, self.coverage
        return {
            "merchant": self.merchant,
            "days": self.days,
            "ready_to_go_live": self.ready,
            "checks": [c.to_json() for c in self.checks],
            "catalog_items": self.catalog_items,
            "warehouse_skus": self.warehouse_skus,
            "warehouse_ship_methods": self.warehouse_methods,
            "skus": None if s is None else {
                "exact": s.exact, "aliased": s.aliased, "proposed_aliases": s.proposed, "ambiguous": s.ambiguous,
                "kits_complete": s.kits_ok, "kits_missing_components": s.kits_missing, "missing_at_warehouse": s.missing,
                "warehouse_never_sold": s.never_sold, "inactive": s.inactive},
            "ship_methods": None if m is None else {
                "orders_by_method": dict(m.used), "mapped": m.mapped, "mapped_to_unknown_warehouse_method": m.mapped_unknown_at_warehouse,
                "unmapped_with_proposal": m.unmapped, "orders_held_by_method": m.held_orders},
            "recent_orders": None if self.orders is None else {
                "orders": self.orders, "unreadable": self.unreadable, "would_be": dict(self.outcomes), "held": self.held,
                "lines": c.lines if c else None, "mapped_lines": c.mapped_lines if c else None,
                "line_share_mapped": round(c.share, 4) if c else None,
                "skus_holding_orders": {sku: {"warehouse_sku": c.targets.get(sku, sku), "orders": ids}
                                        for sku, ids in c.holding_skus.items()} if c else None},
        }


async def onboard(ctx: ServiceContext, *, days: int = 30, public_url: str = "", warehouse_hook_url: str | None = None,
                  progress: Progress | None = None) -> OnboardReport:
    """Read everything onboarding compares and check it. Never raises for vendor trouble: a call
    that fails becomes a check saying what failed."""
    note = progress or (lambda step, done, total: None)
    r = OnboardReport(ctx.id, days)
    uc = ctx.merchant.ultracart
    key_works = await _ultracart_key(ctx, r, note)
    catalog = await _catalog(ctx, r, note) if key_works else None
    raw_orders = await _recent_orders(ctx, r, days, note) if key_works else None
    known_skus, known_methods = await _warehouse(ctx, r, note)

    if catalog is not None and known_skus is not None:
        r.skus = match_skus(catalog, known_skus, ctx.merchant.sku_map())
    if raw_orders is not None:
        _evaluate(ctx, r, raw_orders, known_skus, known_methods)
    if key_works:
        await _ultracart_webhook(ctx, r, public_url, uc.webhook_username)
    await _warehouse_webhooks(ctx, r, public_url, warehouse_hook_url)
    note("done", 1, 1)
    return r


# ------------------------------------------------------------------------------------------ UltraCart
async def _ultracart_key(ctx: ServiceContext, r: OnboardReport, note: Progress) -> bool:
    """The key works and sees this merchant's distribution center (fulfillment_read)."""
    dc = ctx.merchant.ultracart.distribution_center
    note("UltraCart distribution centers", 0, None)
    try:
        codes = [d.code for d in await ctx.cart.distribution_centers()]
    except ConnectorError as exc:
        r.add("ultracart_key", _bad(exc), f"the distribution-center read: {exc}")
        return False
    if dc in codes:
        r.add("distribution_center", "ok", f"distribution center {dc} found (the key has fulfillment_read)")
    else:
        r.add("distribution_center", "blocking", f"distribution center {dc!r} not found; this key sees: {', '.join(codes) or 'none'}")
    r.add("fulfillment_write", "skipped", "not checked: only a write shows it, and onboarding writes nothing "
                                          "(the first acknowledgement will; `connector status` shows a refusal)")
    return True


async def _catalog(ctx: ServiceContext, r: OnboardReport, note: Progress) -> list | None:
    items: list = []
    try:
        async for page in ctx.cart.item_pages():
            items += [i for i in map(parse_item, page) if i is not None]
            note("UltraCart item catalog", len(items), None)
    except ConnectorError as exc:
        # The daemon never reads the catalog: a key without item_read only loses this comparison.
        r.add("item_read", "warning" if _refused(exc) else "failed", f"cannot read the item catalog, so store items are not matched: {exc}")
        return None
    r.catalog_items = len(items)
    r.add("item_read", "ok", f"{len(items)} catalog item(s) read")
    return items


async def _recent_orders(ctx: ServiceContext, r: OnboardReport, days: int, note: Progress) -> list[dict] | None:
    now = ctx.now()
    orders: list[dict] = []
    try:
        async for page in ctx.cart.query_order_pages(now - timedelta(days=days), now):
            orders += page
            note(f"UltraCart orders of the last {days} days", len(orders), None)
    except ConnectorError as exc:
        r.add("order_read", _bad(exc), f"cannot read orders (the connector reads them to follow cancellations and edits, "
                                        f"and to check a tracking post before repeating it): {exc}")
        return None
    r.add("order_read", "ok", f"{len(orders)} order(s) created in the last {days} days read")
    return orders


async def _ultracart_webhook(ctx: ServiceContext, r: OnboardReport, public_url: str, username: str) -> None:
    polled = f"orders are downloaded every {_every(ctx.merchant.schedule.order_download)} instead of at once"
    if not public_url:
        r.add("ultracart_webhook", "warning", f"[daemon] public_url is not set, so UltraCart cannot push orders: {polled}")
        return
    want = f"{public_url.rstrip('/')}/webhooks/ultracart/{ctx.id}"
    try:
        hooks = await ctx.cart.webhooks()
    except ConnectorError as exc:
        r.add("ultracart_webhook", "skipped", f"cannot read UltraCart's webhooks: {exc}")
        return
    ours = [h for h in hooks if str(h.get("webhook_url") or "").rstrip("/") == want]
    if not ours:
        r.add("ultracart_webhook", "warning", f"no UltraCart webhook posts to {want} (`connector webhooks register -m {ctx.id}` "
                                              f"prints the settings): {polled}")
        return
    hook = ours[0]
    events = {e.get("event_name") for cat in hook.get("event_categories") or [] if isinstance(cat, dict)
              for e in cat.get("events") or [] if isinstance(e, dict) and e.get("subscribed", True)}
    problems = [f"it does not send {e}" for e in ULTRACART_EVENTS_NEEDED if e not in events]
    if hook.get("disabled"):
        problems.append("UltraCart has disabled it")
    if hook.get("authentication_type") != "basic" or (username and hook.get("basic_username") != username):
        problems.append(f"its authentication is not HTTP Basic as user {username or '(ultracart.webhook_username)'}; "
                        f"the connector refuses its deliveries")
    failures = int(hook.get("consecutive_failures") or 0)
    if failures:
        problems.append(f"its last {failures} deliveries failed")
    if problems:
        r.add("ultracart_webhook", "warning", f"the UltraCart webhook to {want}: {'; '.join(problems)}")
    else:
        r.add("ultracart_webhook", "ok", f"an UltraCart webhook posts {', '.join(sorted(e for e in events if e))} to {want}")


# ------------------------------------------------------------------------------------------ warehouse
async def _warehouse(ctx: ServiceContext, r: OnboardReport, note: Progress) -> tuple[set[str] | None, set[str] | None]:
    wh = ctx.warehouse
    if wh is None:
        r.add("warehouse", "skipped", "this merchant has no warehouse block (a ledger-only merchant)")
        return None, None
    note(f"warehouse ({wh.name})", 0, None)
    try:
        r.add("warehouse", "ok", f"{wh.name}: {await wh.check()}")
    except ConnectorError as exc:
        r.add("warehouse", _bad(exc), f"{wh.name}: {exc}")
        return None, None
    known_skus = known_methods = None
    if wh.capabilities.sku_catalog:
        note(f"warehouse ({wh.name}) SKUs", 0, None)
        try:
            known_skus = await wh.known_skus()
        except ConnectorError as exc:
            r.add("warehouse_skus", _bad(exc), f"cannot read the warehouse's SKUs: {exc}")
    if known_skus is None and not any(c.name == "warehouse_skus" for c in r.checks):
        r.add("warehouse_skus", "skipped", f"{wh.name} cannot list its SKUs here: SKUs are not matched; an unknown one "
                                           f"surfaces when the warehouse refuses an order")
    elif known_skus is not None:
        r.warehouse_skus = len(known_skus)
    if wh.capabilities.ship_method_catalog:
        try:
            known_methods = await wh.known_ship_methods()
        except ConnectorError as exc:
            r.add("warehouse_methods", _bad(exc), f"cannot read the warehouse's ship methods: {exc}")
    if known_methods is not None:
        r.warehouse_methods = sorted(known_methods)
        wrong = {cart: to for cart, to in ctx.merchant.ship_methods.items() if to.casefold() not in {k.casefold() for k in known_methods}}
        if wrong:
            r.add("mapped_methods", "blocking", "mapped to methods the warehouse does not offer: "
                  + "; ".join(f"{cart!r} -> {to!r}" for cart, to in sorted(wrong.items())))
        else:
            r.add("mapped_methods", "ok", f"all {len(ctx.merchant.ship_methods)} mapped ship method(s) are offered by the warehouse")
    return known_skus, known_methods


async def _warehouse_webhooks(ctx: ServiceContext, r: OnboardReport, public_url: str, hook_url: str | None) -> None:
    check = await warehouse_hooks(ctx, public_url, hook_url)
    if check is not None:
        r.checks.append(check)


async def warehouse_hooks(ctx: ServiceContext, public_url: str, hook_url: str | None) -> Check | None:
    """Whether the warehouse's shipment webhooks point at this connector (None: it has none).
    `hook_url`: the merchant's warehouse-webhook URL ("" or None: none was registered yet)."""
    wh = ctx.warehouse
    if wh is None or not getattr(wh.capabilities, "webhooks", False):
        return None
    if not public_url:
        return Check("warehouse_webhooks", "warning", "[daemon] public_url is not set: shipments are polled")
    try:
        subscribed = await wh.webhook_urls()
    except ConnectorError as exc:
        return Check("warehouse_webhooks", "skipped", f"cannot read the warehouse's webhooks: {exc}")
    if hook_url and hook_url in subscribed:
        return Check("warehouse_webhooks", "ok", "the warehouse's shipment webhooks point here")
    return Check("warehouse_webhooks", "warning", f"the warehouse's shipment webhooks are missing: run "
                                                  f"`connector webhooks register -m {ctx.id}` (polling still works)")


# ------------------------------------------------------------------------------------------ the rules
def _evaluate(ctx: ServiceContext, r: OnboardReport, raw_orders: list[dict], known_skus: set[str] | None,
              known_methods: set[str] | None) -> None:
    """Run the daemon's order rules on each recent order, as if it arrived now."""
    m = ctx.merchant
    # The cut-over date and the timed hold are about going live, not about the orders' shape.
    rules = m.order_rules().model_copy(update={"earliest_order_date": None, "hold_minutes": 0})
    skus, now = m.sku_map(), ctx.now()
    by_method: dict[str, list[str]] = defaultdict(list)
    mapped: list[tuple[str, list]] = []
    held: dict[str, list[str]] = defaultdict(list)
    held_by_method: dict[str, list[str]] = defaultdict(list)
    count = 0
    for raw in raw_orders:
        try:
            order = ctx.parse_order(raw)
        except (OrderParseError, ValueError, TypeError) as exc:
            r.unreadable.append(f"{raw.get('order_id', '?')}: {exc}")
            continue
        if order.rejected_at is not None:
            continue  # rejected in UltraCart: it would never have been sent
        d = decide(order, rules=rules, skus=skus, ship_methods=m.ship_methods, known_skus=known_skus, known_ship_methods=known_methods,
                   received_at=now, now=now, dc=ctx.dc, released=True)
        if d.outcome == "skip" and d.why is not None and d.why.kind == SkipKind.other_distribution_center:
            continue  # another fulfillment house's order
        count += 1
        by_method[order.ship_method.strip() or "(none)"].append(order.order_id)
        mapped.append((order.order_id, map_lines(lines_for_dc(order.lines, ctx.dc), skus).lines))
        if d.outcome == "ready":
            r.outcomes["ready"] += 1
        else:
            kind = str(d.why.kind) if d.why else "unknown"
            r.outcomes[f"{'held' if d.outcome == 'hold' else 'skipped'}:{kind}"] += 1
            if d.outcome == "hold":
                held[kind].append(order.order_id)
                if kind == HoldKind.unmapped_ship_method:
                    held_by_method[order.ship_method.strip() or "(none)"].append(order.order_id)
    r.orders = count
    r.held = {k: sorted(v) for k, v in held.items()}
    table = m.ship_methods
    r.methods = check_methods(dict(by_method), table, known_methods,
                              default=None if rules.reject_unmapped_ship_methods else (rules.default_ship_method or None))
    r.methods.held_orders = {meth: sorted(ids) for meth, ids in held_by_method.items()}  # what the rules really hold
    if known_skus is not None:
        r.coverage = line_coverage(mapped, known_skus)
    days = f"the last {r.days} days"
    c = r.coverage
    if c is not None and c.lines:
        # Every order with an unknown SKU, including those the rules hold first for something else.
        orders = sorted({o for ids in c.holding_skus.values() for o in ids})
        sku_list = ", ".join(f"{s} ({len(o)})" for s, o in list(c.holding_skus.items())[:10])
        text = (f"{c.share:.0%} of {days}' order lines would map ({c.mapped_lines} of {c.lines})"
                + (f"; {len(c.holding_skus)} SKU(s) would hold {len(orders)} order(s): {sku_list}" if c.holding_skus else ""))
        r.add("sku_coverage", "blocking" if c.holding_skus else "ok", text)
    ids = r.held.get(HoldKind.unmapped_ship_method, [])
    held_methods = {meth: len(o) for meth, o in r.methods.held_orders.items()}
    r.add("ship_method_coverage", "blocking" if ids else "ok",
          f"{len(ids)} of {count} order(s) of {days} would be held for their ship method: "
          + ", ".join(f"{meth!r} ({n})" for meth, n in held_methods.items()) if ids else
          f"every ship method {days}' {count} order(s) used is mapped")
    others = {k: v for k, v in r.held.items() if k not in CONFIG_HOLDS}
    if others:
        r.add("other_holds", "warning", "held for the order's own data, not the config: "
              + ", ".join(f"{k.replace('_', ' ')} {len(v)}" for k, v in sorted(others.items())))
    if r.unreadable:
        r.add("unreadable_orders", "warning", f"{len(r.unreadable)} recent order(s) could not be read: they would be held as malformed")


def _refused(exc: ConnectorError) -> bool:
    return isinstance(exc, ConfigurationError) and getattr(exc, "status", None) in (401, 403)


def _bad(exc: ConnectorError) -> str:
    """A refusal or a configuration error is the config's to fix (blocking); anything else is a
    call that failed (the check could not be made)."""
    return "blocking" if isinstance(exc, ConfigurationError) or _refused(exc) else "failed"


def _every(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}h" if seconds % 3600 == 0 and seconds >= 3600 else f"{seconds // 60}m" if seconds % 60 == 0 and seconds >= 60 else f"{seconds}s"
