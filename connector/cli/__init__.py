"""The `connector` command: the daemon, one-shot runs, config checks, the operator's views and
actions, the demo, the sandbox and the bench.

Exit codes: 0 ok; 1 something failed (a pass, an action refused, a vendor check); 2 bad config or
usage (the message names the key or the option); 3 needs attention (`status`: a service paused or
failing; `onboard`: go-live would hold orders);
130 `run --once` was interrupted (Ctrl-C / SIGTERM) after finishing the calls in hand.

Modules import what a command needs inside the command, so `connector --help` stays cheap.
"""

from __future__ import annotations

import sys
from typing import Optional

import typer

from connector.cli import actions, console, daemon, hooks, setup, tools, views

app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode=None,
                  help="UltraCart order-flow connector: orders to the warehouse, tracking and stock back.")


def _version(value: bool) -> None:
    if value:
        from connector import __version__

        print(f"connector {__version__}")
        raise typer.Exit(0)


@app.callback()
def _main(version: Optional[bool] = typer.Option(None, "--version", callback=_version, is_eager=True, help="print the version and exit")) -> None:
    """UltraCart order-flow connector: orders to the warehouse, tracking and stock back."""


for module in (daemon, views, actions, hooks, setup, tools, console):
    module.register(app)


def main() -> None:
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
