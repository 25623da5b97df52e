"""The config file: TOML with `${ENV}` interpolation, validated into pydantic models.

Every error names the file, the key path (`merchants[0].ultracart.api_key`) and what is wrong,
because an operator at 3 a.m. should not have to guess which of forty merchants has the typo.
The warehouse block is validated by the adapter's own `Config` model, found by entry point.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, Strict, ValidationError, field_validator

from adapters.base import AdapterConfig, UnknownAdapter, WarehouseAdapter, load_adapter
from connector.errors import ConfigError
from mappings.inventory import InventoryRules
from mappings.rules import OrderRules
from mappings.skus import AliasFileError, SkuMap, load_alias_csv

DEFAULT_PATH = "connector.toml"
SERVICES = ("order_download", "order_delivery", "order_changes", "shipment_upload", "ledger_consume", "inventory_upload")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)?\s*$")
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_BARE_VAR = re.compile(r"(?<![$\\{])\$([A-Za-z_][A-Za-z0-9_]*)")
_EMAIL = re.compile(r"^[^@\s<>,;\"]+@[^@\s<>,;\"]+$")
Bool = Annotated[bool, Strict()]  # "yes" is not a boolean: a typo must not silently mean true or false


def parse_duration(value: str | int | float) -> float:
    """'30s', '5m', '1h', '1d' or a number of seconds -> seconds."""
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        m = _DURATION.match(str(value))
        if not m:
            raise ValueError(f"not a duration: {value!r} (use e.g. '30s', '5m', '1h')")
        seconds = float(m.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2) or "s"]
    if seconds <= 0:
        raise ValueError("a duration must be positive")
    return seconds


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def parse_listen(listen: str) -> tuple[str, int]:
    """`host:port` (an IPv6 host in brackets) -> (host, port); ValueError saying what is wrong."""
    host, sep, port = listen.strip().rpartition(":")
    bracketed = host.startswith("[") and host.endswith("]")
    if not sep or not host or not port.isdigit() or (":" in host and not bracketed):
        raise ValueError(f"not host:port: {listen!r} (e.g. \"127.0.0.1:8080\" or \"[::1]:8080\")")
    number = int(port)
    if number > 65535:
        raise ValueError(f"port {number} is out of range (0-65535)")
    return host.strip("[]"), number


DATABASE_SCHEMES = ("sqlite:///", "postgresql://", "postgresql+psycopg://", "postgres://")


def _emails(values: list[str]) -> list[str]:
    for v in values:
        if not _EMAIL.match(v.strip()):
            raise ValueError(f"not an e-mail address: {v!r}")
    return [v.strip() for v in values]


class DaemonConfig(_Strict):
    database_url: str = "sqlite:///connector.db"
    listen: str = "127.0.0.1:8080"
    log_format: Literal["console", "json"] = "console"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    event_log_days: int = Field(14, ge=1)
    delivery_concurrency: int = Field(8, ge=1, le=64)
    # Service passes running at once, all merchants together; below the database pool (15 SQLite
    # connections, 20 PostgreSQL), so passes wait here, not for a connection until they time out.
    max_concurrent_passes: int = Field(10, ge=1, le=1000)
    lease_seconds: float = Field(300, ge=1)
    public_url: str = ""  # how vendors reach this listener from outside (https://connector.example.com): webhook URLs
    env_file: str = ""  # KEY=VALUE lines read on every load and reload, under the process environment (secrets for ${VAR})

    @field_validator("public_url")
    @classmethod
    def _public(cls, v: str) -> str:
        v = v.strip().rstrip("/")
        if v and not v.startswith(("https://", "http://")):
            raise ValueError(f"must start with https:// (got {v!r})")
        return v

    @field_validator("listen")
    @classmethod
    def _listen(cls, v: str) -> str:
        parse_listen(v)
        return v.strip()

    @field_validator("database_url")
    @classmethod
    def _database(cls, v: str) -> str:
        if not v.startswith(DATABASE_SCHEMES):
            raise ValueError(f"unsupported database URL {v.split(':', 1)[0]!r}://...; use sqlite:///FILE or postgresql+psycopg://USER@HOST/DB")
        return v


class AlertsConfig(_Strict):
    email_to: list[str] = Field(default_factory=list)
    email_from: str = "connector@localhost"
    smtp_host: str = "localhost"
    smtp_port: int = 25
    smtp_username: str = ""
    smtp_password: str = ""
    smtp_starttls: Bool = False
    digest_minutes: int = Field(15, ge=1)

    @field_validator("email_to")
    @classmethod
    def _to(cls, v: list[str]) -> list[str]:
        return _emails(v)

    @field_validator("email_from")
    @classmethod
    def _from(cls, v: str) -> str:
        return _emails([v])[0]


class ConsoleUser(_Strict):
    """A console login: a name, an argon2 password hash (`connector console add-user` makes
    one) and a role: `operator` (every merchant, every action) or `merchant:<id>` (that
    merchant's orders, read-only)."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.@+-]{1,64}$")
    password_hash: str = Field(min_length=20)
    role: str = Field(pattern=r"^(operator|merchant:[a-z0-9][a-z0-9-]{0,31})$")

    def secrets(self) -> list[str]:
        return [self.password_hash]


class ConsoleConfig(_Strict):
    """The web console served by the daemon under /ui."""

    enabled: Bool = True
    users: list[ConsoleUser] = Field(default_factory=list)
    session_hours: float = Field(12, gt=0, le=24 * 30)
    secure_cookies: Literal["auto", "always", "never"] = "auto"  # auto: Secure when the request came over HTTPS
    login_attempts_per_minute: int = Field(5, ge=1)

    @field_validator("users")
    @classmethod
    def _unique(cls, v: list[ConsoleUser]) -> list[ConsoleUser]:
        names = [u.name for u in v]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate user name(s): {', '.join(dupes)}")
        return v


class UltraCartConfig(_Strict):
    merchant_id: str
    api_key: str = Field(min_length=1)
    distribution_center: str = Field(min_length=1)
    base_url: str = "https://secure.ultracart.com/rest/v2"
    webhook_username: str = ""
    webhook_password: str = ""
    rate_per_minute: float | None = None


class ScheduleConfig(_Strict):
    order_download: float = 300
    order_delivery: float = 60
    order_changes: float = 600  # the re-read of open orders (webhooks bring changes at once; this is the backstop)
    shipment_upload: float = 900
    ledger_consume: float = 60  # consumptions asked for by order_ship webhooks start at once; this is the backstop
    inventory_upload: float = 3600

    @field_validator("*", mode="before")
    @classmethod
    def _duration(cls, v: Any) -> float:
        return parse_duration(v)


class OrdersConfig(_Strict):
    earliest_order_date: date | None = None
    reject_unmapped_ship_methods: Bool = True
    require_ship_address: Bool = True
    skip_test_orders: Bool = False
    hold_minutes: int = Field(0, ge=0)
    default_ship_method: str | None = None
    max_line_quantity: int = Field(1000, ge=1)


class RetryConfig(_Strict):
    max_attempts: int = Field(10, ge=1)
    max_retry_hours: float = Field(24, gt=0)
    base_seconds: float = Field(30, gt=0)
    max_backoff_minutes: float = Field(60, gt=0)


class SkusConfig(_Strict):
    aliases_file: str | None = None
    aliases: dict[str, str] = Field(default_factory=dict)
    kits: dict[str, dict[str, int]] = Field(default_factory=dict)


class InventoryConfig(_Strict):
    enabled: Bool = True
    warehouses: Literal["all"] | list[str] = "all"
    exclude_warehouses: list[str] = Field(default_factory=list)
    push_by_alias: Bool = True
    minimum_level: int = Field(0, ge=0)
    buffer: int = Field(0, ge=0)
    percent: int = Field(100, ge=0, le=100)
    max_quantity: int = Field(0, ge=0)
    subtract_in_flight: Bool = True
    full_push_hours: float = Field(24, gt=0)
    source: Literal["warehouse", "ledger"] = "warehouse"  # where stock is read: the warehouse, or the inventory ledger


class LedgerSettings(_Strict):
    """The engine's keys of `[merchants.ledger]` (the rest of the block is the ledger adapter's)."""

    location: str = Field(min_length=1)  # consume from, and read stock at, this location only
    sublocation: str = ""  # and this sublocation (a name or the ledger's id); empty = the whole location
    unit_selection: Literal["fifo", "lifo", "largest_first", "smallest_first", "lot_code", "datecode"] = "fifo"
    consume_on: list[Literal["order_ship", "confirmed"]] = Field(default_factory=lambda: ["order_ship"], min_length=1)

    @field_validator("consume_on", mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v


class ShipmentsConfig(_Strict):
    post_tracking: Literal["when_complete", "each_shipment"] = "when_complete"
    allow_blank_tracking: Bool = False
    overlap_minutes: int = Field(60, ge=0)
    lookback_days: int = Field(14, ge=1)


class MerchantConfig(_Strict):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,31}$")
    enabled: Bool = True
    dry_run: Bool = False  # download, evaluate and map, record what would be sent; acknowledge and send nothing
    email_to: list[str] = Field(default_factory=list)
    ultracart: UltraCartConfig
    warehouse: dict[str, Any] | None = None  # the warehouse system orders are sent to (none: a ledger-only merchant)
    ledger: dict[str, Any] | None = None  # an inventory ledger stock is consumed in (Aligni)
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    orders: OrdersConfig = Field(default_factory=OrdersConfig)
    retry: RetryConfig = Field(default_factory=RetryConfig)
    ship_methods: dict[str, str] = Field(default_factory=dict)
    skus: SkusConfig = Field(default_factory=SkusConfig)
    inventory: InventoryConfig = Field(default_factory=InventoryConfig)
    shipments: ShipmentsConfig = Field(default_factory=ShipmentsConfig)

    @field_validator("email_to")
    @classmethod
    def _to(cls, v: list[str]) -> list[str]:
        return _emails(v)

    @field_validator("ship_methods")
    @classmethod
    def _methods(cls, v: dict[str, str]) -> dict[str, str]:
        for cart, target in v.items():
            if not cart.strip():
                raise ValueError("a ship method name is empty")
            if not str(target).strip():
                raise ValueError(f"{cart!r} maps to an empty warehouse method")
        return v

    _adapter: type[WarehouseAdapter] | None = PrivateAttr(None)
    _warehouse_settings: AdapterConfig | None = PrivateAttr(None)
    _unset_env: list[str] = PrivateAttr(default_factory=list)  # a disabled merchant's ${VAR}s not set yet
    _ledger: Any = PrivateAttr(None)
    _ledger_adapter: AdapterConfig | None = PrivateAttr(None)
    _ledger_settings: LedgerSettings | None = PrivateAttr(None)
    _file_aliases: dict[str, str] = PrivateAttr(default_factory=dict)

    @property
    def adapter_class(self) -> type[WarehouseAdapter]:
        assert self._adapter is not None, "config not resolved"
        return self._adapter

    @property
    def warehouse_settings(self) -> AdapterConfig:
        assert self._warehouse_settings is not None, "config not resolved"
        return self._warehouse_settings

    @property
    def has_warehouse(self) -> bool:
        return self.warehouse is not None

    @property
    def ledger_class(self) -> Any:
        return self._ledger

    @property
    def ledger_adapter_settings(self) -> AdapterConfig | None:
        return self._ledger_adapter

    @property
    def ledger_settings(self) -> LedgerSettings | None:
        return self._ledger_settings

    @property
    def unset_env(self) -> list[str]:
        """The environment variables this (disabled) merchant's block uses that are not set."""
        return list(self._unset_env)

    def sku_map(self) -> SkuMap:
        """Aliases from the CSV file, then the inline ones (inline wins)."""
        return SkuMap(aliases={**self._file_aliases, **self.skus.aliases}, kits=self.skus.kits)

    def order_rules(self) -> OrderRules:
        return OrderRules(**self.orders.model_dump())  # [merchants.orders] is exactly the rules

    def inventory_rules(self) -> InventoryRules:
        # [merchants.inventory] is the pipeline's rules plus two keys the service itself reads
        return InventoryRules(**self.inventory.model_dump(exclude={"enabled", "full_push_hours", "source"}))


class Config(_Strict):
    """The whole file."""

    daemon: DaemonConfig = Field(default_factory=DaemonConfig)
    alerts: AlertsConfig = Field(default_factory=AlertsConfig)
    console: ConsoleConfig = Field(default_factory=ConsoleConfig)
    merchants: list[MerchantConfig] = Field(default_factory=list)

    _source: str = PrivateAttr("")
    _warnings: list[str] = PrivateAttr(default_factory=list)

    @property
    def source(self) -> str:
        return self._source

    @property
    def warnings(self) -> list[str]:
        """Things that are valid but probably not what was meant (e.g. `$VAR` without braces)."""
        return self._warnings

    def merchant(self, merchant_id: str) -> MerchantConfig:
        for m in self.merchants:
            if m.id == merchant_id:
                return m
        raise KeyError(merchant_id)

    def secrets(self) -> list[str]:
        """Every secret value in the file, for redaction."""
        out = [self.alerts.smtp_password] + [s for u in self.console.users for s in u.secrets()]
        for m in self.merchants:
            out += [m.ultracart.api_key, m.ultracart.webhook_password]
            if m._warehouse_settings is not None:
                out += m._warehouse_settings.secrets()
            if m._ledger_adapter is not None:
                out += m._ledger_adapter.secrets()
        return [s for s in out if s]


def _path_str(loc: tuple[Any, ...], data: Any = None) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _interpolate(value: Any, path: str, env: dict[str, str], missing: list[tuple[str, str]], warnings: list[str]) -> Any:
    if isinstance(value, dict):
        return {k: _interpolate(v, f"{path}.{k}" if path else k, env, missing, warnings) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, f"{path}[{i}]", env, missing, warnings) for i, v in enumerate(value)]
    if isinstance(value, str):
        for bare in _BARE_VAR.findall(value):
            warnings.append(f"{path}: \"${bare}\" is used literally; write \"${{{bare}}}\" to read the environment variable")
        if "${" in value:

            def sub(m: re.Match) -> str:
                name, default = m.group(1), m.group(2)
                if name in env:
                    return env[name]
                if default is not None:
                    return default
                missing.append((path, name))
                return ""

            return _ENV.sub(sub, value)
    return value


