"""`connector run` (the daemon, or one pass with --once), `connector reload` and `connector check`."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional

import typer

from connector.cli.common import (EXIT_ATTENTION, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, ConfigOpt, MerchantOpt,
                                  check_merchant, display_url, load_config, open_store, run_async)
from connector.cli.output import err, fail, say, table, utc

SERVICE_NAMES = ("order_download", "order_delivery", "order_changes", "shipment_upload", "ledger_consume", "inventory_upload")


def register(app: typer.Typer) -> None:
    app.command()(run)
    app.command()(reload)
    app.command()(check)


def run(
    config: Optional[str] = ConfigOpt,
    once: bool = typer.Option(False, "--once", help="one pass of the services, then exit (0 when nothing failed)"),
    merchant: Optional[str] = MerchantOpt,
    service: Optional[str] = typer.Option(None, "--service", "-s", help="only this service: " + ", ".join(SERVICE_NAMES)),
    dry_run: bool = typer.Option(False, "--dry-run", help="with --once: evaluate and map everything, acknowledge and send nothing"),
) -> None:
    """Run the daemon (or one pass with --once)."""
    cfg = load_config(config)
    check_merchant(cfg, merchant)
    if service and service not in SERVICE_NAMES:
        fail(f"unknown service {service!r}; one of: {', '.join(SERVICE_NAMES)}")
        raise typer.Exit(EXIT_USAGE)
    if dry_run and not once:
        fail("--dry-run goes with --once (for a running daemon, set dry_run = true on the merchant)")
        raise typer.Exit(EXIT_USAGE)
    if dry_run:
        for m in cfg.merchants:
            m.dry_run = True
    if once:
        raise typer.Exit(run_async(_run_once(cfg, merchant, service)))
    raise typer.Exit(run_async(_daemon(cfg)))


def where(cfg: Any) -> str:
    """The files and addresses this process uses: printed on every start and by `status`."""
    path = Path(cfg.source)
    try:
        mtime = f" (modified {datetime.fromtimestamp(path.stat().st_mtime, timezone.utc):%Y-%m-%d %H:%M:%S}Z)"
    except OSError:
        mtime = ""
    return f"config {path.resolve() if cfg.source and not cfg.source.startswith('<') else cfg.source}{mtime}; database {display_url(cfg.daemon.database_url)}"


async def _open(cfg: Any):
    from connector.runtime import build_runtime
    from connector.store.engine import DatabaseBusy

    try:
        return await build_runtime(cfg)
    except DatabaseBusy as exc:
        fail(f"cannot start: {exc}")
        raise typer.Exit(EXIT_USAGE) from None
    except Exception as exc:  # noqa: BLE001 - a database that cannot be opened is one line
        from connector.health import database_fault

        fault = database_fault(exc)
        if not fault:
            raise
        fail(f"cannot start: the database {display_url(cfg.daemon.database_url)} cannot be opened: {fault}")
        raise typer.Exit(EXIT_FAILED) from None


async def _run_once(cfg: Any, merchant: str | None, service: str | None) -> int:
    rt = await _open(cfg)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, rt.stopping.set)
    try:
        reports = await rt.run_once(merchant, service)
    finally:
        await rt.aclose()
    rows = [(r.merchant, r.service, str(r.outcome), r.counts, _why(r)) for r in reports]
    table(("merchant", "service", "outcome", "what it did", "why it stopped / error"), rows)
    if rt.stopping.is_set():
        say("interrupted: stopped claiming new work; calls in hand were finished and recorded")
        return EXIT_INTERRUPTED
    return EXIT_FAILED if any(not r.ok for r in reports) else EXIT_OK


def _why(r: Any) -> str:
    parts = [p for p in (r.stopped_because, r.error if r.error and r.error not in r.stopped_because else "") if p]
    text = "; ".join(parts)
    if r.resumes_at is not None:
        text += f" (resumes at {r.resumes_at:%H:%M:%S}Z)"
    return text


async def _daemon(cfg: Any) -> int:
    import structlog

    from connector import config as configmod
    from connector.listener import ListenError, bind, raise_fd_limit, server
    from connector.scheduler import Daemon
    from connector.web import Daemon as WebDaemon
    from connector.web import build_app

    log = structlog.get_logger("connector")
    raise_fd_limit()
    try:
        sock = bind(cfg.daemon.listen)  # before anything says "started": a taken port is one line
    except ListenError as exc:
        fail(f"cannot start: {exc}")
        return EXIT_USAGE
    rt = await _open(cfg)
    try:
        conflict = await _replica_conflict(rt, cfg)
        if conflict:
            fail(f"cannot start: {conflict}")
            return EXIT_USAGE
        path = Path(cfg.source).resolve()
        await rt.start(config_path=str(path), config_mtime=_mtime(path), listen=cfg.daemon.listen)
        from connector.tokens import control_token

        await control_token(rt.store, create=True)  # what `connector reload` and the operator commands show the daemon
        daemon = Daemon(rt, load_config=lambda: configmod.load(path), config_path=str(path))
        daemon.install_signal_handlers()
        app = build_app(rt, WebDaemon(healthy=lambda: daemon.healthy, reload=daemon.reload, kick=daemon.kick))
        web = server(app, sock)
        serving = asyncio.create_task(web.serve(sockets=[sock]), name="listener")
        say(f"{where(cfg)}; listening on {cfg.daemon.listen}")
        await daemon.run(started=lambda: log.info("daemon started", merchants=len(rt.contexts), worker=rt.worker_id,
                                                   config=str(path), database=display_url(cfg.daemon.database_url), listen=cfg.daemon.listen))
        web.should_exit = True
        await asyncio.wait({serving}, timeout=2)
    finally:
        await rt.aclose()
        sock.close()
    return EXIT_OK


async def _replica_conflict(rt: Any, cfg: Any) -> str:
    """Replicas share a database; if another live one runs a different merchant on one of our
    UltraCart distribution centers, both would send every order. Refuse to start."""
    mine = rt.owned_dcs()
    now = rt.clock.now()
    for w in await rt.store.workers.listing():
        if w.stopped or w.worker_id == rt.worker_id or (now - w.seen_at).total_seconds() > cfg.daemon.lease_seconds:
            continue
        theirs = json.loads(w.merchants or "{}")
        for mid, dc in mine.items():
            for other, odc in theirs.items():
                if odc == dc and other != mid:
                    return (f"replica {w.worker_id} runs merchant {other!r} on UltraCart {dc}, which this config gives to {mid!r}: "
                            f"both would send every order. Use the same config on every replica.")
    return ""


def _mtime(path: Path) -> datetime | None:
    try:
        return datetime.fromtimestamp(path.stat().st_mtime, timezone.utc)
    except OSError:
        return None


def reload(config: Optional[str] = ConfigOpt) -> None:
    """Make the running daemon read its config file again (validated first; kept on error)."""
    cfg = load_config(config)
    message = run_async(_ask_reload(cfg))
    if message.startswith("!"):
        fail(message[1:])
        raise typer.Exit(EXIT_FAILED)
    say(message)


def control_url(cfg: Any, path: str) -> str:
    """Where this machine reaches the daemon's control endpoint `path` (its [daemon] listen)."""
    from connector.config import parse_listen

    host, port = parse_listen(cfg.daemon.listen)
    host = "127.0.0.1" if host in ("0.0.0.0", "") else "::1" if host == "::" else host
    return f"http://{'[' + host + ']' if ':' in host else host}:{port}{path}"


