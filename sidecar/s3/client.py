"""Typed S3 operations: what the sidecar asks of S3, one method each, over S3's signed-request
path (`s3_requests`: aws/signed.py with S3's rules, s3/errors.py). Conditional writes report a
concurrent change as `PreconditionFailed`; a key that is gone is `None` (HEAD) or nothing to do
(DELETE). Every request that creates an object version (PutObject, CreateMultipartUpload,
CopyObject) takes its headers through `_writing`, the one place for what every write must say
(`write_headers`)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Container, Mapping
from dataclasses import dataclass, replace

import aiohttp

from ..aws.credentials import CredentialsProvider
from ..aws.http import Answer, HttpClient, read_capped
from ..aws.outage import Outage
from ..aws.signed import BodyFactory, SignedRequests
from ..aws.sigv4 import UNSIGNED_PAYLOAD, quote_path
from ..backoff import REQUEST, Backoff
from ..metrics import Metrics
from . import xml
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
    is_archived,
    normalize_etag,
    normalize_last_modified,
    parse_http_date,
    parse_mode,
    parse_mtime,
    seen_unsettled,
)

Reply = Answer  # a whole answer: status, headers, body
COPY_MAX = 5 * 1024**3  # the most one CopyObject copies (S3's limit; UploadPartCopy beyond)


def s3_requests(
    http: HttpClient,
    endpoint: Endpoint,
    *,
    region: str,
    credentials: CredentialsProvider,
    metrics: Metrics,
    on_reachable: Callable[[bool], None] | None = None,
    attempts: int = 8,
    retry: Backoff = REQUEST,
    outage: Outage | None = None,
) -> SignedRequests:
    """The signed-request path to S3 at `endpoint`: S3's rules and bounds, counted in
    `metrics` (s3_requests, s3_retries, durations), reachability told to `on_reachable`, its
    outages said when they begin and end (aws/outage.py)."""
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
    answered_at: str = ""  # the server's `Date`, normalised like Last-Modified
    archived: bool = False  # a GET is refused until it is restored (metadata.is_archived)

    @property
    def unsettled(self) -> bool:
        """Seen within its Last-Modified second (see RemoteEntry.unsettled)."""
        return seen_unsettled(self.last_modified, self.answered_at)

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
            answered_at=normalize_last_modified(headers.get("Date", "")),
            archived=is_archived(
                headers.get("x-amz-storage-class"),
                headers.get("x-amz-archive-status"),
                headers.get("x-amz-restore"),
            ),
        )


@dataclass(frozen=True, slots=True)
class PutResult:
    """What S3 answered to a write: the ETag, the encryption, and the server's `Date` in the
    normalised Last-Modified form (the object's Last-Modified is not later than that)."""

    etag: str
    encryption: str | None
    answered_at: str = ""
    part_size: int = 0  # uploaded in parts of this size (all but the last); 0: one PUT

    @classmethod
    def from_headers(cls, headers: Mapping[str, str], etag: str | None = None) -> PutResult:
        return cls(
            etag if etag is not None else normalize_etag(headers.get("ETag", "")),
            headers.get("x-amz-server-side-encryption"),
            normalize_last_modified(headers.get("Date", "")),
        )


class S3Client:
    def __init__(
        self,
        requests: SignedRequests,
        endpoint: Endpoint,
        bucket: str,
        *,
        write_headers: Mapping[str, str] | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.bucket = bucket
        self._requests = requests
        self._write_headers = dict(write_headers or {})

    def _path(self, key: str | None) -> str:
        return self.endpoint.path_for(key) if key is not None else self.endpoint.base_path

    def _writing(self, headers: Mapping[str, str]) -> dict[str, str]:
        """The headers of a request that creates an object version, with what every write
        must carry (`write_headers`)."""
        return {**headers, **self._write_headers}

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
            **self._writing(headers),
            **_conditions(if_match, if_none_match),
        }
        try:
            response = await self._requests.request(
                "PutObject",
                "PUT",
                self._path(key),
                subject=key,
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
        return PutResult.from_headers(response.headers)

    async def head_object(self, key: str) -> ObjectHead | None:
        try:
            response = await self._requests.request(
                "HeadObject", "HEAD", self._path(key), subject=key
            )
        except NotFound:
            return None
        return ObjectHead.from_headers(response.headers)

    async def get_object(self, key: str, *, if_match: str | None = None) -> aiohttp.ClientResponse:
        """The streaming response; the caller reads `.content` and must `release()` it."""
        headers = {"If-Match": f'"{if_match}"'} if if_match else {}
        return await self._requests.stream(
            "GetObject", "GET", self._path(key), subject=key, headers=headers
        )

    async def get_small_object(self, key: str, *, if_match: str | None = None) -> Reply:
        """The whole object, read up to `RESULT_LIMIT` (else `ResponseTooLarge`): for objects
        known to be small."""
        headers = {"If-Match": f'"{if_match}"'} if if_match else {}
        return await self._requests.request(
            "GetObject", "GET", self._path(key), subject=key, headers=headers
        )

    async def delete_object(self, key: str, *, if_match: str | None = None) -> None:
        try:
            await self._requests.request(
                "DeleteObject",
                "DELETE",
                self._path(key),
                subject=key,
                headers=_conditions(if_match, False),
                ok=(200, 204),
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
            **self._writing(headers),
        }
        if if_match:
            copy_headers["x-amz-copy-source-if-match"] = f'"{if_match}"'
        response = await self._requests.request(
            "CopyObject", "PUT", self._path(key), subject=key, headers=copy_headers
        )
        try:
            return xml.parse_copy_result(response.body)
        except xml.MalformedResponse as error:
            raise S3Error("CopyObject", 200, "CopyFailed", str(error), key) from error

    async def copy_object(
        self,
        source: str,
        key: str,
        headers: Mapping[str, str],
        *,
        if_source_match: str,
        if_none_match: bool,
    ) -> PutResult:
        """A new object at `key` made in S3 from the object at `source` (no bytes sent), only
        if that one is still `if_source_match` (`x-amz-copy-source-if-match`), and with
        `if_none_match` only if `key` holds nothing; its metadata replaced by `headers`.
        A source that is gone is `NotFound`; a condition that fails, `PreconditionFailed`.
        Up to 5 GiB (S3's limit for one CopyObject)."""
        copy_headers = {
            "x-amz-copy-source": "/" + self.bucket + "/" + quote_path(source),
            "x-amz-copy-source-if-match": f'"{if_source_match}"',
            "x-amz-metadata-directive": "REPLACE",
            **self._writing(headers),
            **_conditions(None, if_none_match),
        }
        response = await self._requests.request(
            "CopyObject", "PUT", self._path(key), subject=key, headers=copy_headers
        )
        try:
            etag, _ = xml.parse_copy_result(response.body)
        except xml.MalformedResponse as error:
            raise S3Error("CopyObject", 200, "CopyFailed", str(error), key) from error
        return PutResult.from_headers(response.headers, etag)

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
            response = await self._requests.request(
                "ListObjectsV2", "GET", self._path(None), query=query
            )
            page = xml.parse_list_page(response.body, held)
            answered_at = normalize_last_modified(response.headers.get("Date", ""))
            page = replace(page, answered_at=answered_at)
            yield page
            if not page.next_token:
                return
            token = page.next_token

    async def create_multipart_upload(self, key: str, headers: Mapping[str, str]) -> str:
        response = await self._requests.request(
            "CreateMultipartUpload",
            "POST",
            self._path(key),
            subject=key,
            query=[("uploads", "")],
            headers=self._writing(headers),
        )
        return xml.parse_initiate_multipart(response.body)

    async def upload_part(
        self, key: str, upload_id: str, number: int, body: BodyFactory, length: int
    ) -> str:
        response = await self._requests.request(
            "UploadPart",
            "PUT",
            self._path(key),
            subject=key,
            query=[("partNumber", str(number)), ("uploadId", upload_id)],
            headers={"Content-Length": str(length)},
            body=body,
            payload_hash=UNSIGNED_PAYLOAD,
        )
        return normalize_etag(response.headers.get("ETag", ""))

    async def complete_multipart_upload(
        self,
        key: str,
        upload_id: str,
        etags: list[str],
        *,
        if_match: str | None = None,
        if_none_match: bool = False,
    ) -> PutResult:
        document = xml.build_complete_multipart(etags)
        response = await self._requests.request(
            "CompleteMultipartUpload",
            "POST",
            self._path(key),
            subject=key,
            query=[("uploadId", upload_id)],
            headers={
                "Content-Length": str(len(document)),
                "Content-Type": "application/xml",
                **_conditions(if_match, if_none_match),
            },
            body=document,
            payload_hash=UNSIGNED_PAYLOAD,
        )
        try:
            etag = xml.parse_complete_multipart(response.body)
        except xml.MalformedResponse as error:
            raise S3Error(
                "CompleteMultipartUpload", 200, "CompleteFailed", str(error), key
            ) from error
        return PutResult.from_headers(response.headers, etag)

    async def abort_multipart_upload(self, key: str, upload_id: str) -> None:
        try:
            await self._requests.request(
                "AbortMultipartUpload",
                "DELETE",
                self._path(key),
                subject=key,
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


__all__ = [
    "COPY_MAX",
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
