"""Typed S3 operations over one aiohttp session, every request signed with our SigV4 signer.

Retries live here and only here: connection failures, 5xx, throttling and request timeouts are
retried with capped, jittered exponential backoff; a rejected or expired credential forces one
refresh; a clock skew reported by S3 is corrected from its `Date` header. Anything else becomes a
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
import random
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

import aiohttp
from yarl import URL

from ..aws.credentials import CredentialsError, CredentialsProvider
from ..aws.sigv4 import (
    EMPTY_SHA256,
    UNSIGNED_PAYLOAD,
    canonical_query_string,
    quote_path,
    sign_request,
)
from ..metrics import Metrics
from ..model import normalize_etag
from . import xml
from .metadata import normalize_last_modified, parse_http_date, parse_mode, parse_mtime

log = logging.getLogger("sidecar.s3")

USER_AGENT = "s3sync-sidecar"

BodyFactory = Callable[[], AsyncIterator[bytes]]
Body = bytes | BodyFactory | None

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
_SHORT_TIMEOUT = aiohttp.ClientTimeout(total=120, sock_connect=10)
_STREAM_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=120)

ERROR_DOCUMENT_LIMIT = 64 * 1024
RESULT_LIMIT = 8 * 1024 * 1024
_READ_CHUNK = 64 * 1024


class S3Error(Exception):
    """S3 answered, and the answer was not a success."""

    def __init__(self, operation: str, status: int, code: str, message: str, key: str) -> None:
        super().__init__(f"{operation} {key!r}: HTTP {status} {code} {message}".rstrip())
        self.operation = operation
        self.status = status
        self.code = code
        self.key = key


class PreconditionFailed(S3Error):
    """A conditional write found another version than expected: someone else changed it."""


class NotFound(S3Error):
    pass


class S3Unavailable(Exception):
    """No answer from S3 after every retry (network down, endpoint wrong, credentials absent)."""


class ResponseTooLarge(S3Unavailable):
    """An answer longer than it may be, announced or sent: a broken or hostile endpoint. The
    response was closed, not read on; no more than `limit` bytes of it were kept."""

    def __init__(self, what: str, limit: int, announced: int | None = None) -> None:
        size = f"announces {announced} bytes" if announced is not None else "sends more"
        super().__init__(f"{what}: the answer {size}, over the limit of {limit} bytes")
        self.limit = limit
        self.announced = announced


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


class BodyChanged(Exception):
    """The local file changed while its content was being sent; the upload was abandoned."""


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

    def path_for(self, key: str) -> str:
        return self.base_path + quote_path(key)

    def url(self, path: str, query: str) -> URL:
        return URL(
            f"{self.scheme}://{self.host}{path}" + (f"?{query}" if query else ""), encoded=True
        )


@dataclass(frozen=True, slots=True)
class ObjectHead:
    etag: str
    size: int
    last_modified: str  # normalised (see metadata.normalize_last_modified)
    modified_ns: int | None  # Last-Modified as a time
    mtime_ns: int | None
    mode: int | None
    content_type: str
    encryption: str | None

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> ObjectHead:
        return cls(
            etag=normalize_etag(headers.get("ETag", "")),
            size=int(headers.get("Content-Length", "0") or 0),
            last_modified=normalize_last_modified(headers.get("Last-Modified", "")),
            modified_ns=parse_http_date(headers.get("Last-Modified")),
            mtime_ns=parse_mtime(headers.get("x-amz-meta-mtime")),
            mode=parse_mode(headers.get("x-amz-meta-mode")),
            content_type=headers.get("Content-Type", ""),
            encryption=headers.get("x-amz-server-side-encryption"),
        )


@dataclass(frozen=True, slots=True)
class PutResult:
    etag: str
    encryption: str | None


@dataclass(slots=True)
class _Response:
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


class S3Client:
    def __init__(
        self,
        *,
        session: aiohttp.ClientSession,
        endpoint: Endpoint,
        bucket: str,
        region: str,
        credentials: CredentialsProvider,
        metrics: Metrics,
        max_attempts: int = 8,
        base_delay: float = 0.1,
        max_delay: float = 20.0,
        on_reachable: Callable[[bool], None] | None = None,
    ) -> None:
        self._session = session
        self.endpoint = endpoint
        self.bucket = bucket
        self._region = region
        self._credentials = credentials
        self._metrics = metrics
        self._max_attempts = max_attempts
        self._base_delay = base_delay
        self._max_delay = max_delay
        self._clock_offset = timedelta(0)
        self._on_reachable = on_reachable

    # -- the one request path ------------------------------------------------------------

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
        stream: bool = False,
    ) -> aiohttp.ClientResponse | _Response:
        path = self.endpoint.path_for(key) if key is not None else self.endpoint.base_path
        query_string = canonical_query_string(query)
        url = self.endpoint.url(path, query_string)
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
            try:
                response = await self._session.request(
                    method,
                    url,
                    headers=send_headers,
                    data=data,
                    allow_redirects=False,
                    timeout=_STREAM_TIMEOUT if stream or callable(body) else _SHORT_TIMEOUT,
                )
            except asyncio.CancelledError:
                raise
            except Exception as error:
                if watch.changed is not None:
                    raise watch.changed from None
                if isinstance(error, BodyChanged):
                    raise
                if not isinstance(error, aiohttp.ClientError | TimeoutError | OSError):
                    raise
                self._metrics.inc(self._metrics.s3_requests, operation, "error")
                self._reachable(False)
                if attempt >= self._max_attempts:
                    raise S3Unavailable(f"{operation} {key!r}: {_describe(error)}") from error
                self._metrics.inc(self._metrics.s3_retries, operation, "connection")
                log.debug("retrying %s after %s", operation, _describe(error))
                await asyncio.sleep(self._backoff(attempt))
                continue
            self._metrics.observe(
                self._metrics.s3_request_duration, operation, value=time.monotonic() - started
            )
            self._metrics.inc(self._metrics.s3_requests, operation, str(response.status))
            self._reachable(True)
            if response.status in ok:
                if stream:
                    return response
                try:
                    content = await read_capped(response, RESULT_LIMIT)
                except ResponseTooLarge as error:
                    # Not retried here: the same endpoint would most likely answer the same.
                    # The caller's own retry (the next poll, the path's next attempt) will.
                    raise ResponseTooLarge(
                        f"{operation} {key!r}", error.limit, error.announced
                    ) from None
                except (aiohttp.ClientError, TimeoutError) as error:
                    response.release()
                    if attempt >= self._max_attempts:
                        raise S3Unavailable(f"{operation}: {_describe(error)}") from error
                    self._metrics.inc(self._metrics.s3_retries, operation, "connection")
                    await asyncio.sleep(self._backoff(attempt))
                    continue
                return _Response(response.status, response.headers, content)
            oversized = False
            try:
                content = await read_capped(response, ERROR_DOCUMENT_LIMIT)
            except ResponseTooLarge:
                content, oversized = b"", True
            except (aiohttp.ClientError, TimeoutError):
                content = b""
            finally:
                response.release()
            error_doc = xml.parse_error(content)
            code = error_doc.code if error_doc else ""
            message = error_doc.message if error_doc else ""
            if oversized:  # only the status is known; 5xx and 429 are retried as usual
                message = f"(an error document over {ERROR_DOCUMENT_LIMIT} bytes, not read)"
            # A HEAD error has no body to name its code: a 400/403 there may be an expired
            # credential too, worth one refresh.
            bodyless_denial = method == "HEAD" and not code and response.status in (400, 403)
            if (code in _CREDENTIAL_CODES or bodyless_denial) and not refreshed:
                refreshed = True
                self._credentials.invalidate()
                self._metrics.inc(self._metrics.s3_retries, operation, "credentials")
                continue
            if code == "RequestTimeTooSkewed":
                self._correct_clock(response.headers.get("Date"))
            retryable = response.status in _RETRYABLE_STATUS or code in _RETRYABLE_CODES
            if retryable and attempt < self._max_attempts:
                self._metrics.inc(self._metrics.s3_retries, operation, code or str(response.status))
                await asyncio.sleep(self._backoff(attempt))
                continue
            raise _error_for(operation, response.status, code, message, key or "")

    def _reachable(self, reachable: bool) -> None:
        if self._on_reachable is not None:
            self._on_reachable(reachable)

    def _backoff(self, attempt: int) -> float:
        return random.uniform(0, min(self._max_delay, self._base_delay * 2**attempt))

    def _correct_clock(self, date: str | None) -> None:
        if not date:
            return
        try:
            server = parsedate_to_datetime(date)
        except (TypeError, ValueError):
            return
        self._clock_offset = server - datetime.now(UTC)
        log.warning("S3 reports clock skew; signing with an offset of %s", self._clock_offset)

    # -- operations ----------------------------------------------------------------------

    async def put_object(
        self,
        key: str,
        body: bytes | BodyFactory,
        length: int,
        headers: Mapping[str, str],
        *,
        if_match: str | None = None,
        if_none_match: bool = False,
    ) -> PutResult:
        all_headers = {
            "Content-Length": str(length),
            **headers,
            **_conditions(if_match, if_none_match),
        }
        try:
            response = await self._send(
                "PutObject",
                "PUT",
                key,
                headers=all_headers,
                body=body,
                payload_hash=UNSIGNED_PAYLOAD,
            )
        except NotFound as error:
            if if_match:  # If-Match on a key that is gone: the object changed under us
                raise PreconditionFailed(
                    error.operation, error.status, error.code, "", key
                ) from None
            raise
        assert isinstance(response, _Response)
        return PutResult(
            normalize_etag(response.headers.get("ETag", "")),
            response.headers.get("x-amz-server-side-encryption"),
        )

    async def head_object(self, key: str) -> ObjectHead | None:
        try:
            response = await self._send("HeadObject", "HEAD", key)
        except NotFound:
            return None
        assert isinstance(response, _Response)
        return ObjectHead.from_headers(response.headers)

    async def get_object(self, key: str, *, if_match: str | None = None) -> aiohttp.ClientResponse:
        """The streaming response; the caller reads `.content` and must `release()` it."""
        headers = {"If-Match": f'"{if_match}"'} if if_match else {}
        response = await self._send("GetObject", "GET", key, headers=headers, stream=True)
        assert isinstance(response, aiohttp.ClientResponse)
        return response

    async def delete_object(self, key: str, *, if_match: str | None = None) -> None:
        try:
            await self._send(
                "DeleteObject", "DELETE", key, headers=_conditions(if_match, False), ok=(200, 204)
            )
        except NotFound:
            return

    async def copy_object_metadata(
        self, key: str, headers: Mapping[str, str], *, if_match: str | None
    ) -> tuple[str, str]:
        """Replace an object's metadata by copying it onto itself; (etag, last_modified)."""
        copy_headers = {
            "x-amz-copy-source": "/" + self.bucket + "/" + quote_path(key),
            "x-amz-metadata-directive": "REPLACE",
            **headers,
        }
        if if_match:
            copy_headers["x-amz-copy-source-if-match"] = f'"{if_match}"'
        response = await self._send("CopyObject", "PUT", key, headers=copy_headers)
        assert isinstance(response, _Response)
        try:
            return xml.parse_copy_result(response.body)
        except xml.MalformedResponse as error:
            raise S3Error("CopyObject", 200, "CopyFailed", str(error), key) from error

    async def list_objects(self, prefix: str) -> AsyncIterator[xml.ListPage]:
        token: str | None = None
        while True:
            query = [
                ("list-type", "2"),
                ("prefix", prefix),
                ("encoding-type", "url"),
                ("max-keys", "1000"),
            ]
            if token:
                query.append(("continuation-token", token))
            response = await self._send("ListObjectsV2", "GET", None, query=query)
            assert isinstance(response, _Response)
            page = xml.parse_list_objects_v2(response.body)
            yield page
            if not page.next_token:
                return
            token = page.next_token

    async def create_multipart_upload(self, key: str, headers: Mapping[str, str]) -> str:
        response = await self._send(
            "CreateMultipartUpload", "POST", key, query=[("uploads", "")], headers=headers
        )
        assert isinstance(response, _Response)
        return xml.parse_initiate_multipart(response.body)

    async def upload_part(
        self, key: str, upload_id: str, number: int, body: BodyFactory, length: int
    ) -> str:
        response = await self._send(
            "UploadPart",
            "PUT",
            key,
            query=[("partNumber", str(number)), ("uploadId", upload_id)],
            headers={"Content-Length": str(length)},
            body=body,
            payload_hash=UNSIGNED_PAYLOAD,
        )
        assert isinstance(response, _Response)
        return normalize_etag(response.headers.get("ETag", ""))

    async def complete_multipart_upload(
        self,
        key: str,
        upload_id: str,
        etags: list[str],
        *,
        if_match: str | None = None,
        if_none_match: bool = False,
    ) -> str:
        document = xml.build_complete_multipart(etags)
        response = await self._send(
            "CompleteMultipartUpload",
            "POST",
            key,
            query=[("uploadId", upload_id)],
            headers={
                "Content-Length": str(len(document)),
                "Content-Type": "application/xml",
                **_conditions(if_match, if_none_match),
            },
            body=document,
            payload_hash=UNSIGNED_PAYLOAD,
        )
        assert isinstance(response, _Response)
        try:
            return xml.parse_complete_multipart(response.body)
        except xml.MalformedResponse as error:
            raise S3Error(
                "CompleteMultipartUpload", 200, "CompleteFailed", str(error), key
            ) from error

    async def abort_multipart_upload(self, key: str, upload_id: str) -> None:
        try:
            await self._send(
                "AbortMultipartUpload",
                "DELETE",
                key,
                query=[("uploadId", upload_id)],
                ok=(200, 204),
            )
        except NotFound:
            return


def _conditions(if_match: str | None, if_none_match: bool) -> dict[str, str]:
    if if_match:
        return {"If-Match": f'"{if_match}"'}
    if if_none_match:
        return {"If-None-Match": "*"}
    return {}


def _error_for(operation: str, status: int, code: str, message: str, key: str) -> S3Error:
    if status == 412 or code == "PreconditionFailed":
        return PreconditionFailed(operation, status, code, message, key)
    if status == 404 and code in ("", "NoSuchKey", "NoSuchUpload", "NotFound"):
        return NotFound(operation, status, code, message, key)
    return S3Error(operation, status, code, message, key)


def _describe(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    return f"{type(error).__name__}: {text}" if text != type(error).__name__ else text
