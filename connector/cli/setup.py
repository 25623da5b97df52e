"""Onboarding: `connector onboard MERCHANT` (the go-live check) and `connector merchant add`
(a new `[[merchants]]` block written into the config file)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Optional

import typer

from connector.cli.common import EXIT_ATTENTION, EXIT_FAILED, EXIT_OK, EXIT_USAGE, ConfigOpt, JsonOpt, check_merchant, load_config, run_async
from connector.cli.output import emit_json, err, fail, rule, say, table, warn

merchant_app = typer.Typer(help="Add merchants to the config file.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.command()(onboard)
    app.add_typer(merchant_app, name="merchant")


# ------------------------------------------------------------------------------------------ onboard
def onboard(
    merchant: str = typer.Argument(..., help="the merchant's id in the config (enabled or not)"),
    config: Optional[str] = ConfigOpt,
    days: int = typer.Option(30, "--days", min=1, max=365, help="how many days of recent orders to check"),
    write_aliases: Optional[Path] = typer.Option(None, "--write-aliases", help="write the proposed SKU aliases to this CSV (for review)"),
    as_json: bool = JsonOpt,
) -> None:
    """Check a merchant before go-live, read-only: SKUs, ship methods, recent orders, credentials, webhooks.

    Exit 0: go-live would hold none of the recent orders for a reason the config could fix;
    3: it would (the report says which orders and why); 1: a check could not be made.
    """
    cfg = load_config(config, quiet=as_json)
    check_merchant(cfg, merchant)
    need_env(cfg, merchant)
    if write_aliases is not None and write_aliases.exists():
        fail(f"{write_aliases} exists; name a new file (the proposal is for review, not to overwrite an alias file)")
        raise typer.Exit(EXIT_USAGE)
    report = run_async(_onboard(cfg, merchant, days, progress=not as_json and sys.stderr.isatty()))
    if write_aliases is not None and report.skus is not None:
        from mappings.onboarding import aliases_csv

        write_aliases.write_text(aliases_csv(report.skus.proposed))
    if as_json:
        emit_json(report.to_json() | ({"aliases_written": str(write_aliases)} if write_aliases and report.skus else {}))
    else:
        show(report, cfg)
        if write_aliases is not None:
            if report.skus is None:
                say(f"{write_aliases} not written: the SKUs could not be matched (see the checks)")
            else:
                say(f"{len(report.skus.proposed)} proposed alias(es) written to {write_aliases}; review it, then set "
                    f"aliases_file = \"{write_aliases}\" in [merchants.skus] and `connector reload`")
    raise typer.Exit(EXIT_OK if report.ready else EXIT_FAILED if report.failed else EXIT_ATTENTION)


def need_env(cfg: Any, merchant: str) -> None:
    """A disabled merchant may name variables not set yet; its checks need them."""
    unset = cfg.merchant(merchant).unset_env
    if unset:
        fail(f"merchant {merchant!r}: set {', '.join(unset)} in the environment first (its block in {cfg.source} uses them)")
        raise typer.Exit(EXIT_USAGE)


async def _onboard(cfg: Any, merchant: str, days: int, *, progress: bool):
    from connector.cli.hooks import registered_url
    from connector.onboarding import onboard as run
    from connector.runtime import build_runtime
    from connector.store import Store

    hook_url = await registered_url(cfg, merchant)
    rt = await build_runtime(cfg, store=Store.memory())
    try:
        ctx = rt.context_for(merchant)
        if not progress:
            return await run(ctx, days=days, public_url=cfg.daemon.public_url, warehouse_hook_url=hook_url)
        from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn

        with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed} read"),
                      console=err, transient=True) as bar:
            task = bar.add_task("starting", total=None)

            def note(step: str, done: int, total: int | None) -> None:
                bar.update(task, description=step, completed=done, total=total)

            return await run(ctx, days=days, public_url=cfg.daemon.public_url, warehouse_hook_url=hook_url, progress=note)
    finally:
        await rt.aclose()


_MARK = {"ok": "ok", "blocking": "FIX", "failed": "FAILED", "warning": "warn", "skipped": "skipped"}


def show(r: Any, cfg: Any) -> None:
    rule(f"{r.merchant}: go-live check (orders of the last {r.days} days)")
    table(("check", "result", "detail"), [(c.name, _MARK.get(c.status, c.status), c.detail) for c in r.checks])
    s = r.skus
    if s is not None:
        rule(f"SKUs: {r.catalog_items} UltraCart item(s), {r.warehouse_skus} warehouse SKU(s)")
        say(f"exact {len(s.exact)}, already aliased {len(s.aliased)}, kits complete {len(s.kits_ok)}, retired (not checked) {len(s.inactive)}")
        if s.proposed:
            say("near matches, proposed as aliases (review; --write-aliases FILE writes them as a CSV):")
            table(("UltraCart SKU", "warehouse SKU"), sorted(s.proposed.items()))
        if s.ambiguous:
            say("near matches to more than one warehouse SKU (alias them by hand):")
            table(("UltraCart SKU", "warehouse SKUs"), [(k, ", ".join(v)) for k, v in sorted(s.ambiguous.items())])
        if s.kits_missing:
            say("kits with components the warehouse does not have:")
            table(("kit", "missing components"), [(k, ", ".join(v)) for k, v in sorted(s.kits_missing.items())])
        if s.missing:
            say(f"UltraCart items no warehouse SKU matches ({len(s.missing)}): an order for one is held")
            say("  " + ", ".join(s.missing))
        if s.never_sold:
            say(f"warehouse SKUs no UltraCart item maps to ({len(s.never_sold)}): " + ", ".join(s.never_sold))
    m = r.methods
    if m is not None and m.used:
        rule(f"ship methods used by {r.orders} recent order(s)")
        rows = []
        for method, n in m.used.most_common():
            if method in m.mapped:
                rows.append((method, n, m.mapped[method], ""))
            elif method in m.mapped_unknown_at_warehouse:
                rows.append((method, n, m.mapped_unknown_at_warehouse[method], "the warehouse does not offer it"))
            else:
                proposal = m.unmapped.get(method)
                held = len(m.held_orders.get(method, []))
                rows.append((method, n, "(unmapped)", (f"propose {proposal!r}" if proposal else "no similar warehouse method")
                             + (f"; would hold {held} order(s)" if held else "")))
        table(("UltraCart method", "orders", "maps to", "note"), rows)
        if m.unmapped and any(m.unmapped.values()):
            say("to map them, add to [merchants.ship_methods] of " + r.merchant + ":")
            for method, proposal in m.unmapped.items():
                if proposal:
                    say(f'  "{method}" = "{proposal}"')
    if r.orders is not None:
        rule(f"the last {r.days} days under this config")
        would = ", ".join(f"{k.replace(':', ' ').replace('_', ' ')} {n}" for k, n in sorted(r.outcomes.items(), key=lambda kv: -kv[1]))
        say(f"{r.orders} order(s) for distribution center {cfg_dc(cfg, r.merchant)}, each by the first rule that applies: {would or 'none'}")
        c = r.coverage
        if c is not None and c.holding_skus:
            table(("UltraCart SKU", "maps to", "orders it would hold"),
                  [(sku, c.targets.get(sku, sku), f"{len(ids)}: {', '.join(ids[:5])}{' ...' if len(ids) > 5 else ''}")
                   for sku, ids in c.holding_skus.items()])
    rule("go-live")
    if r.ready:
        say("ready: the recent orders would all be sent (or held only for their own data)")
    else:
        for c in r.blocking + r.failed:
            say(f"{_MARK[c.status]} {c.name}: {c.detail}")


def cfg_dc(cfg: Any, merchant: str) -> str:
    return next(m.ultracart.distribution_center for m in cfg.merchants if m.id == merchant)


# ------------------------------------------------------------------------------------------ merchant add
@merchant_app.command("add")
def merchant_add(
    merchant: str = typer.Argument(..., help="the new merchant's id: lowercase letters, digits, '-'"),
    config: Optional[str] = ConfigOpt,
    adapter: Optional[str] = typer.Option(None, "--adapter", help="the warehouse adapter (installed: see `connector merchant add --help`)"),
    ultracart_merchant: Optional[str] = typer.Option(None, "--ultracart-merchant-id", help="the UltraCart merchant id"),
    dc: Optional[str] = typer.Option(None, "--distribution-center", help="the UltraCart DC code pointed at this 3PL"),
    settings: list[str] = typer.Option([], "--set", help="warehouse.KEY=VALUE or ultracart.KEY=VALUE (base_url, rate_per_minute), repeatable; secrets as ${VAR}"),
    dry_run: bool = typer.Option(False, "--dry-run", help="start it enabled in dry-run mode (sends nothing) instead of disabled"),
    check: bool = typer.Option(True, "--check/--no-check", help="then run `check --online` and `onboard` for it"),
) -> None:
    """Write a new [[merchants]] block into the config file (the rest of the file is left byte for byte).

    Secrets are written as ${VAR} references, never as values. Asks for what is missing when run
    in a terminal. The merchant starts disabled (or with --dry-run, enabled in dry-run mode)."""
    from connector.merchants import MerchantDraft, add_merchant, adapter_fields
    from connector.errors import ConfigError

    cfg = load_config(config, quiet=True)
    path = Path(cfg.source)
    interactive = sys.stdin.isatty()
    draft = MerchantDraft(merchant, ultracart_merchant or "", dc or "", adapter or "", dry_run=dry_run)
    try:
        for item in settings:
            draft.set(item)
        if interactive:
            _ask(draft, adapter_fields)
        text = add_merchant(path, draft, existing=[m.id for m in cfg.merchants])
    except ConfigError as exc:
        fail(f"not written: {exc}")
        raise typer.Exit(EXIT_USAGE) from None
    say(f"{path}: added merchant {merchant!r} ({'enabled, dry run: sends nothing' if dry_run else 'enabled = false'}):")
    say(text.rstrip())
    known = _known_variables(cfg, path)
    unset = [v for v in draft.variables(required=True) if v not in known]
    optional = [v for v in draft.variables() if v not in known and v not in unset]
    where = (f"add them to {cfg.daemon.env_file} ([daemon] env_file: a running daemon reads it on `connector reload`)"
             if cfg.daemon.env_file else "set them in the daemon's environment (or name a file in [daemon] env_file)")
    if unset:
        say(f"variables to set: {', '.join(unset)}; {where}")
    if optional:
        say("optional, for UltraCart's webhooks: " + ", ".join(optional))
    if not check:
        return
    if unset:
        say(f"then: connector check --online -c {path} && connector onboard {merchant} -c {path}")
        return
    from connector.cli.daemon import _check_online

    fresh = load_config(str(path), quiet=True)
    code = run_async(_check_online(fresh, only=merchant))
    report = run_async(_onboard(fresh, merchant, 30, progress=sys.stderr.isatty()))
    show(report, fresh)
    if code == EXIT_OK and report.ready:
        say(f"when it is right, set enabled = true{' and dry_run = false' if dry_run else ''} for {merchant!r} and `connector reload`")
    raise typer.Exit(code or (EXIT_OK if report.ready else EXIT_FAILED if report.failed else EXIT_ATTENTION))


def _known_variables(cfg: Any, path: Path) -> set[str]:
    """The variables the config can read: the process's and the env file's."""
    from connector.config import read_env_file

    names = set(os.environ)
    if cfg.daemon.env_file:
        try:
            names |= set(read_env_file(cfg.daemon.env_file, str(path), path.parent, []))
        except Exception:  # noqa: BLE001 - the load that follows names the problem
            pass
    return names


def _ask(draft: Any, adapter_fields: Any) -> None:
    """Prompt for whatever the flags left out (in a terminal only)."""
    from connector.merchants import literal, installed_adapters, secret_field

    if not draft.ultracart_merchant_id:
        draft.ultracart_merchant_id = typer.prompt("UltraCart merchant id")
    if not draft.distribution_center:
        draft.distribution_center = typer.prompt("UltraCart distribution center code", default="DFLT")
    if not draft.adapter:
        names = installed_adapters()
        draft.adapter = typer.prompt(f"warehouse adapter ({', '.join(names)})", default=names[0] if names else "")
    for name, required, default in adapter_fields(draft.adapter):
        if name in draft.warehouse or not required:
            continue
        if secret_field(name):
            var = typer.prompt(f"warehouse {name}: the environment variable that holds it", default=draft.default_var(name))
            draft.warehouse[name] = "${" + var.strip().lstrip("$").strip("{}") + "}"
        else:
            draft.warehouse[name] = literal(typer.prompt(f"warehouse {name}", default=default))
    warn("secrets are written as ${VAR}: set each variable in the daemon's environment")


__all__ = ["register", "show", "EXIT_USAGE"]
