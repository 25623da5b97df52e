"""Where the files live: a local folder or an SFTP account, behind one small async interface.

Both transports raise Python's `FileNotFoundError` / `FileExistsError` for the cases the adapter
reasons about, and `connector.errors.VendorError` subclasses for everything else:
- ConfigurationError: refused login, unknown or changed server key, permission denied;
- TransientError: connection refused, lost or timed out, a generic server failure
  (`not_sent=True` when no connection could be opened, so the operation surely did not happen).
`status` carries the SFTP status code (0 ok, 2 no such file, 3 permission denied, 4 failure);
None when the connection failed. The local transport maps its errors onto the same codes.
"""

from __future__ import annotations

import asyncio
import os
import posixpath
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

import asyncssh

from adapters.files.config import FilesConfig, key_text
from connector.errors import ConfigurationError, TransientError

VENDOR = "files"
FX_OK, FX_NO_SUCH_FILE, FX_PERMISSION_DENIED, FX_FAILURE = 0, 2, 3, 4
T = TypeVar("T")


@dataclass(frozen=True)
class Entry:
    """A directory entry: a file's name, modification time (epoch seconds) and size."""

    name: str
    mtime: float
    size: int
    is_file: bool


class Transport(Protocol):
    """File operations on paths relative to the configured root (POSIX separators)."""

    url: str  # where, for messages and the event log (never with a password)

    async def listdir(self, path: str) -> list[Entry]: ...
    async def read(self, path: str) -> bytes: ...
    async def write(self, path: str, data: bytes) -> None: ...  # create or truncate, then flush to disk
    async def rename(self, src: str, dst: str) -> None: ...  # FileExistsError when dst exists
    async def replace(self, src: str, dst: str) -> None: ...  # atomically overwrites dst
    async def remove(self, path: str) -> None: ...
    async def exists(self, path: str) -> bool: ...
    async def makedirs(self, path: str) -> None: ...
    async def aclose(self) -> None: ...


def make_transport(config: FilesConfig) -> Transport:
    return SftpTransport(config) if config.transport == "sftp" else LocalTransport(config)


# -- local folder -----------------------------------------------------------------------------


def _local_error(exc: OSError, what: str) -> BaseException:
    if isinstance(exc, FileNotFoundError | FileExistsError):
        return exc
    if isinstance(exc, PermissionError):
        return ConfigurationError(f"{what}: permission denied ({exc.strerror})", vendor=VENDOR, status=FX_PERMISSION_DENIED)
    return TransientError(f"{what}: {exc.strerror or exc}", vendor=VENDOR, status=FX_FAILURE)