def read_env_file(name: str, file: str, base_dir: Path | None, warnings: list[str]) -> dict[str, str]:
    """`[daemon] env_file`: KEY=VALUE lines (blank lines and # comments ignored, values may be
    quoted), read at every load so a merchant's new secrets reach a running daemon on reload."""
    path = Path(name).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    try:
        text = path.read_text(encoding="utf-8")
        mode = path.stat().st_mode
    except OSError as exc:
        raise ConfigError(file, "daemon.env_file", f"cannot read {path}: {exc.strerror}") from None
    if mode & 0o004:
        warnings.append(f"daemon.env_file: {path} is readable by every user of this machine; chmod 600 it")
    out: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.removeprefix("export ").partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise ConfigError(file, "daemon.env_file", f"{path} line {number}: expected KEY=VALUE")
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        out[key] = value
    return out


def _disabled_unset(original: Any, raw: Any, missing: list[tuple[str, str]], env: dict[str, str],
                    warnings: list[str]) -> dict[int, list[str]]:
    """A disabled merchant's unset ${VAR}s are a warning, not an error: it is not run, and a
    merchant just added (`connector merchant add`) must not stop the daemon from starting. They
    stand in as "unset-VAR" so the block is still validated; onboarding it asks for them."""
    merchants = original.get("merchants") if isinstance(original, dict) else None
    if not isinstance(merchants, list) or not missing:
        return {}
    out: dict[int, list[str]] = {}
    for i, m in enumerate(merchants):
        if not isinstance(m, dict) or m.get("enabled", True) is not False:
            continue
        prefix = f"merchants[{i}]"
        names = [name for path, name in missing if path == prefix or path.startswith(prefix + ".")]
        if not names:
            continue
        names = list(dict.fromkeys(names))
        missing[:] = [(path, name) for path, name in missing if not (path == prefix or path.startswith(prefix + "."))]
        raw["merchants"][i] = _interpolate(m, prefix, {**env, **{n: f"unset-{n}" for n in names}}, [], [])
        out[i] = names
        warnings.append(f"{prefix} ({m.get('id', '?')}, disabled): environment variable(s) {', '.join(names)} not set; "
                        f"set them before enabling it")
    return out


