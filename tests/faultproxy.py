"""A real HTTP reverse proxy on 127.0.0.1 between the sidecar and moto, to create real network
conditions: a slow link, 500s, dropped connections, an endpoint that goes away. Nothing is
mocked: requests still reach moto, signed, and moto still checks every signature (the Host
header is passed through unchanged, so the signature the client made still matches)."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web
from yarl import URL

_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "proxy-authorization",
    "proxy-authenticate",
}

_ERROR_500 = (
    b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>InternalError</Code>'
    b"<Message>We encountered an internal error. Please try again.</Message></Error>"
)


@dataclass
class Faults:
    bytes_per_second: float | None = None  # throttle request bodies
    fail_next: int = 0  # answer 500 InternalError to the next N requests
    drop_next: int = 0  # close the connection without an answer, N times
    methods: set[str] = field(default_factory=set)  # fail/drop only these methods (all if empty)
    down: bool = False  # refuse every request by closing the connection
    delay: float = 0.0  # hold each answer this long (only `methods`, if given)
    hang: bool = False  # never answer (only `methods`, if given)


class FaultProxy:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.faults = Faults()
        self.seen: Counter[str] = Counter()
        self.body_bytes_in_flight = 0
        self.put_started = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self.port = 0
        self.scheme = "http"
        self._hung: set[asyncio.Event] = set()

    @property
    def endpoint_pattern(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}/{{}}/"

    async def start(self, ssl_context: ssl.SSLContext | None = None) -> None:
        """With `ssl_context`, the proxy speaks HTTPS (to test CA bundles and verification)."""
        app = web.Application(client_max_size=1024**3)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        self.scheme = "https" if ssl_context is not None else "http"
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=ssl_context)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        self._session = aiohttp.ClientSession(auto_decompress=False)

    async def close(self) -> None:
        for release in self._hung:
            release.set()
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()

    def _applies(self, method: str) -> bool:
        return not self.faults.methods or method in self.faults.methods

    async def _body(self, request: web.Request) -> AsyncIterator[bytes]:
        rate = self.faults.bytes_per_second
        async for chunk in request.content.iter_chunked(64 * 1024):
            self.body_bytes_in_flight += len(chunk)
            if rate:
                await asyncio.sleep(len(chunk) / rate)
            yield chunk

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        method = request.method
        self.seen[method] += 1
        if self.faults.down:
            assert request.transport is not None
            request.transport.abort()
            return web.Response(status=503)
        if self.faults.drop_next > 0 and self._applies(method):
            self.faults.drop_next -= 1
            await request.read()
            assert request.transport is not None
            request.transport.abort()
            return web.Response(status=503)
        if self.faults.fail_next > 0 and self._applies(method):
            self.faults.fail_next -= 1
            await request.read()
            return web.Response(status=500, body=_ERROR_500, content_type="application/xml")
        if self.faults.hang and self._applies(method):
            release = asyncio.Event()  # until the client gives up or the proxy closes
            self._hung.add(release)
            await release.wait()
            if request.transport is not None:
                request.transport.abort()
            return web.Response(status=503)
        if self.faults.delay and self._applies(method):
            await asyncio.sleep(self.faults.delay)
        if method == "PUT" and request.content_length:
            self.body_bytes_in_flight = 0
            self.put_started.set()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
        assert self._session is not None
        data = self._body(request) if request.body_exists else None
        try:
            async with self._session.request(
                method,
                URL(self.upstream + request.raw_path, encoded=True),
                headers=headers,
                data=data,
                allow_redirects=False,
            ) as upstream:
                body = await upstream.read()
                out_headers = {
                    k: v
                    for k, v in upstream.headers.items()
                    if k.lower() not in _HOP_BY_HOP | {"content-length", "date", "server"}
                }
                if method == "HEAD":
                    response = web.Response(status=upstream.status, headers=out_headers)
                    with contextlib.suppress(KeyError, ValueError):
                        response.content_length = int(upstream.headers["Content-Length"])
                    return response
                return web.Response(status=upstream.status, headers=out_headers, body=body)
        except (aiohttp.ClientError, ConnectionError):
            assert request.transport is not None
            request.transport.abort()
            return web.Response(status=502)
