"""Carries out one decision for one path: a dispatch table from each `Op` to the one operation
that does it. The operations live by concern in `upload.py` (local to S3), `download.py` (S3 to
local), `delete.py` (deletes on either side), `conflict.py` (both sides changed) and `rename.py`
(renames carried without their bytes); they are
the only code that writes to S3 or to the folder, and they share one signature,
`async (Job) -> None` (job.py), and one `Workspace` (workspace.py). What two of them need is
below them, never in another operation: the re-checks (checks.py), the fetch into the working
folder (fetch.py), conflict copies and temporary names (local/).

An operation never calls another, nor back into scheduling (job.py): what must be looked at
again it adds to `job.followups`, which the pipeline submits even when the operation fails
halfway; what must follow in this pass, on the same facts, it leaves in `job.then`, and `run`
carries that out next, through this same table, as if it had been decided.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from ..core.reconcile import Op
from .conflict import Conflicts
from .delete import Deletes
from .download import Downloads
from .fetch import Fetcher
from .job import Job, Operation
from .rename import Renames
from .upload import Uploads
from .workspace import Workspace


class Executor:
    """The dispatch table: each `Op` to the one operation that carries it out."""

    def __init__(
        self,
        workspace: Workspace,
        *,
        hold_replaced: Callable[[str, int], None],
        progress: Callable[[], None],
    ) -> None:
        """`hold_replaced(rel, fd)`: a version of `rel` no name reaches any more, replaced by
        a download or deleted because S3 deleted it (replaced.py). `progress()`: bytes moved."""
        self._state = workspace.state
        fetcher = Fetcher(workspace, progress)
        uploads = Uploads(workspace, progress)
        downloads = Downloads(workspace, fetcher, hold_replaced)
        conflicts = Conflicts(workspace, fetcher)
        deletes = Deletes(workspace, hold_replaced)
        renames = Renames(workspace)
        self._operations: dict[Op, Operation] = {
            Op.UPLOAD: uploads.upload,
            Op.UPLOAD_META: uploads.upload_meta,
            Op.COPY_REMOTE: renames.copy_remote,
            Op.PUT_MARKER: uploads.put_marker,
            Op.DOWNLOAD: downloads.download,
            Op.MKDIR: downloads.mkdir,
            Op.APPLY_REMOTE_META: downloads.apply_remote_meta,
            Op.DELETE_REMOTE: deletes.delete_remote,
            Op.DELETE_LOCAL: deletes.delete_local,
            Op.RMDIR: deletes.rmdir,
            Op.CONFLICT: conflicts.resolve,
            Op.RECORD: self._record,
            Op.FORGET: self._forget,
        }

    async def run(self, job: Job) -> None:
        await self._operations[job.decision.op](job)
        while job.then is not None:  # the same path, facts and IN_MODIFY count; one followups
            job = replace(job, decision=job.then, then=None)
            await self._operations[job.decision.op](job)

    async def _record(self, job: Job) -> None:
        local = job.facts.local
        assert local is not None  # reconcile records only what exists here
        self._state.record(job.rel, local, job.facts.remote)

    async def _forget(self, job: Job) -> None:
        self._state.forget(job.rel)


__all__ = ["Executor"]
