"""The start-up restore: bring the folder up to date with the bucket before the app runs
(readiness, ECS `dependsOn … HEALTHY`, waits for `done`), and its max-delete guard.

What was synced before a restart is loaded from the store (store.py), so changes and deletions
made on either side while the sidecar was down are synced as if it had never stopped: every path
the listing changed and every path synced before is looked at once. If too many synced files are
gone from the folder (a volume wiped or swapped) or from S3 (a prefix emptied), their records are
dropped instead of their deletions propagated: those files are restored or uploaded again.

A path counts as restored once a pass settles it, finds it being written, or has failed three
times (then it is logged and still retried in the background: readiness must not wait forever).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from typing import NamedTuple

from . import heap
from .localfs import entry_from_stat
from .metrics import Metrics
from .model import Hint, Kind, RemoteEntry, Synced
from .pipeline import Outcome, Verdict
from .poll import Poller, apply_snapshot
from .proof import EtagKnowledge, still_synced
from .reconcile import too_many_deletions
from .safefs import Tree
from .scheduler import DOWNLOAD, Scheduler
from .state import SyncState
from .store import SyncedStore

log = logging.getLogger("sidecar")


class Restore:
    def __init__(
        self,
        *,
        state: SyncState,
        store: SyncedStore,
        poller: Poller,
        metrics: Metrics,
        max_delete_percent: float,
        tree: Tree,
        etags: EtagKnowledge,
        multipart_chunksize: int,
        lists: bool = True,
    ) -> None:
        self._lists = lists  # False in upload-only: S3 is never listed
        self._tree = tree
        self._etags = etags
        self._chunksize = multipart_chunksize
        self._state = state
        self._store = store
        self._poller = poller
        self._metrics = metrics
        self._max_delete = max_delete_percent
        self.done = asyncio.Event()
        self.pending: set[str] = set()
        self._started = time.monotonic()
        self._listed = 0

    async def prepare(self) -> None:
        """Load what was synced, list the bucket, and find every path to look at. The listing
        runs while the saved state is loaded and the folder looked at: on S3 it is mostly
        waiting, and the other two are this machine's work."""
        with heap.building():  # about a million long-lived objects at 100,000 paths
            await self._prepare()

    async def _prepare(self) -> None:
        state = self._state
        listing = asyncio.ensure_future(self._poller.list()) if self._lists else None
        try:
            loaded = await self._store.load()
            self._etags.restore(self._store.saved_etags_md5)
            look = functools.partial(
                _look_at_folder,
                self._tree,
                loaded,
                self._chunksize,
                count=self._max_delete < 100,
                prove=bool(self._etags.md5),  # only an MD5 ETag proves a rewrite
            )
            folder = await asyncio.get_running_loop().run_in_executor(None, look)
            snapshot = None if listing is None else await listing
        except BaseException:
            if listing is not None:
                listing.cancel()
                await asyncio.gather(listing, return_exceptions=True)
            raise
        for rel, synced in loaded.items():
            state.set_synced(rel, synced)
        changed: list[str] = []
        if snapshot is not None:
            self._poller.succeeded()
            self._listed = len(snapshot.entries)
            applied = apply_snapshot(
                state,
                snapshot,
                busy=lambda rel: False,
                max_delete_percent=100,
                initial=True,
                unlisted=self._poller.excluded,
            )
            changed = applied.changed + applied.checked
            if loaded:
                await self._guard(loaded, folder.missing, snapshot.entries, snapshot.shadowed)
        else:
            # Upload-only: S3 is taken to hold what we last synced there.
            known = {rel: s.remote for rel, s in loaded.items() if s.remote is not None}
            for rel, remote in known.items():
                state.set_remote(rel, remote)
            if loaded:
                await self._guard(loaded, folder.missing, known, set())
        state.on_synced = self._store.note
        for rel in folder.rewritten:
            # Written while we were down, with its size and mtime put back: a local change.
            state.hinted(rel, Hint.CONTENT | Hint.WRITTEN)
        for rel in changed:
            state.mark_initial(rel)
        self.pending = set(changed) | {rel for rel in loaded if state.get(rel).synced is not None}

    async def run(self, scheduler: Scheduler) -> None:
        """Submit every path found by `prepare`, and wait until each is restored."""
        for rel in self.pending:
            scheduler.submit(rel, DOWNLOAD)
        if not self.pending:
            self.done.set()
        await self.done.wait()
        duration = time.monotonic() - self._started
        self._metrics.restore_duration.set(duration)
        self._metrics.restore_done.set(1)
        heap.release()  # a restore's transient tables and buffers, freed
        log.info("restored %d objects in %.2fs; syncing", self._listed, duration)

    def passed(self, rel: str, outcome: Outcome) -> None:
        """A pass over `rel` ended (the pipeline tells every one)."""
        if rel not in self.pending:
            return
        finished = outcome.verdict in (Verdict.SETTLED, Verdict.WAITING)
        if not finished and self._state.get(rel).failures < 3:
            return
        if not finished:
            log.error("could not restore %r at start; still retrying", rel)
        self.pending.discard(rel)
        if not self.pending:
            self.pending = set()  # a set never shrinks: let go of 100,000 slots
            self.done.set()

    async def _guard(
        self,
        loaded: dict[str, Synced],
        missing_here: int,
        listed: dict[str, RemoteEntry],
        shadowed: set[str],
    ) -> None:
        """The max-delete guard, for what happened while the sidecar was down."""
        files = [rel for rel, synced in loaded.items() if synced.local.kind is not Kind.DIR]
        if not files or self._max_delete >= 100:
            return
        if too_many_deletions(missing_here, len(files), self._max_delete):
            self._metrics.delete_guard_trips.inc()
            log.error(
                "%d of %d synced files are gone from the folder since the last run, more "
                "than the max-delete guard allows: not deleting them in S3 (they are "
                "restored from it)",
                missing_here,
                len(files),
            )
            for rel in loaded:
                self._state.forget(rel)
            await self._store.forget_all()
            return
        unlisted = self._poller.excluded
        missing_there = [
            rel
            for rel in files
            if rel not in listed and rel not in shadowed and not unlisted(rel, False)
        ]
        if too_many_deletions(len(missing_there), len(files), self._max_delete):
            self._metrics.delete_guard_trips.inc()
            log.error(
                "%d of %d synced files are gone from S3 since the last run, more than the "
                "max-delete guard allows: not deleting them here (they are uploaded "
                "again)",
                len(missing_there),
                len(files),
            )
            for rel in missing_there:
                self._state.forget(rel)
                self._store.note(rel, None)


