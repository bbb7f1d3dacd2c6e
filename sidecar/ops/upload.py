"""Local to S3: files and symlinks (`upload`), chmod/touch (`upload_meta`), directories
(`put_marker`).

A file is uploaded in one of three shapes by size: read whole on the loop (up to 256 KiB, one
PUT with Content-MD5), streamed from a thread (one PUT, its ETag checked against our MD5), or in
parallel parts (multipart.py, each part's ETag checked). Whatever the shape, the check that the
file did not change runs before the last byte leaves (upload_source.py): inotify is drained
(`barrier`), no IN_MODIFY may have arrived and `fstat` must not have moved; otherwise the request
is abandoned short of its Content-Length, so S3 never stores a torn mix (the writer's close
brings the path back). What is read is reached through `Tree` (safefs.py): never a file behind a
symlinked directory.

Measured: the whole pipeline costs 0.6-0.8 ms of CPU per small file, of which aiohttp's request
machinery is 0.3-0.45 ms and inotify-to-recorded-state about 0.13 ms (README "Measured").
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import os
from base64 import b64encode
from collections.abc import Callable
from dataclasses import replace

from .. import checksums
from ..core.model import Kind, LocalEntry, RemoteEntry, is_plain_md5
from ..local import sqlite
from ..local.localfs import entry_from_stat
from ..local.proof import verifiable
from ..local.workdir import discard
from ..s3.client import COPY_MAX, PreconditionFailed, PutResult, S3Client, S3Error
from ..s3.metadata import format_mode, format_mtime, object_headers
from . import snapshot
from .job import IntegrityError, Job, LocalChanged, RemoteChanged
from .multipart import upload_multipart
from .upload_source import UploadSource
from .workspace import Workspace

log = logging.getLogger("sidecar.upload")

EMPTY = checksums.full(b"")  # a directory marker's


def _content_md5(data: bytes) -> str:
    return b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode()  # what S3 checks


class Uploads:
    def __init__(self, workspace: Workspace, progress: Callable[[], None]) -> None:
        self._ws = workspace
        self._progress = progress  # called as bytes leave: a long upload is not a stall

    async def _visible(
        self, job: Job, key: str, headers: dict[str, str], result: PutResult
    ) -> PutResult:
        """The same bytes written again (same ETag: a PUT of them, or a metadata copy): only
        the metadata changed, and a listing shows it only if Last-Modified (to the second)
        moved past every version it may have listed, ours and others' made in the same second
        included. Copy the object onto itself once the second has turned, so other clients
        see it."""
        before = job.facts.remote
        if before is None or before.etag != result.etag:
            return result
        await asyncio.sleep(1.0)
        etag, last_modified = await self._ws.s3.copy_object_metadata(
            key, headers, if_match=result.etag
        )
        _same_object_copied(job.rel, etag, result.etag)
        # The same bytes: what is known of them (part size, checksum) holds for the copy.
        return dataclasses.replace(result, etag=etag or result.etag, answered_at=last_modified)

    def _uploaded(
        self, job: Job, local: LocalEntry, result: PutResult, sent: LocalEntry | None = None
    ) -> None:
        """Record the upload of `local`; `sent`: what was sent instead (a snapshot of it)."""
        self._ws.etags.saw(result.encryption)
        written = RemoteEntry.written(
            sent or local, result.etag, result.answered_at, result.part_size, result.checksum
        )
        self._ws.state.wrote_remote(job.rel, local, written)
        metrics = self._ws.metrics
        metrics.inc(metrics.uploads, "ok")

    async def upload(self, job: Job) -> None:
        local = job.facts.local
        assert local is not None  # reconcile uploads only what exists here
        ws = self._ws
        rel = job.rel
        key = ws.keys.key_for_rel(rel)
        headers = object_headers(rel, local)
        decision = job.decision
        if local.kind is Kind.SYMLINK:
            with ws.tree.parent(rel) as at:
                target = at.readlink()
                ws.checks.recheck(job, local, at)
            result = await ws.s3.put_object(
                key,
                target,
                len(target),
                {**headers, "Content-MD5": _content_md5(target)},
                checksum=checksums.full(target),
                if_match=decision.if_match,
                if_none_match=decision.if_none_match,
            )
            result = await self._visible(job, key, headers, result)
            self._uploaded(job, local, result)
            ws.metrics.uploaded_bytes.inc(len(target))
            return
        fd = ws.tree.open(rel, os.O_RDONLY | os.O_NONBLOCK)  # no symlink followed, anywhere
        try:
            opened = os.fstat(fd)
            if entry_from_stat(opened) != local:
                raise LocalChanged(rel)
            if ws.databases is not None and ws.databases.covers(rel):
                if sqlite.fd_is_database(fd):
                    ws.databases.found(rel)
                    os.close(fd)
                    fd = -1
                    await self._upload_snapshot(job, key, headers, local)
                    return
                ws.databases.lost(rel)
            result = await _send(ws, self._source(job, key, fd, local, headers, opened=opened))
        finally:
            if fd >= 0:
                os.close(fd)
        result = await self._visible(job, key, headers, result)
        self._uploaded(job, local, result)
        ws.metrics.uploaded_bytes.inc(local.size)
        ws.transfers.done(log, "uploaded %s", rel, key=key, bytes=local.size, operation="upload")

    async def _upload_snapshot(
        self, job: Job, key: str, headers: dict[str, str], local: LocalEntry
    ) -> None:
        """An SQLite database: its snapshot goes up (snapshot.py), on the same conditions. The
        record keeps `local`, the stat taken before the snapshot began (a write since is the
        next change); a snapshot of the bytes S3 holds is not sent, only recorded."""
        ws = self._ws
        metrics = ws.metrics
        temp, snap = await snapshot.take(ws, job, local)
        try:
            fd = temp.open(os.O_RDONLY)
            try:
                remote = job.facts.remote
                if remote and await snapshot.in_s3(
                    fd, snap, remote, ws.settings.multipart_chunksize
                ):
                    metrics.inc(metrics.sqlite_snapshots, "unchanged")
                    ws.state.record(job.rel, local, remote)
                    return
                sent = replace(local, size=snap.size)
                up = self._source(
                    job, key, fd, sent, headers, opened=os.fstat(fd), watch_writes=False
                )
                result = await _send(ws, up)
            finally:
                os.close(fd)
        finally:
            discard(temp)
        result = await self._visible(job, key, headers, result)
        self._uploaded(job, local, result, sent)
        metrics.inc(metrics.sqlite_snapshots, "uploaded")
        metrics.uploaded_bytes.inc(snap.size)
        ws.transfers.done(
            log, "uploaded %s (a snapshot)", job.rel, key=key, bytes=snap.size, operation="upload"
        )

    def _source(
        self,
        job: Job,
        key: str,
        fd: int,
        local: LocalEntry,
        headers: dict[str, str],
        *,
        opened: os.stat_result,
        watch_writes: bool = True,
    ) -> UploadSource:
        """What `_send` reads: `fd` as `local`, checked against `opened` (upload_source.py)."""
        return UploadSource(
            job=job,
            key=key,
            fd=fd,
            local=local,
            headers=headers,
            opened=opened,
            barrier=self._ws.checks.barrier,
            progress=self._progress,
            abandoned=self._ws.metrics.aborted_changed,
            watch_writes=watch_writes,
        )

    async def upload_meta(self, job: Job) -> None:
        """Same content, new mode or mtime: copy the object onto itself with new metadata.
        What S3 will not copy (over 5 GiB; archived, not restored) is uploaded whole."""
        local, remote = job.facts.local, job.facts.remote
        assert local is not None  # reconcile updates metadata only of what exists here
        if remote is None or remote.size >= COPY_MAX or remote.archived:
            await self.upload(job)
            return
        ws = self._ws
        rel = job.rel
        key = ws.keys.key_for_rel(rel)
        headers = object_headers(rel, local)
        try:
            etag, last_modified = await ws.s3.copy_object_metadata(
                key, headers, if_match=job.decision.if_match
            )
        except S3Error as error:
            if not error.archived:  # archived since we learned of it (a lifecycle rule)
                raise
            await self.upload(job)
            return
        _same_object_copied(rel, etag, remote.etag)
        # A copy keeps the ETag: made visible like any such write (copied once more).
        copied = await self._visible(job, key, headers, PutResult(remote.etag, None, last_modified))
        # Another client's copy can land in the same second as ours: looked at again later.
        entry = RemoteEntry(
            copied.etag,
            remote.size,
            copied.answered_at,
            False,
            local.mtime_ns,
            local.mode,
            unsettled=True,
            part_size=remote.part_size,
            checksum=remote.checksum,  # a copy keeps the source's checksum (S3's rule)
        )
        ws.state.wrote_remote(rel, local, entry)
        ws.metrics.inc(ws.metrics.metadata_updates, "remote", "ok")
        ws.transfers.done(log, "updated metadata of %s", rel, key=key, operation="upload_meta")

    async def put_marker(self, job: Job) -> None:
        """A `dir/` object for a directory, carrying its mode and mtime."""
        local = job.facts.local
        assert local is not None  # reconcile puts markers only for directories here
        ws = self._ws
        key = ws.keys.key_for_rel(job.rel, is_dir=True)
        headers = {
            "x-amz-meta-mtime": format_mtime(local.mtime_ns),
            "x-amz-meta-mode": format_mode(local.mode),
            "Content-Type": "application/x-directory",
        }
        try:
            result = await ws.s3.put_object(
                key, b"", 0, headers, checksum=EMPTY, if_none_match=job.decision.if_none_match
            )
        except PreconditionFailed:
            # Someone made the same directory: that is agreement, not a conflict.
            head = await ws.s3.head_object(key)
            if head is None:
                raise
            ws.state.agree(job.rel, local, RemoteEntry(head.etag, 0, head.last_modified, True))
            return
        result = await self._visible(job, key, headers, result)
        self._uploaded(job, local, result)


async def _send(ws: Workspace, up: UploadSource) -> PutResult:
    """One file's bytes, in the shape its size calls for (the module doc)."""
    if up.local.size <= ws.settings.inline_read_max:
        return await _upload_small(ws.s3, up)
    if up.local.size < ws.settings.multipart_threshold:
        return await _upload_streamed(ws.s3, up)
    return await upload_multipart(up, ws.s3, ws.settings)


