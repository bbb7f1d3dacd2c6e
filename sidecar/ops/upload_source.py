"""What an upload reads, and the proof that it did not change while it was read: S3 never stores
a torn mix of two versions.

The file is read through one descriptor, opened without following a symlink (safefs.py). Before
the last byte of a request leaves (`check`): inotify is drained (`barrier`: every write that
returned before it has bumped the path's IN_MODIFY count), that count must be the one the
decision saw, and `fstat` must not have moved (size, mtime, ctime, inode). Otherwise the upload
is abandoned (`abandon`: `BodyChanged`, counted): a streamed request ends short of its
Content-Length, so S3 stores nothing, and the writer's close brings the path back. A streamed
body also stops at the first short read or new IN_MODIFY, without waiting for its end.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator, Callable

from prometheus_client import Counter

from .. import checksums
from ..core.model import LocalEntry
from ..local.localfs import READ_SIZE
from ..s3.client import BodyChanged
from .job import Job


def _fingerprint(st: os.stat_result) -> tuple[int, int, int, int]:
    """What a concurrent write moves: size, mtime, ctime, inode."""
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


class UploadSource:
    """One file being uploaded: what it reads (`fd`, from `local`), under which `key` and
    `headers`, and what must not move while it does (`opened`: its fstat when opened)."""

    def __init__(
        self,
        *,
        job: Job,
        key: str,
        fd: int,
        local: LocalEntry,
        headers: dict[str, str],
        opened: os.stat_result,
        barrier: Callable[[], None],
        progress: Callable[[], None],
        abandoned: Counter,
        watch_writes: bool = True,
    ) -> None:
        self.job = job
        self.key = key
        self.fd = fd
        self.local = local
        self.headers = headers
        self._fingerprint = _fingerprint(opened)
        self._barrier = barrier
        self._progress = progress
        self._abandoned = abandoned
        # False for a database's snapshot (a file of our own): the app's writes to the live
        # file are the next change, not a tear of this one; only the snapshot's fstat counts.
        self._watch_writes = watch_writes

    def abandon(self) -> BodyChanged:
        """The file changed while it was read: what to raise (counted)."""
        self._abandoned.inc()
        return BodyChanged(self.job.rel)

    def changed(self) -> bool:
        """Whether a write since the decision is known (no draining: cheap, between reads)."""
        return self._watch_writes and self.job.ps.mod_gen != self.job.gen

    def check(self) -> None:
        """Drain inotify: any write that returned before now has bumped `mod_gen`. Raises what
        `abandon` returns if the file changed."""
        self._barrier()
        if self.changed() or _fingerprint(os.fstat(self.fd)) != self._fingerprint:
            raise self.abandon()

    def read_whole(self) -> bytes:
        """The whole file, read on the loop (small files), then checked."""
        data = os.pread(self.fd, self.local.size + 1, 0)
        if len(data) != self.local.size:
            raise self.abandon()
        self.check()
        return data

    async def sha256(self, offset: int, length: int) -> bytes:
        """The raw SHA-256 of `length` bytes from `offset` (S3 takes a body's checksum before
        the body), read off the loop. Not a check: the body's own reads are."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, checksums.part_digest, self.fd, offset, length)

    def body(
        self, offset: int, length: int, digests: list[str]
    ) -> Callable[[], AsyncIterator[bytes]]:
        """A body that streams `length` bytes from `offset`, re-readable for each retry; the
        MD5 of what it sent is appended to `digests` once it is all read. The check that the
        file did not change runs before the last chunk leaves: if it fails, the request ends
        short of its Content-Length and S3 stores nothing."""
        loop = asyncio.get_running_loop()
        is_end = offset + length == self.local.size
        fd = self.fd

        async def body() -> AsyncIterator[bytes]:
            md5 = hashlib.md5(usedforsecurity=False)
            position = offset
            remaining = length
            while remaining > 0:
                size = min(READ_SIZE, remaining)
                chunk = await loop.run_in_executor(None, os.pread, fd, size, position)
                if len(chunk) != size or self.changed():
                    raise self.abandon()
                await loop.run_in_executor(None, md5.update, chunk)
                position += size
                remaining -= size
                self._progress()
                if remaining == 0:
                    if is_end and os.pread(fd, 1, position):
                        raise self.abandon()
                    self.check()
                    digests.append(md5.hexdigest())
                yield chunk

        return body


__all__ = ["UploadSource"]
