"""What the commands share: loading the config (exit 2 naming the key), opening the store, and
the options every command takes."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from typing import Any, Optional

import typer

from connector.cli.output import fail, warn
from connector.reports import display_url  # noqa: F401  (the commands import it from here)

ConfigOpt = typer.Option(None, "-c", "--config", help="config file (else $CONNECTOR_CONFIG, else ./connector.toml)")
MerchantOpt = typer.Option(None, "--merchant", "-m", help="only this merchant")
JsonOpt = typer.Option(False, "--json", help="print JSON (stable field names; see the README)")

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_ATTENTION, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


def load_config(path: Optional[str], *, quiet: bool = False, logging: bool = True):
    """The config, or exit 2 naming the key. `logging=False` for a command that logs nothing
    (`check` without --online): structlog's import is a sixth of such a command's CPU."""
    from connector import config as configmod
    from connector.errors import ConfigError

    try:
        cfg = configmod.load(path)
    except ConfigError as exc:
        fail(f"config error: {exc}")
        raise typer.Exit(EXIT_USAGE) from None
    if logging:
        from connector import logs

        logs.configure(cfg.daemon.log_format, cfg.daemon.log_level)
    if not quiet:
        for w in cfg.warnings:
            warn(f"warning: {cfg.source}: {w}")
    return cfg


def run_async(coro: Awaitable[Any]) -> Any:
    """Run a command's coroutine on uvloop when it is installed, else on asyncio's own loop.
    Every database statement hops to a driver thread and back several times, so a thousand idle
    merchants are mostly wakeups of the event loop: uvloop's cost a fraction (`connector bench
    --phases idle` prints which loop ran)."""
    loop_factory = event_loop_factory()
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(coro)  # type: ignore[arg-type]


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop when installed and not turned off (`CONNECTOR_EVENT_LOOP=asyncio`), else None
    (asyncio's default)."""
    if os.environ.get("CONNECTOR_EVENT_LOOP", "").strip().lower() == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


async def with_store(cfg: Any, fn: Callable[[Any], Awaitable[Any]]) -> Any:
    from connector.store import Store

    store = await open_store(cfg)
    try:
        return await fn(store)
    finally:
        await store.close()


async def open_store(cfg: Any):
    """The store, for commands that read or act beside a running daemon (no one-daemon lock).
    A database that is not there is an error, not a new empty one."""
    from connector.store import Store
    from connector.store.engine import sqlite_path

    path = sqlite_path(cfg.daemon.database_url)
    if path is not None and not path.exists():
        fail(f"no database at {path} (database_url in {cfg.source}); has the connector run with this config?")
        raise typer.Exit(EXIT_USAGE)
    try:
        return await Store.open(cfg.daemon.database_url)
    except Exception as exc:  # noqa: BLE001 - one line, never a traceback
        from connector.health import database_fault

        fail(f"cannot open the database {display_url(cfg.daemon.database_url)}: {database_fault(exc) or exc}")
        raise typer.Exit(EXIT_FAILED) from None


def check_merchant(cfg: Any, merchant: str | None, known: set[str] | None = None) -> None:
    names = {m.id for m in cfg.merchants} | (known or set())
    if merchant and merchant not in names:
        fail(f"unknown merchant {merchant!r}; configured: {', '.join(sorted(names)) or 'none'}")
        raise typer.Exit(EXIT_USAGE)


def check_state(state: str | None) -> None:
    from connector.lifecycle import OrderState

    if state and state not in {s.value for s in OrderState}:
        fail(f"unknown state {state!r}; one of: {', '.join(s.value for s in OrderState)}")
        raise typer.Exit(EXIT_USAGE)
