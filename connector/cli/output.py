"""How the command line prints: plain text (never rich markup, so a bracket in a message or a
SKU is printed as it is), tables that fit the terminal, plain tab-separated rows when piped,
and `--json` documents with stable field names."""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Iterable, Sequence
from datetime import date, datetime, timezone
from typing import Any

from rich.console import Console

out = Console(highlight=False, markup=False, emoji=False, soft_wrap=False)
err = Console(stderr=True, highlight=False, markup=False, emoji=False, soft_wrap=True)  # one message, one line


def piped() -> bool:
    return not sys.stdout.isatty()


def say(text: str = "", *, style: str | None = None) -> None:
    if piped():
        print(text)
    else:
        out.print(text, style=style)


def warn(text: str) -> None:
    err.print(text, style="yellow")


def fail(text: str) -> None:
    err.print(text, style="bold red")


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """A table as wide as the terminal at most (long cells wrap); piped, one tab-separated line
    per row after a header line, so `grep`, `cut` and scripts get whole values."""
    rows = [[_cell(c) for c in r] for r in rows]
    if piped():
        print("\t".join(headers))
        for r in rows:
            print("\t".join(c.replace("\t", " ").replace("\n", " ") for c in r))
        return
    from rich.table import Table

    t = Table(*headers, box=None, width=min(shutil.get_terminal_size((120, 24)).columns, 200), expand=False)
    for r in rows:
        t.add_row(*r)
    out.print(t)


def rule(title: str) -> None:
    if piped():
        print(f"== {title} ==")
    else:
        out.rule(title, style="bold")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    return str(value)


def emit_json(doc: Any) -> None:
    print(json.dumps(doc, default=_json_default, indent=2))


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    return str(value)




def utc(ts: datetime | None) -> str:
    return f"{ts:%Y-%m-%d %H:%M:%S}Z" if ts else "-"
