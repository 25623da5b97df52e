"""`connector console`: the web console alone, against the config's database (no daemon and no
one-daemon lock: for a look at a copied database, or beside a running daemon), and
`connector console add-user`: a login's `[[console.users]]` block to paste into the config."""

from __future__ import annotations

import asyncio
import getpass
import signal
import sys
from typing import Any, Optional

import typer

from connector.cli.common import EXIT_OK, EXIT_USAGE, ConfigOpt, display_url, load_config, open_store, run_async
from connector.cli.output import fail, say, warn

DEFAULT_LISTEN = "127.0.0.1:8081"  # beside a daemon on the usual 8080, and loopback only
MIN_PASSWORD = 10


def register(app: typer.Typer) -> None:
    group = typer.Typer(add_completion=False, rich_markup_mode=None,
                        help="The web console: served alone against the database (the daemon serves it under /ui too); add-user makes a login.")
    group.callback(invoke_without_command=True)(serve)
    group.command("add-user")(add_user)
    app.add_typer(group, name="console")


def serve(ctx: typer.Context, config: Optional[str] = ConfigOpt,
          listen: Optional[str] = typer.Option(None, "--listen", help=f"HOST:PORT to serve on (default {DEFAULT_LISTEN})")) -> None:
    """Serve the web console (under /ui/) against the config's database, until Ctrl-C."""
    if ctx.invoked_subcommand is not None:
        return
    from connector.config import parse_listen
    from connector.console.auth import loopback_only
    from connector.listener import ListenError, bind

    cfg = load_config(config)
    where = listen or DEFAULT_LISTEN
    try:
        host, _ = parse_listen(where)
    except ValueError as exc:
        fail(f"--listen: {exc}")
        raise typer.Exit(EXIT_USAGE) from None
    if not cfg.console.users and not loopback_only(host):
        fail(f"refusing to serve the console on {where} without a login: anyone who can reach it could see and act on every order. "
             f"Add a user (`connector console add-user NAME --role operator`, then paste the block into {cfg.source}), "
             f"or listen on 127.0.0.1.")
        raise typer.Exit(EXIT_USAGE)
    try:
        sock = bind(where)
    except ListenError as exc:
        fail(f"cannot start: {str(exc).removeprefix('[daemon].listen: ')}")
        raise typer.Exit(EXIT_USAGE) from None
    try:
        run_async(_serve(cfg, sock, where))
    finally:
        sock.close()
    raise typer.Exit(EXIT_OK)


async def _serve(cfg: Any, sock: Any, where: str) -> None:
    from starlette.applications import Starlette
    from starlette.responses import RedirectResponse
    from starlette.routing import Mount, Route

    from connector.console import build_console
    from connector.listener import server
    from connector.runtime import build_runtime

    store = await open_store(cfg)
    rt = await build_runtime(cfg, store=store)  # a store given: no one-daemon lock, no recovery of claims
    try:
        async def home(_: Any) -> RedirectResponse:
            return RedirectResponse("/ui/", 307)

        app = Starlette(routes=[Route("/", home), Mount("/ui", app=build_console(rt, listen=where))])
        web = server(app, sock)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, lambda: setattr(web, "should_exit", True))
        host, port = sock.getsockname()[:2]
        shown = f"[{host}]" if ":" in host else host
        users = cfg.console.users
        say(f"console on http://{shown}:{port}/ui/ ({f'{len(users)} login(s)' if users else 'no login: this machine only'}); "
            f"database {display_url(cfg.daemon.database_url)}; Ctrl-C to stop")
        if not users:
            warn("warning: no [console] users: whoever can reach this address acts as 'console (no login)'")
        sys.stdout.flush()  # the address, at once, for whoever reads it through a pipe
        await web.serve(sockets=[sock])
    finally:
        await rt.aclose()


def add_user(name: str = typer.Argument(..., help="the login name (letters, digits, _ . @ + -)"),
             role: str = typer.Option(..., "--role", help="operator (every merchant, every action) or merchant:<id> (that merchant, read-only)"),
             password_stdin: bool = typer.Option(False, "--password-stdin", help="read the password from the first line of standard input (scripts)")) -> None:
    """Make a console login: asks for the password (twice, hidden) and prints the
    [[console.users]] block to paste into the config (never the password)."""
    from pydantic import ValidationError

    from connector.config import ConsoleUser
    from connector.console.auth import hash_password

    try:
        ConsoleUser(name=name, role=role, password_hash="$argon2id$placeholder-for-checking")
    except ValidationError as exc:
        fail("; ".join(f"{'--role' if e['loc'][0] == 'role' else 'NAME'}: {_says(e)}" for e in exc.errors()))
        raise typer.Exit(EXIT_USAGE) from None
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        if not sys.stdin.isatty():
            fail("no terminal to ask for the password on: use --password-stdin")
            raise typer.Exit(EXIT_USAGE)
        password = getpass.getpass("Password: ")
        if getpass.getpass("Password again: ") != password:
            fail("the passwords differ: nothing made")
            raise typer.Exit(EXIT_USAGE)
    if len(password) < MIN_PASSWORD:
        fail(f"the password is too short: at least {MIN_PASSWORD} characters")
        raise typer.Exit(EXIT_USAGE)
    print("[[console.users]]")
    print(f'name = "{name}"')
    print(f'role = "{role}"')
    print(f'password_hash = "{hash_password(password)}"')


def _says(error: dict[str, Any]) -> str:
    if error["loc"][0] == "role":
        return "must be operator or merchant:<id> (the merchant's id from the config)"
    return "1-64 letters, digits or _ . @ + -"
