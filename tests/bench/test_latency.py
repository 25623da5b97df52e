"""The latency phase of `connector bench` through the real process, on a small run: it runs, every
order reaches ShipBob exactly once and gets its tracking posted exactly once, in both the webhook
and the poll-only run, and the figures are printed and in the JSON. The targets are met (or not)
in the bench, not here: the figures depend on the machine."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow  # like the other bench runs: CI runs them; `pytest -m 'not slow'` skips them locally

PATHS = ("create", "tracking")
FIGURES = ("p50_s", "p99_s", "max_s")


def test_latency_phase_runs_and_reports(tmp_path):
    out = tmp_path / "bench.json"
    proc = subprocess.run([sys.executable, "-m", "connector", "bench", "--no-progress", "--phases", "latency", "--latency-events", "3",
                           "--latency-gap-s", "0.2", "--latency-poll-s", "1", "--json", str(out)],
                          capture_output=True, text=True, timeout=240, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    data = json.loads(out.read_text())
    assert data["ok"] and not data["phases"] and "startup" not in data and "idle" not in data
    lat = data["latency"]
    assert (lat["events"], lat["gap_s"], lat["poll_s"]) == (3, 0.2, 1.0)
    for mode, run in (("webhooks", lat["webhooks"]), ("poll", lat["poll"])):
        assert run["created"] == run["created_once"] == 3, (mode, run)  # one create call each, none repeated
        assert run["tracked"] == run["tracked_once"] == 3, (mode, run)  # one tracking post each
        assert not run["strays"] and not run["failed"] and not run["raised"], (mode, run)
        for path in PATHS:
            figures = run[path]
            assert figures["n"] == 3, (mode, path, figures)
            assert 0 < figures["p50_s"] <= figures["p99_s"] <= figures["max_s"], (mode, path, figures)
        assert run["requests"]["shipbob POST /order"] == 3 and run["requests"]["ultracart shipments"] >= 1, (mode, run["requests"])
    w, p = lat["webhooks"], lat["poll"]
    assert w["webhooks"] and w["schedule_s"] is None and w["ultracart_deliveries"] == {"delivered": 3}
    assert any("subscribed" in line and "order.shipped" in line for line in w["registered"])
    assert not p["webhooks"] and p["schedule_s"] == 1.0 and p["registered"] == []
    assert lat["default_schedule"]["create_worst_s"] > 0 and lat["default_schedule"]["tracking_worst_s"] > 0

    text = proc.stdout
    assert "order webhook -> warehouse create" in text and "warehouse ship webhook -> tracking posted" in text
    assert "webhooks, default schedules" in text and "poll-only, every 1 s" in text
    assert "Poll-only on the default schedules (not measured" in text and "webhooks: vendor requests" in text
    rows = {t["target"]: t for t in data["targets"]}
    for wanted in ("order webhook -> warehouse create <= 2 s worst case", "order webhook -> warehouse create <= 0.5 s median",
                   "warehouse ship webhook -> tracking posted <= 5 s worst case"):
        assert any(r.startswith(wanted) for r in rows), wanted
    assert all("none arrived" not in t["figure"] for t in data["targets"])
