"""Operator actions from the console: the same `connector.operator` functions the command line
calls, with `who=` the console user's name, so each lands on the order's timeline saying who.
After an action that gives a service work, that merchant's service is kicked (the daemon passes
it `kick`), so a released order reaches the warehouse in seconds, not at the next schedule."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from connector import operator as op
from connector.console.auth import Principal
from connector.operator import ActionResult


@dataclass(frozen=True)
class Action:
    """One thing the console can do to an order: its label, whether it needs a reason, and the
    service that has work afterwards."""

    label: str
    reason: str = ""  # "required", "optional" or ""
    kick: str = ""
    danger: bool = False  # asks for confirmation in the browser


ACTIONS: dict[str, Action] = {
    "release": Action("Release", kick="order_delivery"),
    "retry": Action("Retry", kick="order_delivery"),
    "refresh": Action("Refresh from UltraCart", kick="order_delivery"),
    "hold": Action("Hold", reason="optional"),
    "skip": Action("Skip", reason="required", danger=True),
    "unskip": Action("Unskip", kick="order_delivery"),
    "resend_tracking": Action("Resend tracking", kick="shipment_upload"),
    "cancel": Action("Cancel", reason="required", kick="order_changes", danger=True),
    "cancel_done": Action("Cancelled by hand at the warehouse", danger=True),
}
BULK_MAX = 5_000  # orders per bulk click: bounded, and says so when a group is larger


class Refused(ValueError):
    """The request cannot be carried out as asked (missing reason, unknown action)."""


Runner = Callable[[str, str], Awaitable[list[ActionResult]]]


def _runner(rt: Any, name: str, who: str, reason: str) -> Runner:
    store = rt.store
    if name == "release":
        return lambda oid, m: op.release(store, oid, m, who=who)
    if name == "retry":
        return lambda oid, m: op.retry(store, oid, m, who=who)
    if name == "hold":
        return lambda oid, m: op.hold(store, oid, m, reason=reason, who=who)
    if name == "skip":
        return lambda oid, m: op.skip(store, oid, m, reason=reason, who=who)
    if name == "unskip":
        return lambda oid, m: op.unskip(store, oid, m, who=who)
    if name == "resend_tracking":
        return lambda oid, m: op.resend_tracking(store, oid, m, who=who)
    if name == "cancel":
        return lambda oid, m: op.cancel(store, oid, m, reason=reason, who=who)
    if name == "cancel_done":
        return lambda oid, m: op.cancel(store, oid, m, reason=reason, who=who, done=True)
    if name == "refresh":
        return lambda oid, m: op.refresh(store, oid, m, op.refresher(rt, who))
    raise Refused(f"unknown action {name!r}")


async def perform(rt: Any, who: Principal, name: str, targets: list[tuple[str, str]], reason: str = "",
                  kick: Callable[[str, str], None] | None = None) -> list[ActionResult]:
    """Carry out one action on (merchant, order id) targets as `who`; one result per order."""
    if not who.can_act:
        raise PermissionError("this login is read-only")
    action = ACTIONS.get(name)
    if action is None:
        raise Refused(f"unknown action {name!r}")
    reason = reason.strip()[:500]
    if action.reason == "required" and not reason:
        raise Refused(f"{action.label}: a reason is required (it is recorded on the order's timeline)")
    run = _runner(rt, name, who.name, reason)
    results: list[ActionResult] = []
    for merchant, order_id in targets[:BULK_MAX]:
        if not who.sees(merchant):
            results.append(ActionResult(merchant, order_id, False, "no such order"))
            continue
        try:
            results += await run(order_id, merchant)
        except (ValueError, LookupError) as exc:
            results.append(ActionResult(merchant, order_id, False, str(exc)))
    if kick is not None and action.kick:
        for merchant in sorted({r.merchant for r in results if r.ok}):
            if merchant in rt.contexts:
                kick(merchant, action.kick)
    return results


def summary(name: str, results: list[ActionResult], asked: int) -> list[tuple[str, str]]:
    """Flash messages for a page: one line per order when few, counts and the refusals when many."""
    label = ACTIONS[name].label if name in ACTIONS else name
    ok = [r for r in results if r.ok]
    bad = [r for r in results if not r.ok]
    out: list[tuple[str, str]] = []
    if len(results) <= 5:
        out += [("ok" if r.ok else "error", f"{label} {r.merchant} {r.order_id}: {r.message}") for r in results]
    else:
        if ok:
            out.append(("ok", f"{label}: {len(ok)} order(s) done ({ok[0].message})"))
        if bad:
            reasons: dict[str, int] = {}
            for r in bad:
                reasons[r.message] = reasons.get(r.message, 0) + 1
            out += [("error", f"{label}: {n} order(s) not done: {why}") for why, n in sorted(reasons.items(), key=lambda kv: -kv[1])[:5]]
    if asked > BULK_MAX:
        out.append(("error", f"only the first {BULK_MAX} of {asked} orders were done: run the action again for the rest"))
    if not results:
        out.append(("error", f"{label}: no orders to act on"))
    return out
