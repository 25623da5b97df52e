"""Operator actions on orders: release, retry, skip, unskip, hold, resend-tracking, refresh.
Each is a thin shell over `connector.operator` and lands on the order's timeline with who did it."""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from typing import Any, Optional

import typer

from connector.cli.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, ConfigOpt, MerchantOpt, load_config, open_store, run_async
from connector.cli.output import fail, say

YesOpt = typer.Option(False, "--yes", "-y", help="do not ask for confirmation (scripts)")


def register(app: typer.Typer) -> None:
    app.command()(release)
    app.command()(retry)
    app.command()(skip)
    app.command()(unskip)
    app.command()(hold)
    app.command("resend-tracking")(resend_tracking)
    app.command()(refresh)
    app.command()(cancel)
    app.command()(consume)


def _act(config: Optional[str], action: Callable[[Any], Awaitable[list[Any]]], *, nothing: str = "", then: str = "") -> None:
    """Run an operator action; with `then`, a running daemon starts that service at once for the
    merchants whose orders it changed (else their next scheduled pass does the work)."""
    from connector import operator as op
    from connector.cli.daemon import kick_daemon

    cfg = load_config(config)
    started: list[str] = []

    async def go() -> list[Any]:
        nonlocal started
        store = await open_store(cfg)
        try:
            results = await action(store)
            changed = {r.merchant for r in results if r.ok}
            if then and changed:
                started = await kick_daemon(cfg, store, changed, then)
        finally:
            await store.close()
        return results

    try:
        results = run_async(go())
    except op.AmbiguousOrder as exc:
        fail(str(exc))
        raise typer.Exit(EXIT_USAGE) from None
    if not results and nothing:
        say(nothing)
        raise typer.Exit(EXIT_OK)
    for r in results:
        say(f"{r.merchant} {r.order_id}: {r.message}")
    if started:
        say(f"the running daemon started {then} now for {', '.join(started)}")
    raise typer.Exit(EXIT_OK if results and all(r.ok for r in results) else EXIT_FAILED)


def _each(ids: list[str], fn: Callable[..., Awaitable[list[Any]]], merchant: Optional[str], **kw: Any):
    async def go(store: Any) -> list[Any]:
        res: list[Any] = []
        for i in ids:
            res += await fn(store, i, merchant, **kw)
        return res
    return go


def _who() -> str:
    from connector.operator import who_am_i

    return who_am_i()


def release(order_ids: list[str], config: Optional[str] = ConfigOpt, merchant: Optional[str] = MerchantOpt) -> None:
    """Release held orders (re-checked and sent on the next delivery pass)."""
    from connector import operator as op

    _act(config, _each(order_ids, op.release, merchant, who=_who()), then="order_delivery")


def retry(order_ids: Optional[list[str]] = typer.Argument(None), config: Optional[str] = ConfigOpt, merchant: Optional[str] = MerchantOpt,
          all_failed: bool = typer.Option(False, "--all-failed", help="every failed order")) -> None:
    """Put failed orders back in the queue with fresh attempts."""
    from connector import operator as op

    if all_failed:
        _act(config, lambda s: op.retry_all_failed(s, merchant, who=_who()), nothing="no failed orders: nothing to retry", then="order_delivery")
    if not order_ids:
        fail("name order ids or use --all-failed")
        raise typer.Exit(EXIT_USAGE)
    _act(config, _each(order_ids, op.retry, merchant, who=_who()), then="order_delivery")


def _confirm(question: str, yes: bool) -> None:
    if yes:
        return
    if not sys.stdin.isatty():
        fail(f"{question} -- refusing without confirmation: add --yes")
        raise typer.Exit(EXIT_USAGE)
    if not typer.confirm(question, default=False):
        say("nothing done")
        raise typer.Exit(EXIT_FAILED)


def skip(order_ids: list[str], reason: str = typer.Option(..., "--reason", help="why: recorded on the timeline (required)"),
         config: Optional[str] = ConfigOpt, merchant: Optional[str] = MerchantOpt, yes: bool = YesOpt) -> None:
    """Never send these orders (`connector unskip` brings one back)."""
    from connector import operator as op

    if not reason.strip():
        fail("--reason must say why (it is recorded on the order's timeline)")
        raise typer.Exit(EXIT_USAGE)
    _confirm(f"Skip {len(order_ids)} order(s) ({', '.join(order_ids[:5])}{'...' if len(order_ids) > 5 else ''}): they will never be sent?", yes)
    _act(config, _each(order_ids, op.skip, merchant, reason=reason, who=_who()))


def unskip(order_ids: list[str], config: Optional[str] = ConfigOpt, merchant: Optional[str] = MerchantOpt) -> None:
    """Bring skipped orders back to evaluation (the next delivery pass applies the rules again)."""
    from connector import operator as op

    _act(config, _each(order_ids, op.unskip, merchant, who=_who()), then="order_delivery")


def hold(order_ids: list[str], config: Optional[str] = ConfigOpt, merchant: Optional[str] = MerchantOpt,
         reason: str = typer.Option("", "--reason", help="recorded on the timeline")) -> None:
    """Hold orders until released."""
    from connector import operator as op

    _act(config, _each(order_ids, op.hold, merchant, reason=reason, who=_who()))


def resend_tracking(order_ids: list[str], config: Optional[str] = ConfigOpt, merchant: Optional[str] = MerchantOpt) -> None:
    """Post these orders' tracking to UltraCart again (on the next shipment pass)."""
    from connector import operator as op

    _act(config, _each(order_ids, op.resend_tracking, merchant, who=_who()), then="shipment_upload")


def refresh(order_ids: list[str], config: Optional[str] = ConfigOpt, merchant: Optional[str] = MerchantOpt) -> None:
    """Re-read orders from UltraCart's order API; an order not yet at the warehouse takes the new
    copy (the timeline says what changed) and is evaluated afresh."""
    from connector import operator as op
    from connector.runtime import build_runtime

    cfg = load_config(config)
    who = _who()

    async def go(store: Any) -> list[Any]:
        rt = await build_runtime(cfg, store=store)
        try:
            one = op.refresher(rt, who)
            out: list[Any] = []
            for i in order_ids:
                out += await op.refresh(store, i, merchant, one)
            return out
        finally:
            await rt.close_adapters()

    _act(config, go, then="order_delivery")


def cancel(order_ids: list[str], reason: str = typer.Option("", "--reason", help="why: recorded on the timeline (required)"),
           done: bool = typer.Option(False, "--done", help="the warehouse could not cancel it; you cancelled it there by hand"),
           config: Optional[str] = ConfigOpt, merchant: Optional[str] = MerchantOpt, yes: bool = YesOpt) -> None:
    """Cancel orders: never sent if not yet sent, else cancelled at the warehouse (or reported too late)."""
    from connector import operator as op

    if not done and not reason.strip():
        fail("--reason must say why (it is recorded on the order's timeline)")
        raise typer.Exit(EXIT_USAGE)
    if not done:
        _confirm(f"Cancel {len(order_ids)} order(s) ({', '.join(order_ids[:5])}{'...' if len(order_ids) > 5 else ''})?", yes)
    _act(config, _each(order_ids, op.cancel, merchant, reason=reason, who=_who(), done=done), then="" if done else "order_changes")


def consume(order_ids: list[str], config: Optional[str] = ConfigOpt, merchant: Optional[str] = MerchantOpt) -> None:
    """Try orders' stuck inventory-ledger consumptions again (after adding the item or fixing stock)."""
    from connector import operator as op

    _act(config, _each(order_ids, op.consume_again, merchant), then="ledger_consume")
