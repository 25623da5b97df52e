"""The start-up and idle phases of `connector bench`. Nothing is timed against a target here (the
figures depend on the machine); what is checked is where the figures come from."""

from __future__ import annotations

import json
import subprocess
import sys
import time

from connector.bench.options import BenchOptions, bench_config
from connector.bench.startup import child_cpu, startup_phase, to_toml
from connector.config import load
import pytest

pytestmark = pytest.mark.slow  # soak, replicas and bench: CI runs them; `pytest -m 'not slow'` skips them locally

BURN = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.3: pass\n"


def test_child_cpu_is_the_childs_own(tmp_path):
    before = time.process_time()
    burnt = child_cpu([sys.executable, "-c", BURN], cwd=tmp_path)
    ours = time.process_time() - before
    assert burnt["rc"] == 0 and burnt["cpu_s"] >= 0.3 and burnt["user_s"] > 0
    assert ours < 0.1  # the 0.3 s were the child's, not this process's
    assert child_cpu([sys.executable, "-c", "raise SystemExit(3)"], cwd=tmp_path)["rc"] == 3


def test_generated_config_is_a_valid_connector_toml(tmp_path):
    config = bench_config(BenchOptions(merchants=3), "t", "http://127.0.0.1:9", "http://127.0.0.1:9", f"sqlite:///{tmp_path / 'x.db'}")
    path = tmp_path / "connector.toml"
    path.write_text(to_toml(config))
    cfg = load(path)
    assert [m.id for m in cfg.merchants] == ["t-1", "t-2", "t-3"]
    assert cfg.merchants[0].ship_methods == config["merchants"][0]["ship_methods"]


def test_startup_phase_measures_help_and_check():
    out = startup_phase(BenchOptions(merchants=2), repeats=2)
    assert set(out["commands"]) == {"python -c pass", "connector --help", "connector check"}
    for name, c in out["commands"].items():
        assert c["rc"] == 0, (name, c["error"])
        assert c["cpu_s"] > 0 and len(c["cpu_s_runs"]) == 2 and c["wall_s"] > 0
    # The connector imports far more than a bare interpreter: the figure is the command's.
    assert out["commands"]["connector --help"]["cpu_s"] > out["commands"]["python -c pass"]["cpu_s"]


def test_idle_phase_through_the_cli(tmp_path):
    out = tmp_path / "bench.json"
    proc = subprocess.run([sys.executable, "-m", "connector", "bench", "--no-progress", "--phases", "idle", "--idle-merchants", "3",
                           "--idle-seconds", "2", "--json", str(out)], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    data = json.loads(out.read_text())
    assert data["ok"] and not data["phases"] and "startup" not in data
    idle, warm = data["idle"], data["idle"]["warm_up"]
    # Every merchant's six services ran once, on schedule, against the sandboxes, with no failure.
    assert warm["jobs_started"] == warm["jobs"] == 3 * 6 and warm["passes"] >= 18
    assert 0 <= warm["lag_p50_s"] <= warm["lag_p99_s"] <= warm["lag_max_s"] < 5
    assert idle["failed_count"] == 0 and not idle["raised"] and idle["merchants"] == 3 and idle["window_s"] == 2
    assert idle["cpu_pct_of_a_core"] >= 0 and idle["peak_rss_mb"] > 0 and idle["rss_end_mb"] > 0
    assert "Idle: 3 merchants" in proc.stdout and "Idle window 2 s" in proc.stdout
    rows = [t["target"] for t in data["targets"]]
    assert any("< 5% of one core" in r for r in rows) and any("< 300 MB" in r for r in rows) and any("lag p99" in r for r in rows)


def test_unknown_phase_is_a_usage_error(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "connector", "bench", "--phases", "orders,nap"], capture_output=True, text=True,
                          timeout=60, cwd=tmp_path)
    assert proc.returncode == 2 and "nap" in proc.stdout + proc.stderr


def test_profile_of_the_order_flow(tmp_path):
    out, stats = tmp_path / "bench.json", tmp_path / "flow.prof"
    proc = subprocess.run([sys.executable, "-m", "connector", "bench", "--no-progress", "--phases", "orders", "--orders", "30", "--skus", "0",
                           "--profile", str(stats), "--json", str(out)], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    profile = json.loads(out.read_text())["profile"]
    assert profile["file"] == str(stats) and stats.stat().st_size > 0 and len(profile["top"]) == 15
    own = [row["own_s"] for row in profile["top"]]
    assert own == sorted(own, reverse=True) and all(row["calls"] > 0 for row in profile["top"])
    # The connector's own code is in the profile: the download and delivery passes ran under it.
    import pstats

    assert any("connector/pipeline" in f[0] for f in pstats.Stats(str(stats)).stats)  # type: ignore[attr-defined]
    assert "Profile of download + delivery: top 15" in proc.stdout
