"""The bench's instruments: sandboxes in child processes, and wall / CPU / peak RSS of a stretch
of the connector's own work."""

from __future__ import annotations

import asyncio
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class SandboxProcess:
    """One sandbox served by `python -m connector.sandbox.serve` (or `module`) in a child process."""

    def __init__(self, kind: str, args: list[str], workdir: Path, module: str = "connector.sandbox.serve"):
        self.kind, self.args, self.module = kind, args, module
        self.ready = workdir / f"{kind}.url"
        self.proc: subprocess.Popen | None = None
        self.url = ""

    async def start(self, timeout: float = 30.0) -> str:
        cmd = [sys.executable, "-m", self.module, self.kind, "--port", "0", "--ready-file", str(self.ready), *self.args]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, preexec_fn=_die_with_parent)
        deadline = time.monotonic() + timeout
        while not self.ready.exists():
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.kind} sandbox exited: {self.proc.stderr.read().decode()[-2000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.kind} sandbox did not start within {timeout:.0f} s")
            await asyncio.sleep(0.05)
        self.url = self.ready.read_text().strip()
        return self.url

    def cpu_s(self) -> float:
        """CPU seconds the sandbox process used so far (to tell when it, not the connector, is the bottleneck)."""
        try:
            with open(f"/proc/{self.proc.pid}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, AttributeError, IndexError, ValueError):
            return 0.0

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _die_with_parent() -> None:
    """In the child: SIGTERM when the bench dies, however it dies (Linux), so no sandbox lingers."""
    try:
        import ctypes
        import signal

        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


# ------------------------------------------------------------------------------ measuring
def _status_kb(name: str) -> int:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(name + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kB on Linux


def _reset_peak_rss() -> bool:
    """Start a new peak-RSS window (Linux: `5` in clear_refs resets VmHWM); False when impossible."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


@dataclass
class Measure:
    """Wall, CPU and peak RSS of one stretch of the connector's work."""

    wall_s: float = 0.0
    cpu_s: float = 0.0
    peak_rss_kb: int = 0
    _t0: float = 0.0
    _c0: float = 0.0

    def start(self) -> Measure:
        _reset_peak_rss()
        self._t0, self._c0 = time.perf_counter(), time.process_time()
        return self

    def stop(self) -> Measure:
        self.wall_s = time.perf_counter() - self._t0
        self.cpu_s = time.process_time() - self._c0
        self.peak_rss_kb = _status_kb("VmHWM")
        return self


@contextmanager
def timed(module: Any, names: tuple[str, ...], totals: dict[str, float]) -> Iterator[None]:
    """Time calls of module-level functions (the inventory quantity pipeline) while inside."""
    originals = {n: getattr(module, n) for n in names}

    def wrap(name: str, fn: Callable) -> Callable:
        def timed_call(*a: Any, **kw: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                totals[name] = totals.get(name, 0.0) + time.perf_counter() - t0
        return timed_call

    for n, fn in originals.items():
        setattr(module, n, wrap(n, fn))
    try:
        yield
    finally:
        for n, fn in originals.items():
            setattr(module, n, fn)


def profile_summary(profiler: Any, path: str | None = None, top: int = 15) -> dict[str, Any]:
    """The `top` functions by own time (with their cumulative time); the full stats go to `path`."""
    import pstats

    stats = pstats.Stats(profiler)
    if path:
        stats.dump_stats(path)
    stats.sort_stats("tottime")
    rows = []
    for func in stats.fcn_list[:top]:  # type: ignore[attr-defined]
        _, calls, own, cumulative, _ = stats.stats[func]  # type: ignore[attr-defined]
        filename, line, fn = func
        where = filename
        for marker in ("site-packages/", "/connector/", "/adapters/", "lib/python"):
            if marker in filename:
                where = filename.split(marker, 1)[1] if marker != "/connector/" and marker != "/adapters/" else marker.strip("/") + "/" + filename.split(marker, 1)[1]
                break
        rows.append({"function": f"{where}:{line}({fn})", "calls": calls, "own_s": round(own, 3), "cumulative_s": round(cumulative, 3)})
    return {"file": path, "total_s": round(stats.total_tt, 3), "top": rows}  # type: ignore[attr-defined]
