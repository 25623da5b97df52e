"""The config contract: a bad file exits 2 and names the file, the key path and the problem."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from connector import config
from connector.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
ENV = {"ACME_ULTRACART_KEY": "uc-key", "ACME_SHIPBOB_TOKEN": "sb-token"}

MINIMAL = """
[[merchants]]
id = "acme"
[merchants.ultracart]
merchant_id = "DEMO"
api_key = "${ACME_ULTRACART_KEY}"
distribution_center = "DFLT"
[merchants.warehouse]
adapter = "shipbob"
token = "${ACME_SHIPBOB_TOKEN}"
channel_id = 1
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "connector.toml"
    p.write_text(text)
    return p


def test_example_config_is_valid_and_documents_every_section():
    cfg = config.load(ROOT / "config.example.toml", env=ENV)
    m = cfg.merchants[0]
    assert m.id == "acme" and m.ultracart.api_key == "uc-key"
    assert m.warehouse_settings.token == "sb-token"
    assert m.schedule.order_download == 300 and m.schedule.inventory_upload == 3600
    assert m.sku_map().aliases["Bone"] == "BONE-5LB"
    assert "uc-key" in cfg.secrets() and "sb-token" in cfg.secrets()


def test_defaults_fill_a_minimal_merchant(tmp_path):
    cfg = config.load(write(tmp_path, MINIMAL), env=ENV)
    m = cfg.merchants[0]
    # The default SQLite file lives beside the config file, wherever the daemon is started from.
    assert cfg.daemon.database_url == f"sqlite:///{tmp_path / 'connector.db'}"
    assert m.orders.reject_unmapped_ship_methods is True
    assert m.shipments.post_tracking == "when_complete"
    assert m.inventory.minimum_level == 0


@pytest.mark.parametrize(
    "mutate, path, words",
    [
        (lambda t: t.replace('distribution_center = "DFLT"', 'distribution_centre = "DFLT"'), "merchants[0].ultracart.distribution_centre", "unknown key"),
        (lambda t: t.replace('channel_id = 1', 'channel_id = 1\nchanel = 2'), "merchants[0].warehouse.chanel", "unknown key"),
        (lambda t: t + "[merchants.orders]\nhold_minutes = \"soon\"\n", "merchants[0].orders.hold_minutes", "integer"),
        (lambda t: t.replace('adapter = "shipbob"', 'adapter = "nowhere"'), "merchants[0].warehouse.adapter", "unknown warehouse adapter 'nowhere'"),
        (lambda t: t + t.split("\n", 1)[1].replace("[[merchants]]", "[[merchants]]"), "merchants[1].id", "duplicate merchant id 'acme'"),
        (lambda t: t.replace('id = "acme"', 'id = "Acme Inc"'), "merchants[0].id", "pattern"),
        (lambda t: t + "[merchants.schedule]\norder_download = \"often\"\n", "merchants[0].schedule.order_download", "not a duration"),
        (lambda t: t.replace('api_key = "${ACME_ULTRACART_KEY}"', 'api_key = "${NOT_SET_ANYWHERE}"'), "merchants[0].ultracart.api_key", "NOT_SET_ANYWHERE is not set"),
        (lambda t: t.replace('[merchants.warehouse]\nadapter = "shipbob"\ntoken = "${ACME_SHIPBOB_TOKEN}"', '[merchants.warehouse]\nadapter = "shipbob"'), "merchants[0].warehouse.token", "missing"),
    ],
)
def test_bad_config_names_the_key(tmp_path, mutate, path, words):
    p = write(tmp_path, mutate(MINIMAL))
    with pytest.raises(ConfigError) as info:
        config.load(p, env=ENV)
    assert path in str(info.value)
    assert words in str(info.value)
    assert str(p) in str(info.value)


def test_not_toml_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="not valid TOML"):
        config.load(write(tmp_path, "[daemon\n"), env=ENV)
    with pytest.raises(ConfigError, match="file not found"):
        config.load(tmp_path / "nope.toml", env=ENV)