def resolve_path(path: str | os.PathLike | None, env: dict[str, str] | None = None) -> Path:
    """-c/--config, else $CONNECTOR_CONFIG, else ./connector.toml."""
    from connector.settings import process_settings

    return Path(path or process_settings(env).CONFIG or DEFAULT_PATH)


def load(path: str | os.PathLike | None = None, env: dict[str, str] | None = None) -> Config:
    """Read, interpolate and validate a config file; the process's CONNECTOR_* settings
    (connector.settings) override its [daemon] keys."""
    from connector.settings import process_settings, variable_for

    settings = process_settings(env)
    p = resolve_path(path, env)
    file = str(p)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(file, "", "file not found (use -c/--config or $CONNECTOR_CONFIG)") from None
    except OSError as exc:
        raise ConfigError(file, "", f"cannot read: {exc}") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(file, "", f"not valid TOML: {exc}") from None
    overrides = settings.daemon_overrides()
    if overrides:
        daemon = raw.setdefault("daemon", {})
        if isinstance(daemon, dict):
            daemon.update(overrides)
    try:
        return from_dict(raw, file=file, base_dir=p.parent, env=env)
    except ConfigError as exc:
        key = exc.path.removeprefix("daemon.")
        if exc.path.startswith("daemon.") and key in overrides:
            raise ConfigError(file, exc.path, f"{exc.message} (set by ${variable_for(key)})") from None
        raise


