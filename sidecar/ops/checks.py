"""Looking again before committing: what is at a path now (`local_entry`; `learn_remote` for
S3), whether it is still what a decision saw (`recheck`), and whether a file's bytes are still
the synced ones when nothing else can tell (`prove_unchanged`, `prove_synced`).

Every operation re-checks, right before it commits, that the facts it was decided on still hold
(`recheck`: inotify drained by `barrier`, then the path's IN_MODIFY count and its lstat), and
raises `LocalChanged` when they do not: a decision made on facts that changed a moment later is
abandoned, never applied. Remote writes are conditional (`If-Match` / `If-None-Match`), so a
concurrent change by another client surfaces as `PreconditionFailed` (or `RemoteChanged`)
instead of being overwritten; the pipeline then learns what S3 holds (`learn_remote`, one HEAD)
and decides again.

Every local path is reached through the `Tree` (safefs.py), from the root's descriptor with no
symlink followed below it. A proof reads the whole file (about 1.5 ms of CPU per MiB, proof.py),
off the event loop.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
from collections.abc import Callable

from ..core.keys import KeyMapper
from ..core.model import Hint, Kind, LocalEntry, RemoteEntry, Synced
from ..core.state import SyncState
from ..local.databases import Databases
from ..local.localfs import entry_from_stat, local_entry
from ..local.proof import EtagKnowledge, file_is_object, provable, still_synced
from ..local.safefs import At, Tree
from ..local.sqlite import fd_is_database, held_open
from ..s3.client import PreconditionFailed, S3Client
from ..s3.entries import entry_of
from .job import Job, LocalChanged

log = logging.getLogger("sidecar")


class Checks:
    """The re-checks and proofs every operation (and the pipeline, gathering facts) makes."""

    def __init__(
        self,
        *,
        tree: Tree,
        state: SyncState,
        s3: S3Client,
        keys: KeyMapper,
        barrier: Callable[[], None],
        etags: EtagKnowledge,
        part_size: int,
        databases: Databases | None = None,
    ) -> None:
        self._tree = tree
        self._state = state
        self._s3 = s3
        self._keys = keys
        self.barrier = barrier  # handle every inotify event the kernel has queued, now
        self._etags = etags
        self._part_size = part_size  # ours, the first guessed for a multipart ETag
        # SYNC_SQLITE=snapshot: a database's object is a snapshot, whose bytes are never the
        # live file's, so no ETag proves anything about a database (its stat is trusted); and
        # a database a process holds open is never replaced or deleted under it.
        self._databases = databases

    def local_entry(self, rel: str) -> LocalEntry | None:
        """What is at `rel` now (absent if reached only through a symlink)."""
        return local_entry(self._tree, rel)

    def recheck(
        self, job: Job, expected: LocalEntry | None, at: At | None = None
    ) -> LocalEntry | None:
        """Drain inotify, then make sure the path is still `expected`, and not being written;
        returns what is there (`expected`, with the ctime it has now). `at`: the path's name
        in its parent, when the caller already holds that open."""
        self.barrier()
        ps = job.ps
        if ps.mod_gen != job.gen or (expected is not None and ps.writing):
            raise LocalChanged(job.rel)
        if at is None:
            now = local_entry(self._tree, job.rel)
        else:
            try:
                now = entry_from_stat(at.lstat())
            except FileNotFoundError:
                now = None
        if now != expected:
            raise LocalChanged(job.rel)
        return now

    async def is_object(
        self, rel: str, size: int, remote: RemoteEntry, md5_etags: bool | None = None
    ) -> bool | None:
        """Whether the file at `rel` (of `size` bytes) holds the object `remote`; None when
        neither its checksum nor its ETag can tell (`proof.file_is_object`; a database's,
        with snapshots). `md5_etags`:
        whether ETags are MD5s (by default: unless this bucket said they are not). Read off the
        loop."""
        md5 = self._etags.md5 is not False if md5_etags is None else md5_etags
        if self._databases is not None and self._databases.is_database(rel):
            return None
        return await asyncio.get_running_loop().run_in_executor(
            None,
            functools.partial(
                file_is_object, self._tree, rel, size, remote, self._part_size, md5_etags=md5
            ),
        )

    def database_held(self, rel: str, at: At) -> bool:
        """With snapshots: whether the file at `at` (`rel`) is a database a process holds open
        (its locks, sqlite.py). Never replaced or deleted then."""
        if self._databases is None or not self._databases.covers(rel):
            return False
        try:
            fd = at.open(os.O_RDONLY | os.O_NONBLOCK)
        except OSError:
            return False
        try:
            database = fd_is_database(fd)
        except OSError:
            return False
        finally:
            os.close(fd)
        return database and held_open(at)

    def not_held(self, job: Job, at: At, what: str) -> None:
        """Before replacing or deleting the file at `at` because of S3: if it is a database a
        process holds open, it is a local change instead (the next pass keeps S3's version
        beside it as a conflict copy, or uploads it again after a delete), said as a warning."""
        if job.facts.local is None or job.facts.local.kind is not Kind.FILE:
            return
        if self.database_held(job.rel, at):
            instead = "it goes back to S3" if what == "deleted" else "S3's is kept beside it"
            log.warning(
                "%s is an SQLite database a process holds open: not %s under it (%s instead)",
                job.rel,
                what,
                instead,
                extra={"path": job.rel},
            )
            self._state.hinted(job.rel, Hint.CONTENT | Hint.WRITTEN)
            raise LocalChanged(job.rel)

    def same_file(self, job: Job, local: LocalEntry) -> None:
        """A snapshot was taken of the database `local`: inotify drained, the path must still
        be that file (same inode, a file): written since is fine (the next change), replaced or
        removed is not."""
        self.barrier()
        now = local_entry(self._tree, job.rel)
        if now is None or now.kind is not Kind.FILE or now.ino != local.ino:
            raise LocalChanged(job.rel)

    async def prove_unchanged(self, job: Job, etags_are_md5: bool) -> None:
        """Before replacing or deleting a local file whose stat matches the synced record
        because S3 changed: prove by the synced checksum or ETag that its bytes are the synced
        ones too (`proof.still_synced`). If they are not, it is a local change (the next pass
        makes it a conflict, or an upload), never overwritten or deleted."""
        local, synced = job.facts.local, job.facts.synced
        if local is None or local.kind is not Kind.FILE:
            return
        if not provable(synced.remote if synced else None, etags_are_md5):
            return
        if self._databases is not None and self._databases.is_database(job.rel):
            return  # a snapshot's ETag proves nothing of the live file: its stat is trusted
        if not await asyncio.get_running_loop().run_in_executor(
            None,
            still_synced,
            self._tree,
            job.rel,
            synced,
            self._part_size,
            etags_are_md5,
        ):
            self._state.hinted(job.rel, Hint.CONTENT | Hint.WRITTEN)
            raise LocalChanged(job.rel)

    async def prove_synced(self, rel: str, synced: Synced, now: LocalEntry) -> None:
        """The file `now` at `rel` is `proof.unproven`: read it, where the synced checksum or
        ETags that are MD5s can prove anything. Proven to hold the synced bytes, its record is
        proven at its ctime now (not read again); proven not to, it is a local change
        (`Hint.CONTENT | Hint.WRITTEN`). Neither when nothing can tell (no checksum, and ETags
        not MD5s: SSE-KMS or SSE-C; a part size not guessed) or the file went."""
        md5 = bool(self._etags.md5)
        if synced.remote is None or not provable(synced.remote, md5):
            return
        if self._databases is not None and self._databases.is_database(rel):
            return
        try:
            same = await self.is_object(rel, synced.local.size, synced.remote, md5)
        except (FileNotFoundError, PermissionError):
            return  # gone, or not ours to read: the decision goes on from what stat says
        if same is True:
            self._state.proven(rel, synced, now.ctime_ns)
        elif same is False:
            self._state.hinted(rel, Hint.CONTENT | Hint.WRITTEN)

    async def learn_remote(self, rel: str, failed: BaseException | None = None) -> bool:
        """A conditional request failed (`failed`), or S3 answered otherwise: learn what it
        holds now. True when S3 refused an If-Match naming the very ETag it holds, and the form
        ETags are sent in was changed because of it (conditions.py): worth trying again now."""
        ps = self._state.get(rel)
        is_dir = ps.remote.is_dir if ps.remote is not None else False
        head = await self._s3.head_object(self._keys.key_for_rel(rel, is_dir=is_dir))
        self._state.set_remote(rel, None if head is None else entry_of(head, is_dir=is_dir))
        return (
            isinstance(failed, PreconditionFailed)
            and failed.if_match is not None
            and head is not None
            and head.etag == failed.if_match
            and self._s3.conditions.refused_as_sent(failed.operation)
        )


__all__ = ["Checks"]