async def kick_daemon(cfg: Any, store: Any, merchants: set[str], service: str) -> list[str]:
    """Ask a running daemon to start `service` now for these merchants; the merchants it started
    (none when no daemon answers: the next scheduled pass does the work)."""
    import httpx

    from connector.tokens import CONTROL_HEADER, control_token

    try:
        token = await control_token(store)
        if not token:
            return []  # no daemon ever ran on this database
        async with httpx.AsyncClient(timeout=3) as client:
            response = await client.post(control_url(cfg, "/control/kick"), json={"merchants": sorted(merchants), "service": service},
                                         headers={CONTROL_HEADER: token})
        return list(response.json().get("started", [])) if response.status_code == 200 else []
    except Exception:  # noqa: BLE001 - no daemon, or no database: the next scheduled pass does the work
        return []


async def _ask_reload(cfg: Any) -> str:
    import httpx

    from connector.store.engine import sqlite_path

    from connector.tokens import CONTROL_HEADER, control_token

    url = control_url(cfg, "/control/reload")
    try:
        store = await open_store(cfg)
        try:
            token = await control_token(store)
        finally:
            await store.close()
    except Exception:  # noqa: BLE001 - without the database, SIGHUP below still works
        token = ""
    try:
        async with httpx.AsyncClient(timeout=30) as client:
            response = await client.post(url, headers={CONTROL_HEADER: token})
        body = response.json()
        return body.get("message", "") if response.status_code == 200 else f"!{body.get('message') or body.get('error')}"
    except (httpx.HTTPError, ValueError):
        pass
    path = sqlite_path(cfg.daemon.database_url)
    lock = Path(str(path) + ".lock") if path else None
    try:
        pid = int(lock.read_text().split()[1]) if lock else 0
    except (OSError, IndexError, ValueError):
        pid = 0
    if not pid:
        return f"!no daemon answered on {cfg.daemon.listen}, and no SQLite lock file names one; is it running with this config?"
    try:
        os.kill(pid, signal.SIGHUP)
    except ProcessLookupError:
        return f"!the daemon (pid {pid}) is not running"
    return f"sent SIGHUP to the daemon (pid {pid}); it validates the file and keeps the old config on error (see its log)"


