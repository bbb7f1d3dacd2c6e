"""A real HTTP reverse proxy on 127.0.0.1 between the sidecar and moto, to create real network
conditions: a slow link, 500s, dropped connections, an endpoint that goes away. Nothing is
mocked: requests still reach moto, signed, and moto still checks every signature (the Host
header is passed through unchanged, so the signature the client made still matches)."""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
import ssl
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

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


_PRECONDITION = (
    b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>PreconditionFailed</Code>'
    b"<Message>At least one of the pre-conditions you specified did not hold</Message></Error>"
)


_ACCESS_DENIED = (
    b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code>'
    b"<Message>Access Denied</Message></Error>"
)


_SLOW_DOWN = (
    b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code>'
    b"<Message>Please reduce your request rate.</Message></Error>"
)

CHAOS_KINDS = ("reset_before", "reset_after", "slow_down", "stall", "cut_body")


@dataclass
class ChaosFaults:
    """Random faults at seeded rates, in periods: on for `on` seconds, off for `off`, from the
    proxy's start. Each request draws at most one fault: `reset_before` (the connection is
    closed before S3 sees the request), `reset_after` (S3 acted, the answer is lost), `slow_down`
    (503 SlowDown), `stall` (the answer is held up to `max_stall` seconds) and `cut_body` (the
    answer stops halfway through its announced length). The draws come from `rng`, so a seed
    gives the same rates and periods; which request gets which fault depends on timing."""

    rng: random.Random
    rates: dict[str, float]
    on: float
    off: float
    max_stall: float = 2.0
    started: float = field(default_factory=time.monotonic)
    healed: bool = False

    def draw(self) -> str | None:
        if self.healed:
            return None
        phase = (time.monotonic() - self.started) % (self.on + self.off)
        if phase >= self.on:
            return None
        roll = self.rng.random()
        for kind in CHAOS_KINDS:
            roll -= self.rates.get(kind, 0.0)
            if roll < 0:
                return kind
        return None


@dataclass
class Faults:
    bytes_per_second: float | None = None  # throttle request bodies
    fail_next: int = 0  # answer 500 InternalError to the next N requests
    # awaited before each of those 500s: something another client does meanwhile
    while_failing: Callable[[], Awaitable[None]] | None = None
    drop_next: int = 0  # close the connection without an answer, N times
    methods: set[str] = field(default_factory=set)  # fail/drop only these methods (all if empty)
    down: bool = False  # refuse every request by closing the connection
    delay: float = 0.0  # hold each answer this long (only `methods`, if given)
    hang: bool = False  # never answer (only `methods`, if given)
    # answer 412 to every request with If-Match (only `methods`, if given), whatever S3 holds,
    # as a store that matches ETags only in another form does (Ceph RGW, a quoted If-Match)
    refuse_conditions: bool = False
    # list every object with this StorageClass, as a store that lists another class than the
    # one that decides (an Intelligent-Tiering archive tier shows only in a HEAD)
    listed_class: str | None = None
    chaos: ChaosFaults | None = None  # random faults (see ChaosFaults)
    # in every answer's body, these bytes written in place of those (what no honest server sends)
    replace: tuple[bytes, bytes] | None = None
    # refuse (403 AccessDenied) every request that creates an object version (PutObject,
    # CopyObject, CreateMultipartUpload) without this header and value: what a bucket policy
    # denying s3:PutObject without it does on AWS (moto does not evaluate bucket policies)
    require_on_writes: tuple[str, str] | None = None


@dataclass(frozen=True)
class SeenRequest:
    """A request as the proxy received it: method, path with its query, headers."""

    method: str
    path: str
    headers: dict[str, str]

    @property
    def creates_version(self) -> bool:
        """PutObject, CopyObject or CreateMultipartUpload (not UploadPart, not Complete)."""
        query = parse_qs(urlsplit(self.path).query, keep_blank_values=True)
        if self.method == "PUT":
            return not query
        return self.method == "POST" and "uploads" in query

    def header(self, name: str) -> str | None:
        for key, value in self.headers.items():
            if key.lower() == name.lower():
                return value
        return None


def _probe(request: web.Request) -> bool:
    """A request of the sidecar's probe of what the endpoint honours (s3/probe.py)."""
    return "/probe-" in request.path