def from_dict(raw: dict[str, Any], *, file: str = "<config>", base_dir: Path | None = None, env: dict[str, str] | None = None) -> Config:
    """Validate an already-parsed config (the demo and tests build theirs in code). Relative
    paths (the SQLite file, alias CSVs, an adapter's folders) are resolved against `base_dir`,
    the config file's folder, never the working directory."""
    missing: list[tuple[str, str]] = []
    warnings: list[str] = []
    environ = dict(os.environ) if env is None else dict(env)
    daemon_raw = raw.get("daemon") if isinstance(raw, dict) else None
    env_file = daemon_raw.get("env_file") if isinstance(daemon_raw, dict) else None
    if env_file:
        # The process's own environment wins: a variable set for one run overrides the file.
        environ = {**read_env_file(str(env_file), file, base_dir, warnings), **environ}
    original = raw
    raw = _interpolate(raw, "", environ, missing, warnings)
    unset = _disabled_unset(original, raw, missing, environ, warnings)
    if missing:
        names = list(dict.fromkeys(name for _, name in missing))
        what = f"environment variable {names[0]} is not set" if len(names) == 1 else \
            f"environment variables {', '.join(names)} are not set"
        raise ConfigError(file, missing[0][0], f"{what} (used at {', '.join(p for p, _ in missing)})")
    try:
        config = Config.model_validate(raw)
    except ValidationError as exc:
        issues = _issues(exc.errors())
        raise ConfigError(file, issues[0][0], "; ".join(f"{p}: {m}" if i else m for i, (p, m) in enumerate(issues))) from None
    config._source = file
    config._warnings = warnings
    for i, names in unset.items():
        config.merchants[i]._unset_env = names
    if base_dir is not None:
        config.daemon.database_url = _resolve_sqlite(config.daemon.database_url, base_dir)
    seen: dict[str, int] = {}
    for i, m in enumerate(config.merchants):
        where = f"merchants[{i}]"
        if m.id in seen:
            raise ConfigError(file, f"{where}.id", f"duplicate merchant id {m.id!r} (also merchants[{seen[m.id]}])")
        seen[m.id] = i
        if m.warehouse is None and m.ledger is None:
            raise ConfigError(file, f"{where}.warehouse", "missing: a merchant needs a [merchants.warehouse] block, a [merchants.ledger] block, or both")
        if m.warehouse is not None:
            _resolve_warehouse(m, f"{where}.warehouse", file, base_dir)
        if m.ledger is not None:
            _resolve_ledger(m, f"{where}.ledger", file, base_dir)
        if m.inventory.source == "ledger" and m.ledger is None:
            raise ConfigError(file, f"{where}.inventory.source", "is \"ledger\" but the merchant has no [merchants.ledger] block")
        if m.skus.aliases_file:
            alias_path = Path(m.skus.aliases_file)
            if not alias_path.is_absolute() and base_dir is not None:
                alias_path = base_dir / alias_path
            try:
                m._file_aliases = load_alias_csv(alias_path.read_text(encoding="utf-8-sig"), source=str(alias_path))
            except OSError as exc:
                raise ConfigError(file, f"{where}.skus.aliases_file", f"cannot read {alias_path}: {exc.strerror}") from None
            except AliasFileError as exc:
                raise ConfigError(file, f"{where}.skus.aliases_file", str(exc)) from None
    _refuse_double_shipping(config, file)
    for i, u in enumerate(config.console.users):
        scope = u.role.partition(":")[2]
        if scope and scope not in seen:
            raise ConfigError(file, f"console.users[{i}].role", f"names merchant {scope!r}, which is not configured")
    return config


