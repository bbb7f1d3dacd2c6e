"""The one request path to S3: every request signed with our SigV4 signer, to an `Endpoint`.
A request whose body is in memory and whose answer is read whole (listings, HEADs, DELETEs,
small PUTs and GETs) goes over `Wire` (wire.py: lean HTTP/1.1, a third of the CPU); one that
streams a body either way goes over the aiohttp session.

Retries live here and only here: connection failures, 5xx, throttling and request timeouts are
retried with the one back-off (backoff.py's `REQUEST`: capped, jittered, exponential); a
rejected or expired credential forces one refresh; a clock skew reported by S3 is corrected from
its `Date` header. Anything else becomes a
typed `S3Error` the caller can act on (`PreconditionFailed` is how conditional writes report a
concurrent change).

No answer is read without a bound: a broken or hostile endpoint cannot exhaust memory. An error
document is read up to `ERROR_DOCUMENT_LIMIT` (64 KiB) and past that is not parsed, only its
status counts; any other answer read whole (listings, XML results) is read up to
`RESULT_LIMIT` (8 MiB, twice a worst-case page of 1,000 URL-encoded 1,024-byte keys) and past
that fails with `ResponseTooLarge`. A body whose Content-Length announces more than its limit
is not read at all, and a cut response is closed, never returned to the pool. Streamed bodies
(GetObject) are the caller's: `read_capped` bounds them the same way.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import TypeVar, cast
from urllib.parse import urlsplit

import aiohttp
from yarl import URL

from ..aws.credentials import CredentialsError, CredentialsProvider
from ..aws.sigv4 import EMPTY_SHA256, canonical_query_string, quote_path, sign_request
from ..backoff import REQUEST, Backoff
from ..metrics import Metrics
from . import xml
from .errors import BodyChanged, ResponseTooLarge, S3Unavailable, describe, error_for
from .wire import Answer, Wire, WireError

log = logging.getLogger("sidecar.s3")

USER_AGENT = "s3sync-sidecar"

BodyFactory = Callable[[], AsyncIterator[bytes]]
Body = bytes | BodyFactory | None
_READ_CHUNK = 64 * 1024
_A = TypeVar("_A")

_RETRYABLE_STATUS = frozenset({500, 502, 503, 504, 429})
_RETRYABLE_CODES = frozenset(
    {
        "RequestTimeout",
        "SlowDown",
        "InternalError",
        "OperationAborted",
        "ServiceUnavailable",
        "RequestTimeTooSkewed",
    }
)
_CREDENTIAL_CODES = frozenset(
    {"ExpiredToken", "InvalidAccessKeyId", "InvalidToken", "TokenRefreshRequired"}
)


# A request with a small body and a small answer gets one deadline (one timer); a streamed
# body or answer gets a per-read deadline instead, however long the transfer takes.
_SHORT_SECONDS = 120.0
_STREAM_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=120)

ERROR_DOCUMENT_LIMIT = 64 * 1024
RESULT_LIMIT = 8 * 1024 * 1024


async def read_capped(response: aiohttp.ClientResponse, limit: int) -> bytes:
    """The body of `response`, read in chunks and never more than `limit` bytes of it.

    Raises `ResponseTooLarge`, after closing the response (its connection is not reused), when
    its Content-Length announces more than `limit`, or as soon as more than `limit` bytes
    arrive. A body that ends at or under `limit` is returned whole and the connection goes back
    to the pool, as after `response.read()`.
    """
    what = f"{response.method} {response.url.path}"
    announced = None if response.method == "HEAD" else response.content_length
    if announced is not None and announced > limit:
        response.close()
        raise ResponseTooLarge(what, limit, announced)
    chunks: list[bytes] = []
    total = 0
    while True:
        chunk = await response.content.read(min(_READ_CHUNK, limit + 1 - total))
        if not chunk:
            return b"".join(chunks)
        total += len(chunk)
        if total > limit:
            response.close()
            raise ResponseTooLarge(what, limit)
        chunks.append(chunk)


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where a bucket lives: from a mobius3-style pattern with `{}` for the bucket name."""

    scheme: str
    host: str  # the Host header: hostname, and the port when it is not the default
    base_path: str  # "/" (virtual-hosted) or "/bucket/" (path-style)

    @classmethod
    def parse(cls, pattern: str, bucket: str) -> Endpoint:
        if pattern.count("{}") != 1:
            raise ValueError("must contain `{}` exactly once, where the bucket name goes")
        url = pattern.replace("{}", bucket)
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL")
        if parts.query or parts.fragment:
            raise ValueError("must not have a query string or fragment")
        host = parts.hostname
        if ":" in host:
            host = f"[{host}]"
        default_port = 443 if parts.scheme == "https" else 80
        try:
            port = parts.port
        except ValueError as error:
            raise ValueError("has an invalid port") from error
        if port is not None and port != default_port:
            host = f"{host}:{port}"
        base_path = parts.path or "/"
        if not base_path.endswith("/"):
            base_path += "/"
        return cls(parts.scheme, host, base_path)

    @property
    def hostname(self) -> str:
        """What to connect to (`host` without its port or brackets)."""
        return urlsplit(f"{self.scheme}://{self.host}").hostname or self.host

    @property
    def port(self) -> int:
        return urlsplit(f"{self.scheme}://{self.host}").port or (
            443 if self.scheme == "https" else 80
        )

    def path_for(self, key: str) -> str:
        return self.base_path + quote_path(key)

    def url(self, path: str, query: str) -> URL:
        return URL(
            f"{self.scheme}://{self.host}{path}" + (f"?{query}" if query else ""), encoded=True
        )


