"""Typed S3 operations: what the sidecar asks of S3, one method each, over S3's signed-request
path (`s3_requests`: aws/signed.py with S3's rules, s3/errors.py). Conditional writes report a
concurrent change as `PreconditionFailed`; a key that is gone is `None` (HEAD) or nothing to do
(DELETE). Every request that creates an object version (PutObject, CreateMultipartUpload,
CopyObject) takes its headers through `_writing`, the one place for what every write must say
(`write_headers`, headers.py), and every request takes `request_headers`.

A condition means the same on every endpoint: where the endpoint does not honour it (learned
once, conditions.py), the client looks with a HEAD right before the request and answers
`PreconditionFailed` itself (`Conditions.guard`); an answer that should name the new version's
ETag and names none is completed by a HEAD right after (`Conditions.answered`)."""

from __future__ import annotations

import logging
from base64 import b64decode
from collections.abc import AsyncIterator, Awaitable, Callable, Container, Mapping
from dataclasses import replace
from typing import Any

import aiohttp

from .. import checksums
from ..aws.credentials import CredentialsProvider
from ..aws.http import Answer, HttpClient, read_capped
from ..aws.outage import Outage
from ..aws.signed import BodyFactory, SignedRequests
from ..aws.sigv4 import UNSIGNED_PAYLOAD, quote_path
from ..backoff import REQUEST, Backoff
from ..metrics import Metrics
from . import xml
from .answers import ObjectHead, PutResult
from .conditions import Conditions, naming
from .endpoint import Endpoint
from .errors import (
    ERROR_DOCUMENT_LIMIT,
    RESULT_LIMIT,
    S3_RULES,
    BodyChanged,
    NotFound,
    PreconditionFailed,
    ResponseTooLarge,
    S3Error,
    S3Unavailable,
)
from .metadata import (
    multipart_etag,
    normalize_etag,
    normalize_last_modified,
)

Reply = Answer  # a whole answer: status, headers, body


def s3_requests(
    http: HttpClient,
    endpoint: Endpoint,
    *,
    region: str,
    credentials: CredentialsProvider,
    metrics: Metrics | None,
    on_reachable: Callable[[bool], None] | None = None,
    attempts: int = 8,
    retry: Backoff = REQUEST,
    outage: Outage | None = None,
) -> SignedRequests:
    """The signed-request path to S3 at `endpoint`: S3's rules and bounds, counted in
    `metrics` (s3_requests, s3_retries, durations; None: not counted, as the probe's),
    reachability told to `on_reachable`, its outages said when they begin and end
    (aws/outage.py)."""
    return SignedRequests(
        http=http,
        origin=endpoint.origin,
        region=region,
        credentials=credentials,
        rules=S3_RULES,
        limit=RESULT_LIMIT,
        error_limit=ERROR_DOCUMENT_LIMIT,
        attempts=attempts,
        retry=retry,
        metrics=metrics,
        on_reachable=on_reachable,
        outage=outage or Outage("S3", logging.getLogger("sidecar.s3")),
    )


class _Requests:
    """What every operation of `S3Client` sends its request through: the signed path with the
    headers every request carries, the key's path, a write's headers."""

    def __init__(
        self,
        requests: SignedRequests,
        endpoint: Endpoint,
        bucket: str,
        *,
        write_headers: Mapping[str, str] | None = None,
        request_headers: Mapping[str, str] | None = None,
        conditions: Conditions | None = None,
    ) -> None:
        """`conditions`: what the endpoint honours, probed before the first conditional write;
        without, AWS's semantics are assumed (never probed)."""
        self.endpoint = endpoint
        self.bucket = bucket
        self._requests = requests
        self._write_headers = dict(write_headers or {})
        self._request_headers = dict(request_headers or {})  # on every request (requester pays)
        self.conditions = conditions if conditions is not None else Conditions()

    async def _request(self, operation: str, method: str, path: str, **options: Any) -> Reply:
        """A request with what every request carries (`request_headers`)."""
        return await self._requests.request(operation, method, path, **self._every(options))

    async def _stream(
        self, operation: str, method: str, path: str, **options: Any
    ) -> aiohttp.ClientResponse:
        return await self._requests.stream(operation, method, path, **self._every(options))

    def _every(self, options: dict[str, Any]) -> dict[str, Any]:
        """`options` with `request_headers` added to its headers."""
        if self._request_headers:
            options["headers"] = {**(options.get("headers") or {}), **self._request_headers}
        return options

    def _path(self, key: str | None) -> str:
        return self.endpoint.path_for(key) if key is not None else self.endpoint.base_path

    def _writing(self, headers: Mapping[str, str]) -> dict[str, str]:
        """The headers of a request that creates an object version, with what every write
        must carry (`write_headers`)."""
        return {**headers, **self._write_headers}