def _resolve_sqlite(url: str, base_dir: Path) -> str:
    if not url.startswith("sqlite:///"):
        return url
    path = url[len("sqlite:///"):]
    if not path or path == ":memory:" or Path(path).is_absolute():
        return url
    return "sqlite:///" + str((base_dir / path).resolve())


def _refuse_double_shipping(config: Config, file: str) -> None:
    """Two merchants on one UltraCart distribution center would each download and send every
    order: every order would reach the warehouse twice. Two merchants sharing one warehouse
    account must not be able to make the same reference (`acme` + order `b-1` is `acme-b-1`, as
    is `acme-b` + order `1`), or shipments would be matched to the wrong one."""
    by_dc: dict[tuple[str, str], int] = {}
    for i, m in enumerate(config.merchants):
        if not m.enabled or not m.has_warehouse:
            continue  # a ledger-only merchant does not read the distribution center's queue
        key = (m.ultracart.merchant_id.strip().upper(), m.ultracart.distribution_center.strip().upper())
        if key in by_dc:
            j = by_dc[key]
            raise ConfigError(file, f"merchants[{i}].ultracart.distribution_center",
                              f"merchants {config.merchants[j].id!r} and {m.id!r} both use UltraCart merchant {key[0]} distribution center "
                              f"{key[1]}: each would download and send every order (every order twice). Keep one of them, or disable it.")
        by_dc[key] = i
    accounts: dict[tuple[str, ...], list[int]] = {}
    for i, m in enumerate(config.merchants):
        if m.enabled and m._warehouse_settings is not None:
            account = (m.warehouse["adapter"], *sorted(m._warehouse_settings.secrets()))
            accounts.setdefault(account, []).append(i)
    for members in accounts.values():
        for i in members:
            for j in members:
                a, b = config.merchants[i].id, config.merchants[j].id
                if i != j and b.startswith(a + "-"):
                    raise ConfigError(file, f"merchants[{j}].id",
                                      f"merchants {a!r} and {b!r} share a warehouse account and {b!r} starts with {a!r}-: their order "
                                      f"references can collide ({a}-{b[len(a) + 1:]}-1 is both). Rename one of them.")