async def _upload_small(s3: S3Client, up: UploadSource) -> PutResult:
    data = up.read_whole()
    decision = up.job.decision
    return await s3.put_object(
        up.key,
        data,
        len(data),
        {**up.headers, "Content-MD5": _content_md5(data)},
        checksum=checksums.full(data),
        if_match=decision.if_match,
        if_none_match=decision.if_none_match,
    )


async def _upload_streamed(s3: S3Client, up: UploadSource) -> PutResult:
    # S3 takes the checksum before the body: the file is read once for it, then streamed
    # (checked before its last byte, and by S3 against this checksum).
    checksum = checksums.encoded(await up.sha256(0, up.local.size))
    digests: list[str] = []
    body = up.body(0, up.local.size, digests)
    decision = up.job.decision
    result = await s3.put_object(
        up.key,
        body,
        up.local.size,
        up.headers,
        checksum=checksum,
        if_match=decision.if_match,
        if_none_match=decision.if_none_match,
    )
    if (
        digests
        and is_plain_md5(result.etag)
        and verifiable(result.encryption)
        and result.etag != digests[-1]
    ):
        raise IntegrityError(f"S3 ETag {result.etag} is not the MD5 of {up.job.rel!r}")
    return result


def _same_object_copied(rel: str, copied: str, expected: str) -> None:
    """A copy onto itself answered another ETag: the object changed between our write and the
    copy, and the store did not honour `x-amz-copy-source-if-match` (moto ignores it). Never
    record that as ours: look at S3 again instead."""
    if copied and copied != expected:
        raise RemoteChanged(rel)
