"""The transport under every vendor client: aiohttp's (through httpx-aiohttp), behind httpx's API.

Why: httpx's own transport (httpcore on anyio) costs about 2.5 times the CPU of aiohttp's per
request (2.3 ms against 0.9 ms on the 2-core bench machine, 3,000 POSTs, 8 in flight), and a
create is one request per order.

Why not httpx-aiohttp's transport as it comes: it maps aiohttp's errors loosely, and the error
taxonomy hangs on them. It turns `ServerDisconnectedError` (the vendor closed the connection
after our request went out, a create may have happened) into `httpx.ConnectTimeout`, which
`adapters.http` reads as "never sent, safe to resend": a duplicate shipment. Here every aiohttp
error becomes the httpx error that says what is known about the request:

- the connection was never made (refused, DNS, TLS, connect timeout, no pooled connection in
  time): `ConnectError` / `ConnectTimeout` (not sent, safe to retry);
- anything after the request started (server closed, reset, read timeout, a broken response
  body or status line): `ReadTimeout` / `ReadError` / `RemoteProtocolError` (maybe received: a
  create is in doubt and looked up before it is sent again).

Proxies: httpx applies HTTP(S)_PROXY / ALL_PROXY from the environment only to its own transport,
so where one is set the clients keep httpx's transport (`make_transport` returns None).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport

_NOT_CONNECTED = (aiohttp.ClientConnectorError,)  # refused, DNS, TLS handshake, proxy connect


def _mapped(exc: BaseException) -> httpx.TransportError:
    """The httpx error for an aiohttp (or timeout) error, by what it says about the request."""
    message = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, aiohttp.ConnectionTimeoutError):  # connect or pool timeout: nothing was sent
        return httpx.ConnectTimeout(message)
    if isinstance(exc, _NOT_CONNECTED):
        return httpx.ConnectError(message)
    if isinstance(exc, aiohttp.ServerTimeoutError | asyncio.TimeoutError | TimeoutError):
        return httpx.ReadTimeout(message)
    if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientResponseError):
        return httpx.RemoteProtocolError(message)
    if isinstance(exc, aiohttp.ClientPayloadError | aiohttp.ClientOSError | OSError):
        return httpx.ReadError(message)
    return httpx.RemoteProtocolError(message)  # any other aiohttp error: assume the request may have arrived


_CAUGHT = (httpx.TransportError, aiohttp.ClientError, asyncio.TimeoutError, OSError)


def _remapped(exc: BaseException) -> httpx.TransportError:
    """Our mapping of the aiohttp error behind `exc` (httpx-aiohttp re-raises `from` the
    original), chained to that original."""
    cause = exc.__cause__
    original = cause if isinstance(cause, aiohttp.ClientError | asyncio.TimeoutError | TimeoutError | OSError) else exc
    mapped = _mapped(original)
    mapped.__cause__ = original
    return mapped


class _Stream(httpx.AsyncByteStream):
    """A response body whose read errors are mapped like the request's."""

    def __init__(self, inner: httpx.AsyncByteStream):
        self.inner = inner

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self.inner:
                yield chunk
        except _CAUGHT as exc:
            raise _remapped(exc)  # noqa: B904 - chained to the aiohttp error by _remapped

    async def aclose(self) -> None:
        try:
            await self.inner.aclose()
        except _CAUGHT:
            pass  # the body was read (or its error already raised): closing cannot change the outcome


class Transport(AiohttpTransport):
    """httpx-aiohttp's transport with the error mapping above, and without aiohttp's own resend."""

    def get_client(self) -> aiohttp.ClientSession:
        session = super().get_client()
        # aiohttp sends a GET, PUT or DELETE again by itself when a kept-alive connection fails
        # under it. Whether a call may be repeated is the adapter's to say (`idempotent=` in
        # adapters.http: Aligni's stock adjustment is a PUT that must not be applied twice), and
        # a resend that then fails to connect would be reported as "never sent". No resends here.
        session._retry_connection = False  # noqa: SLF001 - aiohttp has no public switch for it
        return session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            response = await super().handle_async_request(request)
        except _CAUGHT as exc:
            raise _remapped(exc)  # noqa: B904 - chained to the aiohttp error by _remapped
        response.stream = _Stream(response.stream)  # type: ignore[arg-type]
        return response


def make_transport(*, verify, limits: httpx.Limits) -> httpx.AsyncBaseTransport | None:
    """The transport for a vendor client, or None for httpx's own (a proxy is set in the environment)."""
    if httpx._utils.get_environment_proxies():  # noqa: SLF001 - the rule httpx itself applies
        return None
    return Transport(verify=verify, limits=limits, trust_env=False)