def _resolve_warehouse(m: MerchantConfig, where: str, file: str, base_dir: Path | None = None) -> None:
    name = m.warehouse.get("adapter")
    if not isinstance(name, str) or not name:
        raise ConfigError(file, f"{where}.adapter", "missing: name the warehouse adapter, e.g. adapter = \"shipbob\"")
    try:
        cls = load_adapter(name)
    except UnknownAdapter as exc:
        raise ConfigError(file, f"{where}.adapter", str(exc)) from None
    try:
        settings = cls.Config.model_validate(m.warehouse, context={"base_dir": base_dir})
    except ValidationError as exc:
        issues = _issues(exc.errors())
        key = issues[0][0]
        raise ConfigError(file, f"{where}.{key}" if key else where,
                          "; ".join(f"{where}.{p}: {msg}" if i else msg for i, (p, msg) in enumerate(issues))) from None
    m._adapter = cls
    m._warehouse_settings = settings


def _resolve_ledger(m: MerchantConfig, where: str, file: str, base_dir: Path | None = None) -> None:
    from adapters.ledger import UnknownLedger, load_ledger, split_ledger_block

    block = dict(m.ledger or {})
    name = block.get("adapter")
    if not isinstance(name, str) or not name:
        raise ConfigError(file, f"{where}.adapter", "missing: name the ledger adapter, e.g. adapter = \"aligni\"")
    try:
        cls = load_ledger(name)
    except UnknownLedger as exc:
        raise ConfigError(file, f"{where}.adapter", str(exc)) from None
    engine, adapter = split_ledger_block(block)
    for model, data in ((LedgerSettings, engine), (cls.Config, adapter)):
        try:
            validated = model.model_validate(data, context={"base_dir": base_dir})
        except ValidationError as exc:
            issues = _issues(exc.errors())
            raise ConfigError(file, f"{where}.{issues[0][0]}", "; ".join(f"{where}.{p}: {msg}" if i else msg for i, (p, msg) in enumerate(issues))) from None
        if model is LedgerSettings:
            m._ledger_settings = validated
        else:
            m._ledger_adapter = validated
    m._ledger = cls


