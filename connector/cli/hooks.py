"""`connector webhooks register`: subscribe the warehouse's shipment webhooks to this connector
(idempotent) and print what to set in UltraCart."""

from __future__ import annotations

from typing import Any, Optional

import typer

from connector.cli.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, ConfigOpt, MerchantOpt, check_merchant, load_config, open_store, run_async
from connector.cli.output import fail, say
from connector.tokens import warehouse_secret, warehouse_url

ULTRACART_EVENTS = ("fulfillment_transmit", "order_reject", "order_refund", "order_update", "order_stage_change", "order_delete",
                    "fulfillment_hold")

hooks = typer.Typer(help="Webhooks: warehouse shipment webhooks and what to set in UltraCart.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(hooks, name="webhooks")


async def registered_url(cfg: Any, merchant: str) -> str:
    """The warehouse-webhook URL `webhooks register` made for this merchant ("" when none was, or
    there is no database yet). Quiet: a missing database is not an error here."""
    from connector.store import Store
    from connector.store.engine import sqlite_path

    path = sqlite_path(cfg.daemon.database_url)
    if not cfg.daemon.public_url or (path is not None and not path.exists()):
        return ""
    try:
        store = await Store.open(cfg.daemon.database_url)
    except Exception:  # noqa: BLE001 - an unreachable database: treated as nothing registered
        return ""
    try:
        return await warehouse_url(store, cfg.daemon.public_url, merchant, create=False)
    finally:
        await store.close()


@hooks.command("register")
def register_cmd(config: Optional[str] = ConfigOpt, merchant: Optional[str] = MerchantOpt) -> None:
    """Create (or check) the warehouse's shipment webhooks and print UltraCart's settings."""
    cfg = load_config(config)
    check_merchant(cfg, merchant)
    if not cfg.daemon.public_url:
        fail(f"set [daemon] public_url in {cfg.source} to the address vendors reach this connector at (https://...)")
        raise typer.Exit(EXIT_USAGE)
    raise typer.Exit(run_async(_register(cfg, merchant)))


async def _register(cfg: Any, only: str | None) -> int:
    from connector.errors import ConnectorError
    from connector.runtime import build_runtime

    store = await open_store(cfg)
    rt = await build_runtime(cfg, store=store)
    bad = 0
    try:
        for mid, ctx in rt.contexts.items():
            if only and mid != only:
                continue
            uc = ctx.merchant.ultracart
            events = ULTRACART_EVENTS + (("order_ship",) if ctx.ledger is not None else ())
            say(f"{mid}: in UltraCart (Configuration > Webhooks), add {cfg.daemon.public_url}/webhooks/ultracart/{mid}")
            say(f"{mid}:   authentication: HTTP Basic, user {uc.webhook_username or '(set ultracart.webhook_username)'}, "
                f"password: ultracart.webhook_password{'' if uc.webhook_password else ' (NOT SET: set it first)'}")
            say(f"{mid}:   events: {', '.join(events)} (expansion: item, shipping, billing, summary, payment)")
            if ctx.warehouse is None or not getattr(ctx.warehouse.capabilities, "webhooks", False):
                say(f"{mid}: the warehouse ({ctx.warehouse.name if ctx.warehouse else 'none'}) has no webhooks: shipments are polled")
                continue
            url = await warehouse_url(store, cfg.daemon.public_url, mid, create=True)
            secret = await warehouse_secret(store, mid, create=True)
            rt.redactor.add(url.rsplit("/", 1)[-1], secret)  # the adapters' call records mask them too
            try:
                for line in await ctx.warehouse.register_webhooks(url, secret):
                    say(f"{mid}: {ctx.warehouse.name}: {line}")
            except ConnectorError as exc:
                bad += 1
                say(f"{mid}: {ctx.warehouse.name}: could not register the webhooks: {exc}")
    finally:
        await rt.close_adapters()
        await store.close()
    return EXIT_FAILED if bad else EXIT_OK
