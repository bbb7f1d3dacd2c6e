"""The sidecar's one HTTP client. Every request, to S3, SQS or the container credentials
endpoint, goes through one aiohttp connector: one connection pool, one TLS set-up (the verify,
no-verify or CA-bundle choice made once, `tls_context`), one DNS cache, and the one place where
a proxy is chosen (`_route`, for both ways through, from `proxies`: proxy.py; the
credential endpoints' requests are `direct` and never get one). Plain http through a proxy has
a connector of its own whose connections serve one request each (see the invariants).

Two ways through it, sharing the pool's kept-alive connections:

- `exchange`: a body in memory, the answer read whole (small PUTs and GETs, HEADs, DELETEs,
  listings, SQS calls, credentials). Built from aiohttp's own parts without its `ClientSession`:
  the connector hands out a connection, the request's head (serialised by aiohttp's own C
  serialiser, which refuses control characters in headers) and its body go out in one write,
  and aiohttp's llhttp parser (`ResponseHandler`) frames the answer (Content-Length, chunked,
  to the end of the connection). No framing is written here. With `StreamWriter` (two awaits
  a request) bench row 1 cost 5-8 % more CPU per file than the hand-written client it
  replaced; without it, 3 % less (0.71 against 0.73 CPU-ms, medians of 10 runs side by side).
- `open`: a body or an answer streamed (large uploads, downloads), through the `ClientSession`.

Why two (measured on the 2-core development machine against `rclone serve s3`, CPU of the
client process only, 2,000 requests 16 at a time, medians of 5 to 7 runs side by side, signing
included, bench/request_cpu.py): a 1 KiB PUT costs 0.39-0.48 ms through `ClientSession.request`
and 0.25-0.27 through `exchange`; a HEAD 0.26-0.27 and 0.15-0.16. The session's request and
response objects, its task per request body and its timers are the difference. s3/wire.py, the
hand-written HTTP/1.1 client this replaced, did 0.20-0.21 and 0.13-0.14: the 0.02-0.06 ms left
is aiohttp's connection protocol and stream reader around llhttp. Through the whole S3 path
(metrics, retries, `ObjectHead`) a PUT is 0.32 ms (wire: 0.27-0.29), a HEAD 0.25 (0.17-0.21).
An unchanged listing of 100,000 keys (100 pages `rclone serve s3` sends in small chunks, each
handed to the stream reader on its own) costs 0.22-0.23 CPU-s of HTTP alone here (wire:
0.16-0.20; without gathered reads 0.31-0.40; the session 0.30-0.35), and through the whole S3
path, pages hashed and not parsed, 0.25-0.26 CPU-s: the same as with wire, side by side.

Invariants:
- Bounded: an answer's body is read up to its limit and no further (`read_bounded`; an error
  answer past its own limit is left unread and `oversized`); a head past aiohttp's line and
  field limits (8 KiB) fails. An answer over its bound closes its connection.
- A connection goes back to the pool only after a complete answer that lets it stay open
  (aiohttp's `should_close`: HTTP/1.1, no `Connection: close`, no second answer nobody asked
  for); anything else, including any failure, closes it. Bytes past the answer that are not a
  whole answer are dropped with the parser (each request gets a new one), so they can make the
  next answer malformed, never wrong. llhttp decides keep-alive before it is told a HEAD answer
  has no body: a HEAD answer with neither Content-Length nor chunked (`rclone serve s3`'s 404)
  closes its connection (aiohttp issue 1769's kind: a cost, not a wrong answer).
- A kept-alive connection that received anything while it was idle (an answer nobody asked
  for, such as a 408 some servers send before closing an idle connection) is closed, never
  used: that answer cannot be taken for the next request's.
- A request on a kept-alive connection that the server closed before any answer came is sent
  once more on another connection, unless it is a POST (the server may have acted on it).
  Any other failure is the caller's to retry, as an `aiohttp.ClientError`, `OSError` or
  `TimeoutError`.
- Nothing is decompressed, redirected, or kept as a cookie; only chunked is accepted as a
  transfer coding. A proxy comes only from `proxies` (aiohttp's own `trust_env` is off): plain
  http goes to it in absolute form with `Proxy-Authorization`, one request per connection (a
  proxy may close it after the answer without saying so, as tinyproxy does: a request sent on
  it meanwhile would wait for an answer that never comes); https goes through aiohttp's
  `CONNECT` tunnel, kept alive end to end with the server; a `direct` request never goes
  through one.
"""

from __future__ import annotations

import asyncio
import ssl
import weakref
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Protocol