def _issues(errors: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """Every validation error as (key path, message). A missing required key next to an unknown
    one in the same block is most likely a typo: each names the other."""
    issues = [(_path_str(e["loc"]), _message(e)) for e in errors]
    missing = {p for p, m in issues if m == "required key is missing"}
    unknown = {p for p, m in issues if m == "unknown key"}
    out = []
    for path, msg in issues:
        parent, _, name = path.rpartition(".")
        if msg == "unknown key":
            near = difflib.get_close_matches(name, [m.rpartition(".")[2] for m in missing if m.rpartition(".")[0] == parent], n=1, cutoff=0.6)
            if near:
                msg = f"unknown key (did you mean {near[0]}?)"
        elif msg == "required key is missing":
            near = difflib.get_close_matches(name, [u.rpartition(".")[2] for u in unknown if u.rpartition(".")[0] == parent], n=1, cutoff=0.6)
            if near:
                msg = f"required key is missing (is {near[0]} a misspelling of it?)"
        out.append((path, msg))
    return out


def _message(error: dict[str, Any]) -> str:
    kind = error.get("type", "")
    if kind == "bool_type":
        return f"must be true or false (got {error.get('input')!r})"
    if kind == "value_error":
        return str(error.get("msg", "invalid")).removeprefix("Value error, ")
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required key is missing"
    msg = error.get("msg", "invalid")
    if "input" in error and kind not in ("missing",) and not isinstance(error["input"], dict | list):
        msg += f" (got {error['input']!r})"
    return msg
