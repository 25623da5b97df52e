"""Commands run on uvloop when it is installed; CONNECTOR_EVENT_LOOP=asyncio keeps Python's own loop."""

from __future__ import annotations

import asyncio

import pytest

from connector.cli.common import run_async


async def _loop_module() -> str:
    return type(asyncio.get_running_loop()).__module__.split(".")[0]


def test_commands_run_on_uvloop_when_installed(monkeypatch) -> None:
    pytest.importorskip("uvloop", reason="uvloop is not installed (Windows)")
    monkeypatch.delenv("CONNECTOR_EVENT_LOOP", raising=False)
    assert run_async(_loop_module()) == "uvloop"


def test_the_environment_can_keep_pythons_own_loop(monkeypatch) -> None:
    monkeypatch.setenv("CONNECTOR_EVENT_LOOP", "asyncio")
    assert run_async(_loop_module()) == "asyncio"
