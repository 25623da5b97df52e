"""`connector merchant add`: a new `[[merchants]]` block, appended to the config file.

The rest of the file is left byte for byte (the block is appended, never re-rendered with the
file), secrets are written as `${VAR}` references only, and the whole file is validated with the
new block before anything is written. A new merchant starts disabled (or enabled in dry-run mode),
so adding one never sends an order.
"""

from __future__ import annotations

import os
import re
import tempfile
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from connector.errors import ConfigError

_SECRET = re.compile(r"(token|secret|password|passphrase|api_key|private_key_passphrase|tpl)$")
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-[^}]*)?\}")
ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}$")
ULTRACART_OPTIONAL = ("base_url", "rate_per_minute", "webhook_username")


def secret_field(name: str) -> bool:
    """Whether a warehouse key holds a secret (written only as a ${VAR} reference)."""
    return bool(_SECRET.search(name))


def installed_adapters() -> list[str]:
    from adapters.base import available_adapters

    return sorted(available_adapters())


def adapter_fields(adapter: str) -> list[tuple[str, bool, Any]]:
    """(key, required, default) of an adapter's config block, in declaration order."""
    from pydantic_core import PydanticUndefined

    from adapters.base import UnknownAdapter, load_adapter

    try:
        cls = load_adapter(adapter)
    except UnknownAdapter as exc:
        raise ConfigError("", "warehouse.adapter", str(exc)) from None
    out = []
    for name, info in cls.Config.model_fields.items():
        if name == "adapter":
            continue
        default = None if info.default is PydanticUndefined or info.default_factory is not None else info.default
        out.append((name, info.is_required(), default))
    return out


