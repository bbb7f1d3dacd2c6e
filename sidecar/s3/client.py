"""Typed S3 operations: what the sidecar asks of S3, one method each, over S3's signed-request
path (`s3_requests` and the `S3Requests` base, requests.py). Conditional writes report a
concurrent change as `PreconditionFailed`; a key that is gone is `None` (HEAD) or nothing to do
(DELETE). Every request that creates an object version (PutObject, CreateMultipartUpload,
CopyObject) takes its headers through `_writing`, the one place for what every write must say
(`write_headers`, headers.py), and every request takes `request_headers`.

A condition means the same on every endpoint: where the endpoint does not honour it (learned
once, conditions.py), the client looks with a HEAD right before the request and answers
`PreconditionFailed` itself (`Conditions.guard`); an answer that should name the new version's
ETag and names none is completed by a HEAD right after (`Conditions.answered`)."""

from __future__ import annotations

import hashlib
from base64 import b64decode, b64encode
from collections.abc import AsyncIterator, Container, Mapping, Sequence
from dataclasses import replace

import aiohttp

from .. import checksums
from ..aws.http import read_capped
from ..aws.signed import BodyFactory
from ..aws.sigv4 import UNSIGNED_PAYLOAD, quote_path
from . import xml
from .answers import ObjectHead, PutResult
from .conditions import both_looks, naming
from .errors import (
    ERROR_DOCUMENT_LIMIT,
    RESULT_LIMIT,
    BodyChanged,
    NotFound,
    PreconditionFailed,
    ResponseTooLarge,
    S3Error,
    S3Unavailable,
)
from .metadata import (
    normalize_last_modified,
)
from .multipart import MultipartRequests
from .requests import Reply, s3_requests

COPY_MAX = 5 * 1024**3  # the most one CopyObject copies (S3's limit; UploadPartCopy beyond)


class S3Client(MultipartRequests):
    """One method each for what the sidecar asks of S3."""

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
        etag = await self.conditions.answered("PutObject", key, "", expected, self._look(key))
        return replace(result, etag=etag)

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

    async def delete_objects(self, items: Sequence[tuple[str, str | None]]) -> dict[str, str]:
        """One DeleteObjects: each key deleted only if it holds its ETag (None: whatever it
        holds), as the probe proved the endpoint honours (`delete_objects_if_match`). Returns
        the keys S3 did not delete, each with its error code (`PreconditionFailed`: another
        version is there; `NoSuchKey`: gone already). Keys must be `xml.carried_verbatim`."""
        operation = "DeleteObjects"
        document = xml.build_delete(items, self.conditions.header)
        digest = hashlib.md5(document, usedforsecurity=False).digest()
        response = await self._request(
            operation,
            "POST",
            self._path(None),
            query=[("delete", "")],
            headers={
                "Content-Length": str(len(document)),
                "Content-Type": "application/xml",
                "Content-MD5": b64encode(digest).decode(),
            },
            body=document,
            payload_hash=UNSIGNED_PAYLOAD,
        )
        try:
            return xml.parse_delete_result(response.body)
        except xml.MalformedResponse as error:
            raise S3Error(operation, 200, "DeleteFailed", str(error), "") from error

    async def copy_object_metadata(
        self, key: str, headers: Mapping[str, str], *, if_match: str | None
    ) -> tuple[str, str]:
        """Replace an object's metadata by copying it onto itself; (etag, last_modified)."""
        response = await self._copy(
            key, key, headers, if_source_match=if_match, if_none_match=False
        )
        return _copy_result(response, key)

    async def copy_object(
        self,
        source: str,
        key: str,
        headers: Mapping[str, str],
        *,
        if_source_match: str | None,
        if_none_match: bool,
    ) -> PutResult:
        """A new object at `key` made in S3 from the object at `source` (no bytes sent): with
        `if_source_match`, only if that one is still that version
        (`x-amz-copy-source-if-match`); with `if_none_match`, only if `key` holds nothing
        (`If-None-Match: *`). Each is checked with a HEAD first where the endpoint does not
        honour it (conditions.py). Its metadata replaced by `headers`. A source that is gone
        is `NotFound`; a condition that fails, `PreconditionFailed`. Up to 5 GiB (S3's limit
        for one CopyObject)."""
        response = await self._copy(
            source, key, headers, if_source_match=if_source_match, if_none_match=if_none_match
        )
        return PutResult.from_headers(response.headers, _copy_result(response, key)[0])

    async def _copy(
        self,
        source: str,
        key: str,
        headers: Mapping[str, str],
        *,
        if_source_match: str | None,
        if_none_match: bool,
    ) -> Reply:
        """One CopyObject under its conditions (`_copy_result` reads its answer). A 412 names
        the source's ETag (`naming`) only on a copy onto itself: then a HEAD of the key can
        tell whether the ETag's form was refused (`Conditions.refused_as_sent`)."""
        from_source, again_source = await self._guarded(
            "CopyObject", source, if_source_match, False
        )
        to_key, again_key = await self._guarded("CopyObject", key, None, if_none_match)
        copy_headers = {
            "x-amz-copy-source": "/" + self.bucket + "/" + quote_path(source),
            "x-amz-metadata-directive": "REPLACE",
            **self._writing(headers),
            **to_key,
        }
        if from_source:
            copy_headers["x-amz-copy-source-if-match"] = from_source["If-Match"]
        with naming(if_source_match if from_source and source == key else None):
            response = await self._request(
                "CopyObject",
                "PUT",
                self._path(key),
                subject=key,
                headers=copy_headers,
                before_retry=both_looks(again_source, again_key),
            )
        return response

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


def _copy_result(response: Reply, key: str) -> tuple[str, str]:
    """A CopyObject's answer: (etag, last_modified), its 200 with an error inside refused."""
    try:
        return xml.parse_copy_result(response.body)
    except xml.MalformedResponse as error:
        raise S3Error("CopyObject", 200, "CopyFailed", str(error), key) from error


__all__ = [
    "COPY_MAX",
    "ERROR_DOCUMENT_LIMIT",
    "RESULT_LIMIT",
    "BodyChanged",
    "BodyFactory",
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
