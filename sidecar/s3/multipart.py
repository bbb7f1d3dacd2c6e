"""The requests of a multipart upload (ops/multipart.py drives them): created with a SHA-256
checksum per part (a COMPOSITE checksum), parts sent unsigned with theirs or copied in S3 from
another object (UploadPartCopy: a rename over 5 GiB, no checksum then), completed under the
same conditions as a PutObject (an answer without the new version's ETag completed by a HEAD:
`Conditions.answered`), aborted whatever failed. A part of `S3Client`, apart for its size."""

from __future__ import annotations

from base64 import b64decode
from collections.abc import Mapping

from .. import checksums
from ..aws.signed import BodyFactory
from ..aws.sigv4 import UNSIGNED_PAYLOAD, quote_path
from . import xml
from .answers import PutResult
from .conditions import naming
from .errors import NotFound, S3Error
from .metadata import multipart_etag, normalize_etag
from .requests import S3Requests


class MultipartRequests(S3Requests):
    """A multipart upload's requests, one method each."""

    async def create_multipart_upload(
        self, key: str, headers: Mapping[str, str], *, checksum: bool = True
    ) -> str:
        """A multipart upload whose parts carry SHA-256 checksums (a COMPOSITE checksum);
        without `checksum`, none (the parts of a copy: UploadPartCopy)."""
        algorithm = {"x-amz-checksum-algorithm": checksums.ALGORITHM} if checksum else {}
        response = await self._request(
            "CreateMultipartUpload",
            "POST",
            self._path(key),
            subject=key,
            query=[("uploads", "")],
            headers={**self._writing(headers), **algorithm},
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

    async def upload_part_copy(
        self,
        key: str,
        upload_id: str,
        number: int,
        *,
        source: str,
        first: int,
        last: int,
        if_source_match: str,
    ) -> str:
        """Part `number` of `key`'s multipart upload copied in S3 from bytes `first` to `last`
        (inclusive) of the object at `source`, only if that one is still `if_source_match` (a
        HEAD first where the endpoint does not honour it, as for CopyObject); its ETag."""
        condition, again = await self._guarded("UploadPartCopy", source, if_source_match, False)
        headers = {
            "x-amz-copy-source": "/" + self.bucket + "/" + quote_path(source),
            "x-amz-copy-source-range": f"bytes={first}-{last}",
        }
        if condition:
            headers["x-amz-copy-source-if-match"] = condition["If-Match"]
        response = await self._request(
            "UploadPartCopy",
            "PUT",
            self._path(key),
            subject=key,
            query=[("partNumber", str(number)), ("uploadId", upload_id)],
            headers=headers,
            before_retry=again,
        )
        try:
            etag, _ = xml.parse_copy_result(response.body)
        except xml.MalformedResponse as error:
            raise S3Error("UploadPartCopy", 200, "CopyFailed", str(error), key) from error
        return etag

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
        whole = (
            checksums.composite(b64decode(value) for value in part_checksums)
            if part_checksums
            else ""  # (a copy's parts carry none)
        )
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