def test_alias_file_is_read_relative_to_the_config(tmp_path):
    (tmp_path / "skus.csv").write_text("cart_sku,warehouse_sku\nBone,BONE-5LB\nTreat,TREAT\n")
    text = MINIMAL + '[merchants.skus]\naliases_file = "skus.csv"\naliases = { "Treat" = "TREAT-XL" }\n'
    m = config.load(write(tmp_path, text), env=ENV).merchants[0]
    assert m.sku_map().aliases == {"Bone": "BONE-5LB", "Treat": "TREAT-XL"}  # inline wins


def test_bad_alias_file_names_the_file_and_line(tmp_path):
    (tmp_path / "skus.csv").write_text("cart_sku,warehouse_sku\nBone,BONE-5LB\nBone,OTHER\n")
    with pytest.raises(ConfigError) as info:
        config.load(write(tmp_path, MINIMAL + '[merchants.skus]\naliases_file = "skus.csv"\n'), env=ENV)
    assert info.value.path == "merchants[0].skus.aliases_file"
    assert "skus.csv" in str(info.value)


def test_env_default_syntax(tmp_path):
    text = MINIMAL.replace('merchant_id = "DEMO"', 'merchant_id = "${UC_MERCHANT:-DEMO2}"')
    assert config.load(write(tmp_path, text), env=ENV).merchants[0].ultracart.merchant_id == "DEMO2"


def test_cli_check_exits_2_naming_the_key(tmp_path):
    p = write(tmp_path, MINIMAL.replace("channel_id = 1", "channel_id = 1\nbogus = true"))
    proc = subprocess.run([sys.executable, "-m", "connector", "check", "-c", str(p)], capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", **ENV})
    assert proc.returncode == 2
    assert "merchants[0].warehouse.bogus" in proc.stderr and "unknown key" in proc.stderr and str(p) in proc.stderr


def test_cli_check_reads_connector_config_env(tmp_path):
    p = write(tmp_path, MINIMAL)
    proc = subprocess.run([sys.executable, "-m", "connector", "check"], capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "CONNECTOR_CONFIG": str(p), **ENV}, cwd=tmp_path.parent)
    assert proc.returncode == 0, proc.stderr
    assert "ok (1 merchant(s))" in proc.stdout


# ---------------------------------------------------------------------------------------- trust
TWO = MINIMAL + """
[[merchants]]
id = "acme-copy"
[merchants.ultracart]
merchant_id = "demo"
api_key = "${ACME_ULTRACART_KEY}"
distribution_center = "dflt"
[merchants.warehouse]
adapter = "shipbob"
token = "other-token"
channel_id = 2
"""


def test_two_merchants_on_one_distribution_center_are_refused(tmp_path):
    """A copied block with only `id` changed would send every order twice."""
    with pytest.raises(ConfigError) as info:
        config.load(write(tmp_path, TWO), env=ENV)
    text = str(info.value)
    assert "'acme'" in text and "'acme-copy'" in text and "DFLT" in text and "twice" in text
    assert info.value.path == "merchants[1].ultracart.distribution_center"
    # Disabled, the copy is fine.
    config.load(write(tmp_path, TWO.replace('id = "acme-copy"', 'id = "acme-copy"\nenabled = false')), env=ENV)


def test_merchants_sharing_a_warehouse_account_cannot_collide_on_references(tmp_path):
    text = TWO.replace('distribution_center = "dflt"', 'distribution_center = "EAST"').replace('token = "other-token"', 'token = "${ACME_SHIPBOB_TOKEN}"')
    with pytest.raises(ConfigError) as info:
        config.load(write(tmp_path, text), env=ENV)
    assert info.value.path == "merchants[1].id" and "references can collide" in str(info.value)
    # Their own warehouse accounts: no shared references, no problem.
    config.load(write(tmp_path, text.replace('token = "${ACME_SHIPBOB_TOKEN}"\nchannel_id = 2', 'token = "own"\nchannel_id = 2')), env=ENV)