def literal(text: str) -> Any:
    """A --set value: a TOML literal when it is one (42, true, "x", [1, 2]), else the text."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


@dataclass
class MerchantDraft:
    id: str
    ultracart_merchant_id: str
    distribution_center: str
    adapter: str
    dry_run: bool = False
    warehouse: dict[str, Any] = field(default_factory=dict)
    ultracart: dict[str, Any] = field(default_factory=dict)  # optional [merchants.ultracart] keys (base_url, rate_per_minute)

    @property
    def prefix(self) -> str:
        return re.sub(r"[^A-Z0-9]", "_", self.id.upper())

    def default_var(self, key: str) -> str:
        return f"{self.prefix}_{key.upper()}"

    def set(self, item: str) -> None:
        """`warehouse.KEY=VALUE` (a bare KEY is the warehouse's) or `ultracart.KEY=VALUE`, from --set."""
        key, sep, value = item.partition("=")
        block, _, name = key.strip().rpartition(".")
        if not sep or not name or block not in ("", "warehouse", "ultracart"):
            raise ConfigError("", "--set", f"{item!r}: write warehouse.KEY=VALUE or ultracart.KEY=VALUE")
        if block == "ultracart":
            if name not in ULTRACART_OPTIONAL:
                raise ConfigError("", f"ultracart.{name}", f"not settable here; one of: {', '.join(ULTRACART_OPTIONAL)} "
                                                           "(the merchant id and DC have their own flags, the key is ${VAR})")
            self.ultracart[name] = literal(value.strip())
        else:
            self.warehouse[name] = literal(value.strip())

    def variables(self, *, required: bool = False) -> list[str]:
        """The environment variables the block refers to (`required`: those without a :- default)."""
        names = [m.group(1) for v in self.block_values() for m in _VAR.finditer(str(v)) if not required or ":-" not in m.group(0)]
        return list(dict.fromkeys(names))

    def block_values(self) -> list[Any]:
        return [self.ultracart_api_key, self.webhook_password, *self.warehouse.values()]

    @property
    def ultracart_api_key(self) -> str:
        return "${" + self.default_var("ULTRACART_KEY") + "}"

    @property
    def webhook_password(self) -> str:
        return "${" + self.default_var("WEBHOOK_PASSWORD") + ":-}"  # optional: without it UltraCart's webhooks are refused

    def check(self, existing: list[str]) -> None:
        where = f"merchant {self.id!r}"
        if not ID.match(self.id):
            raise ConfigError("", "merchants.id", f"{self.id!r}: lowercase letters, digits and '-', at most 32, starting with a letter or digit")
        if self.id in existing:
            raise ConfigError("", "merchants.id", f"{where} is already configured")
        for key, value in (("ultracart.merchant_id", self.ultracart_merchant_id), ("ultracart.distribution_center", self.distribution_center),
                           ("warehouse.adapter", self.adapter)):
            if not str(value).strip():
                raise ConfigError("", key, f"missing for {where} (pass it as a flag, or run in a terminal to be asked)")
        known = {name: required for name, required, _ in adapter_fields(self.adapter)}
        for key, value in self.warehouse.items():
            if key not in known:
                raise ConfigError("", f"warehouse.{key}", f"{self.adapter} has no such key; it has: {', '.join(known)}")
            if secret_field(key) and not _VAR.fullmatch(str(value)):
                raise ConfigError("", f"warehouse.{key}", "is a secret: put it in an environment variable and write ${VAR}, "
                                                          f"e.g. --set warehouse.{key}='${{{self.default_var(key)}}}'")
        for key, required in known.items():
            if required and key not in self.warehouse:
                if secret_field(key):
                    self.warehouse[key] = "${" + self.default_var(key) + "}"
                else:
                    raise ConfigError("", f"warehouse.{key}", f"missing: {self.adapter} needs it (--set warehouse.{key}=...)")

    def render(self) -> str:
        """The block as TOML text (tomlkit quotes every value correctly)."""
        import tomlkit

        m = tomlkit.table()
        m.add("id", self.id)
        if self.dry_run:
            m.add("enabled", True)
            m.add("dry_run", tomlkit.item(True).comment("evaluates and maps orders, sends and acknowledges nothing; set false to go live"))
        else:
            m.add("enabled", tomlkit.item(False).comment(f"added by `connector merchant add`: `connector onboard {self.id}`, then true"))
        uc = tomlkit.table()
        uc.add("merchant_id", self.ultracart_merchant_id)
        uc.add("api_key", self.ultracart_api_key)
        uc.add("distribution_center", self.distribution_center)
        uc.add("webhook_username", self.ultracart.get("webhook_username", self.id))
        uc.add("webhook_password", self.webhook_password)
        for key, value in self.ultracart.items():
            if key != "webhook_username":
                uc.add(key, value)
        m.add("ultracart", uc)
        wh = tomlkit.table()
        wh.add("adapter", self.adapter)
        for key, value in self.warehouse.items():
            wh.add(key, value)
        m.add("warehouse", wh)
        methods = tomlkit.table()
        methods.add(tomlkit.comment("UltraCart shipping method -> warehouse method: `connector onboard " + self.id + "` proposes them"))
        m.add("ship_methods", methods)
        doc = tomlkit.document()
        merchants = tomlkit.aot()
        merchants.append(m)
        doc.add("merchants", merchants)
        return tomlkit.dumps(doc)


def add_merchant(path: Path, draft: MerchantDraft, *, existing: list[str], env: dict[str, str] | None = None) -> str:
    """Append the draft's block to the config file; returns the block's text. The whole new file
    is validated first (unset ${VAR}s of the new block stand in as placeholders), and written
    atomically: the old file stays whole if anything fails."""
    from connector import config as configmod

    draft.check(existing)
    block = draft.render()
    old = path.read_bytes()
    text = old.decode("utf-8")
    joint = "" if not text or text.endswith("\n\n") else "\n" if text.endswith("\n") else "\n\n"
    new = text + joint + block
    environ = dict(os.environ if env is None else env)
    for name in draft.variables():
        environ.setdefault(name, "0")  # set by the operator later; a value of the right shape for validation
    try:
        configmod.from_dict(tomllib.loads(new), file=str(path), base_dir=path.parent, env=environ)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), "", f"the new block would not be valid TOML: {exc}") from None
    tmp = tempfile.NamedTemporaryFile("wb", dir=path.parent, prefix=f".{path.name}.", delete=False)
    try:
        with tmp:
            tmp.write(old + (joint + block).encode("utf-8"))
        os.chmod(tmp.name, path.stat().st_mode & 0o7777)
        os.replace(tmp.name, path)
    except OSError as exc:
        Path(tmp.name).unlink(missing_ok=True)
        raise ConfigError(str(path), "", f"cannot write: {exc.strerror}") from None
    return block
