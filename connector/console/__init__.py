"""The web console (placeholder until the console lands): nothing is served yet."""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette


def build_console(runtime: Any, *, kick: Any = None) -> Starlette:
    return Starlette(routes=[])