def test_relative_paths_are_resolved_against_the_config_folder(tmp_path, monkeypatch):
    folder = tmp_path / "etc"
    folder.mkdir()
    (folder / "skus.csv").write_text("cart_sku,warehouse_sku\nBone,BONE-5LB\n")
    p = folder / "connector.toml"
    p.write_text('[daemon]\ndatabase_url = "sqlite:///data/c.db"\n' + MINIMAL + '[merchants.skus]\naliases_file = "skus.csv"\n')
    monkeypatch.chdir(tmp_path)  # started from somewhere else, as systemd or cron do
    cfg = config.load(p, env=ENV)
    assert cfg.daemon.database_url == f"sqlite:///{folder / 'data' / 'c.db'}"
    assert cfg.merchants[0].sku_map().aliases["Bone"] == "BONE-5LB"


@pytest.mark.parametrize("mutate, path, words", [
    (lambda t: "[daemon]\nlisten = \"localhost\"\n" + t, "daemon.listen", "not host:port"),
    (lambda t: "[daemon]\nlisten = \"127.0.0.1:99999\"\n" + t, "daemon.listen", "out of range"),
    (lambda t: "[daemon]\ndatabase_url = \"mysql://x@y/z\"\n" + t, "daemon.database_url", "unsupported database URL 'mysql'"),
    (lambda t: t + "[merchants.orders]\nrequire_ship_address = \"yes\"\n", "merchants[0].orders.require_ship_address", "must be true or false"),
    (lambda t: t + "[merchants.ship_methods]\n\"UPS: Ground\" = \"\"\n", "merchants[0].ship_methods", "empty warehouse method"),
    (lambda t: "[alerts]\nemail_to = [\"ops.example.com\"]\n" + t, "alerts.email_to", "not an e-mail address"),
    (lambda t: t.replace('id = "acme"', 'id = "acme"\nemail_to = ["merchant at example.com"]'), "merchants[0].email_to", "not an e-mail address"),
])
def test_check_catches_what_used_to_crash_or_pass_silently(tmp_path, mutate, path, words):
    with pytest.raises(ConfigError) as info:
        config.load(write(tmp_path, mutate(MINIMAL)), env=ENV)
    assert path in str(info.value) and words in str(info.value), str(info.value)


def test_a_misspelt_required_key_is_named_beside_the_missing_one(tmp_path):
    with pytest.raises(ConfigError) as info:
        config.load(write(tmp_path, MINIMAL.replace("channel_id = 1", "chanel_id = 1")), env=ENV)
    text = str(info.value)
    assert "merchants[0].warehouse.chanel_id: unknown key (did you mean channel_id?)" in text
    assert "channel_id: required key is missing (is chanel_id a misspelling of it?)" in text


def test_every_missing_environment_variable_is_reported(tmp_path):
    text = MINIMAL.replace('merchant_id = "DEMO"', 'merchant_id = "${UC_MERCHANT_UNSET}"')
    with pytest.raises(ConfigError) as info:
        config.load(write(tmp_path, text), env={})
    message = str(info.value)
    for name in ("ACME_ULTRACART_KEY", "ACME_SHIPBOB_TOKEN", "UC_MERCHANT_UNSET"):
        assert name in message


def test_a_dollar_var_without_braces_is_a_warning(tmp_path):
    cfg = config.load(write(tmp_path, MINIMAL.replace('api_key = "${ACME_ULTRACART_KEY}"', 'api_key = "$ACME_ULTRACART_KEY"')), env=ENV)
    assert cfg.merchants[0].ultracart.api_key == "$ACME_ULTRACART_KEY"  # valid, but surely not meant
    assert any('merchants[0].ultracart.api_key: "$ACME_ULTRACART_KEY" is used literally' in w for w in cfg.warnings)


