"""S3 to local: objects (`download`), directories (`mkdir`), another client's chmod/touch
(`apply_remote_meta`).

A download never shows a partial file: the object lands in the hidden working folder, checked
and with its mode and mtime (fetch.py), and is then moved into place only if the local path is
still exactly what the decision saw. Into an empty name it is linked (`link()` fails if a file
appeared meanwhile, which is never clobbered); over a file, it is renamed. Every local name is
reached through `Tree` (safefs.py): a parent that is a symlink or a file is refused
(UnsafeParentError), even one swapped in while the object was on its way, and no chmod or utime
follows a symlink: a key never writes outside the folder. Only permission bits are applied from
S3, never setuid, setgid or sticky.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
from collections.abc import Callable

from ..core.model import Kind, LocalEntry
from ..local.localfs import PERMISSION_BITS, changed_by_us, entry_from_stat, in_place
from ..local.proof import verifiable
from ..local.safefs import At
from ..local.sqlite import fd_is_database, held_open, remove_companions
from ..local.workdir import discard
from ..s3.entries import fetched
from .fetch import Fetcher
from .job import Job, LocalChanged, RemoteChanged
from .workspace import Workspace

log = logging.getLogger("sidecar.download")


class Downloads:
    def __init__(
        self, workspace: Workspace, fetcher: Fetcher, hold_replaced: Callable[[str, int], None]
    ) -> None:
        self._ws = workspace
        self._fetcher = fetcher
        # Given the descriptor of a version no name reaches any more: an app may still write
        # to it (replaced.py).
        self._hold_replaced = hold_replaced

    def _record_created(self, created: list[str]) -> None:
        """Directories made above a path exist because of S3: record them."""
        ws = self._ws
        for parent in created:
            entry = ws.checks.local_entry(parent)
            if entry is not None:
                ws.state.record(parent, entry, None)

    def _install(self, temp: At, at: At, rel: str, expected: LocalEntry | None) -> None:
        """Put `temp` at `at` (`rel`): never over a file that appeared since the decision."""
        if expected is None:
            try:
                temp.link_to(at)
            except FileExistsError as error:
                raise LocalChanged(rel) from error
            except OSError as error:
                if error.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EXDEV):
                    raise
                temp.rename_to(at)  # no hard links here: the check just made must do
                return
            temp.unlink()
        else:
            # An app may hold the old version open and write to it later: keep hold of it.
            try:
                old = at.open(os.O_RDONLY | os.O_NONBLOCK)
            except OSError:
                old = -1
            temp.replace(at)
            if old >= 0:
                self._hold_replaced(rel, old)

    async def download(self, job: Job) -> None:
        remote = job.facts.remote
        assert remote is not None  # reconcile downloads only what S3 holds
        ws = self._ws
        rel = job.rel
        temp, head = await self._fetcher.fetch(rel, remote, job.facts.moved_from)
        try:
            on_disk = entry_from_stat(temp.lstat())
            ws.etags.saw(head.encryption)
            await ws.checks.prove_unchanged(job, verifiable(head.encryption))
            created: list[str] = []
            with ws.tree.parent(rel, created) as at:
                self._record_created(created)
                ws.checks.recheck(job, job.facts.local, at)
                ws.checks.not_held(job, at, "replaced")
                self._install(temp, at, rel, job.facts.local)
                on_disk = in_place(at, on_disk)
                if ws.databases is not None and ws.databases.covers(rel):
                    self._no_stale_companions(rel, at)
        except BaseException:
            discard(temp)
            raise
        ws.state.agree(rel, on_disk, fetched(remote, head))
        ws.metrics.inc(ws.metrics.downloads, "ok")
        ws.transfers.done(log, "downloaded %s", rel, bytes=head.size, operation="download")

    def _no_stale_companions(self, rel: str, at: At) -> None:
        """A database just put in place opens cleanly: a `-wal`, `-shm` or `-journal` left
        beside it belongs to the version it replaced (or to none), and is removed unless a
        process holds the name's database open (SYNC_SQLITE=snapshot)."""
        try:
            fd = at.open(os.O_RDONLY | os.O_NONBLOCK)
        except OSError:
            return
        try:
            database = fd_is_database(fd)
        finally:
            os.close(fd)
        if database and not held_open(at):
            removed = remove_companions(at)
            if removed:
                log.info("%s: removed %s left beside the database it replaced", rel, removed)

    async def mkdir(self, job: Job) -> None:
        """A directory for a `dir/` marker, with the marker's mtime (listings do not carry
        it: one HEAD). Files put in it later move that mtime, as on any filesystem."""
        ws = self._ws
        rel = job.rel
        marker = job.facts.remote
        head = None
        if marker is not None and marker.is_dir:
            head = await ws.s3.head_object(ws.keys.key_for_rel(rel, is_dir=True))
        created: list[str] = []
        with ws.tree.parent(rel, created) as at:
            self._record_created(created)
            made = True
            try:
                at.mkdir()
            except FileExistsError:  # made since the decision: fine if a directory
                made = False
            if made and head is not None and head.mtime_ns is not None:
                at.utime(head.mtime_ns)
            try:
                entry: LocalEntry | None = entry_from_stat(at.lstat())
            except FileNotFoundError:
                entry = None
        if entry is None or entry.kind is not Kind.DIR:
            raise LocalChanged(rel)
        ws.state.record(rel, entry, job.facts.remote)

    async def apply_remote_meta(self, job: Job) -> None:
        """Same object, new metadata (another client's chmod or touch): apply it here."""
        local, remote = job.facts.local, job.facts.remote
        assert local is not None and remote is not None  # reconcile: both sides exist
        ws = self._ws
        rel = job.rel
        head = await ws.s3.head_object(ws.keys.key_for_rel(rel))
        if head is None or head.etag != remote.etag:
            raise RemoteChanged(rel)
        with ws.tree.parent(rel) as at:
            before = ws.checks.recheck(job, local, at)
            if (
                local.kind is Kind.FILE
                and head.mode is not None
                and stat.S_IMODE(head.mode) & PERMISSION_BITS != stat.S_IMODE(local.mode)
            ):
                at.chmod_file(stat.S_IMODE(head.mode) & PERMISSION_BITS)
            if head.mtime_ns is not None and head.mtime_ns != local.mtime_ns:
                at.utime(head.mtime_ns)
            try:
                updated = entry_from_stat(at.lstat())
            except FileNotFoundError as error:
                raise LocalChanged(rel) from error
            # A write that landed since the check must not be absorbed into the synced record
            # as if it were our chmod/utime: it is uploaded by the next pass instead.
            ws.checks.recheck(job, updated, at)
        if (updated.size, updated.ino, updated.kind) != (local.size, local.ino, local.kind) or (
            head.mtime_ns is not None and updated.mtime_ns != head.mtime_ns
        ):
            raise LocalChanged(rel)
        assert before is not None  # recheck: it is `local`
        ws.state.agree(rel, changed_by_us(before, updated, job.facts.synced), fetched(remote, head))
        ws.metrics.inc(ws.metrics.metadata_updates, "local", "ok")
