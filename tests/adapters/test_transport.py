"""The vendor clients' transport (aiohttp under httpx) against real loopback servers that
misbehave: every way a call can end must keep its meaning for the error taxonomy. "Never sent"
may be retried blindly; anything after the request left must leave a create in doubt, never be
read as "not sent" (that would send the order twice)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable

import aiohttp
import httpx
import pytest

from adapters.http import HttpClient
from adapters.transport import Transport, _mapped
from connector.errors import ErrorClass, VendorError

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    body = await reader.readexactly(length) if length else b""
    return head + body


class Server:
    """A loopback TCP server answering every connection with `handler`, counting requests."""

    def __init__(self, handler: Handler):
        self.handler = handler
        self.requests: list[bytes] = []
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> str:
        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                await self.handler(reader, writer)
            except (ConnectionError, asyncio.IncompleteReadError):
                pass
            finally:
                writer.close()

        self.server = await asyncio.start_server(serve, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def __aexit__(self, *exc) -> None:
        assert self.server is not None
        self.server.close()


def client(base: str, read_timeout: float = 5.0) -> HttpClient:
    c = HttpClient("acme", base, headers={"Authorization": "Bearer x"}, max_attempts=1,
                   timeout=httpx.Timeout(connect=2.0, read=read_timeout, write=2.0, pool=2.0))
    assert isinstance(c.client._transport, Transport)  # noqa: SLF001 - the transport under test
    return c


async def _error(base: str, method: str = "POST", read_timeout: float = 5.0) -> VendorError:
    c = client(base, read_timeout)
    try:
        with pytest.raises(VendorError) as info:
            await c.request(method, "/order", json={"reference": "m-1"})
        return info.value
    finally:
        await c.aclose()


async def test_a_normal_call_sends_the_body_and_reads_the_answer():
    server: Server

    async def ok(reader, writer):
        server.requests.append(await _read_request(reader))
        body = b'{"id": 7}'
        writer.write(b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        await writer.drain()

    server = Server(ok)
    async with server as base:
        c = client(base)
        try:
            response = await c.request("POST", "/order", json={"reference": "m-1"})
        finally:
            await c.aclose()
    assert response.status_code == 201 and response.json() == {"id": 7}
    assert server.requests[0].startswith(b"POST /order HTTP/1.1")
    head, body = server.requests[0].split(b"\r\n\r\n", 1)
    assert b"authorization: bearer x" in head.lower()
    assert json.loads(body) == {"reference": "m-1"}


async def test_a_refused_connection_is_never_sent():
    async with Server(lambda r, w: asyncio.sleep(0)) as base:
        pass  # closed: the port now refuses
    error = await _error(base)
    assert error.not_sent and error.error_class is ErrorClass.transient


async def test_a_server_that_closes_after_reading_a_create_leaves_it_in_doubt():
    async def hang_up(reader, writer):
        await _read_request(reader)  # the create arrived; no answer

    async with Server(hang_up) as base:
        error = await _error(base)
        assert error.error_class is ErrorClass.in_doubt and not error.not_sent
        error = await _error(base, "GET")
        assert error.error_class is ErrorClass.transient and not error.not_sent


async def test_a_put_that_lost_its_connection_is_never_resent_by_the_transport():
    # aiohttp by itself sends a PUT again when a kept-alive connection fails under it; a PUT the
    # adapter calls not repeatable (Aligni's stock adjustment) must reach the vendor once.
    server: Server

    async def first_ok_then_hang_up(reader, writer):
        while True:
            server.requests.append(await _read_request(reader))
            if len(server.requests) > 1:
                return  # the second request arrived; no answer, the connection closes
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")
            await writer.drain()

    server = Server(first_ok_then_hang_up)
    async with server as base:
        c = client(base)
        try:
            await c.request("GET", "/ping")  # opens the kept-alive connection
            with pytest.raises(VendorError) as info:
                await c.request("PUT", "/adjust", json={"delta": -3}, idempotent=False)
        finally:
            await c.aclose()
    assert len(server.requests) == 2, [r.split(b"\r\n", 1)[0] for r in server.requests]
    assert info.value.error_class is ErrorClass.in_doubt and not info.value.not_sent


async def test_no_answer_in_time_leaves_a_create_in_doubt():
    release = asyncio.Event()

    async def silent(reader, writer):
        await _read_request(reader)
        await release.wait()

    async with Server(silent) as base:
        try:
            error = await _error(base, read_timeout=0.3)
        finally:
            release.set()
    assert error.error_class is ErrorClass.in_doubt and not error.not_sent


async def test_a_body_cut_short_or_a_garbled_answer_leaves_a_create_in_doubt():
    async def cut(reader, writer):
        await _read_request(reader)
        writer.write(b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"id\":")
        await writer.drain()

    async def garbled(reader, writer):
        await _read_request(reader)
        writer.write(b"this is not HTTP\r\n\r\n")
        await writer.drain()

    for handler in (cut, garbled):
        async with Server(handler) as base:
            error = await _error(base)
        assert error.error_class is ErrorClass.in_doubt and not error.not_sent, handler.__name__


@pytest.mark.parametrize("exc, expected", [
    (aiohttp.ConnectionTimeoutError("connect"), httpx.ConnectTimeout),
    (aiohttp.ServerDisconnectedError(), httpx.RemoteProtocolError),
    (aiohttp.SocketTimeoutError("read"), httpx.ReadTimeout),
    (aiohttp.ClientPayloadError("cut"), httpx.ReadError),
    (aiohttp.ClientOSError(104, "reset"), httpx.ReadError),
])
def test_only_connect_errors_say_not_sent(exc, expected):
    mapped = _mapped(exc)
    assert type(mapped) is expected
    # adapters.http reads ConnectError / ConnectTimeout / PoolTimeout as "never sent".
    assert isinstance(mapped, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout) == (expected is httpx.ConnectTimeout)
