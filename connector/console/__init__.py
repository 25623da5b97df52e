"""The web console: status, order search, timelines, the error queue with actions, alerts and the
event log, for the 3PL's operators and (read-only, one merchant each) their merchants.

Served by the daemon under `/ui` on `[daemon].listen` (`connector.web.build_app` mounts it), or
alone by `connector console` against a database. Server-rendered HTML (Jinja2, autoescaped), one
stylesheet and one small script, all served from this package: no build step, nothing external.

    app.py      routes             auth.py     logins, sessions, CSRF tokens, the login rate limit
    views.py    data for pages     actions.py  operator actions (connector.operator) and kicks
    render.py   templates          headers.py  security headers on every answer
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def build_console(runtime: Any, *, kick: Callable[[str, str], None] | None = None, listen: str | None = None) -> Any:
    """The console's ASGI app for a Runtime. `kick(merchant, service)` starts a pass now (None:
    actions wait for the schedule); `listen` is the address it is served on (default: the
    daemon's), which decides whether it may run without logins (loopback only)."""
    from connector.console.app import Console

    return Console(runtime, kick, listen).app()
