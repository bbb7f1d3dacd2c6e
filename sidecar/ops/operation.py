"""What every operation shares: the job it carries out (`Job`), what it may ask to be looked at
again (`Followup`), the ways it can find the world changed (`LocalChanged`, `RemoteChanged`,
`IntegrityError`), and the `Workspace`: where files are, S3, the state, metrics, and inotify's
barrier.

Every local path is reached through the workspace's `Tree` (safefs.py), from the root's
descriptor with no symlink followed below it; there is no path-string access to the folder
here or in any operation. Temporary files are names in the working folder (`temp_name`,
`Tree.temp`).

Every operation re-checks, right before it commits, that the facts it was decided on still hold
(`Workspace.recheck`), and raises `LocalChanged` when they do not: a decision made on facts
that changed a moment later is abandoned, never applied. Remote writes are conditional
(`If-Match` / `If-None-Match`), so a concurrent change by another client surfaces as
`PreconditionFailed` (or `RemoteChanged`) instead of being overwritten; the pipeline then
learns what S3 holds (`Workspace.learn_remote`) and decides again.
"""

from __future__ import annotations

import asyncio
import itertools
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from ..core.keys import KeyMapper
from ..core.model import Hint, Kind, LocalEntry, RemoteEntry, Synced
from ..core.reconcile import Decision, Facts
from ..core.state import PathState, SyncState
from ..local.localfs import entry_from_stat, local_entry
from ..local.proof import EtagKnowledge, file_is_object, still_synced
from ..local.safefs import At, Tree
from ..metrics import Metrics
from ..s3.client import ObjectHead, S3Client


class LocalChanged(Exception):
    """The local path is no longer what the decision saw: decide again."""


class RemoteChanged(Exception):
    """S3 no longer holds what the decision saw: learn what it holds, and decide again."""


class IntegrityError(Exception):
    """S3 stored something other than what we sent (or sent something other than it claims)."""


# Names of temporary files: 32 hex digits, 16 random to this process and 16 of a count in it.
_TEMP_PREFIX = os.urandom(8).hex()
_TEMP_NUMBERS = itertools.count()
_HEX = frozenset("0123456789abcdef")


def is_temp_name(name: str) -> bool:
    """Whether `name` in the working folder is one `Workspace.temp_name` makes (a crash's
    leftover to clean up at start), and not a file someone else put there."""
    return len(name) == 32 and _HEX.issuperset(name)


@dataclass(frozen=True, slots=True)
class Followup:
    """A path to look at again because of what an operation did: a local change (`hint`: what
    changed) for the upload pool, or with `remote`, a consequence of S3's for the download pool."""

    rel: str
    hint: Hint = Hint.NONE
    remote: bool = False


@dataclass(slots=True)
class Job:
    """One decision to carry out, with what it was decided on."""

    rel: str
    facts: Facts
    decision: Decision
    ps: PathState
    gen: int  # the path's IN_MODIFY count when the decision was made
    followups: list[Followup] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class ExecutorSettings:
    """The settings operations read (their defaults are the table's: settings/table.py)."""

    multipart_threshold: int
    multipart_chunksize: int
    multipart_concurrency: int
    inline_read_max: int = 256 * 1024  # read in one go on the loop up to this size


