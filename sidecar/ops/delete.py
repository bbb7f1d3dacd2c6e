"""Deletes, on either side: a key whose file was deleted here (`delete_remote`), a file whose key
was deleted in S3 (`delete_local`), and a directory left empty by S3 (`rmdir`); after a local
delete the parent is looked at again, so directories that existed only for keys now gone go
too.

A local file is deleted only when it is exactly the version last synced: it is first moved aside
into the working folder and compared there, and put back if it changed in the instant between
the check and the move (if the name was taken meanwhile, it becomes a conflict copy: nothing is
lost). Every local name is reached through `Tree` (safefs.py): nothing is moved, compared or
removed through a symlinked directory. A remote delete is conditional on the ETag last seen
(`If-Match`).
"""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Callable

from ..core.keys import parents_of
from ..core.model import Hint, Kind, kind_of_mode
from ..local.conflicts import link_as_conflict
from ..local.localfs import entry_from_stat
from ..local.safefs import At
from ..local.workdir import temp_name
from .job import Followup, Job, LocalChanged
from .workspace import Workspace

log = logging.getLogger("sidecar.delete")


class Deletes:
    def __init__(self, workspace: Workspace, hold_replaced: Callable[[str, int], None]) -> None:
        self._ws = workspace
        self._hold_replaced = hold_replaced  # a deleted version an app may still hold open

    async def delete_remote(self, job: Job) -> None:
        ws = self._ws
        rel = job.rel
        remote = job.facts.remote
        is_dir = remote.is_dir if remote is not None else False
        key = ws.keys.key_for_rel(rel, is_dir=is_dir)
        if_match = job.decision.if_match
        await ws.deletes.delete(key, if_match, lambda: ws.s3.delete_object(key, if_match=if_match))
        ws.state.wrote_remote(rel, None, None)
        ws.metrics.inc(ws.metrics.deletes, "remote", "ok")
        ws.transfers.done(log, "deleted %s from S3", rel, key=key, operation="delete_remote")
        parents = parents_of(rel)
        if parents:
            # The parent may have lost its last key: it decides whether to keep a marker.
            job.followups.append(Followup(parents[-1], Hint.CHILD_REMOVED))

    async def delete_local(self, job: Job) -> None:
        expected = job.facts.local
        assert expected is not None  # reconcile deletes only what exists here
        ws = self._ws
        rel = job.rel
        await ws.checks.prove_unchanged(job, bool(ws.etags.md5))
        aside = ws.tree.temp(temp_name())
        with ws.tree.parent(rel) as at:
            ws.checks.recheck(job, expected, at)
            ws.checks.not_held(job, at, "deleted")
            at.rename_to(aside)
            if entry_from_stat(aside.lstat()) != expected:
                # Changed in the instant between the check and the move: put it back.
                self._put_back(job, aside, at)
                raise LocalChanged(rel)
        try:  # an app may hold it open and write to it later: keep hold of it
            held = aside.open(os.O_RDONLY | os.O_NONBLOCK)
        except OSError:
            held = -1
        aside.unlink()
        if held >= 0:
            self._hold_replaced(rel, held)
        ws.state.forget(rel)
        ws.metrics.inc(ws.metrics.deletes, "local", "ok")
        ws.transfers.done(log, "deleted %s locally (deleted in S3)", rel, operation="delete_local")
        _parent_again(job)

    def _put_back(self, job: Job, aside: At, at: At) -> None:
        """Undo a move aside; if the name was taken meanwhile, keep the file as a copy."""
        try:
            aside.link_to(at)
        except FileExistsError:
            copy = link_as_conflict(aside, at, job.rel)
            job.followups.append(Followup(copy, Hint.CONTENT))
        aside.unlink()

    async def rmdir(self, job: Job) -> None:
        ws = self._ws
        rel = job.rel
        ws.checks.barrier()
        with ws.tree.parent(rel) as at:
            try:
                kind = kind_of_mode(at.lstat().st_mode)
            except FileNotFoundError as error:
                raise LocalChanged(rel) from error
            if kind is not Kind.DIR:
                raise LocalChanged(rel)
            try:
                at.rmdir()
            except OSError as error:
                if error.errno in (errno.ENOTEMPTY, errno.EEXIST):
                    return  # something local is still in it: keep it, the next poll retries
                raise
        ws.state.forget(rel)
        ws.metrics.inc(ws.metrics.deletes, "local", "ok")
        _parent_again(job)


def _parent_again(job: Job) -> None:
    """A local delete because of S3 may leave the parent existing only for keys now gone:
    look at it again (it is removed unless it holds local content or has a marker)."""
    parents = parents_of(job.rel)
    if parents:
        job.followups.append(Followup(parents[-1], remote=True))