class _Folder(NamedTuple):
    """What one look at the folder found about the synced records."""

    missing: int  # synced files (not directories) gone from the folder
    rewritten: list[str]  # files rewritten in place while nothing watched


def _look_at_folder(
    tree: Tree, loaded: dict[str, Synced], chunksize: int, *, count: bool, prove: bool
) -> _Folder:
    """One lstat per synced path (in a thread): how many synced files are gone (for the
    max-delete guard), and, when ETags are MD5s (`prove`), the files whose stat matches their
    record but whose ctime moved since and whose bytes are proven (by the synced ETag) not to
    be the synced ones: rewritten while nothing watched, with the size and mtime put back. Only
    those files are read; a file we made records the ctime it has in place
    (`localfs.in_place`), so a restart reads none of them."""
    missing = 0
    rewritten: list[str] = []
    if not count and not prove:
        return _Folder(missing, rewritten)
    paths = (rel for rel, synced in loaded.items() if synced.local.kind is not Kind.DIR)
    # A path that cannot be looked at (EACCES) is left out: neither gone nor rewritten; its
    # pass tells.
    for rel, st in tree.lstat_many(paths):
        if st is None:
            missing += 1
            continue
        synced = loaded[rel]
        recorded = synced.local
        if (
            not prove
            or recorded.kind is not Kind.FILE
            or not recorded.ctime_ns
            or synced.remote is None
            or st.st_ctime_ns == recorded.ctime_ns
            or entry_from_stat(st) != recorded
        ):
            continue
        with contextlib.suppress(OSError):
            if not still_synced(tree, rel, synced, chunksize):
                rewritten.append(rel)
    return _Folder(missing, rewritten)
