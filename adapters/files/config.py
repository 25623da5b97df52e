"""The `[merchants.warehouse]` block of a merchant whose warehouse exchanges CSV files."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, ValidationInfo, field_validator

from adapters.base import AdapterConfig, LocalPath, config_path
from adapters.files.layout import COLUMNS


def key_text(host_key: str) -> str:
    """`type base64` out of a known_hosts or ssh-keyscan line (host names and comment dropped)."""
    words = host_key.split()
    start = next((i for i, w in enumerate(words) if w.startswith(("ssh-", "ecdsa-", "sk-"))), 0)
    return " ".join(words[start : start + 2])


class FilesConfig(AdapterConfig):
    """Where the files are (a local folder or an SFTP account) and how they are spelled.

    Folder names are seen from the connector: `outbound_dir` is where order files go (the
    warehouse's inbox, DropStream's `/in`), `inbound_dir` where the warehouse drops shipment and
    stock files (`/out`), `archive_dir` where processed inbound files are moved. Relative folders
    are taken under `root` (a local path, or a path on the SFTP server; "" = the login folder).
    Local paths (`root` of a local folder, `private_key`, `known_hosts`) given relative are read
    from the config file's folder, not the folder the daemon was started in.

    Spreadsheet formulas (`escape_formulas`, on by default): a cell of an order file that starts
    with `=`, `+`, `-`, `@`, a tab or a carriage return gets a leading `'`, as OWASP's CSV
    injection guidance says, so a clerk opening the file in Excel or LibreOffice never runs what
    a shopper typed into a name or a gift message (`=HYPERLINK(...)`, `=cmd|' /C calc'!A0`).
    Plain numbers (`-2.50`, `+15550100`) are not formulas and are written as they are. Turn it off
    only for a warehouse whose importer needs the raw values and never opens files in a
    spreadsheet. Header names come from this config and are written as configured.
    """

    adapter: Literal["files"] = "files"
    transport: Literal["local", "sftp"] = "local"
    root: str = Field("", validate_default=True)
    # SFTP account (transport = "sftp")
    host: str = Field("", validate_default=True)
    port: int = Field(default=22, gt=0, lt=65536)
    username: str = Field("", validate_default=True)
    password: str = ""
    private_key: LocalPath = Field("", validate_default=True)  # path to an OpenSSH private key file
    passphrase: str = ""  # of the private key, when it has one
    known_hosts: LocalPath = ""  # path to a known_hosts file listing the server's key
    host_key: str = Field("", validate_default=True)  # or the key itself ("ssh-ed25519 AAAA...") or its fingerprint ("SHA256:...")
    timeout_s: float = Field(default=30.0, gt=0)  # per file operation (connect included)
    # Layout
    outbound_dir: str = "in"
    inbound_dir: str = "out"
    archive_dir: str = "out/archive"
    ledger_dir: str = ""  # where order markers live; default `<outbound_dir>/.connector`
    order_prefix: str = "ord_"
    shipment_prefix: str = "shp_"
    stock_prefix: str = "inv_"
    cancel_prefix: str = "cnl_"  # cancel requests written to outbound_dir (see the README)
    # our column name -> the partner's header, per file kind; "" drops an order column
    columns: dict[Literal["orders", "shipments", "stock"], dict[str, str]] = Field(default_factory=dict)
    delimiter: str = ","
    encoding: str = "utf-8"
    stock_max_age_hours: float = Field(default=48.0, ge=0)  # an older snapshot is refused; 0 = any age
    escape_formulas: bool = True  # neutralise spreadsheet formulas in order files (see above)

    @field_validator("delimiter")
    @classmethod
    def _one_character(cls, value: str) -> str:
        if value == "\\t":
            value = "\t"  # TOML users write "\t" either way
        if len(value) != 1:
            raise ValueError("must be one character, e.g. \",\", \";\" or \"\\t\"")
        return value

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str) -> str:
        import codecs

        try:
            codecs.lookup(value)
        except LookupError:
            raise ValueError(f"unknown encoding {value!r} (e.g. utf-8, cp1252, latin-1)") from None
        return value

    @field_validator("columns")
    @classmethod
    def _known_columns(cls, value: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
        for kind, mapping in value.items():
            unknown = sorted(set(mapping) - set(COLUMNS[kind].names))
            if unknown:
                raise ValueError(f"{kind}: unknown column {', '.join(unknown)}; ours are {', '.join(COLUMNS[kind].names)}")
            dropped = [name for name, header in mapping.items() if not header.strip() and name in COLUMNS[kind].required]
            if dropped:
                raise ValueError(f"{kind}: column {', '.join(dropped)} is required and cannot be dropped")
        return value

    # Field validators (not one model validator) so an error names its key path.
    @field_validator("root")
    @classmethod
    def _root_for_local(cls, value: str, info: ValidationInfo) -> str:
        if info.data.get("transport", "local") != "local":
            return value  # a path on the SFTP server
        if not value.strip():
            raise ValueError('the local folder shared with the warehouse is required when transport = "local"')
        return config_path(value, info)

    @field_validator("host", "username")
    @classmethod
    def _account(cls, value: str, info: ValidationInfo) -> str:
        if info.data.get("transport") == "sftp" and not value.strip():
            raise ValueError('required when transport = "sftp"')
        return value

    @field_validator("private_key")
    @classmethod
    def _credential(cls, value: str, info: ValidationInfo) -> str:
        if info.data.get("transport") == "sftp" and not (value or info.data.get("password")):
            raise ValueError('password or private_key required when transport = "sftp"')
        return value

    @field_validator("host_key")
    @classmethod
    def _server_identity(cls, value: str, info: ValidationInfo) -> str:
        # Never connect to a server we cannot identify: the password would go to anyone.
        if info.data.get("transport") == "sftp" and not (value.strip() or info.data.get("known_hosts")):
            raise ValueError('known_hosts or host_key required when transport = "sftp" (the server\'s key is always checked)')
        text = value.strip()
        if text and not text.upper().startswith(("SHA256:", "MD5:")):
            import asyncssh

            try:
                asyncssh.import_public_key(key_text(text))
            except (asyncssh.KeyImportError, ValueError):
                raise ValueError("neither a public key (\"ssh-ed25519 AAAA...\", as ssh-keyscan prints it) "
                                 "nor a fingerprint (\"SHA256:...\", as ssh-keygen -l prints it)") from None
        return value

    @property
    def markers_dir(self) -> str:
        return self.ledger_dir or f"{self.outbound_dir.rstrip('/')}/.connector"

    def headers(self, kind: str) -> dict[str, str]:
        """Our column name -> the partner's header for one file kind (defaults: our names)."""
        return {name: self.columns.get(kind, {}).get(name, name) for name in COLUMNS[kind].names}

    def secrets(self) -> list[str]:
        return [s for s in (self.password, self.passphrase) if s]