def test_the_pattern_of_a_bad_merchant_id_prints_intact(tmp_path):
    """Square brackets in a message are text, never console markup."""
    p = write(tmp_path, MINIMAL.replace('id = "acme"', 'id = "Acme Inc"'))
    proc = subprocess.run([sys.executable, "-m", "connector", "check", "-c", str(p)], capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", **ENV})
    assert proc.returncode == 2
    assert "^[a-z0-9][a-z0-9-]{0,31}$" in proc.stderr, proc.stderr


def test_connector_environment_variables_override_the_daemon_block(tmp_path):
    path = write(tmp_path, MINIMAL)
    env = {**ENV, "CONNECTOR_DATABASE_URL": "sqlite:////var/lib/connector/c.db", "CONNECTOR_LOG_FORMAT": "json",
           "CONNECTOR_LOG_LEVEL": "warning", "CONNECTOR_TEST_POSTGRES_URL": "ignored: not a setting"}
    cfg = config.load(path, env=env)
    assert (cfg.daemon.database_url, cfg.daemon.log_format, cfg.daemon.log_level) == ("sqlite:////var/lib/connector/c.db", "json", "warning")
    # CONNECTOR_CONFIG names the file when -c is not given.
    assert config.load(None, env={**ENV, "CONNECTOR_CONFIG": str(path)}).source == str(path)
    # A bad value names the variable, not a key of the file.
    with pytest.raises(ConfigError) as info:
        config.load(path, env={**ENV, "CONNECTOR_LOG_FORMAT": "xml"})
    assert "$CONNECTOR_LOG_FORMAT" in str(info.value)
    with pytest.raises(ConfigError) as info:
        config.load(path, env={**ENV, "CONNECTOR_DATABASE_URL": "mysql://db"})
    assert info.value.path == "daemon.database_url" and "$CONNECTOR_DATABASE_URL" in str(info.value)


def test_a_disabled_merchant_may_name_variables_not_set_yet(tmp_path):
    text = MINIMAL + MINIMAL.replace('id = "acme"', 'id = "beta"\nenabled = false').replace("ACME_", "BETA_").replace('"DFLT"', '"BETA"')
    cfg = config.load(write(tmp_path, text), env=ENV)
    beta = cfg.merchant("beta")
    assert beta.unset_env == ["BETA_ULTRACART_KEY", "BETA_SHIPBOB_TOKEN"] and cfg.merchant("acme").unset_env == []
    assert any("BETA_ULTRACART_KEY" in w and "before enabling" in w for w in cfg.warnings)
    # Enabled, the same block is an error naming the variables.
    with pytest.raises(ConfigError) as info:
        config.load(write(tmp_path, text.replace("enabled = false", "enabled = true")), env=ENV)
    assert "BETA_ULTRACART_KEY" in str(info.value)


def test_an_env_file_supplies_variables_and_the_process_environment_wins(tmp_path):
    secrets = tmp_path / "secrets.env"
    secrets.write_text("# merchant secrets\nexport ACME_ULTRACART_KEY='from-file'\nACME_SHIPBOB_TOKEN=\"tok en\"\n\n")
    secrets.chmod(0o600)
    path = write(tmp_path, '[daemon]\nenv_file = "secrets.env"\n' + MINIMAL)
    cfg = config.load(path, env={})
    assert cfg.merchants[0].ultracart.api_key == "from-file" and cfg.merchants[0].warehouse_settings.token == "tok en"
    assert not cfg.warnings
    cfg = config.load(path, env={"ACME_ULTRACART_KEY": "from-env"})
    assert cfg.merchants[0].ultracart.api_key == "from-env"
    secrets.chmod(0o644)
    assert any("chmod 600" in w for w in config.load(path, env={}).warnings)
    secrets.write_text("not a pair\n")
    with pytest.raises(ConfigError) as info:
        config.load(path, env={})
    assert info.value.path == "daemon.env_file" and "line 1" in str(info.value)
    secrets.unlink()
    with pytest.raises(ConfigError) as info:
        config.load(path, env={})
    assert info.value.path == "daemon.env_file" and "cannot read" in str(info.value)
