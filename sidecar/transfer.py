"""Carries out one decision for one path: the only module that writes to S3 or to the folder.

Every action re-checks, right before it commits, that the facts it was decided on still hold:
- an upload reads the file, then drains inotify (`barrier`) and checks that no IN_MODIFY
  arrived and that `fstat` did not move; otherwise the request is abandoned before its last
  byte, so S3 never stores a torn mix (the writer's close brings the path back);
- a download lands in the hidden working folder and is moved into place only if the local
  file is still exactly what the decision saw (`os.link` when nothing should be there, so a
  file created in between is never clobbered);
- a local delete first moves the file aside and compares it, and puts it back if it changed.
Remote writes are conditional (`If-Match` / `If-None-Match`) so a concurrent change by another
client surfaces as `PreconditionFailed` instead of being overwritten.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import hashlib
import logging
import math
import mimetypes
import os
import stat
import time
import uuid
from base64 import b64encode
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import aiohttp

from .keys import KeyMapper, parents_of
from .localfs import (
    PERMISSION_BITS,
    UnsafeParentError,
    conflict_name,
    ensure_parents,
    entry_from_stat,
    format_mode,
    format_mtime,
    local_entry,
)
from .metrics import Metrics
from .model import Hint, Kind, LocalEntry, RemoteEntry, Synced
from .reconcile import Decision, Facts, Op, Winner
from .s3.client import BodyChanged, ObjectHead, PreconditionFailed, S3Client
from .state import PathState, SyncState

log = logging.getLogger("sidecar.transfer")

COPY_MAX = 5 * 1024**3  # CopyObject's single-request limit
SYMLINK_MAX = 4096
_READ_CHUNK = 1024 * 1024


class LocalChanged(Exception):
    """The local path is no longer what the decision saw: decide again."""


class IntegrityError(Exception):
    """S3 stored something other than what we sent (or sent something other than it claims)."""


@dataclass(frozen=True, slots=True)
class TransferSettings:
    root: str
    work_dir: str  # the hidden folder inside root, for temporary files
    inline_read_max: int = 256 * 1024  # read in one go on the loop up to this size
    multipart_threshold: int = 16 * 1024 * 1024
    multipart_chunksize: int = 16 * 1024 * 1024
    multipart_concurrency: int = 4


@dataclass(slots=True)
class _Upload:
    """One upload in progress: what it reads, and what must not move while it does."""

    rel: str
    key: str
    fd: int
    local: LocalEntry
    headers: dict[str, str]
    decision: Decision
    ps: PathState
    gen: int  # the path's IN_MODIFY count when the upload was decided
    fingerprint: tuple[int, int, int, int]


def _fingerprint(st: os.stat_result) -> tuple[int, int, int, int]:
    """What a concurrent write moves: size, mtime, ctime, inode."""
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


def _is_plain_md5(etag: str) -> bool:
    return len(etag) == 32 and all(c in "0123456789abcdef" for c in etag)


def _verifiable(encryption: str | None) -> bool:
    """With SSE-KMS or SSE-C the ETag is not the MD5 of the content."""
    return encryption in (None, "", "AES256")


class Transfers:
    def __init__(
        self,
        *,
        settings: TransferSettings,
        keys: KeyMapper,
        s3: S3Client,
        state: SyncState,
        metrics: Metrics,
        barrier: Callable[[], None],
        submit_local: Callable[[str], None],
        submit_parent: Callable[[str], None],
        progress: Callable[[], None] = lambda: None,
    ) -> None:
        self._s = settings
        self._keys = keys
        self._s3 = s3
        self._state = state
        self._metrics = metrics
        self._barrier = barrier
        self._submit_local = submit_local
        self._submit_parent = submit_parent
        self._progress = progress  # called as bytes move: a long transfer is not a stall
        self._loop = asyncio.get_running_loop()

    def path(self, rel: str) -> str:
        return self._s.root + "/" + rel

    async def execute(self, rel: str, facts: Facts, decision: Decision, ps: PathState) -> None:
        op = decision.op
        if op is Op.UPLOAD:
            await self.upload(rel, facts, decision, ps)
        elif op is Op.UPLOAD_META:
            await self.upload_meta(rel, facts, decision, ps)
        elif op is Op.PUT_MARKER:
            await self.put_marker(rel, facts, decision)
        elif op is Op.DELETE_REMOTE:
            await self.delete_remote(rel, facts, decision, ps)
        elif op is Op.DOWNLOAD:
            await self.download(rel, facts, ps)
        elif op is Op.MKDIR:
            await self.mkdir(rel, facts)
        elif op is Op.DELETE_LOCAL:
            await self.delete_local(rel, facts, ps)
        elif op is Op.RMDIR:
            self.rmdir(rel, facts)
        elif op is Op.APPLY_REMOTE_META:
            await self.apply_remote_meta(rel, facts, ps)
        elif op is Op.CONFLICT:
            await self.conflict(rel, facts, decision, ps)
        elif op is Op.RECORD:
            assert facts.local is not None
            self._state.set_synced(rel, Synced(facts.local, facts.remote))
        elif op is Op.FORGET:
            self._state.set_synced(rel, None)

    # -- helpers -------------------------------------------------------------------------

    def _metadata_headers(self, rel: str, local: LocalEntry) -> dict[str, str]:
        return {
            "x-amz-meta-mtime": format_mtime(local.mtime_ns),
            "x-amz-meta-mode": format_mode(local.mode),
            "Content-Type": _content_type(os.path.splitext(rel)[1])
            if local.kind is Kind.FILE
            else "application/octet-stream",
        }

    def _synced_upload(self, rel: str, local: LocalEntry, etag: str) -> None:
        entry = RemoteEntry(
            etag=etag,
            size=local.size if local.kind is not Kind.DIR else 0,
            is_dir=local.kind is Kind.DIR,
            mtime_ns=local.mtime_ns,
            mode=local.mode,
        )
        state = self._state
        state.set_remote(rel, entry)
        state.set_synced(rel, Synced(local, entry))
        state.get(rel).remote_changed_at = time.monotonic()

    def _check_unchanged(
        self, rel: str, expected: LocalEntry | None, ps: PathState, gen: int
    ) -> None:
        """Drain inotify, then make sure the path is still what the decision saw."""
        self._barrier()
        if ps.mod_gen != gen or (expected is not None and ps.writing):
            raise LocalChanged(rel)
        if local_entry(self.path(rel)) != expected:
            raise LocalChanged(rel)

    def _temp_path(self) -> str:
        return os.path.join(self._s.work_dir, uuid.uuid4().hex)

    # -- uploads -------------------------------------------------------------------------

    async def upload(self, rel: str, facts: Facts, decision: Decision, ps: PathState) -> None:
        local = facts.local
        assert local is not None
        key = self._keys.key_for_rel(rel)
        headers = self._metadata_headers(rel, local)
        gen = ps.mod_gen
        path = self.path(rel)
        if local.kind is Kind.SYMLINK:
            target = os.readlink(os.fsencode(path))
            self._check_unchanged(rel, local, ps, gen)
            result = await self._s3.put_object(
                key,
                target,
                len(target),
                {**headers, "Content-MD5": b64encode(hashlib.md5(target).digest()).decode()},  # noqa: S324
                if_match=decision.if_match,
                if_none_match=decision.if_none_match,
            )
            self._synced_upload(rel, local, result.etag)
            self._metrics.inc(self._metrics.uploads, "ok")
            self._metrics.uploaded_bytes.inc(len(target))
            return
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
        try:
            opened = os.fstat(fd)
            if entry_from_stat(opened) != local:
                raise LocalChanged(rel)
            up = _Upload(rel, key, fd, local, headers, decision, ps, gen, _fingerprint(opened))
            if local.size <= self._s.inline_read_max:
                etag = await self._upload_small(up)
            elif local.size < self._s.multipart_threshold:
                etag = await self._upload_streamed(up)
            else:
                etag = await self._upload_multipart(up)
        finally:
            os.close(fd)
        self._synced_upload(rel, local, etag)
        self._metrics.inc(self._metrics.uploads, "ok")
        self._metrics.uploaded_bytes.inc(local.size)
        if log.isEnabledFor(logging.INFO):
            log.info(
                "uploaded %s",
                rel,
                extra={"path": rel, "key": key, "bytes": local.size, "operation": "upload"},
            )

    def _abandon(self, up: _Upload) -> BodyChanged:
        self._metrics.aborted_changed.inc()
        return BodyChanged(up.rel)

    def _still_same(self, up: _Upload) -> None:
        """Drain inotify: any write that returned before now has bumped `mod_gen`."""
        self._barrier()
        if up.ps.mod_gen != up.gen or _fingerprint(os.fstat(up.fd)) != up.fingerprint:
            raise self._abandon(up)

    async def _upload_small(self, up: _Upload) -> str:
        data = os.pread(up.fd, up.local.size + 1, 0)
        if len(data) != up.local.size:
            raise self._abandon(up)
        self._still_same(up)
        digest = hashlib.md5(data).digest()  # noqa: S324 - Content-MD5 is what S3 checks
        result = await self._s3.put_object(
            up.key,
            data,
            len(data),
            {**up.headers, "Content-MD5": b64encode(digest).decode()},
            if_match=up.decision.if_match,
            if_none_match=up.decision.if_none_match,
        )
        return result.etag

    def _file_body(
        self, up: _Upload, offset: int, length: int, digests: list[str]
    ) -> Callable[[], AsyncIterator[bytes]]:
        """A body that streams `length` bytes from `offset`, re-readable for each retry. The
        check that the file did not change runs before the last chunk leaves: if it fails, the
        request ends short of its Content-Length and S3 stores nothing."""
        loop = self._loop
        is_end = offset + length == up.local.size

        async def body() -> AsyncIterator[bytes]:
            md5 = hashlib.md5()  # noqa: S324
            position = offset
            remaining = length
            while remaining > 0:
                size = min(_READ_CHUNK, remaining)
                chunk = await loop.run_in_executor(None, os.pread, up.fd, size, position)
                if len(chunk) != size or up.ps.mod_gen != up.gen:
                    raise self._abandon(up)
                await loop.run_in_executor(None, md5.update, chunk)
                position += size
                remaining -= size
                self._progress()
                if remaining == 0:
                    if is_end and os.pread(up.fd, 1, position):
                        raise self._abandon(up)
                    self._still_same(up)
                    digests.append(md5.hexdigest())
                yield chunk

        return body

    async def _upload_streamed(self, up: _Upload) -> str:
        digests: list[str] = []
        body = self._file_body(up, 0, up.local.size, digests)
        result = await self._s3.put_object(
            up.key,
            body,
            up.local.size,
            up.headers,
            if_match=up.decision.if_match,
            if_none_match=up.decision.if_none_match,
        )
        if (
            digests
            and _is_plain_md5(result.etag)
            and _verifiable(result.encryption)
            and result.etag != digests[-1]
        ):
            raise IntegrityError(f"S3 ETag {result.etag} is not the MD5 of {up.rel!r}")
        return result.etag

    async def _upload_multipart(self, up: _Upload) -> str:
        size = up.local.size
        part_size = max(self._s.multipart_chunksize, math.ceil(size / 10_000))
        count = math.ceil(size / part_size)
        upload_id = await self._s3.create_multipart_upload(up.key, up.headers)
        etags: list[str] = [""] * count
        limit = asyncio.Semaphore(self._s.multipart_concurrency)

        async def send(number: int) -> None:
            offset = (number - 1) * part_size
            length = min(part_size, size - offset)
            async with limit:
                if up.ps.mod_gen != up.gen:
                    raise self._abandon(up)
                digests: list[str] = []
                body = self._file_body(up, offset, length, digests)
                etag = await self._s3.upload_part(up.key, upload_id, number, body, length)
            if digests and _is_plain_md5(etag) and etag != digests[-1]:
                raise IntegrityError(f"part {number} of {up.rel!r}: ETag is not its MD5")
            etags[number - 1] = etag

        try:
            async with asyncio.TaskGroup() as group:
                for number in range(1, count + 1):
                    group.create_task(send(number))
            self._still_same(up)
            return await self._s3.complete_multipart_upload(
                up.key,
                upload_id,
                etags,
                if_match=up.decision.if_match,
                if_none_match=up.decision.if_none_match,
            )
        except BaseException as error:
            cause = error
            if isinstance(error, BaseExceptionGroup):
                cause = error.exceptions[0]
            with contextlib.suppress(Exception):
                await asyncio.shield(self._s3.abort_multipart_upload(up.key, upload_id))
            if cause is not error:
                raise cause from None
            raise

    async def upload_meta(self, rel: str, facts: Facts, decision: Decision, ps: PathState) -> None:
        local = facts.local
        assert local is not None
        remote = facts.remote
        if remote is None or remote.size >= COPY_MAX:
            await self.upload(rel, facts, decision, ps)
            return
        key = self._keys.key_for_rel(rel)
        headers = self._metadata_headers(rel, local)
        etag, last_modified = await self._s3.copy_object_metadata(
            key, headers, if_match=decision.if_match
        )
        entry = RemoteEntry(
            etag=etag or remote.etag,
            size=remote.size,
            last_modified=last_modified,
            mtime_ns=local.mtime_ns,
            mode=local.mode,
        )
        self._state.set_remote(rel, entry)
        self._state.set_synced(rel, Synced(local, entry))
        ps.remote_changed_at = time.monotonic()
        self._metrics.inc(self._metrics.metadata_updates, "remote", "ok")
        log.info(
            "updated metadata of %s",
            rel,
            extra={"path": rel, "key": key, "operation": "upload_meta"},
        )

    async def put_marker(self, rel: str, facts: Facts, decision: Decision) -> None:
        local = facts.local
        assert local is not None
        key = self._keys.key_for_rel(rel, is_dir=True)
        headers = {
            "x-amz-meta-mtime": format_mtime(local.mtime_ns),
            "x-amz-meta-mode": format_mode(local.mode),
            "Content-Type": "application/x-directory",
        }
        try:
            result = await self._s3.put_object(
                key, b"", 0, headers, if_none_match=decision.if_none_match
            )
        except PreconditionFailed:
            # Someone made the same directory: that is agreement, not a conflict.
            head = await self._s3.head_object(key)
            if head is None:
                raise
            self._state.set_remote(rel, RemoteEntry(head.etag, 0, head.last_modified, True))
            self._state.set_synced(rel, Synced(local, self._state.get(rel).remote))
            return
        self._synced_upload(rel, local, result.etag)
        self._metrics.inc(self._metrics.uploads, "ok")

    async def delete_remote(
        self, rel: str, facts: Facts, decision: Decision, ps: PathState
    ) -> None:
        remote = facts.remote
        is_dir = remote.is_dir if remote is not None else False
        key = self._keys.key_for_rel(rel, is_dir=is_dir)
        await self._s3.delete_object(key, if_match=decision.if_match)
        self._state.set_remote(rel, None)
        self._state.set_synced(rel, None)
        ps.remote_changed_at = time.monotonic()
        self._metrics.inc(self._metrics.deletes, "remote", "ok")
        log.info(
            "deleted %s from S3", rel, extra={"path": rel, "key": key, "operation": "delete_remote"}
        )
        parents = parents_of(rel)
        if parents:
            parent_state = self._state.get(parents[-1])
            parent_state.hint |= Hint.CHILD_REMOVED
            self._submit_parent(parents[-1])

    # -- downloads -----------------------------------------------------------------------

    async def _fetch(self, rel: str, remote: RemoteEntry) -> tuple[str, ObjectHead]:
        """GET the object into a temporary file in the working folder, metadata applied."""
        key = self._keys.key_for_rel(rel)
        response = await self._s3.get_object(key, if_match=remote.etag)
        temp = self._temp_path()
        try:
            head = ObjectHead.from_headers(response.headers)
            mode = head.mode
            is_symlink = mode is not None and stat.S_ISLNK(mode)
            if is_symlink:
                if head.size > SYMLINK_MAX:
                    raise IntegrityError(f"symlink object {key!r} is too large")
                target = await response.read()
                os.symlink(target, temp)
            else:
                await self._write_body(response, temp, head, key)
        except BaseException:
            response.release()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
            raise
        response.release()
        mtime_ns = head.mtime_ns
        if mtime_ns is None:
            mtime_ns = head.modified_ns
        try:
            if mode is not None and not is_symlink:
                os.chmod(temp, stat.S_IMODE(mode) & PERMISSION_BITS)
            if mtime_ns is not None:
                os.utime(temp, ns=(mtime_ns, mtime_ns), follow_symlinks=False)
        except OSError:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
            raise
        self._metrics.downloaded_bytes.inc(head.size)
        return temp, head

    async def _write_body(
        self, response: aiohttp.ClientResponse, temp: str, head: ObjectHead, key: str
    ) -> None:
        md5 = hashlib.md5()  # noqa: S324
        loop = self._loop
        received = 0
        # 0o666 less the umask, like any new file, when the object carries no mode.
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
        try:
            buffer: list[bytes] = []
            buffered = 0
            async for chunk in response.content.iter_chunked(256 * 1024):
                buffer.append(chunk)
                buffered += len(chunk)
                received += len(chunk)
                if buffered >= _READ_CHUNK:
                    block = b"".join(buffer)
                    buffer.clear()
                    buffered = 0
                    await loop.run_in_executor(None, _write_all, fd, block, md5.update)
                    self._progress()
            if buffer:
                _write_all(fd, b"".join(buffer), md5.update)
        finally:
            os.close(fd)
        if received != head.size:
            raise IntegrityError(f"{key!r}: received {received} bytes of {head.size}")
        if (
            _is_plain_md5(head.etag)
            and _verifiable(head.encryption)
            and md5.hexdigest() != head.etag
        ):
            raise IntegrityError(f"{key!r}: content does not match its ETag")

    def _record_parents(self, rel: str, created: list[str]) -> None:
        for parent in created:
            entry = local_entry(self.path(parent))
            if entry is not None:
                self._state.set_synced(parent, Synced(entry, None))

    def _install(self, temp: str, rel: str, expected: LocalEntry | None) -> None:
        """Put `temp` at `rel`: never over a file that appeared since the decision."""
        target = self.path(rel)
        if expected is None:
            try:
                os.link(temp, target, follow_symlinks=False)
            except FileExistsError as error:
                raise LocalChanged(rel) from error
            except OSError as error:
                if error.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EXDEV):
                    raise
                os.rename(temp, target)  # no hard links here: the check just made must do
                return
            os.unlink(temp)
        else:
            os.replace(temp, target)

    async def download(self, rel: str, facts: Facts, ps: PathState) -> None:
        remote = facts.remote
        assert remote is not None
        gen = ps.mod_gen
        try:
            temp, head = await self._fetch(rel, remote)
        except PreconditionFailed:
            await self.refresh_remote(rel)
            raise LocalChanged(rel) from None
        try:
            fetched = entry_from_stat(os.lstat(temp))
            created = ensure_parents(self._s.root, rel)
            self._record_parents(rel, created)
            self._check_unchanged(rel, facts.local, ps, gen)
            self._install(temp, rel, facts.local)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
            raise
        entry = replace(
            remote,
            etag=head.etag or remote.etag,
            size=head.size,
            mtime_ns=head.mtime_ns,
            mode=head.mode,
            last_modified=remote.last_modified,
        )
        self._state.set_remote(rel, entry)
        self._state.set_synced(rel, Synced(fetched, entry))
        self._metrics.inc(self._metrics.downloads, "ok")
        log.info(
            "downloaded %s", rel, extra={"path": rel, "bytes": head.size, "operation": "download"}
        )

    async def refresh_remote(self, rel: str) -> None:
        """A conditional request failed: learn what S3 holds now."""
        ps = self._state.get(rel)
        is_dir = ps.remote.is_dir if ps.remote is not None else False
        head = await self._s3.head_object(self._keys.key_for_rel(rel, is_dir=is_dir))
        if head is None:
            self._state.set_remote(rel, None)
        else:
            self._state.set_remote(
                rel,
                RemoteEntry(
                    head.etag, head.size, head.last_modified, is_dir, head.mtime_ns, head.mode
                ),
            )

    async def mkdir(self, rel: str, facts: Facts) -> None:
        created = ensure_parents(self._s.root, rel)
        self._record_parents(rel, created)
        path = self.path(rel)
        with contextlib.suppress(FileExistsError):  # made since the decision: fine if a dir
            os.mkdir(path)
        entry = local_entry(path)
        if entry is None or entry.kind is not Kind.DIR:
            raise LocalChanged(rel)
        self._state.set_synced(rel, Synced(entry, facts.remote))

    async def delete_local(self, rel: str, facts: Facts, ps: PathState) -> None:
        expected = facts.local
        assert expected is not None
        self._check_unchanged(rel, expected, ps, ps.mod_gen)
        path = self.path(rel)
        aside = self._temp_path()
        os.rename(path, aside)
        moved = local_entry(aside)
        if moved != expected:
            # Changed in the instant between the check and the move: put it back.
            self._put_back(aside, rel)
            raise LocalChanged(rel)
        os.unlink(aside)
        self._state.set_synced(rel, None)
        self._metrics.inc(self._metrics.deletes, "local", "ok")
        log.info(
            "deleted %s locally (deleted in S3)",
            rel,
            extra={"path": rel, "operation": "delete_local"},
        )

    def _put_back(self, aside: str, rel: str) -> None:
        """Undo a move aside; if the name was taken meanwhile, keep the file as a copy."""
        try:
            os.link(aside, self.path(rel), follow_symlinks=False)
        except FileExistsError:
            self._submit_local(self._link_as_conflict(aside, rel))
        os.unlink(aside)

    def rmdir(self, rel: str, facts: Facts) -> None:
        self._barrier()
        entry = local_entry(self.path(rel))
        if entry is None or entry.kind is not Kind.DIR:
            raise LocalChanged(rel)
        try:
            os.rmdir(self.path(rel))
        except OSError as error:
            if error.errno in (errno.ENOTEMPTY, errno.EEXIST):
                return  # something local is still in it: keep it, the next poll retries
            raise
        self._state.set_synced(rel, None)
        self._metrics.inc(self._metrics.deletes, "local", "ok")

    async def apply_remote_meta(self, rel: str, facts: Facts, ps: PathState) -> None:
        local = facts.local
        remote = facts.remote
        assert local is not None and remote is not None
        head = await self._s3.head_object(self._keys.key_for_rel(rel))
        if head is None or head.etag != remote.etag:
            await self.refresh_remote(rel)
            raise LocalChanged(rel)
        self._check_unchanged(rel, local, ps, ps.mod_gen)
        path = self.path(rel)
        if (
            local.kind is Kind.FILE
            and head.mode is not None
            and stat.S_IMODE(head.mode) & PERMISSION_BITS != stat.S_IMODE(local.mode)
        ):
            os.chmod(path, stat.S_IMODE(head.mode) & PERMISSION_BITS)
        if head.mtime_ns is not None and head.mtime_ns != local.mtime_ns:
            os.utime(path, ns=(head.mtime_ns, head.mtime_ns), follow_symlinks=False)
        updated = local_entry(path)
        if updated is None:
            raise LocalChanged(rel)
        entry = replace(remote, mtime_ns=head.mtime_ns, mode=head.mode)
        self._state.set_remote(rel, entry)
        self._state.set_synced(rel, Synced(updated, entry))
        self._metrics.inc(self._metrics.metadata_updates, "local", "ok")

    # -- conflicts -----------------------------------------------------------------------

    def _link_as_conflict(self, source: str, rel: str) -> str:
        """Give `source` a free conflict-copy name beside `rel` (link: never overwrites)."""
        moment = datetime.now(UTC)
        for attempt in range(1000):
            name = conflict_name(rel, moment, attempt)
            try:
                os.link(source, self.path(name), follow_symlinks=False)
            except FileExistsError:
                continue
            return name
        raise FileExistsError(rel)

    async def conflict(self, rel: str, facts: Facts, decision: Decision, ps: PathState) -> None:
        local, remote = facts.local, facts.remote
        assert local is not None and remote is not None
        path = self.path(rel)
        gen = ps.mod_gen
        # Often both sides are the same file (a restart on a volume that survived): prove it
        # cheaply before transferring anything: by MD5 against a single-part ETag, locally...
        if local.kind is Kind.FILE and local.size == remote.size and _is_plain_md5(remote.etag):
            digest = await self._loop.run_in_executor(None, _md5_of, path)
            if digest == remote.etag:
                self._check_unchanged(rel, local, ps, gen)
                self._state.set_synced(rel, Synced(local, remote))
                return
        # ...or, for a multipart object, by size and mtime as rclone does by default.
        elif decision.winner is Winner.NEWER and local.size == remote.size:
            head = await self._s3.head_object(self._keys.key_for_rel(rel))
            if head is not None and head.etag == remote.etag and head.mtime_ns == local.mtime_ns:
                entry = replace(remote, mtime_ns=head.mtime_ns, mode=head.mode)
                self._state.set_remote(rel, entry)
                self._state.set_synced(rel, Synced(local, entry))
                return
        try:
            temp, head = await self._fetch(rel, remote)
        except PreconditionFailed:
            await self.refresh_remote(rel)
            raise LocalChanged(rel) from None
        try:
            fetched = entry_from_stat(os.lstat(temp))
            remote_entry = replace(
                remote,
                etag=head.etag or remote.etag,
                size=head.size,
                mtime_ns=head.mtime_ns,
                mode=head.mode,
            )
            if (
                local.kind is fetched.kind
                and local.size == fetched.size
                and await self._loop.run_in_executor(None, _same_content, path, temp)
            ):
                self._check_unchanged(rel, local, ps, gen)
                self._state.set_remote(rel, remote_entry)
                self._state.set_synced(rel, Synced(local, remote_entry))
                return
            remote_mtime = fetched.mtime_ns
            local_wins = decision.winner is Winner.LOCAL or local.mtime_ns >= remote_mtime
            self._check_unchanged(rel, local, ps, gen)
            if local_wins:
                copy = self._link_as_conflict(temp, rel)
                self._state.set_remote(rel, remote_entry)
                self._metrics.conflicts.inc()
                log.warning(
                    "conflict on %s: both sides changed; the local version keeps the "
                    "name, the S3 version is kept as %s",
                    rel,
                    copy,
                    extra={"path": rel, "operation": "conflict"},
                )
                self._submit_local(copy)
                await self.upload(rel, facts, Decision(Op.UPLOAD, if_match=remote_entry.etag), ps)
            else:
                copy = self._link_as_conflict(path, rel)
                os.replace(temp, path)
                self._state.set_remote(rel, remote_entry)
                self._state.set_synced(rel, Synced(fetched, remote_entry))
                self._metrics.conflicts.inc()
                log.warning(
                    "conflict on %s: both sides changed; the newer S3 version keeps the "
                    "name, the local version is kept as %s",
                    rel,
                    copy,
                    extra={"path": rel, "operation": "conflict"},
                )
                self._submit_local(copy)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)


@functools.lru_cache(maxsize=512)
def _content_type(suffix: str) -> str:
    """By extension, so objects open sensibly when served straight from S3."""
    content_type, _ = mimetypes.guess_type("name" + suffix.lower(), strict=False)
    return content_type or "application/octet-stream"


def _write_all(fd: int, data: bytes, update: Callable[[bytes], object]) -> None:
    update(data)
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _md5_of(path: str) -> str:
    md5 = hashlib.md5()  # noqa: S324
    with open(path, "rb") as file:
        while chunk := file.read(_READ_CHUNK):
            md5.update(chunk)
    return md5.hexdigest()


def _same_content(first: str, second: str) -> bool:
    """Byte-for-byte equality; for symlinks, the targets (never followed)."""
    if os.path.islink(first) or os.path.islink(second):
        try:
            return os.readlink(first) == os.readlink(second)
        except OSError:
            return False
    with open(first, "rb") as a, open(second, "rb") as b:
        while True:
            chunk_a = a.read(_READ_CHUNK)
            chunk_b = b.read(_READ_CHUNK)
            if chunk_a != chunk_b:
                return False
            if not chunk_a:
                return True


__all__ = ["IntegrityError", "LocalChanged", "TransferSettings", "Transfers", "UnsafeParentError"]