import aiohttp
from aiohttp.client_proto import ResponseHandler
from aiohttp.connector import Connection
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.http_writer import _serialize_headers as serialize_headers
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from .errors import MalformedAnswer, ResponseTooLarge
from .proxy import Proxies, Proxy

USER_AGENT = "s3sync-sidecar"
# A large answer still on its way is read in fewer, larger reads: past GATHER_AFTER bytes of it,
# reading pauses for GATHER_SECONDS and the kernel gathers what arrives meanwhile. A small
# answer, or the head, is never held.
GATHER_AFTER = 16 * 1024
GATHER_SECONDS = 0.001
CONNECT_SECONDS = 10.0
# The non-S3 hosts (the queue's long poll, the credential endpoint) have this many connections
# beyond S3's, so they never wait behind S3 transfers for a free one.
RESERVE = 4
STREAM_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=CONNECT_SECONDS, sock_read=120)
_CONNECT_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=CONNECT_SECONDS)
# What a kept-alive connection the server closed raises, on writing or waiting for the head.
_STALE = (
    aiohttp.ServerDisconnectedError,
    aiohttp.ClientConnectionResetError,
    aiohttp.ClientOSError,
)


def tls_context(*, verify: bool = True, ca_bundle: str | None = None) -> ssl.SSLContext:
    """The TLS set-up for every connection: the system's CAs (or `ca_bundle`'s), or none at all
    when `verify` is off (`SYNC_TLS_VERIFY=false`, for test endpoints only)."""
    if not verify:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    context = ssl.create_default_context()
    if ca_bundle:
        context.load_verify_locations(cafile=ca_bundle)
    return context


@dataclass(frozen=True, slots=True)
class Origin:
    """Where requests go: a scheme and the Host header (a hostname, with `:port` unless it is
    the scheme's default)."""

    scheme: str
    host: str

    def url(self, target: str) -> URL:
        return URL(f"{self.scheme}://{self.host}{target}", encoded=True)


@dataclass(frozen=True, slots=True)
class _Request:
    method: str
    target: str
    headers: CIMultiDict[str]
    body: bytes | None
    ok: tuple[int, ...]
    limit: int
    error_limit: int
    keep: bool = True  # the connection may serve another request after this one


class _NoAnswer(Exception):
    """The connection failed before any answer came (`error`): the server never answered."""

    def __init__(self, error: Exception) -> None:
        self.error = error


@dataclass(frozen=True, slots=True)
class Answer:
    """A whole answer: status, headers, and the body read up to its bound."""

    status: int
    headers: CIMultiDictProxy[str]
    body: bytes
    oversized: bool = False  # an error answer's body over its limit: not read, left empty


class Pausable(Protocol):
    """What reads from the socket (aiohttp's connection protocol): held while an answer gathers."""

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...


async def read_bounded(
    stream: aiohttp.StreamReader,
    limit: int,
    *,
    what: str = "",
    announced: int | None = None,
    gather: Pausable | None = None,
) -> bytes:
    """The rest of `stream`, never more than `limit` bytes of it: `ResponseTooLarge` when
    `announced` (its Content-Length) is over `limit`, or as soon as more than `limit` arrive.
    The caller closes the connection after that error (what is left is never read).

    With `gather`, an answer still arriving past `GATHER_AFTER` bytes is read in gathered
    reads: reading from the socket pauses for `GATHER_SECONDS`, and what arrived meanwhile is
    then taken in one read instead of one per packet (see the module docstring's figures)."""
    if announced is not None and announced > limit:
        raise ResponseTooLarge(what, limit, announced)
    if stream.is_eof():  # all here already, as a small answer arrives with its head
        content = stream.read_nowait()
        if len(content) > limit:
            raise ResponseTooLarge(what, limit)
        return content
    chunks: list[bytes] = []
    total = 0
    while True:
        chunk = await stream.read(limit + 1 - total)
        if not chunk:
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)
        total += len(chunk)
        if total > limit:
            raise ResponseTooLarge(what, limit)
        chunks.append(chunk)
        if gather is not None and total > GATHER_AFTER and not stream.is_eof():
            gather.pause_reading()
            await asyncio.sleep(GATHER_SECONDS)  # cancelled: the caller closes the connection
            gather.resume_reading()


async def read_capped(response: aiohttp.ClientResponse, limit: int) -> bytes:
    """A streamed answer's body, bounded like any other (`read_bounded`); over its limit the
    response is closed (its connection is not reused), else it goes back to the pool."""
    announced = None if response.method == "HEAD" else response.content_length
    try:
        what = f"{response.method} {response.url.path}"
        return await read_bounded(response.content, limit, what=what, announced=announced)
    except ResponseTooLarge:
        response.close()
        raise


