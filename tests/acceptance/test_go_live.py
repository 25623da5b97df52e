"""Going live without a restart: a merchant added to a running daemon's config (its secrets in the
env file) starts on `connector reload`, first in dry run (sends and acknowledges nothing, records
what it would send), then live, sending each order exactly once."""

from __future__ import annotations

import json
import signal
import subprocess

from connector.sandbox.samples import make_order
from tests.acceptance.test_cli import CMD, connector, free_port, wait
from tests.support.flow import Flow, to_toml


def test_a_merchant_added_to_a_running_daemon_goes_live_through_a_dry_run(tmp_path):
    f = Flow(tmp_path, merchants=("acme", "beta"))
    daemon = None
    try:
        port = free_port()
        raw = f.config_dict()
        raw["merchants"] = raw["merchants"][:1]  # the daemon starts with acme only
        raw["daemon"]["listen"] = f"127.0.0.1:{port}"
        raw["daemon"]["env_file"] = "secrets.env"
        raw["merchants"][0]["schedule"] = {"order_download": "1s", "order_delivery": "1s"}
        secrets = tmp_path / "secrets.env"
        secrets.write_text("")
        secrets.chmod(0o600)
        cfg = tmp_path / "connector.toml"
        cfg.write_text(to_toml(raw))
        beta_orders = [make_order(f"BETA-{i}", distribution_center="BETA") for i in range(1, 4)]
        f.uc.queue("BETA", beta_orders)
        daemon = subprocess.Popen(CMD + ["run", "-c", str(cfg)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        wait(lambda: connector("status", "-c", str(cfg), "--json").returncode in (0, 3), what="the daemon to start")

        # The operator puts beta's secrets in the env file, then adds beta in dry-run mode.
        secrets.write_text(f"BETA_ULTRACART_KEY={f.uc_key}\nBETA_TOKEN={f.sb_token}\n")
        r = connector("merchant", "add", "beta", "-c", str(cfg), "--adapter", "shipbob", "--ultracart-merchant-id", "DEMO",
                      "--distribution-center", "BETA", "--set", "warehouse.channel_id=1", "--set", f"warehouse.base_url={f.sb_server.url}",
                      "--set", f"ultracart.base_url={f.uc_server.url}", "--dry-run", "--no-check")
        assert r.returncode == 0, r.stdout + r.stderr
        text = cfg.read_text()
        cfg.write_text(text.replace('[merchants.ship_methods]\n# UltraCart',
                                    '[merchants.schedule]\norder_download = "1s"\norder_delivery = "1s"\n\n[merchants.ship_methods]\n'
                                    '"USPS: Priority Mail" = "Standard"\n"UPS: Ground" = "Standard"\n"FedEx: 2Day" = "2-Day"\n# UltraCart'))
        r = connector("reload", "-c", str(cfg))
        assert r.returncode == 0 and "added beta" in r.stdout, r.stdout + r.stderr

        def order(oid: str) -> dict:
            out = connector("order", oid, "-c", str(cfg), "--json")
            return json.loads(out.stdout)[0] if out.returncode == 0 else {}

        wait(lambda: all(order(o["order_id"]).get("state") == "ready" for o in beta_orders), what="beta's orders evaluated in dry run")
        shown = order("BETA-1")
        assert shown["dry_run_request"]["reference_id"] == "beta-BETA-1"  # the ShipBob request body it would send
        assert not [k for k in f.sb.orders if k.startswith("beta-")], "a dry run sends nothing"
        assert not set(f.uc.acknowledged) & {"BETA-1", "BETA-2", "BETA-3"}, "a dry run acknowledges nothing"

        # Live: each order is sent once and acknowledged.
        cfg.write_text(cfg.read_text().replace("dry_run = true", "dry_run = false"))
        r = connector("reload", "-c", str(cfg))
        assert r.returncode == 0 and "changed beta" in r.stdout, r.stdout + r.stderr
        wait(lambda: all(f"beta-BETA-{i}" in f.sb.orders for i in range(1, 4)), what="beta's orders at the warehouse")
        wait(lambda: {"BETA-1", "BETA-2", "BETA-3"} <= set(f.uc.acknowledged), what="beta's orders acknowledged")
        assert sum(1 for k in f.sb.orders if k.startswith("beta-")) == 3
        assert f.kit.created() == 3
    finally:
        if daemon is not None:
            daemon.send_signal(signal.SIGTERM)
            daemon.communicate(timeout=30)
        f.close()
