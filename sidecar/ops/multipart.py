"""A large file uploaded in parts: `multipart_concurrency` parts in flight at once, each
`multipart_chunksize` (more where 10,000 parts would not hold the file), each part's ETag
checked against the MD5 of what was sent (IntegrityError otherwise). Each part carries its
SHA-256 (read just before it is sent; S3 checks it) and the completion their list, so S3 keeps
the object's COMPOSITE checksum, which the result carries (checksums.py).

Whatever fails (a part, the check that the file did not change, a cancellation), the upload
is aborted, the abort shielded from the cancellation, and a part's error is raised as itself
(not as a group). Each part's body checks the file before its last byte, and the file is checked
once more after the last part and before the completion (`UploadSource.check`): a write during
the upload completes nothing. The completion carries the decision's `If-Match` /
`If-None-Match`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
from collections.abc import AsyncIterator

from .. import checksums
from ..core.model import is_plain_md5
from ..s3.client import PutResult, S3Client
from .job import IntegrityError
from .upload_source import UploadSource
from .workspace import ExecutorSettings


async def upload_multipart(
    source: UploadSource, s3: S3Client, settings: ExecutorSettings
) -> PutResult:
    """Upload `source` in parts; what the completion answered."""
    key = source.key
    size = source.local.size
    part_size = max(settings.multipart_chunksize, math.ceil(size / 10_000))
    count = math.ceil(size / part_size)
    upload_id = await s3.create_multipart_upload(key, source.headers)
    etags: list[str] = [""] * count
    sums: list[str] = [""] * count  # each part's SHA-256, read just before it is sent
    limit = asyncio.Semaphore(settings.multipart_concurrency)

    async def send(number: int) -> None:
        offset = (number - 1) * part_size
        length = min(part_size, size - offset)
        async with limit:
            if source.changed():
                raise source.abandon()
            checksum = checksums.encoded(await source.sha256(offset, length))
            digests: list[str] = []
            body = source.body(offset, length, digests)
            etag = await s3.upload_part(key, upload_id, number, body, length, checksum=checksum)
        if digests and is_plain_md5(etag) and etag != digests[-1]:
            raise IntegrityError(f"part {number} of {source.job.rel!r}: ETag is not its MD5")
        etags[number - 1] = etag
        sums[number - 1] = checksum

    async with _aborted_if_failed(s3, key, upload_id):
        async with asyncio.TaskGroup() as group:
            for number in range(1, count + 1):
                group.create_task(send(number))
        source.check()
        decision = source.job.decision
        done = await s3.complete_multipart_upload(
            key,
            upload_id,
            etags,
            sums,
            if_match=decision.if_match,
            if_none_match=decision.if_none_match,
        )
        return dataclasses.replace(done, part_size=part_size)


@contextlib.asynccontextmanager
async def _aborted_if_failed(s3: S3Client, key: str, upload_id: str) -> AsyncIterator[None]:
    """Whatever fails inside (a part, a check, a cancellation), the upload is aborted, the
    abort shielded from the cancellation, and a part's error raised as itself (not as a
    group)."""
    try:
        yield
    except BaseException as error:
        cause = error.exceptions[0] if isinstance(error, BaseExceptionGroup) else error
        with contextlib.suppress(Exception):
            await asyncio.shield(s3.abort_multipart_upload(key, upload_id))
        if cause is not error:
            raise cause from None
        raise


COPY_PART = 512 * 1024**2  # the least a copied part holds (S3 copies each part within itself)


async def copy_multipart(
    s3: S3Client,
    *,
    source: str,
    key: str,
    headers: dict[str, str],
    size: int,
    etag: str,
    settings: ExecutorSettings,
    if_none_match: bool,
) -> PutResult:
    """The object at `key` made in S3 from the `size` bytes of the object at `source`
    (UploadPartCopy: above CopyObject's 5 GiB), each part only if the source is still `etag`;
    the completion under `if_none_match`. Parts of `COPY_PART` at least, `multipart_concurrency`
    at once; aborted whatever fails, as an upload is. The parts carry no checksum (S3 copies
    their bytes; its multipart ETag, of parts of this size, proves them as our uploads' do)."""
    part_size = max(settings.multipart_chunksize, COPY_PART, math.ceil(size / 10_000))
    count = math.ceil(size / part_size)
    upload_id = await s3.create_multipart_upload(key, headers, checksum=False)
    etags: list[str] = [""] * count
    limit = asyncio.Semaphore(settings.multipart_concurrency)

    async def copy(number: int) -> None:
        first = (number - 1) * part_size
        last = min(size, first + part_size) - 1
        async with limit:
            etags[number - 1] = await s3.upload_part_copy(
                key, upload_id, number, source=source, first=first, last=last, if_source_match=etag
            )

    async with _aborted_if_failed(s3, key, upload_id):
        async with asyncio.TaskGroup() as group:
            for number in range(1, count + 1):
                group.create_task(copy(number))
        done = await s3.complete_multipart_upload(
            key, upload_id, etags, [], if_none_match=if_none_match
        )
        return dataclasses.replace(done, part_size=part_size)


__all__ = ["COPY_PART", "copy_multipart", "upload_multipart"]
