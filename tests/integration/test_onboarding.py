"""Onboarding a merchant through the sandboxes: `connector onboard` finds every planted mismatch
and proposes the right fixes, the proposals load, and `connector merchant add` writes a block
without touching the rest of the file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from datetime import datetime, timezone
from pathlib import Path

import pytest

from connector.sandbox.samples import ONBOARDING_HISTORY_SKUS, ONBOARDING_METHODS, onboarding_catalog, onboarding_history
from mappings.skus import load_alias_csv
from tests.support.flow import PRODUCTS, Flow

CMD = [sys.executable, "-m", "connector"]


def connector(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(CMD + list(args), capture_output=True, text=True, timeout=120, env={**os.environ, **(env or {})})


@pytest.fixture
def planted(tmp_path):
    """A merchant whose UltraCart catalog and last 10 days of orders carry the planted mismatches,
    and whose warehouse has one SKU nobody sells."""
    f = Flow(tmp_path, products=PRODUCTS + ("SPARE-PART",))
    f.uc.set_catalog(onboarding_catalog())
    f.uc.add_history(onboarding_history(datetime.now(timezone.utc)))
    yield f
    f.close()


def onboard(cfg: Path, *extra: str) -> tuple[int, dict]:
    r = connector("onboard", "acme", "-c", str(cfg), "--json", *extra)
    assert r.stdout.startswith("{"), r.stderr
    return r.returncode, json.loads(r.stdout)


def test_onboard_finds_every_planted_mismatch_and_proposes_the_fixes(planted, tmp_path):
    code, doc = onboard(planted.write_toml(), "--days", "30")
    assert code == 3 and doc["ready_to_go_live"] is False  # go-live would hold orders
    skus = doc["skus"]
    assert skus["proposed_aliases"] == {"treat": "TREAT", "Leash Red": "LEASH-RED"}
    assert skus["aliased"] == {"Bone": "BONE-5LB"}
    assert skus["kits_complete"] == ["GIFT-SET"] and skus["kits_missing_components"] == {"PUPPY-KIT": ["TOY-ROPE"]}
    assert skus["missing_at_warehouse"] == ["HARNESS-S"]
    assert skus["warehouse_never_sold"] == ["SPARE-PART"]
    assert skus["inactive"] == ["OLD-COLLAR"]

    # The history: order k ships by METHODS[k % 3] and holds SKUS[k % 4] (30 orders).
    ids = {k: f"HIST-{k + 1:05d}" for k in range(30)}
    ground_advantage = sorted(ids[k] for k in ids if ONBOARDING_METHODS[k % 3] == "USPS: Ground Advantage")
    harness = sorted(ids[k] for k in ids if ONBOARDING_HISTORY_SKUS[k % 4] == "HARNESS-S")
    methods = doc["ship_methods"]
    assert methods["unmapped_with_proposal"] == {"USPS: Ground Advantage": "Standard"}
    assert methods["orders_held_by_method"] == {"USPS: Ground Advantage": ground_advantage}
    recent = doc["recent_orders"]
    assert recent["orders"] == 30
    assert recent["skus_holding_orders"] == {"HARNESS-S": {"warehouse_sku": "HARNESS-S", "orders": harness}}
    assert recent["lines"] == 30 and recent["mapped_lines"] == 30 - len(harness)
    # Each order counted once, by the first rule that holds it (the ship method comes first).
    first_sku_holds = [i for i in harness if i not in ground_advantage]
    assert recent["would_be"] == {"ready": 30 - len(ground_advantage) - len(first_sku_holds),
                                  "held:unmapped_ship_method": len(ground_advantage), "held:unknown_sku": len(first_sku_holds)}
    checks = {c["name"]: c["status"] for c in doc["checks"]}
    assert checks["distribution_center"] == checks["order_read"] == checks["item_read"] == checks["warehouse"] == "ok"
    assert checks["sku_coverage"] == checks["ship_method_coverage"] == "blocking"
    assert checks["ultracart_webhook"] == "warning"  # no public_url: polled, which works, so it does not block


def test_the_proposed_fixes_make_go_live_ready(planted, tmp_path):
    cfg = planted.write_toml()
    aliases = tmp_path / "proposed.csv"
    code, doc = onboard(cfg, "--write-aliases", str(aliases))
    assert code == 3 and doc["aliases_written"] == str(aliases)
    assert load_alias_csv(aliases.read_text(), source=str(aliases)) == {"treat": "TREAT", "Leash Red": "LEASH-RED"}
    # A second run refuses to overwrite the file it wrote (exit 2, the file untouched).
    again = connector("onboard", "acme", "-c", str(cfg), "--write-aliases", str(aliases))
    assert again.returncode == 2 and "exists" in again.stderr

    # The operator applies the proposals: the CSV, the proposed method, and a decision for the harness.
    planted.overrides["acme"] = {"skus": {"aliases_file": str(aliases), "aliases": {"Bone": "BONE-5LB", "HARNESS-S": "SPARE-PART"}},
                                 "ship_methods": {"USPS: Ground Advantage": "Standard"}}
    code, doc = onboard(planted.write_toml())
    assert code == 0, doc["checks"]
    assert doc["ready_to_go_live"] is True and doc["recent_orders"]["would_be"] == {"ready": 30}
    assert doc["skus"]["proposed_aliases"] == {}  # the CSV's aliases are now in use


def test_credentials_and_key_permissions_are_checked(planted):
    cfg = planted.write_toml()
    # A key without item_read loses only the catalog comparison; without order_read go-live is blocked.
    planted.uc.denied_permissions = {"item_read"}
    code, doc = onboard(cfg)
    checks = {c["name"]: c for c in doc["checks"]}
    assert checks["item_read"]["status"] == "warning" and "item_read" in checks["item_read"]["detail"]
    assert doc["skus"] is None and code == 3  # the orders still show the holds
    planted.uc.denied_permissions = {"order_read"}
    code, doc = onboard(cfg)
    checks = {c["name"]: c for c in doc["checks"]}
    assert checks["order_read"]["status"] == "blocking" and "order_read" in checks["order_read"]["detail"]
    assert doc["recent_orders"] is None and code == 3
    planted.uc.denied_permissions = set()
    # A wrong DC and a wrong warehouse token are named.
    planted.overrides["acme"] = {"ultracart": {"distribution_center": "NOPE"}, "warehouse": {"token": "wrong"}}
    code, doc = onboard(planted.write_toml())
    checks = {c["name"]: c for c in doc["checks"]}
    assert checks["distribution_center"]["status"] == "blocking" and "DFLT" in checks["distribution_center"]["detail"]
    assert checks["warehouse"]["status"] == "blocking"
    assert code == 3


def test_the_ultracart_webhook_is_checked_when_there_is_a_public_url(planted):
    planted.overrides["acme"] = {"ultracart": {"webhook_username": "acme", "webhook_password": "pw-1"}}
    cfg_dict = planted.config_dict()
    cfg_dict["daemon"]["public_url"] = "https://connector.example.com"
    cfg = planted.tmp / "hooks.toml"
    from tests.support.flow import to_toml

    cfg.write_text(to_toml(cfg_dict))
    _, doc = onboard(cfg)
    [hook] = [c for c in doc["checks"] if c["name"] == "ultracart_webhook"]
    assert hook["status"] == "warning" and "no UltraCart webhook posts to https://connector.example.com/webhooks/ultracart/acme" in hook["detail"]
    planted.uc.webhooks.subscribe("https://connector.example.com/webhooks/ultracart/acme", events=["fulfillment_transmit", "order_update"],
                                  username="acme", password="pw-1")
    _, doc = onboard(cfg)
    [hook] = [c for c in doc["checks"] if c["name"] == "ultracart_webhook"]
    assert hook["status"] == "ok" and "fulfillment_transmit" in hook["detail"]


def test_onboard_text_output_names_the_fixes(planted):
    r = connector("onboard", "acme", "-c", str(planted.write_toml()))
    assert r.returncode == 3
    out = r.stdout
    assert "Leash Red\tLEASH-RED" in out  # piped: tab-separated rows
    assert '"USPS: Ground Advantage" = "Standard"' in out  # a line to paste into the config
    assert "PUPPY-KIT\tTOY-ROPE" in out
    assert "FIX sku_coverage" in out and "HARNESS-S" in out


# ------------------------------------------------------------------------------------------ merchant add
def test_merchant_add_appends_a_block_and_leaves_the_rest_byte_identical(planted, tmp_path):
    cfg = planted.write_toml()
    original = b"# our 3PL's config: keep this comment\n" + cfg.read_bytes().replace(b"\n", b"  \n", 1)  # odd spacing kept too
    cfg.write_bytes(original)
    url = planted.sb_server.url
    r = connector("merchant", "add", "beta", "-c", str(cfg), "--adapter", "shipbob", "--ultracart-merchant-id", "DEMO",
                  "--distribution-center", "BETA", "--set", "warehouse.channel_id=1", "--set", f"warehouse.base_url={url}", "--no-check")
    assert r.returncode == 0, r.stderr
    after = cfg.read_bytes()
    assert after.startswith(original)
    doc = tomllib.loads(after.decode())
    beta = doc["merchants"][-1]
    assert beta["id"] == "beta" and beta["enabled"] is False
    assert beta["ultracart"]["api_key"] == "${BETA_ULTRACART_KEY}" and beta["warehouse"]["token"] == "${BETA_TOKEN}"
    assert beta["warehouse"]["channel_id"] == 1
    assert "variables to set: BETA_ULTRACART_KEY, BETA_TOKEN" in r.stdout  # what to set before it can run

    # A secret given as a value, a duplicate id and a missing required key are refused, naming the key;
    # the file is not touched.
    for args, key in ((["gamma", "--set", "warehouse.token=abc123", "--set", "warehouse.channel_id=1"], "warehouse.token"),
                      (["beta", "--set", "warehouse.channel_id=1"], "merchants.id"),
                      (["gamma"], "warehouse.channel_id")):
        bad = connector("merchant", "add", *args, "-c", str(cfg), "--adapter", "shipbob", "--ultracart-merchant-id", "DEMO",
                        "--distribution-center", "G", "--no-check")
        assert bad.returncode == 2 and key in bad.stderr, bad.stderr
        assert cfg.read_bytes() == after


def test_a_merchant_added_with_its_variables_set_is_checked_and_onboarded(tmp_path):
    f = Flow(tmp_path, merchants=("acme", "beta"))
    try:
        f.uc.add_history(onboarding_history(datetime.now(timezone.utc), days=2, per_day=2))
        raw = f.config_dict()
        raw["merchants"] = raw["merchants"][:1]  # the file knows only acme; the sandbox already has beta's DC
        from tests.support.flow import to_toml

        cfg = tmp_path / "connector.toml"
        cfg.write_text(to_toml(raw))
        env = {"BETA_ULTRACART_KEY": f.uc_key, "BETA_TOKEN": f.sb_token}
        r = connector("merchant", "add", "beta", "-c", str(cfg), "--adapter", "shipbob", "--ultracart-merchant-id", "DEMO",
                      "--distribution-center", "BETA", "--set", "warehouse.channel_id=1", "--set", f"warehouse.base_url={f.sb_server.url}",
                      "--set", f"ultracart.base_url={f.uc_server.url}", env=env)
        # It ran `check --online` and `onboard` for beta: the DC exists, nothing is mapped yet, so
        # its (DFLT) history is another DC's: no order of BETA would hold, and the warehouse answers.
        assert "beta: UltraCart ok, distribution center BETA found" in r.stdout, r.stdout + r.stderr
        assert "go-live check" in r.stdout and r.returncode == 0, r.stdout
    finally:
        f.close()