@dataclass(slots=True)
class Reply:
    """A whole answer: status, headers and body (read up to its bound)."""

    status: int
    headers: Mapping[str, str]
    body: bytes


class _BodyWatch:
    """Tells a failed request apart from a body that abandoned itself (BodyChanged)."""

    __slots__ = ("changed",)

    def __init__(self) -> None:
        self.changed: BodyChanged | None = None

    def wrap(self, factory: BodyFactory) -> AsyncIterator[bytes]:
        async def body() -> AsyncIterator[bytes]:
            try:
                async for chunk in factory():
                    yield chunk
            except BodyChanged as error:
                self.changed = error
                raise

        return body()


class Transport:
    """Signs, sends and retries. The only code that talks to the endpoint."""

    def __init__(
        self,
        *,
        session: aiohttp.ClientSession,
        endpoint: Endpoint,
        region: str,
        credentials: CredentialsProvider,
        metrics: Metrics,
        max_attempts: int = 8,
        retry: Backoff = REQUEST,
        on_reachable: Callable[[bool], None] | None = None,
        ssl_context: ssl.SSLContext | bool | None = None,
        connections: int = 100,
    ) -> None:
        self._session = session
        self.endpoint = endpoint
        # Requests with a body in memory and an answer read whole go on the lean path.
        self._wire = Wire(
            scheme=endpoint.scheme,
            hostname=endpoint.hostname,
            port=endpoint.port,
            ssl_context=ssl_context,
            limit=connections,
        )
        self._region = region
        self._credentials = credentials
        self._metrics = metrics
        self._max_attempts = max_attempts
        self._retry = retry
        self._clock_offset = timedelta(0)
        self._on_reachable = on_reachable

    async def request(
        self,
        operation: str,
        method: str,
        key: str | None,
        *,
        query: Iterable[tuple[str, str]] = (),
        headers: Mapping[str, str] | None = None,
        body: Body = None,
        payload_hash: str = EMPTY_SHA256,
        ok: tuple[int, ...] = (200,),
    ) -> Reply:
        """Send, retrying what may be retried; the whole answer (read up to its bound)."""
        return await self._send(
            operation,
            method,
            key,
            query=query,
            headers=headers,
            body=body,
            payload_hash=payload_hash,
            ok=ok,
            answer=_read_reply,
        )

    async def stream(
        self, operation: str, method: str, key: str, *, headers: Mapping[str, str]
    ) -> aiohttp.ClientResponse:
        """Send, retrying what may be retried; the answer unread (the caller releases it)."""
        return await self._send(operation, method, key, headers=headers, answer=_unread)

    async def _send(
        self,
        operation: str,
        method: str,
        key: str | None,
        *,
        query: Iterable[tuple[str, str]] = (),
        headers: Mapping[str, str] | None = None,
        body: Body = None,
        payload_hash: str = EMPTY_SHA256,
        ok: tuple[int, ...] = (200,),
        answer: Callable[[aiohttp.ClientResponse], Awaitable[_A]],
    ) -> _A:
        path = self.endpoint.path_for(key) if key is not None else self.endpoint.base_path
        query_string = canonical_query_string(query)
        target = f"{path}?{query_string}" if query_string else path
        headers = dict(headers or {})
        refreshed = False
        attempt = 0
        while True:
            attempt += 1
            try:
                creds = await self._credentials.get()
            except CredentialsError as error:
                if attempt >= self._max_attempts:
                    raise S3Unavailable(f"{operation}: no credentials: {error}") from error
                self._metrics.inc(self._metrics.s3_retries, operation, "credentials")
                await asyncio.sleep(self._backoff(attempt))
                continue
            signed = sign_request(
                method=method,
                host=self.endpoint.host,
                path=path,
                query=query_string,
                headers=headers,
                payload_hash=payload_hash,
                access_key_id=creds.access_key_id,
                secret_access_key=creds.secret_access_key,
                session_token=creds.session_token,
                region=self._region,
                now=datetime.now(UTC) + self._clock_offset,
            )
            send_headers = {
                "Host": self.endpoint.host,
                "User-Agent": USER_AGENT,
                **headers,
                **signed,
            }
            watch = _BodyWatch()
            data: bytes | AsyncIterator[bytes] | None
            data = watch.wrap(body) if callable(body) else body
            started = time.monotonic()
            wired: Answer | None = None
            try:
                if answer is _read_reply and not callable(body):
                    async with asyncio.timeout(_SHORT_SECONDS):
                        wired = await self._wire.request(
                            method,
                            target,
                            send_headers,
                            body,
                            ok=ok,
                            limit=RESULT_LIMIT,
                            error_limit=ERROR_DOCUMENT_LIMIT,
                        )
                else:
                    response = await self._session.request(
                        method,
                        self.endpoint.url(path, query_string),
                        headers=send_headers,
                        data=data,
                        allow_redirects=False,
                        timeout=_STREAM_TIMEOUT,
                    )
            except asyncio.CancelledError:
                raise
            except ResponseTooLarge as error:
                raise _too_large(operation, key, error) from None
            except Exception as error:
                if watch.changed is not None:
                    raise watch.changed from None
                if isinstance(error, BodyChanged):
                    raise
                if not isinstance(error, aiohttp.ClientError | TimeoutError | OSError | WireError):
                    raise
                self._metrics.inc(self._metrics.s3_requests, operation, "error")
                self._reachable(False)
                if attempt >= self._max_attempts:
                    raise S3Unavailable(f"{operation} {key!r}: {describe(error)}") from error
                self._metrics.inc(self._metrics.s3_retries, operation, "connection")
                log.debug("retrying %s after %s", operation, describe(error))
                await asyncio.sleep(self._backoff(attempt))
                continue
            self._metrics.observe(
                self._metrics.s3_request_duration, operation, value=time.monotonic() - started
            )
            status = wired.status if wired is not None else response.status
            self._metrics.inc(self._metrics.s3_requests, operation, str(status))
            self._reachable(True)
            if wired is not None:
                if status in ok:
                    # `answer` is `_read_reply` on this path: the answer is already whole.
                    return cast(_A, Reply(status, wired.headers, wired.body))
                content, oversized = wired.body, wired.oversized
                answered: Mapping[str, str] = wired.headers
            elif response.status in ok:
                try:
                    return await answer(response)
                except ResponseTooLarge as error:
                    raise _too_large(operation, key, error) from None
                except (aiohttp.ClientError, TimeoutError) as error:
                    response.release()
                    if attempt >= self._max_attempts:
                        raise S3Unavailable(f"{operation}: {describe(error)}") from error
                    self._metrics.inc(self._metrics.s3_retries, operation, "connection")
                    await asyncio.sleep(self._backoff(attempt))
                    continue
            else:
                answered = response.headers
                content, oversized = await _error_document(response)
            error_doc = xml.parse_error(content)
            code = error_doc.code if error_doc else ""
            message = error_doc.message if error_doc else ""
            if oversized:  # only the status is known; 5xx and 429 are retried as usual
                message = f"(an error document over {ERROR_DOCUMENT_LIMIT} bytes, not read)"
            # A HEAD error has no body to name its code: a 400/403 there may be an expired
            # credential too, worth one refresh.
            bodyless_denial = method == "HEAD" and not code and status in (400, 403)
            if (code in _CREDENTIAL_CODES or bodyless_denial) and not refreshed:
                refreshed = True
                self._credentials.invalidate()
                self._metrics.inc(self._metrics.s3_retries, operation, "credentials")
                continue
            if code == "RequestTimeTooSkewed":
                self._correct_clock(answered.get("Date"))
            retryable = status in _RETRYABLE_STATUS or code in _RETRYABLE_CODES
            if retryable and attempt < self._max_attempts:
                self._metrics.inc(self._metrics.s3_retries, operation, code or str(status))
                await asyncio.sleep(self._backoff(attempt))
                continue
            raise error_for(operation, status, code, message, key or "")

    def close(self) -> None:
        """Close the lean path's idle connections (the session is its owner's to close)."""
        self._wire.close()

    def _reachable(self, reachable: bool) -> None:
        if self._on_reachable is not None:
            self._on_reachable(reachable)

    def _backoff(self, attempt: int) -> float:
        return self._retry.delay(attempt)

    def _correct_clock(self, date: str | None) -> None:
        if not date:
            return
        try:
            server = parsedate_to_datetime(date)
        except (TypeError, ValueError):
            return
        self._clock_offset = server - datetime.now(UTC)
        log.warning("S3 reports clock skew; signing with an offset of %s", self._clock_offset)


def _too_large(operation: str, key: str | None, error: ResponseTooLarge) -> ResponseTooLarge:
    """An answer over its bound, named by the operation. Not retried here: the same endpoint
    would most likely answer the same; the caller's own retry (the next poll, the path's next
    attempt) will."""
    return ResponseTooLarge(f"{operation} {key!r}", error.limit, error.announced)


async def _error_document(response: aiohttp.ClientResponse) -> tuple[bytes, bool]:
    """An error answer's body up to `ERROR_DOCUMENT_LIMIT`, and whether it went past it."""
    try:
        return await read_capped(response, ERROR_DOCUMENT_LIMIT), False
    except ResponseTooLarge:
        return b"", True
    except (aiohttp.ClientError, TimeoutError):
        return b"", False
    finally:
        response.release()


async def _read_reply(response: aiohttp.ClientResponse) -> Reply:
    """A whole answer, read up to `RESULT_LIMIT`."""
    content = await read_capped(response, RESULT_LIMIT)
    return Reply(response.status, response.headers, content)


async def _unread(response: aiohttp.ClientResponse) -> aiohttp.ClientResponse:
    """The answer as it is, for the caller to stream (and release)."""
    return response
