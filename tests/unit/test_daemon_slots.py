"""The daemon runs at most `max_concurrent_passes` service passes at once, all merchants together:
with a thousand merchants on the same schedules the rest wait for a slot instead of queueing on
the database's connections until they time out and fail."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from connector.scheduler import Daemon


class FakeRuntime:
    def __init__(self, merchants: int, slots: int):
        self.config = SimpleNamespace(daemon=SimpleNamespace(max_concurrent_passes=slots))
        self.stopping = asyncio.Event()
        self.contexts = {f"m{i}": object() for i in range(merchants)}
        self.health = SimpleNamespace(scheduler=None)
        self.now = self.peak = 0
        self.done: list[str] = []
        self.release = asyncio.Event()

    async def run_service(self, merchant: str, service: str) -> None:
        self.now += 1
        self.peak = max(self.peak, self.now)
        try:
            await self.release.wait()
        finally:
            self.now -= 1
            self.done.append(merchant)


async def test_passes_beyond_the_limit_wait_for_a_slot_and_all_run():
    rt = FakeRuntime(merchants=20, slots=3)
    daemon = Daemon(rt)  # type: ignore[arg-type]
    started: list[str] = []
    daemon.pass_started = lambda m, s: started.append(m)  # type: ignore[method-assign]
    tasks = [asyncio.create_task(daemon.pass_now(m, "order_delivery")) for m in rt.contexts]
    while len(started) < 3:
        await asyncio.sleep(0)
    for _ in range(20):
        await asyncio.sleep(0)
    assert rt.now == 3 and len(started) == 3  # the other 17 wait, none failed
    rt.release.set()
    await asyncio.gather(*tasks)
    assert rt.peak == 3 and sorted(rt.done) == sorted(rt.contexts) and sorted(started) == sorted(rt.contexts)


async def test_a_job_waiting_for_its_slot_is_late_but_not_a_stalled_scheduler(monkeypatch):
    import time

    import connector.scheduler as scheduler
    from connector.clock import SYSTEM

    monkeypatch.setattr(scheduler, "STALL_GRACE_S", 0.0)
    rt = FakeRuntime(merchants=1, slots=1)
    rt.clock = SYSTEM
    daemon = Daemon(rt)  # type: ignore[arg-type]
    seen: list = []  # what /readyz would have said after each watchdog round
    real_sleep = asyncio.sleep

    async def one_round(_seconds: float) -> None:  # the watchdog's wait between rounds
        seen.append(rt.health.scheduler)
        await real_sleep(0)

    monkeypatch.setattr(scheduler, "asyncio", SimpleNamespace(sleep=one_round))
    job = "m0:order_delivery"
    daemon.intervals[job] = 0.01
    daemon.last_run[job] = time.monotonic() - 10  # overdue by far
    daemon.busy.add(job)  # but it fired and is waiting for a slot (or running long)
    watcher = asyncio.create_task(daemon.watch())
    try:
        while len(seen) < 5:
            await real_sleep(0)
        assert seen == [None] * len(seen)  # rounds looked at it: late, not stalled
        daemon.busy.discard(job)  # no longer busy and still overdue: now it is a stall
        busy_rounds = len(seen)
        while len(seen) < busy_rounds + 3:
            await real_sleep(0)
        flagged = [f for f in seen[busy_rounds:] if f is not None]
        assert flagged and "overdue" in flagged[0].what
    finally:
        watcher.cancel()
