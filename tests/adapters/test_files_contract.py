"""The shared warehouse contract, run for the files adapter twice: over a local folder, and over
a real SFTP server (asyncssh) on loopback serving the same kind of folder, with faults injected
per SFTP operation. Keys are generated in tmp_path for each test; none is committed.

No OpenAPI spec exists for a file drop; the layout is checked by the adapter tests instead.
"""

from __future__ import annotations

import asyncssh
import pytest

from adapters.base import AdapterContext
from adapters.files import FilesAdapter
from connector.sandbox.files import FilesKit, FilesWarehouse, SftpServer
from tests.adapters.contract import WarehouseContract
from tests.support.warehouse import KitDriver

CLIENT_TIMEOUT_S = 0.5  # the server's "timeout" fault holds a reply longer than this
FAULT_HANG_S = 1.5


@pytest.fixture
def warehouse_folder(tmp_path) -> FilesWarehouse:
    return FilesWarehouse(tmp_path / "exchange", products=["SKU-1", "SKU-2", "SKU-3"])


class TestFilesLocalContract(WarehouseContract):
    """The files adapter over a local folder keeps the shared contract (faults: not applicable)."""

    @pytest.fixture
    async def adapter(self, warehouse_folder):
        adapter = FilesAdapter({"adapter": "files", "root": str(warehouse_folder.root)}, AdapterContext(merchant="acme"))
        yield adapter
        await adapter.aclose()

    @pytest.fixture
    def warehouse(self, warehouse_folder) -> KitDriver:
        return KitDriver(FilesKit(warehouse_folder))


@pytest.fixture
def sftp_keys(tmp_path):
    """A host key and a client key, generated for this test only."""
    asyncssh.generate_private_key("ssh-ed25519").write_private_key(tmp_path / "host_key")
    asyncssh.generate_private_key("ssh-ed25519").write_private_key(tmp_path / "client_key")
    host, client = asyncssh.read_private_key(tmp_path / "host_key"), asyncssh.read_private_key(tmp_path / "client_key")
    (tmp_path / "known_hosts").write_text(f"[127.0.0.1]:{{port}} {host.export_public_key().decode()}")
    return host, client


@pytest.fixture
def sftp_kit(warehouse_folder) -> FilesKit:
    return FilesKit(warehouse_folder, transport="sftp")


@pytest.fixture
def sftp_server(warehouse_folder, sftp_kit, sftp_keys, tmp_path):
    host, client = sftp_keys
    # The kit aims its faults at this server: they share one script.
    server = SftpServer(warehouse_folder.root, client_keys=[client], host_key=host, faults=sftp_kit.faults)
    server.faults.timeout_s = FAULT_HANG_S
    with server:
        template = (tmp_path / "known_hosts").read_text()
        (tmp_path / "known_hosts").write_text(template.replace("{port}", str(server.port)))
        yield server


class TestFilesSftpContract(WarehouseContract):
    """The files adapter over SFTP (key login, known_hosts) keeps the shared contract, faults included."""

    @pytest.fixture
    async def adapter(self, sftp_server, tmp_path):
        config = {
            "adapter": "files", "transport": "sftp", "host": "127.0.0.1", "port": sftp_server.port, "username": "warehouse",
            "private_key": str(tmp_path / "client_key"), "known_hosts": str(tmp_path / "known_hosts"), "timeout_s": CLIENT_TIMEOUT_S,
        }
        adapter = FilesAdapter(config, AdapterContext(merchant="acme"))
        yield adapter
        await adapter.aclose()

    @pytest.fixture
    def warehouse(self, sftp_kit, sftp_server) -> KitDriver:
        return KitDriver(sftp_kit)

    async def test_a_dropped_connection_after_the_rename_is_in_doubt_then_found(self, adapter, warehouse) -> None:
        from connector.errors import InDoubtError
        from tests.adapters.contract import make_order

        order = make_order(warehouse)
        warehouse.fail_next("create", "reset", after=True)
        with pytest.raises(InDoubtError):
            await adapter.create_order(order)
        found = await adapter.find_order(order.reference)
        assert found is not None and warehouse.orders_created(order.reference) == 1

    async def test_a_failed_rename_that_did_not_happen_is_resent_once(self, adapter, warehouse) -> None:
        from connector.errors import InDoubtError
        from tests.adapters.contract import make_order

        order = make_order(warehouse)
        warehouse.fail_next("create", 500)  # refused before renaming
        with pytest.raises(InDoubtError):
            await adapter.create_order(order)
        assert await adapter.find_order(order.reference) is None  # the temp file is still there: not sent
        result = await adapter.create_order(order)
        assert result.already_existed is False and warehouse.orders_created(order.reference) == 1