class HttpClient:
    """The pool and its two ways through (see the module docstring). Built anywhere; its
    aiohttp parts are made on first use, inside the running loop; `close` releases them."""

    def __init__(
        self,
        *,
        tls: ssl.SSLContext | bool | None = None,
        connections: int = 100,
        proxies: Proxies | None = None,
    ) -> None:
        self.proxies = proxies if proxies is not None else Proxies()
        if isinstance(tls, ssl.SSLContext):
            self._tls = tls
        else:
            self._tls = tls_context(verify=tls is not False)
        self.connections = connections
        self._session: aiohttp.ClientSession | None = None
        self._one_shot: aiohttp.ClientSession | None = None  # plain http through a proxy
        self._routes: dict[tuple[Origin, bool], tuple[aiohttp.ClientRequest, Proxy | None]] = {}
        self._kept: weakref.WeakSet[ResponseHandler] = weakref.WeakSet()
        self._closed = False

    def _ready(self, one_shot: bool = False) -> aiohttp.ClientSession:
        """The session (and its connector) to send on; `one_shot`: the one for plain http
        through a proxy, whose connections serve one request each (`force_close`)."""
        if self._closed:
            raise RuntimeError("the HTTP client is closed")
        session = self._one_shot if one_shot else self._session
        if session is None:
            session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=self.connections + RESERVE,
                    limit_per_host=self.connections,
                    ttl_dns_cache=300,
                    ssl=self._tls,
                    force_close=one_shot,
                ),
                cookie_jar=aiohttp.DummyCookieJar(),
                auto_decompress=False,
                skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding"),
                trust_env=False,
            )
            if one_shot:
                self._one_shot = session
            else:
                self._session = session
        return session

    def _route(
        self, origin: Origin, direct: bool = False
    ) -> tuple[aiohttp.ClientRequest, Proxy | None]:
        """How to reach `origin`, for both ways through: a request aiohttp's connector keys its
        pool by (host, port, TLS, proxy) and opens connections for (through the proxy's
        `CONNECT` tunnel for https), and the proxy chosen for it (proxy.py), None when the
        request is `direct` (a credential endpoint's) or no proxy applies."""
        key = (origin, direct)
        found = self._routes.get(key)
        if found is None:
            proxy = None if direct else self.proxies.for_origin(origin.scheme, origin.host)
            route = aiohttp.ClientRequest(
                "GET",
                URL(f"{origin.scheme}://{origin.host}/"),
                loop=asyncio.get_running_loop(),
                proxy=proxy.url if proxy is not None else None,
                proxy_headers=_proxy_headers(origin, proxy),
            )
            found = self._routes[key] = (route, proxy)
        return found

    async def open(
        self,
        origin: Origin,
        method: str,
        target: str,
        headers: Mapping[str, str],
        *,
        data: bytes | AsyncIterator[bytes] | None = None,
    ) -> aiohttp.ClientResponse:
        """The answer unread, for the caller to read (`read_capped`, or in chunks) and release."""
        proxy = self._route(origin)[1]
        session = self._ready(one_shot=proxy is not None and origin.scheme == "http")
        sent = _with_defaults(origin, headers)
        if proxy is not None and proxy.authorization and origin.scheme == "http":
            sent["Proxy-Authorization"] = proxy.authorization
        return await session.request(
            method,
            origin.url(target),
            headers=sent,
            data=data,
            allow_redirects=False,
            timeout=STREAM_TIMEOUT,  # per read: a transfer takes as long as it takes
            proxy=proxy.url if proxy is not None else None,
            proxy_headers=_proxy_headers(origin, proxy),
        )

    async def exchange(
        self,
        origin: Origin,
        method: str,
        target: str,
        headers: Mapping[str, str],
        body: bytes | None = None,
        *,
        ok: tuple[int, ...] = (200,),
        limit: int,
        error_limit: int,
        direct: bool = False,
    ) -> Answer:
        """One request, its answer read whole: a status in `ok` up to `limit` bytes (else
        `ResponseTooLarge`), any other up to `error_limit` (else `oversized`, unread). The
        caller bounds its time (`asyncio.timeout`). `direct`: never through a proxy (the
        credential endpoints)."""
        sent = _with_defaults(origin, headers)
        length = sent.get("Content-Length")
        size = len(body) if body is not None else 0
        if length is None:
            if body is not None or method in ("PUT", "POST"):
                sent["Content-Length"] = str(size)
        elif length != str(size):
            raise ValueError(f"Content-Length {length} for a body of {size} bytes")
        route, proxy = self._route(origin, direct)
        plain_proxied = proxy is not None and origin.scheme == "http"
        session = self._ready(one_shot=plain_proxied)
        connector = session.connector
        assert connector is not None
        if plain_proxied:
            assert proxy is not None
            target = f"http://{origin.host}{target}"  # absolute form, for the proxy
            sent["Connection"] = "close"  # one request per connection (the module docstring)
            if proxy.authorization:
                sent["Proxy-Authorization"] = proxy.authorization
        request = _Request(method, target, sent, body, ok, limit, error_limit, not plain_proxied)
        while True:
            connection = await connector.connect(route, [], _CONNECT_TIMEOUT)
            protocol = connection.protocol
            if protocol is None or not protocol.should_close:
                break
            connection.close()  # it received something while idle: an answer nobody asked for
        try:
            try:
                return await self._exchange(connection, request)
            except _NoAnswer as stale:
                if connection.protocol not in self._kept or method == "POST":
                    raise stale.error from None
            connection.close()
            connection = await connector.connect(route, [], _CONNECT_TIMEOUT)
            try:
                return await self._exchange(connection, request)
            except _NoAnswer as stale:
                raise stale.error from None
        except BaseException:
            connection.close()
            raise

    async def _exchange(self, connection: Connection, request: _Request) -> Answer:
        """Write `request` on `connection` and read its answer; `_NoAnswer` when the connection
        failed before any answer came. Releases the connection after a complete answer."""
        protocol = connection.protocol
        assert protocol is not None
        method = request.method
        try:
            protocol.set_response_params(
                skip_payload=method == "HEAD", read_until_eof=True, auto_decompress=False
            )
            transport = protocol.transport
            if transport is None or transport.is_closing():
                raise ConnectionResetError("the connection closed before the request was sent")
            # aiohttp's own serialiser (C; it refuses control characters in a header, as
            # `StreamWriter` does), the head and a body in memory in one write: one syscall.
            head = serialize_headers(f"{method} {request.target} HTTP/1.1", request.headers)
            transport.write(head + request.body if request.body else head)
            while True:
                message, payload = await protocol.read()
                if not 100 <= message.code < 200:
                    break
        except _STALE as error:
            raise _NoAnswer(error) from None
        except HttpProcessingError as error:
            raise MalformedAnswer(f"not an HTTP/1.1 answer: {error.message}") from None
        coding = message.headers.get("Transfer-Encoding")
        if coding is not None and coding.strip().lower() != "chunked":
            raise MalformedAnswer(f"an unasked-for Transfer-Encoding {coding[:40]!r}")
        status = message.code
        wanted = status in request.ok
        announced = None if method == "HEAD" else _length(message.headers)
        try:
            content = await read_bounded(
                payload,
                request.limit if wanted else request.error_limit,
                announced=announced,
                gather=protocol,
            )
        except ResponseTooLarge as error:
            if wanted:
                what = f"{method} {request.target.split('?', 1)[0]}"
                raise ResponseTooLarge(what, error.limit, error.announced) from None
            connection.close()
            return Answer(status, message.headers, b"", oversized=True)
        except HttpProcessingError as error:
            raise MalformedAnswer(f"a malformed body: {error.message}") from None
        if not request.keep:
            connection.close()
            return Answer(status, message.headers, content)
        self._kept.add(protocol)
        connection.release()
        return Answer(status, message.headers, content)

    async def close(self) -> None:
        """Close every connection; a request after this is refused."""
        self._closed = True
        self._routes.clear()
        for session in (self._session, self._one_shot):
            if session is not None:
                await session.close()
        self._session = self._one_shot = None


def _with_defaults(origin: Origin, headers: Mapping[str, str]) -> CIMultiDict[str]:
    sent = CIMultiDict(headers)
    if "Host" not in sent:
        sent["Host"] = origin.host
    if "User-Agent" not in sent:
        sent["User-Agent"] = USER_AGENT
    return sent


def _proxy_headers(origin: Origin, proxy: Proxy | None) -> CIMultiDict[str] | None:
    """What a `CONNECT` to `proxy` carries: its credentials, and the Host aiohttp would add
    (written here, so that the pool's key, which hashes these, stays the same)."""
    if proxy is None or not proxy.authorization or origin.scheme != "https":
        return None
    return CIMultiDict({"Proxy-Authorization": proxy.authorization, "Host": origin.host})


def _length(headers: CIMultiDictProxy[str]) -> int | None:
    text = headers.get("Content-Length")
    return int(text) if text is not None and text.isdigit() else None
