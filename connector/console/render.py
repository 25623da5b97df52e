"""Turning page data into HTML: the Jinja2 environment (autoescape on, always) and the filters
the templates use for times and vendor bodies."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from starlette.responses import HTMLResponse

from connector.reports import ago

HERE = Path(__file__).parent
BODY_CHARS = 20_000  # per body shown: the event log keeps at most this anyway




def _aware(ts: datetime) -> datetime:
    return ts if ts.tzinfo else ts.replace(tzinfo=timezone.utc)


def utc(ts: datetime | None) -> str:
    return f"{_aware(ts).astimezone(timezone.utc):%Y-%m-%d %H:%M:%S}Z" if ts else "-"


def iso(ts: datetime | None) -> str:
    return _aware(ts).astimezone(timezone.utc).isoformat().replace("+00:00", "Z") if ts else ""


def pretty(text: str) -> str:
    """A stored body for reading: JSON indented when it is JSON, cut at `BODY_CHARS`."""
    text = text or ""
    try:
        text = json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    except ValueError:
        pass
    return text if len(text) <= BODY_CHARS else text[:BODY_CHARS] + "\n... (cut)"


class Renderer:
    """Renders a template with the values every page needs (base path, who, CSRF token, flash)."""

    def __init__(self) -> None:
        self.env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=True, undefined=StrictUndefined,
                               trim_blocks=True, lstrip_blocks=True)
        self.env.filters.update(ago=ago, utc=utc, iso=iso)

    def page(self, name: str, code: int = 200, **values: Any) -> HTMLResponse:
        html = self.env.get_template(name).render(**values)
        return HTMLResponse(html, status_code=code, headers={"Cache-Control": "no-store"})
