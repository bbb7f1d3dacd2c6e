"""Both sides changed: keep both. The version that keeps the name is the local one (a local
change not yet uploaded is never overwritten), or at start, with no history, the newer mtime;
the other is kept beside it as `name.sync-conflict-YYYYMMDD-HHMMSS.ext` (local/conflicts.py)
and uploaded too (a followup). A local version that keeps the name goes up in the same pass,
as the executor's own upload (`job.then`), checked against the same facts and conditional on
the S3 version just kept (`If-Match`).

Often both sides are the same file (a restart on a volume that survived): that is proven before
anything is transferred, by MD5 against a single-part ETag, or for a multipart object by its
multipart ETag computed from the file (size and mtime are never taken as proof); failing that,
the object is fetched and compared byte for byte.

The local file is read, copied and replaced only through `Tree` (safefs.py): a conflict copy is
never made, and nothing is replaced, beyond a symlinked directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import stat
from dataclasses import replace

from ..core.model import Hint, Kind, LocalEntry, RemoteEntry, Synced
from ..core.reconcile import Decision, Op, Winner
from ..local.conflicts import existing_conflicts, link_as_conflict
from ..local.localfs import READ_SIZE, entry_from_stat, in_place
from ..local.safefs import At, Tree
from ..local.workdir import discard
from ..s3.entries import fetched
from .fetch import Fetcher
from .job import Followup, Job, LocalChanged, RemoteChanged
from .workspace import Workspace

log = logging.getLogger("sidecar.conflict")


class Conflicts:
    def __init__(self, workspace: Workspace, fetcher: Fetcher) -> None:
        self._ws = workspace
        self._fetcher = fetcher

    async def resolve(self, job: Job) -> None:
        local, remote = job.facts.local, job.facts.remote
        assert local is not None and remote is not None  # reconcile: both sides exist
        ws = self._ws
        rel = job.rel
        tree = ws.tree
        loop = asyncio.get_running_loop()
        # Prove sameness cheaply first, locally, by the ETag (size and mtime are never proof:
        # reproducible builds and archives normalise mtimes).
        if local.kind is Kind.FILE and local.size == remote.size:
            try:
                same = await ws.checks.is_object(rel, local.size, remote)
            except PermissionError:  # not ours to read: it cannot be proven the same
                same = None
            if same:
                ws.checks.recheck(job, local)
                head = await ws.s3.head_object(ws.keys.key_for_rel(rel))
                if head is None or head.etag != remote.etag:
                    raise RemoteChanged(rel)
                self._same_bytes(job, local, fetched(remote, head))
                return
        if job.decision.winner is Winner.LOCAL:
            kept = await self._kept_already(rel, remote, None)
            if kept is not None:
                self._keep_local(job, local, remote, kept)
                return
        temp, head = await self._fetcher.fetch(rel, remote)
        try:
            on_disk = entry_from_stat(temp.lstat())
            remote_entry = fetched(remote, head)
            if (
                local.kind is on_disk.kind
                and local.size == on_disk.size
                and await loop.run_in_executor(None, _readable_and_same, tree, rel, temp)
            ):
                ws.checks.recheck(job, local)
                self._same_bytes(job, local, remote_entry)
                return
            winner = job.decision.winner
            local_wins = winner is Winner.LOCAL or (
                winner is Winner.NEWER and local.mtime_ns >= on_disk.mtime_ns
            )
            if local_wins:
                kept = await self._kept_already(rel, remote_entry, temp)
                if kept is not None:
                    self._keep_local(job, local, remote_entry, kept)
                    return
            with tree.parent(rel) as at:
                ws.checks.recheck(job, local, at)
                if not local_wins and ws.checks.database_held(rel, at):
                    # A database a process holds open is never replaced under it: at start
                    # (no history) it keeps the name; in download-only, where S3's version
                    # must take it, that waits until the app lets go.
                    if winner is Winner.REMOTE:
                        raise LocalChanged(rel)
                    local_wins = True
                if local_wins:
                    copy = link_as_conflict(temp, at, rel)
                else:
                    copy = link_as_conflict(at, at, rel)
                    temp.replace(at)
                    on_disk = in_place(at, on_disk)
            job.followups.append(Followup(copy, Hint.CONTENT))
            if local_wins:
                ws.state.set_remote(rel, remote_entry)
                self._log(rel, copy, "the local version keeps the name, the S3 version")
                # Then the local version goes up over the S3 one just kept: the executor's
                # upload, in this pass, checked against these same facts.
                job.then = Decision(Op.UPLOAD, if_match=remote_entry.etag)
            else:
                ws.state.agree(rel, on_disk, remote_entry)
                self._log(rel, copy, "the newer S3 version keeps the name, the local version")
        finally:
            discard(temp)

    def _keep_local(self, job: Job, local: LocalEntry, remote: RemoteEntry, kept: str) -> None:
        """This S3 version was kept beside the file by an earlier try of this conflict (its
        upload failed since, or the sidecar restarted): one copy per version, however often
        the conflict is met again (item 7 of the field report: 30 copies of one version). The
        local version still goes up over it, in this pass."""
        ws = self._ws
        ws.checks.recheck(job, local)
        ws.state.set_remote(job.rel, remote)
        log.info("conflict on %s: the S3 version is already kept as %s", job.rel, kept)
        job.then = Decision(Op.UPLOAD, if_match=remote.etag)

    async def _kept_already(self, rel: str, remote: RemoteEntry, temp: At | None) -> str | None:
        """A conflict copy of `rel` beside it that holds `remote`'s bytes, if there is one: the
        name of the first. Proven by the ETag, or, with the object fetched (`temp`), byte for byte.
        Costs a listing of the directory, and a read of each copy of `rel` of the right size
        (there is seldom one)."""
        ws = self._ws
        if remote.is_dir:
            return None
        names = await asyncio.get_running_loop().run_in_executor(None, ws.tree.names_beside, rel)
        head = rel.rpartition("/")[0]
        siblings = [f"{head}/{name}" if head else name for name in names]
        for copy in existing_conflicts(rel, siblings):
            entry = ws.checks.local_entry(copy)
            if entry is None or entry.kind is not Kind.FILE or entry.size != remote.size:
                continue
            with contextlib.suppress(OSError):
                if temp is None:
                    same = await ws.checks.is_object(copy, entry.size, remote)
                else:
                    same = await asyncio.get_running_loop().run_in_executor(
                        None, _same_content, ws.tree, copy, temp
                    )
                if same is True:
                    return copy
        return None

    def _same_bytes(self, job: Job, local: LocalEntry, remote: RemoteEntry) -> None:
        """Both sides hold the same bytes: no conflict copy. Their mode or mtime may still
        differ; then one side's is taken, as if the other had last synced it: the folder's
        when a local change wins (a chmod here), S3's otherwise (a restart that lost the
        record: what S3 holds was written on purpose, the folder's is of unknown standing)."""
        rel = job.rel
        state = self._ws.state
        ours = replace(remote, mode=local.mode, mtime_ns=local.mtime_ns)
        if local.kind is not Kind.FILE or not ours.metadata_differs(remote):
            state.agree(rel, local, remote)
            return
        if job.decision.winner is Winner.LOCAL:
            as_synced = replace(local, mode=remote.mode or local.mode)
            if remote.mtime_ns is not None:
                as_synced = replace(as_synced, mtime_ns=remote.mtime_ns)
            state.agree_bytes(rel, Synced(as_synced, remote), remote)
            job.followups.append(Followup(rel, Hint.META))  # our metadata goes up
        else:
            state.agree_bytes(rel, Synced(local, ours), remote)
            job.followups.append(Followup(rel, remote=True))  # S3's metadata comes here

    def _log(self, rel: str, copy: str, which: str) -> None:
        self._ws.metrics.conflicts.inc()
        log.warning(
            "conflict on %s: both sides changed; %s is kept as %s",
            rel,
            which,
            copy,
            extra={"path": rel, "operation": "conflict"},
        )


def _readable_and_same(tree: Tree, rel: str, temp: At) -> bool:
    """`_same_content`, False for a file not ours to read (it is kept, and the other beside)."""
    try:
        return _same_content(tree, rel, temp)
    except PermissionError:
        return False


def _same_content(tree: Tree, rel: str, temp: At) -> bool:
    """Byte-for-byte equality; for symlinks, the targets (never followed)."""
    with tree.parent(rel) as at:
        if stat.S_ISLNK(at.lstat().st_mode) or stat.S_ISLNK(temp.lstat().st_mode):
            try:
                return at.readlink() == temp.readlink()
            except OSError:
                return False
        with (
            open(at.open(os.O_RDONLY | os.O_NONBLOCK), "rb") as a,
            open(temp.open(os.O_RDONLY), "rb") as b,
        ):
            while True:
                chunk_a = a.read(READ_SIZE)
                chunk_b = b.read(READ_SIZE)
                if chunk_a != chunk_b:
                    return False
                if not chunk_a:
                    return True