class LocalTransport:
    """A folder on this machine (or a mounted share). Blocking calls run in a worker thread."""

    def __init__(self, config: FilesConfig):
        self.root = Path(config.root).expanduser()
        self.url = self.root.resolve().as_uri()

    def _path(self, path: str) -> Path:
        return self.root / path

    async def _run(self, what: str, func: Callable[[], T]) -> T:
        try:
            return await asyncio.to_thread(func)
        except OSError as exc:
            raise _local_error(exc, what) from exc

    async def listdir(self, path: str) -> list[Entry]:
        def scan() -> list[Entry]:
            with os.scandir(self._path(path)) as entries:
                out = []
                for e in entries:
                    try:
                        st = e.stat(follow_symlinks=True)
                    except FileNotFoundError:
                        continue  # taken away (by the warehouse) while we listed
                    out.append(Entry(e.name, st.st_mtime, st.st_size, e.is_file()))
                return out

        return await self._run(f"list {path}", scan)

    async def read(self, path: str) -> bytes:
        return await self._run(f"read {path}", self._path(path).read_bytes)

    async def write(self, path: str, data: bytes) -> None:
        def write() -> None:
            with open(self._path(path), "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())  # on disk before it is renamed into the warehouse's sight

        await self._run(f"write {path}", write)

    async def rename(self, src: str, dst: str) -> None:
        def rename() -> None:
            # One writer per folder (the engine claims each order), so check-then-rename is enough.
            if self._path(dst).exists():
                raise FileExistsError(dst)
            os.rename(self._path(src), self._path(dst))

        await self._run(f"rename {src} to {dst}", rename)

    async def replace(self, src: str, dst: str) -> None:
        await self._run(f"replace {dst}", lambda: os.replace(self._path(src), self._path(dst)))

    async def remove(self, path: str) -> None:
        await self._run(f"remove {path}", self._path(path).unlink)

    async def exists(self, path: str) -> bool:
        return await self._run(f"stat {path}", self._path(path).exists)

    async def makedirs(self, path: str) -> None:
        await self._run(f"create folder {path}", lambda: self._path(path).mkdir(parents=True, exist_ok=True))

    async def aclose(self) -> None:
        return None


# -- SFTP -------------------------------------------------------------------------------------


class _FingerprintClient(asyncssh.SSHClient):
    """Accepts exactly the server key whose fingerprint the config names."""

    def __init__(self, fingerprint: str):
        self.fingerprint = fingerprint

    def validate_host_public_key(self, host: str, addr: str, port: int, key: asyncssh.SSHKey) -> bool:
        algorithm = self.fingerprint.split(":", 1)[0].lower()
        return key.get_fingerprint(algorithm) == self.fingerprint


def _host_key_options(config: FilesConfig) -> dict[str, Any]:
    """asyncssh options that make the server prove it is the configured one."""
    if config.known_hosts:
        return {"known_hosts": os.path.expanduser(config.known_hosts)}
    text = config.host_key.strip()
    if text.upper().startswith(("SHA256:", "MD5:")):
        # An empty trust list (not None, which would disable checking) sends every key to
        # the client's validate_host_public_key.
        return {"known_hosts": ([], [], []), "client_factory": lambda: _FingerprintClient(text)}
    try:
        key = asyncssh.import_public_key(key_text(text))
    except (asyncssh.KeyImportError, ValueError) as exc:
        raise ConfigurationError(f"host_key is neither a public key nor a SHA256: fingerprint ({exc})", vendor=VENDOR) from exc
    return {"known_hosts": ([key], [], [])}


class SftpTransport:
    """An SFTP account (asyncssh). One connection, opened on first use and reused; a timeout or
    a lost connection drops it, and the next operation connects again."""

    def __init__(self, config: FilesConfig):
        self.config = config
        self.base = config.root.strip() or "."
        self.url = f"sftp://{config.username}@{config.host}:{config.port}/{config.root.strip().lstrip('/')}"
        self._conn: asyncssh.SSHClientConnection | None = None
        self._sftp: asyncssh.SFTPClient | None = None
        self._connecting = asyncio.Lock()

    def _path(self, path: str) -> str:
        return posixpath.normpath(posixpath.join(self.base, path))

    async def _client(self) -> asyncssh.SFTPClient:
        async with self._connecting:
            if self._sftp is not None:
                return self._sftp
            c = self.config
            options: dict[str, Any] = {"username": c.username, **_host_key_options(c)}
            if c.password:
                options["password"] = c.password
            if c.private_key:
                options["client_keys"] = [os.path.expanduser(c.private_key)]
                options["passphrase"] = c.passphrase or None
            else:
                options["client_keys"] = None  # do not offer this machine's ~/.ssh keys
            # Only the config counts: no ssh-agent keys, no ~/.ssh/config of whoever runs the daemon.
            options["agent_path"] = None
            options["config"] = None
            try:
                conn = await asyncio.wait_for(asyncssh.connect(c.host, c.port, **options), c.timeout_s)
                sftp = await asyncio.wait_for(conn.start_sftp_client(), c.timeout_s)
            except asyncssh.PermissionDenied as exc:
                raise ConfigurationError(f"{self.url}: login refused ({exc.reason})", vendor=VENDOR) from exc
            except asyncssh.HostKeyNotVerifiable as exc:
                raise ConfigurationError(f"{self.url}: the server's key is not the configured one ({exc.reason})", vendor=VENDOR) from exc
            except asyncssh.KeyImportError as exc:
                raise ConfigurationError(f"private_key: {exc}", vendor=VENDOR) from exc
            except (OSError, asyncssh.Error, TimeoutError) as exc:
                raise TransientError(f"{self.url}: cannot connect: {_describe(exc)}", vendor=VENDOR, not_sent=True) from exc
            self._conn, self._sftp = conn, sftp
            return sftp

    def _drop(self) -> None:
        # After a timeout the session's state is unknown; never reuse it.
        if self._conn is not None:
            self._conn.abort()
        self._conn = self._sftp = None

    async def _op(self, what: str, call: Callable[[asyncssh.SFTPClient], Awaitable[T]]) -> T:
        sftp = await self._client()
        try:
            return await asyncio.wait_for(call(sftp), self.config.timeout_s)
        except asyncssh.SFTPNoSuchFile as exc:
            raise FileNotFoundError(what) from exc
        except asyncssh.SFTPFileAlreadyExists as exc:
            raise FileExistsError(what) from exc
        except asyncssh.SFTPPermissionDenied as exc:
            raise ConfigurationError(f"{what}: permission denied ({exc.reason})", vendor=VENDOR, status=exc.code) from exc
        except (asyncssh.SFTPConnectionLost, asyncssh.SFTPNoConnection) as exc:
            self._drop()
            raise TransientError(f"{what}: connection lost ({exc.reason})", vendor=VENDOR) from exc
        except asyncssh.SFTPError as exc:
            raise TransientError(f"{what}: {exc.reason or 'failure'}", vendor=VENDOR, status=exc.code) from exc
        except TimeoutError as exc:
            self._drop()
            raise TransientError(f"{what}: no answer within {self.config.timeout_s:g} s", vendor=VENDOR) from exc
        except (OSError, asyncssh.Error) as exc:
            self._drop()
            raise TransientError(f"{what}: {_describe(exc)}", vendor=VENDOR) from exc

    async def listdir(self, path: str) -> list[Entry]:
        names = await self._op(f"list {path}", lambda s: s.readdir(self._path(path)))
        return [
            Entry(n.filename if isinstance(n.filename, str) else n.filename.decode(), float(n.attrs.mtime or 0),
                  int(n.attrs.size or 0), n.attrs.type == asyncssh.FILEXFER_TYPE_REGULAR)
            for n in names
            if n.filename not in (".", "..", b".", b"..")
        ]

    async def read(self, path: str) -> bytes:
        async def read(s: asyncssh.SFTPClient) -> bytes:
            async with s.open(self._path(path), "rb") as f:
                return await f.read()

        return await self._op(f"read {path}", read)

    async def write(self, path: str, data: bytes) -> None:
        async def write(s: asyncssh.SFTPClient) -> None:
            async with s.open(self._path(path), "wb") as f:
                await f.write(data)

        await self._op(f"write {path}", write)

    async def rename(self, src: str, dst: str) -> None:
        # Plain SFTP rename never overwrites; servers answer a generic failure when dst exists.
        if await self.exists(dst):
            raise FileExistsError(dst)
        await self._op(f"rename {src} to {dst}", lambda s: s.rename(self._path(src), self._path(dst)))

    async def replace(self, src: str, dst: str) -> None:
        async def replace(s: asyncssh.SFTPClient) -> None:
            try:
                await s.posix_rename(self._path(src), self._path(dst))
            except asyncssh.SFTPOpUnsupported:  # a server without the OpenSSH extension
                if await s.exists(self._path(dst)):
                    await s.remove(self._path(dst))
                await s.rename(self._path(src), self._path(dst))

        await self._op(f"replace {dst}", replace)

    async def remove(self, path: str) -> None:
        await self._op(f"remove {path}", lambda s: s.remove(self._path(path)))

    async def exists(self, path: str) -> bool:
        try:
            await self._op(f"stat {path}", lambda s: s.stat(self._path(path)))
        except FileNotFoundError:
            return False
        return True

    async def makedirs(self, path: str) -> None:
        await self._op(f"create folder {path}", lambda s: s.makedirs(self._path(path), exist_ok=True))

    async def aclose(self) -> None:
        if self._conn is not None:
            self._conn.close()
            try:
                await asyncio.wait_for(self._conn.wait_closed(), 2)
            except (TimeoutError, OSError, asyncssh.Error):
                pass
        self._conn = self._sftp = None


def _describe(exc: BaseException) -> str:
    return getattr(exc, "reason", "") or str(exc) or type(exc).__name__