class Workspace:
    """What every operation shares: where files are, S3, the state, metrics, inotify's barrier."""

    def __init__(
        self,
        *,
        settings: ExecutorSettings,
        keys: KeyMapper,
        tree: Tree,
        s3: S3Client,
        state: SyncState,
        metrics: Metrics,
        barrier: Callable[[], None],
        hold_replaced: Callable[[str, int], None] = lambda rel, fd: os.close(fd),
        progress: Callable[[], None] = lambda: None,
        etags: EtagKnowledge | None = None,
    ) -> None:
        self.settings = settings
        self.keys = keys
        self.tree = tree  # the folder, held open: every local path is reached through it
        self.s3 = s3
        self.state = state
        self.metrics = metrics
        self.barrier = barrier  # handle every inotify event the kernel has queued, now
        self.progress = progress  # called as bytes move: a long transfer is not a stall
        # Given the descriptor of a version of `rel` no name reaches any more (replaced or
        # deleted): an app may still write to it (replaced.py).
        self.hold_replaced = hold_replaced
        self.loop = asyncio.get_running_loop()
        self.etags = etags if etags is not None else EtagKnowledge()

    def local_entry(self, rel: str) -> LocalEntry | None:
        """What is at `rel` now (absent if reached only through a symlink)."""
        return local_entry(self.tree, rel)

    @staticmethod
    def temp_name() -> str:
        """A fresh name for a temporary file in the working folder (`tree.temp(name)`), of
        the form `is_temp_name` knows: this process's random half and a count (0.6 µs, where
        `uuid4` took 5, once a download)."""
        return f"{_TEMP_PREFIX}{next(_TEMP_NUMBERS):016x}"

    async def prove_unchanged(self, job: Job, etags_are_md5: bool) -> None:
        """Before replacing or deleting a local file whose stat matches the synced record
        because S3 changed: prove by the synced ETag that its bytes are the synced ones too
        (`proof.still_synced`). If they are not, it is a local change (the next pass makes it
        a conflict, or an upload), never overwritten or deleted."""
        local = job.facts.local
        if local is None or local.kind is not Kind.FILE or not etags_are_md5:
            return
        chunksize = self.settings.multipart_chunksize
        if not await self.loop.run_in_executor(
            None, still_synced, self.tree, job.rel, job.facts.synced, chunksize
        ):
            self.state.hinted(job.rel, Hint.CONTENT | Hint.WRITTEN)
            raise LocalChanged(job.rel)

    async def prove_synced(self, rel: str, synced: Synced, now: LocalEntry) -> None:
        """The file `now` at `rel` is `proof.unproven`: read it, where ETags are MD5s. Proven
        to hold the synced bytes, its record is proven at its ctime now (not read again);
        proven not to, it is a local change (`Hint.CONTENT | Hint.WRITTEN`). Neither when the
        ETag cannot tell (SSE-KMS or SSE-C, a part size not guessed) or the file went."""
        if not self.etags.md5 or synced.remote is None:
            return
        try:
            same = await self.loop.run_in_executor(
                None,
                file_is_object,
                self.tree,
                rel,
                synced.local.size,
                synced.remote.etag,
                self.settings.multipart_chunksize,
            )
        except FileNotFoundError:
            return
        if same is True:
            self.state.proven(rel, synced, now.ctime_ns)
        elif same is False:
            self.state.hinted(rel, Hint.CONTENT | Hint.WRITTEN)

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
            now = local_entry(self.tree, job.rel)
        else:
            try:
                now = entry_from_stat(at.lstat())
            except FileNotFoundError:
                now = None
        if now != expected:
            raise LocalChanged(job.rel)
        return now

    async def learn_remote(self, rel: str) -> None:
        """A conditional request failed, or S3 answered otherwise: learn what it holds now."""
        ps = self.state.get(rel)
        is_dir = ps.remote.is_dir if ps.remote is not None else False
        head = await self.s3.head_object(self.keys.key_for_rel(rel, is_dir=is_dir))
        self.state.set_remote(rel, None if head is None else entry_of(head, is_dir=is_dir))


def entry_of(head: ObjectHead, *, is_dir: bool = False) -> RemoteEntry:
    """The remote entry a HEAD describes."""
    return RemoteEntry(
        head.etag,
        head.size,
        head.last_modified,
        is_dir,
        head.mtime_ns,
        head.mode,
        unsettled=head.unsettled,
    )


def fetched(listed: RemoteEntry, head: ObjectHead) -> RemoteEntry:
    """A listed entry, completed by the headers of the GET that fetched it (whose
    Last-Modified is the newer if a metadata-only copy landed in between)."""
    # What did not change is the listed value itself: one string or int per path, not two.
    return RemoteEntry(
        listed.etag if head.etag in ("", listed.etag) else head.etag,
        listed.size if head.size == listed.size else head.size,
        listed.last_modified
        if head.last_modified in ("", listed.last_modified)
        else head.last_modified,
        listed.is_dir,
        head.mtime_ns,
        head.mode,
        unsettled=head.unsettled,
    )


Operation = Callable[[Job], Awaitable[None]]


__all__ = [
    "ExecutorSettings",
    "Followup",
    "IntegrityError",
    "Job",
    "LocalChanged",
    "Operation",
    "RemoteChanged",
    "Workspace",
    "entry_of",
    "fetched",
]
