"""The four requests of a multipart upload (ops/multipart.py drives them): created with a SHA-256
checksum per part (a COMPOSITE checksum), parts sent unsigned with theirs, completed under the
same conditions as a PutObject (an answer without the new version's ETag completed by a HEAD:
`Conditions.answered`), aborted whatever failed. A part of `S3Client`, apart for its size."""

from __future__ import annotations

from base64 import b64decode
from collections.abc import Mapping

from .. import checksums
from ..aws.signed import BodyFactory
from ..aws.sigv4 import UNSIGNED_PAYLOAD
from . import xml
from .answers import PutResult
from .conditions import naming
from .errors import NotFound, S3Error
from .metadata import multipart_etag, normalize_etag
from .requests import S3Requests


class MultipartRequests(S3Requests):
    """A multipart upload's requests, one method each."""

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
        etag = await self.conditions.answered(operation, key, etag, expected, self._look(key))
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


__all__ = ["MultipartRequests"]