class S3Client(_Requests):
    """One method each for what the sidecar asks of S3."""

    async def _guarded(
        self, operation: str, key: str, if_match: str | None, if_none_match: bool
    ) -> tuple[dict[str, str], Callable[[], Awaitable[None]] | None]:
        """A write's condition headers (`Conditions.headers`: a HEAD first where the endpoint
        does not honour the condition), and what runs before each retry (`Conditions.again`)."""
        look = _look(self, key)
        headers = await self.conditions.headers(operation, key, if_match, if_none_match, look)
        return headers, self.conditions.again(operation, key, if_match, if_none_match, look)

    async def put_object(
        self,
        key: str,
        body: bytes | BodyFactory,
        length: int,
        headers: Mapping[str, str],
        *,
        checksum: str,
        if_match: str | None = None,
        if_none_match: bool = False,
    ) -> PutResult:
        """`checksum`: the SHA-256 of the body (checksums.full), which S3 checks and keeps."""
        conditions, again = await self._guarded("PutObject", key, if_match, if_none_match)
        all_headers = {
            "Content-Length": str(length),
            **self._writing(headers),
            checksums.HEADER: checksum,
            "x-amz-sdk-checksum-algorithm": checksums.ALGORITHM,
            **conditions,
        }
        try:
            response = await self._request(
                "PutObject",
                "PUT",
                self._path(key),
                subject=key,
                headers=all_headers,
                body=body,
                payload_hash=UNSIGNED_PAYLOAD,
                before_retry=again,
            )
        except NotFound as error:
            if if_match:  # If-Match on a key that is gone: the object changed under us
                raise PreconditionFailed(
                    error.operation, error.status, error.code, "", key
                ) from None
            raise
        except PreconditionFailed as error:
            error.if_match = if_match if "If-Match" in all_headers else None
            raise
        result = PutResult.from_headers(response.headers, checksum=checksum)
        if result.etag:
            return result
        sent_md5 = headers.get("Content-MD5")
        expected = b64decode(sent_md5).hex() if sent_md5 else None
        etag = await self.conditions.answered("PutObject", key, "", expected, _look(self, key))
        return replace(result, etag=etag)

    async def head_object(self, key: str) -> ObjectHead | None:
        try:
            response = await self._request(
                "HeadObject", "HEAD", self._path(key), subject=key, headers=checksums.MODE
            )
        except NotFound:
            return None
        return ObjectHead.from_headers(response.headers)

    async def get_object(self, key: str, *, if_match: str | None = None) -> aiohttp.ClientResponse:
        """The streaming response; the caller reads `.content` and must `release()` it."""
        headers = {**checksums.MODE}
        if if_match:
            headers["If-Match"] = self.conditions.header(if_match)
        with naming(if_match):
            return await self._stream(
                "GetObject", "GET", self._path(key), subject=key, headers=headers
            )

    async def get_small_object(self, key: str, *, if_match: str | None = None) -> Reply:
        """The whole object, read up to `RESULT_LIMIT` (else `ResponseTooLarge`): for objects
        known to be small."""
        headers = {**checksums.MODE}
        if if_match:
            headers["If-Match"] = self.conditions.header(if_match)
        with naming(if_match):
            return await self._request(
                "GetObject", "GET", self._path(key), subject=key, headers=headers
            )

    async def delete_object(self, key: str, *, if_match: str | None = None) -> None:
        headers, again = await self._guarded("DeleteObject", key, if_match, False)
        try:
            await self._request(
                "DeleteObject",
                "DELETE",
                self._path(key),
                subject=key,
                headers=headers,
                ok=(200, 204),
                before_retry=again,
            )
        except NotFound:
            return
        except PreconditionFailed as error:
            error.if_match = if_match if headers else None
            raise

    async def copy_object_metadata(
        self, key: str, headers: Mapping[str, str], *, if_match: str | None
    ) -> tuple[str, str]:
        """Replace an object's metadata by copying it onto itself; (etag, last_modified)."""
        copy_headers = {
            "x-amz-copy-source": "/" + self.bucket + "/" + quote_path(key),
            "x-amz-metadata-directive": "REPLACE",
            **self._writing(headers),
        }
        condition, again = await self._guarded("CopyObject", key, if_match, False)
        if condition:
            copy_headers["x-amz-copy-source-if-match"] = condition["If-Match"]
        with naming(if_match if condition else None):
            response = await self._request(
                "CopyObject",
                "PUT",
                self._path(key),
                subject=key,
                headers=copy_headers,
                before_retry=again,
            )
        try:
            return xml.parse_copy_result(response.body)
        except xml.MalformedResponse as error:
            raise S3Error("CopyObject", 200, "CopyFailed", str(error), key) from error

    async def list_objects(
        self, prefix: str, held: Container[bytes] = ()
    ) -> AsyncIterator[xml.ListPage]:
        """The pages listing `prefix`; a page whose digest is in `held` comes back `reused`,
        its objects not parsed (see `xml.parse_list_page`)."""
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
            response = await self._request("ListObjectsV2", "GET", self._path(None), query=query)
            page = xml.parse_list_page(response.body, held)
            answered_at = normalize_last_modified(response.headers.get("Date", ""))
            page = replace(page, answered_at=answered_at)
            yield page
            if not page.next_token:
                return
            token = page.next_token

    async def create_multipart_upload(self, key: str, headers: Mapping[str, str]) -> str:
        """A multipart upload whose parts carry SHA-256 checksums (a COMPOSITE checksum)."""
        response = await self._request(
            "CreateMultipartUpload",
            "POST",
            self._path(key),
            subject=key,
            query=[("uploads", "")],
            headers={**self._writing(headers), "x-amz-checksum-algorithm": checksums.ALGORITHM},
        )
        return xml.parse_initiate_multipart(response.body)

    async def upload_part(
        self,
        key: str,
        upload_id: str,
        number: int,
        body: BodyFactory,
        length: int,
        *,
        checksum: str,
    ) -> str:
        """`checksum`: the part's SHA-256 (checksums.encoded), which S3 checks."""
        response = await self._request(
            "UploadPart",
            "PUT",
            self._path(key),
            subject=key,
            query=[("partNumber", str(number)), ("uploadId", upload_id)],
            headers={
                "Content-Length": str(length),
                checksums.HEADER: checksum,
                "x-amz-sdk-checksum-algorithm": checksums.ALGORITHM,
            },
            body=body,
            payload_hash=UNSIGNED_PAYLOAD,
        )
        return normalize_etag(response.headers.get("ETag", ""))

    async def complete_multipart_upload(
        self,
        key: str,
        upload_id: str,
        etags: list[str],
        part_checksums: list[str],
        *,
        if_match: str | None = None,
        if_none_match: bool = False,
    ) -> PutResult:
        """Completed from the parts' ETags and SHA-256 checksums (each as sent); the result
        carries the object's composite checksum (`checksums.composite`)."""
        operation = "CompleteMultipartUpload"
        document = xml.build_complete_multipart(etags, part_checksums)
        conditions, again = await self._guarded(operation, key, if_match, if_none_match)
        with naming(if_match if "If-Match" in conditions else None):
            response = await self._request(
                operation,
                "POST",
                self._path(key),
                subject=key,
                query=[("uploadId", upload_id)],
                headers={
                    "Content-Length": str(len(document)),
                    "Content-Type": "application/xml",
                    **conditions,
                },
                body=document,
                payload_hash=UNSIGNED_PAYLOAD,
                before_retry=again,
            )
        try:
            etag = xml.parse_complete_multipart(response.body)
        except xml.MalformedResponse as error:
            raise S3Error(operation, 200, "CompleteFailed", str(error), key) from error
        expected = multipart_etag(etags)
        etag = await self.conditions.answered(operation, key, etag, expected, _look(self, key))
        whole = checksums.composite(b64decode(value) for value in part_checksums)
        return PutResult.from_headers(response.headers, etag, whole)

    async def abort_multipart_upload(self, key: str, upload_id: str) -> None:
        try:
            await self._request(
                "AbortMultipartUpload",
                "DELETE",
                self._path(key),
                subject=key,
                query=[("uploadId", upload_id)],
                ok=(200, 204),
            )
        except NotFound:
            return


def _look(s3: S3Client, key: str) -> Callable[[], Awaitable[str | None]]:
    """A HEAD of `key` when called: the ETag S3 holds then, or None (conditions.py's `Look`)."""

    async def look() -> str | None:
        head = await s3.head_object(key)
        return None if head is None else head.etag

    return look


__all__ = [
    "ERROR_DOCUMENT_LIMIT",
    "RESULT_LIMIT",
    "BodyChanged",
    "BodyFactory",
    "Endpoint",
    "NotFound",
    "ObjectHead",
    "PreconditionFailed",
    "PutResult",
    "Reply",
    "ResponseTooLarge",
    "S3Client",
    "S3Error",
    "S3Unavailable",
    "read_capped",
    "s3_requests",
]
