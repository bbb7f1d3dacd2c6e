"""Renames carried without their bytes. A local rename of a file in sync (`copy_remote`): its
new key made in S3 from the synced object at its old key (CopyObject), no byte sent; the old key
is deleted by the old path's own pass once this one is over (core/moves.py).

Whatever keeps the copy from being exactly that ends in the upload it would otherwise have
been, in the same pass (`job.then`): the source changed or went (412, 404), the new key was
taken (412: then the upload meets it as any upload would), archived, or a store that honours
`If-None-Match` on PutObject but not on CopyObject (Ceph RGW:
`Conditions.copies_as_safe_as_puts`). A store that ignores `x-amz-copy-source-if-match` (RGW;
moto without the tests' patch) and copies another version is caught by the ETag it answers
where ETags are MD5s: that copy is deleted (`If-Match` on it) and the file uploaded. Where they
are not (SSE-KMS, SSE-C) only the condition (or the HEAD before it) guards it.

Cost: one CopyObject per file (S3 copies up to 5 GiB within itself, no byte through us); above
5 GiB a multipart upload whose parts are copied (UploadPartCopy, parts of 512 MiB at least:
ops/multipart.py); then the old key's DeleteObject, as for any delete.
"""

from __future__ import annotations

import logging

from ..core.model import RemoteEntry, is_plain_md5
from ..core.reconcile import Decision, Op
from ..local.proof import verifiable
from ..s3.client import COPY_MAX, NotFound, PreconditionFailed, S3Error
from ..s3.metadata import object_headers
from .job import Job
from .multipart import copy_multipart
from .workspace import Workspace

log = logging.getLogger("sidecar.rename")


class Renames:
    def __init__(self, workspace: Workspace) -> None:
        self._ws = workspace

    async def copy_remote(self, job: Job) -> None:
        """A synced file renamed here, untouched (reconcile's `moved_from`): its new key made
        by CopyObject from the synced object at the old key, only if that is still the synced
        version (`x-amz-copy-source-if-match` on its ETag) and, as for an upload, only if the
        new key holds nothing (`If-None-Match`); mode and mtime restated from the file, the
        write headers (encryption) as for any write."""
        local, move = job.facts.local, job.facts.moved_from
        assert local is not None and move is not None  # reconcile copies only a file renamed here
        source = move.synced.remote
        assert source is not None
        ws = self._ws
        rel = job.rel
        if source.archived or (
            job.decision.if_none_match and not await ws.s3.conditions.copies_as_safe_as_puts()
        ):
            self._not_copied(job)
            return
        key = ws.keys.key_for_rel(rel)
        headers = object_headers(rel, local)
        ws.checks.recheck(job, local)
        if ws.tree.lstat(rel).st_nlink > 1:
            # Another name reaches its bytes: a write through it is reported under that name
            # only, and one that put the mtime back would leave nothing here to show it.
            self._not_copied(job)
            return
        whole = source.size < COPY_MAX
        try:
            if whole:
                result = await ws.s3.copy_object(
                    ws.keys.key_for_rel(move.source),
                    key,
                    headers,
                    if_source_match=source.etag,
                    if_none_match=job.decision.if_none_match,
                )
            else:
                result = await copy_multipart(
                    ws.s3,
                    source=ws.keys.key_for_rel(move.source),
                    key=key,
                    headers=headers,
                    size=source.size,
                    etag=source.etag,
                    settings=ws.settings,
                    if_none_match=job.decision.if_none_match,
                )
        except (PreconditionFailed, NotFound):
            self._not_copied(job)  # changed or gone in S3 (or the new key taken: as an upload)
            return
        except S3Error as error:
            if not error.archived:
                raise
            self._not_copied(job)
            return
        if (
            whole
            and is_plain_md5(source.etag)
            and is_plain_md5(result.etag)
            and verifiable(result.encryption)
            and result.etag != source.etag
        ):
            # Another version was copied (the store ignored the source's condition): not ours.
            await ws.s3.delete_object(key, if_match=result.etag)
            self._not_copied(job)
            return
        ws.etags.saw(result.encryption)
        part_size = result.part_size or (source.part_size if result.etag == source.etag else 0)
        written = RemoteEntry.written(local, result.etag, result.answered_at, part_size)
        ws.state.wrote_remote(rel, local, written)
        metrics = ws.metrics
        metrics.inc(metrics.renames, "server_copy", "ok")
        metrics.inc(metrics.bytes_saved, "server_copy", amount=local.size)
        ws.transfers.done(
            log,
            "copied %s in S3 from its old key (renamed here)",
            rel,
            key=key,
            source=move.source,
            bytes=local.size,
            operation="copy_remote",
        )

    def _not_copied(self, job: Job) -> None:
        """The copy cannot be made: the file is uploaded instead, next in this pass."""
        metrics = self._ws.metrics
        metrics.inc(metrics.renames, "server_copy", "fallback")
        job.then = Decision(Op.UPLOAD, if_none_match=job.decision.if_none_match)


__all__ = ["Renames"]
