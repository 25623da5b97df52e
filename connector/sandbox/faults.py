"""Fault injection shared by every sandbox: latency, 429s, 5xx, timeouts and dropped connections.

Faults come from two knobs on `Faults`:
- rates (`rate_429`, `rate_5xx`, `rate_timeout`, `rate_reset`), drawn per request from a seeded RNG;
- a script (`script`): the next matching requests fail exactly as listed, e.g.
  `{"method": "POST", "path": "/2026-01/order", "status": 500, "after": true}`.
  `after: true` lets the handler do its work first and then fails the reply: the classic
  "the warehouse created it but we never heard back" case that makes an order in doubt.
  `status` may be an HTTP status, "timeout" (the reply never comes in time) or "reset" (the
  connection is dropped mid-reply). `body` (text) replaces the reply's body, with
  `content_type` (default text/html): a 200 carrying a proxy's error page instead of JSON.
Paths starting with `/_sandbox` (the control API) are never faulted.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send


@dataclass
class Faults:
    """The fault knobs of one sandbox; change them live (tests, demo, bench)."""

    latency_ms: float = 0.0
    rate_429: float = 0.0
    rate_5xx: float = 0.0
    rate_timeout: float = 0.0
    rate_reset: float = 0.0
    retry_after_s: float = 1.0
    timeout_s: float = 40.0  # how long a "timeout" reply hangs (longer than the client waits)
    rate_limit_per_minute: int = 0  # 0 = unlimited; otherwise a sliding window like the vendor's
    script: list[dict[str, Any]] = field(default_factory=list)
    seed: int | None = None
    counts: dict[str, int] = field(default_factory=dict)  # injected faults by kind
    _rng: random.Random = field(default_factory=random.Random, repr=False)
    _window: list[float] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        if self.seed is not None:
            self._rng.seed(self.seed)

    def update(self, values: dict[str, Any]) -> None:
        for key, value in values.items():
            if key.startswith("_") or not hasattr(self, key) or key == "counts":
                raise KeyError(key)
            setattr(self, key, value)
        if "seed" in values and values["seed"] is not None:
            self._rng.seed(values["seed"])

    def snapshot(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_")}

    def _count(self, kind: str) -> None:
        self.counts[kind] = self.counts.get(kind, 0) + 1

    def pick(self, method: str, path: str) -> tuple[Any, bool] | None:
        """The fault for this request, as (kind, after), or None."""
        entry = self.scripted(method, path)
        return None if entry is None else (entry.get("status", 500), bool(entry.get("after", False)))

    def scripted(self, method: str, path: str) -> dict[str, Any] | None:
        """The next scripted fault matching this request (taken off the script), else a drawn
        one as `{"status": ..., "after": ...}`, else None."""
        for i, entry in enumerate(self.script):
            if entry.get("method", method).upper() == method.upper() and path.startswith(entry.get("path", "")):
                return self.script.pop(i)
        if self.rate_limit_per_minute:
            now = time.monotonic()
            self._window = [t for t in self._window if now - t < 60.0]
            if len(self._window) >= self.rate_limit_per_minute:
                return {"status": 429, "after": False}
            self._window.append(now)
        r = self._rng.random()
        for kind, rate in (("429", self.rate_429), ("5xx", self.rate_5xx), ("timeout", self.rate_timeout), ("reset", self.rate_reset)):
            if r < rate:
                after = kind in ("timeout", "reset", "5xx") and self._rng.random() < 0.5
                status = {"429": 429, "5xx": self._rng.choice([500, 502, 503]), "timeout": "timeout", "reset": "reset"}[kind]
                return {"status": status, "after": after}
            r -= rate
        return None


class FaultMiddleware:
    """ASGI middleware applying a `Faults` to every request outside `/_sandbox`."""

    def __init__(self, app: ASGIApp, faults: Faults, retry_after_header: str = "Retry-After"):
        self.app = app
        self.faults = faults
        self.retry_after_header = retry_after_header

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith("/_sandbox"):
            await self.app(scope, receive, send)
            return
        f = self.faults
        if f.latency_ms:
            await asyncio.sleep(f.latency_ms / 1000)
        picked = f.scripted(scope["method"], scope["path"])
        if picked is None:
            await self.app(scope, receive, send)
            return
        kind, after = picked.get("status", 500), bool(picked.get("after", False))
        f._count(str(kind))
        if after:
            # Let the handler do its work, swallow its reply, then fail.
            async def swallow(message) -> None:
                return None

            await self.app(scope, receive, swallow)
        if kind == "timeout":
            await asyncio.sleep(f.timeout_s)
            kind = 504
        if kind == "reset":
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"1000")]})
            await send({"type": "http.response.body", "body": b"{", "more_body": True})
            raise ConnectionResetError("sandbox: injected connection reset")
        status = int(kind)
        headers = [(b"content-type", str(picked.get("content_type", "text/html" if "body" in picked else "application/json")).encode())]
        if status == 429:
            headers.append((self.retry_after_header.lower().encode(), str(int(f.retry_after_s)).encode()))
        body = b'{"error": {"developer_message": "sandbox: injected fault", "user_message": "injected fault"}}'
        if "body" in picked:
            body = str(picked["body"]).encode()
        headers.append((b"content-length", str(len(body)).encode()))
        if status != 200:
            headers.append((b"uc-rest-error", b"sandbox: injected fault"))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
