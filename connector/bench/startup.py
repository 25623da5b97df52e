"""The start-up phase: CPU seconds (user + sys) that a fresh `connector` process spends on
`connector --help` and on `connector check` with a generated config, each measured on the child
process itself (`os.wait4` returns that child's rusage), so nothing of this process is counted.
The bare interpreter (`python -c pass`) is measured the same way, as the floor."""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from connector.bench.options import BenchOptions, bench_config

REPEATS = 3
TARGET_S = 0.25


def connector_command() -> list[str]:
    """The installed `connector` script beside this interpreter, else `python -m connector`."""
    script = Path(sys.executable).parent / "connector"
    return [str(script)] if script.exists() else [sys.executable, "-m", "connector"]


def child_cpu(cmd: list[str], *, cwd: Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run `cmd` to its end; its own user + sys CPU seconds, its wall time and exit code."""
    with tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait again
        err.seek(0)
        tail = err.read()[-1000:].decode(errors="replace")
    # (ru_maxrss is left out: Linux carries the parent's peak into a forked child's, so it would
    # report the bench's own memory.)
    return {"cpu_s": usage.ru_utime + usage.ru_stime, "user_s": usage.ru_utime, "sys_s": usage.ru_stime, "wall_s": wall,
            "rc": proc.returncode, "stderr": tail}


def toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)  # a JSON string is a TOML basic string
    if isinstance(v, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(x)}" for k, x in v.items()) + "}"
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    raise TypeError(f"no TOML for {type(v).__name__}")


def to_toml(config: dict[str, Any]) -> str:
    """The bench config as a `connector.toml` (tables, and one [[merchants]] block each)."""
    lines: list[str] = []
    for key, value in config.items():
        if key == "merchants":
            continue
        lines.append(f"[{key}]")
        lines += [f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()]
        lines.append("")
    for merchant in config.get("merchants", []):
        lines.append("[[merchants]]")
        lines += [f"{json.dumps(k)} = {toml_value(v)}" for k, v in merchant.items()]
        lines.append("")
    return "\n".join(lines)


def startup_phase(opts: BenchOptions, repeats: int = REPEATS) -> dict[str, Any]:
    """Each command `repeats` times; the median CPU is the figure (the first run warms the page cache)."""
    workdir = Path(tempfile.mkdtemp(prefix="connector-bench-startup-"))
    try:
        config = bench_config(opts, "s", "http://127.0.0.1:9", "http://127.0.0.1:9", f"sqlite:///{workdir / 'startup.db'}")
        path = workdir / "connector.toml"
        path.write_text(to_toml(config))
        env = {k: v for k, v in os.environ.items() if not k.startswith("CONNECTOR_")}
        commands = {"python -c pass": [sys.executable, "-c", "pass"],
                    "connector --help": [*connector_command(), "--help"],
                    "connector check": [*connector_command(), "check", "-c", str(path)]}
        out: dict[str, Any] = {"merchants": opts.merchants, "repeats": repeats, "commands": {}}
        for name, cmd in commands.items():
            runs = [child_cpu(cmd, cwd=workdir, env=env) for _ in range(repeats)]
            failed = [r for r in runs if r["rc"] != 0]
            out["commands"][name] = {
                "cpu_s": round(statistics.median(r["cpu_s"] for r in runs), 3),
                "cpu_s_runs": [round(r["cpu_s"], 3) for r in runs],
                "user_s": round(statistics.median(r["user_s"] for r in runs), 3),
                "sys_s": round(statistics.median(r["sys_s"] for r in runs), 3),
                "wall_s": round(statistics.median(r["wall_s"] for r in runs), 3),
                "rc": failed[0]["rc"] if failed else 0, "error": failed[0]["stderr"] if failed else "",
            }
        return out
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