def check(config: Optional[str] = ConfigOpt, online: bool = typer.Option(False, "--online", help="also test each merchant's credentials, DC and ship methods")) -> None:
    """Validate the config file (and, with --online, every merchant's credentials and mappings)."""
    cfg = load_config(config, logging=online)
    say(f"{cfg.source}: ok ({len(cfg.merchants)} merchant(s)); database {display_url(cfg.daemon.database_url)}; listen {cfg.daemon.listen}")
    if online:
        raise typer.Exit(run_async(_check_online(cfg)))


async def _check_online(cfg: Any, only: str | None = None) -> int:
    from connector.errors import ConnectorError
    from connector.runtime import build_runtime
    from connector.store import Store

    rt = await build_runtime(cfg, store=Store.memory())
    bad = 0
    try:
        for mid in [only] if only else list(rt.contexts):
            ctx = rt.context_for(mid)
            uc = ctx.merchant.ultracart
            try:
                codes = [d.code for d in await ctx.cart.distribution_centers()]
                if uc.distribution_center in codes:
                    say(f"{mid}: UltraCart ok, distribution center {uc.distribution_center} found")
                else:
                    bad += 1
                    say(f"{mid}: UltraCart distribution center {uc.distribution_center!r} not found; this key sees: {', '.join(codes) or 'none'}")
            except ConnectorError as exc:
                bad += 1
                say(f"{mid}: UltraCart FAILED: {exc}")
            try:
                say(f"{mid}: warehouse ({ctx.warehouse.name}) ok: {await ctx.warehouse.check()}")
            except ConnectorError as exc:
                bad += 1
                say(f"{mid}: warehouse ({ctx.warehouse.name}) FAILED: {exc}")
                continue
            bad += await _check_methods(ctx)
            bad += await _check_hooks(cfg, rt, ctx)
    finally:
        await rt.aclose()
    return EXIT_FAILED if bad else EXIT_OK


async def _check_hooks(cfg: Any, rt: Any, ctx: Any) -> int:
    """The warehouse's shipment webhooks point at this connector (when it has them and a public URL is set)."""
    from connector.cli.hooks import registered_url
    from connector.onboarding import warehouse_hooks

    if not cfg.daemon.public_url:
        return 0
    url = await registered_url(cfg, ctx.id)
    check = await warehouse_hooks(ctx, cfg.daemon.public_url, url)
    if check is None:
        return 0
    say(f"{ctx.id}: {check.detail}")
    return 0 if check.status == "ok" else 1


async def _check_methods(ctx: Any) -> int:
    """Every mapped ship method must be one the warehouse offers (when it says which it offers)."""
    from connector.errors import ConnectorError

    if not ctx.warehouse.capabilities.ship_method_catalog:
        return 0
    try:
        known = await ctx.warehouse.known_ship_methods()
    except ConnectorError as exc:
        say(f"{ctx.id}: could not read the warehouse's ship methods: {exc}")
        return 1
    if known is None:
        return 0
    folded = {k.casefold() for k in known}
    wrong = {cart: target for cart, target in ctx.merchant.ship_methods.items() if target.casefold() not in folded}
    for cart, target in sorted(wrong.items()):
        say(f"{ctx.id}: ship method {cart!r} maps to {target!r}, which the warehouse does not offer (it offers: {', '.join(sorted(known))})")
    if not wrong:
        say(f"{ctx.id}: all {len(ctx.merchant.ship_methods)} mapped ship method(s) are offered by the warehouse")
    return 1 if wrong else 0


__all__ = ["register", "where", "EXIT_ATTENTION", "err", "utc"]