class FaultProxy:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.faults = Faults()
        self.seen: Counter[str] = Counter()
        self.requests: list[SeenRequest] = []  # every request received, in order
        # Of the PUTs seen, those that were copies (`x-amz-copy-source`); this and the byte
        # counts below leave out the endpoint's probe (s3/probe.py: its own key, once a run).
        self.copies = 0
        # Body bytes that passed through, by method: of requests (what was sent to S3) and of
        # answers (what S3 sent back; a listing's as "LIST"), so a test can tell that no
        # file's bytes moved.
        self.request_bytes: Counter[str] = Counter()
        self.answer_bytes: Counter[str] = Counter()
        self.injected: Counter[str] = Counter()  # chaos faults, by kind
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
            if not _probe(request):
                self.request_bytes[request.method] += len(chunk)
            if rate:
                await asyncio.sleep(len(chunk) / rate)
            yield chunk

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        method = request.method
        self.seen[method] += 1
        seen = SeenRequest(method, request.raw_path, dict(request.headers))
        self.requests.append(seen)
        required = self.faults.require_on_writes
        if required is not None and seen.creates_version:
            name, value = required
            if seen.header(name) != value:
                await request.read()
                return web.Response(status=403, body=_ACCESS_DENIED, content_type="application/xml")
        if method == "PUT" and "x-amz-copy-source" in request.headers and not _probe(request):
            self.copies += 1
        if self.faults.down:
            if request.transport is not None:
                request.transport.abort()
            return web.Response(status=503)
        if self.faults.drop_next > 0 and self._applies(method):
            self.faults.drop_next -= 1
            await request.read()
            if request.transport is not None:
                request.transport.abort()
            return web.Response(status=503)
        if self.faults.fail_next > 0 and self._applies(method):
            self.faults.fail_next -= 1
            await request.read()
            if self.faults.while_failing is not None:
                await self.faults.while_failing()
            return web.Response(status=500, body=_ERROR_500, content_type="application/xml")
        if self.faults.hang and self._applies(method):
            release = asyncio.Event()  # until the client gives up or the proxy closes
            self._hung.add(release)
            await release.wait()
            if request.transport is not None:
                request.transport.abort()
            return web.Response(status=503)
        if (
            self.faults.refuse_conditions
            and "If-Match" in request.headers
            and self._applies(method)
        ):
            await request.read()
            return web.Response(status=412, body=_PRECONDITION, content_type="application/xml")
        if self.faults.delay and self._applies(method):
            await asyncio.sleep(self.faults.delay)
        chaos = self.faults.chaos
        fault = chaos.draw() if chaos is not None else None
        if fault is not None:
            self.injected[fault] += 1
        if fault == "reset_before":
            await request.read()
            if request.transport is not None:
                request.transport.abort()
            return web.Response(status=503)
        if fault == "slow_down":
            await request.read()
            return web.Response(status=503, body=_SLOW_DOWN, content_type="application/xml")
        if fault == "stall":
            assert chaos is not None
            await asyncio.sleep(chaos.rng.uniform(0.1, chaos.max_stall))
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
                listing = method == "GET" and "list-type" in request.query
                if not _probe(request):
                    self.answer_bytes["LIST" if listing else method] += len(body)
                if self.faults.replace is not None:
                    body = body.replace(*self.faults.replace)
                if self.faults.listed_class is not None and "list-type" in request.query:
                    listed = f"<StorageClass>{self.faults.listed_class}</StorageClass>".encode()
                    body = re.sub(rb"<StorageClass>[^<]*</StorageClass>", listed, body)
                out_headers = {
                    k: v
                    for k, v in upstream.headers.items()
                    if k.lower() not in _HOP_BY_HOP | {"content-length", "date", "server"}
                }
                if fault == "reset_after":
                    if request.transport is not None:
                        request.transport.abort()
                    return web.Response(status=503)
                if fault == "cut_body" and len(body) > 1:
                    cut = web.StreamResponse(status=upstream.status, headers=out_headers)
                    cut.content_length = len(body)
                    await cut.prepare(request)
                    await cut.write(body[: len(body) // 2])
                    if request.transport is not None:
                        request.transport.abort()
                    return cut
                if method == "HEAD":  # no body, but the length of the one a GET would get
                    head = web.StreamResponse(status=upstream.status, headers=out_headers)
                    with contextlib.suppress(KeyError, ValueError):
                        head.content_length = int(upstream.headers["Content-Length"])
                    await head.prepare(request)
                    await head.write_eof()
                    return head
                return web.Response(status=upstream.status, headers=out_headers, body=body)
        except (aiohttp.ClientError, ConnectionError):
            if request.transport is not None:
                request.transport.abort()
            return web.Response(status=502)
