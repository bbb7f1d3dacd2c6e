"""The start-up restore: bring the folder up to date with the bucket before the app runs
(readiness, ECS `dependsOn … HEALTHY`, waits for `done`), and its max-delete guard.

What was synced before a restart is loaded from the store (store.py), so changes and deletions
made on either side while the sidecar was down are synced as if it had never stopped: every path
the listing changed and every path synced before is looked at once. If too many synced files are
gone from the folder (a volume wiped or swapped) or from S3 (a prefix emptied), their records are
dropped instead of their deletions propagated: those files are restored or uploaded again.

A path counts as restored once a pass settles it, finds it being written, or has failed three
times (then it is logged and still retried in the background: readiness must not wait forever).
An object S3 holds archived is settled unfetched (archived.py): the log's "restored N objects"
leaves it out, and says how many were left archived.

A long restore says how it goes: once the listing is folded in, how many paths it will look at
and how many bytes S3 lists for them; then every `PROGRESS_INTERVAL` seconds, how many are done,
the rates and the time left (progress.py), which `/readyz` and the `s3sync_restore_*` gauges
also show. Meanwhile each transfer's own line is at DEBUG (`TransferLog`).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable

from .. import heap
from ..core.model import Kind, RemoteEntry, Synced
from ..core.reconcile import too_many_deletions
from ..core.scheduler import RESTORE, Scheduler
from ..core.state import SyncState
from ..core.store import SyncedStore
from ..local.proof import EtagKnowledge
from ..local.safefs import Tree
from ..metrics import Metrics
from ..ops.workspace import TransferLog
from ..remote.fold import Snapshot, apply_snapshot, pair_renames
from ..remote.poll import Poller
from .pipeline import Outcome, Verdict
from .progress import RestoreProgress, size_text

log = logging.getLogger("sidecar")

PROGRESS_INTERVAL = 5.0  # seconds between two progress lines of a restore


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
        transfers: TransferLog,
        lists: bool = True,
        archived: Callable[[], int] = lambda: 0,
    ) -> None:
        self._lists = lists  # False in upload-only: S3 is never listed
        self._archived = archived  # how many objects passes left archived in S3
        self._tree = tree
        self._etags = etags
        self._state = state
        self._store = store
        self._poller = poller
        self._metrics = metrics
        self._max_delete = max_delete_percent
        self.done = asyncio.Event()
        self.finished_at: float | None = None  # monotonic: the restore's listing counts till then
        self.pending: set[str] = set()
        self._transfers = transfers
        self.progress = RestoreProgress()
        self._started = time.monotonic()
        self._listed = 0

    async def prepare(self, watch: Callable[[], Awaitable[None]]) -> None:
        """Load what was synced, list the bucket, and find every path to look at. The listing
        runs while the folder is watched, the saved state loaded and the folder looked at: on
        S3 it is mostly waiting, and the others are this machine's work.

        `watch` puts the whole folder under watch; it is awaited before the look, so a write
        that completes once the sidecar has started is seen by the look (it moved the ctime)
        or reported by the watch (IN_CLOSE_WRITE), whichever comes first. Looked at first and
        watched after, a same-size rewrite with its mtime put back in between was reported
        only as a file that exists, and never uploaded (chaos seed 71024). What the watch
        reports before the state is loaded is kept as hints (`SyncState.hinted`)."""
        with heap.building():  # about a million long-lived objects at 100,000 paths
            await self._prepare(watch)

    async def _prepare(self, watch: Callable[[], Awaitable[None]]) -> None:
        state = self._state
        listing = asyncio.ensure_future(self._poller.list()) if self._lists else None
        try:
            await watch()
            loaded = await self._store.load()
            self._etags.restore(self._store.saved_etags_md5)
            look = functools.partial(
                _missing_files, self._tree, loaded, count=self._max_delete < 100
            )
            missing = await asyncio.get_running_loop().run_in_executor(None, look)
            snapshot = None if listing is None else await listing
        except BaseException:
            if listing is not None:
                listing.cancel()
                await asyncio.gather(listing, return_exceptions=True)
            raise
        state.load_synced(loaded)
        changed: list[str] = []
        if snapshot is not None:
            self._poller.health.succeeded()
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
                changed += self._renamed_while_down(loaded, snapshot)
                self._guard(loaded, missing, snapshot.entries, snapshot.shadowed)
        else:
            # Upload-only: S3 is taken to hold what we last synced there.
            known = {rel: s.remote for rel, s in loaded.items() if s.remote is not None}
            for rel, remote in known.items():
                state.set_remote(rel, remote)
            if loaded:
                self._guard(loaded, missing, known, set())
        for rel in changed:
            state.mark_initial(rel)
        self.pending = set(changed) | {rel for rel in loaded if state.get(rel).synced is not None}
        self.progress.expect(len(self.pending), sum(map(self._size, self.pending)))
        log.info(
            "restore: %d objects listed in %.2fs; %d paths to look at, %s in S3",
            self._listed,
            time.monotonic() - self._started,
            self.progress.objects,
            size_text(self.progress.bytes),
        )

    def _renamed_while_down(self, loaded: dict[str, Synced], snapshot: Snapshot) -> list[str]:
        """Keys renamed in S3 while the sidecar was down: the records the listing no longer
        shows, paired with the keys it shows where nothing is synced (fold.py's
        `pair_renames`): their files are copied here, not downloaded, and the max-delete
        guard does not count them (`_guard`)."""
        entries, shadowed, unlisted = snapshot.entries, snapshot.shadowed, self._poller.excluded
        went = [
            (rel, synced)
            for rel, synced in loaded.items()
            if rel not in entries and rel not in shadowed and not unlisted(rel, False)
        ]
        if not went:
            return []
        came = [(rel, entry) for rel, entry in entries.items() if rel not in loaded]
        return pair_renames(self._state, came, went)

    def _size(self, rel: str) -> int:
        """The bytes S3 holds for `rel` as far as the state knows (0: a directory, or none)."""
        ps = self._state.peek(rel)
        remote = None if ps is None else ps.remote
        return 0 if remote is None or remote.is_dir else remote.size

    async def run(self, scheduler: Scheduler) -> None:
        """Submit every path found by `prepare` (to the restore's pool: scheduler.py), and
        wait until each is restored."""
        self._transfers.restoring()
        self.progress.begin(time.monotonic())
        try:
            for rel in self.pending:
                scheduler.submit(rel, RESTORE)
            if not self.pending:
                self.done.set()
            while not self.done.is_set():
                try:
                    await asyncio.wait_for(self.done.wait(), PROGRESS_INTERVAL)
                except TimeoutError:
                    log.info("%s", self.progress.line(time.monotonic()))
        finally:
            self._transfers.restored()
        self.finished_at = time.monotonic()
        self.progress.finish(self.finished_at)
        duration = self.finished_at - self._started
        self._metrics.restore_duration.set(duration)
        self._metrics.restore_done.set(1)
        heap.release()  # a restore's transient tables and buffers, freed
        archived = min(self._archived(), self._listed)
        left = f" ({archived} left archived in S3, fetched once restored there)" if archived else ""
        log.info("restored %d objects in %.2fs%s; syncing", self._listed - archived, duration, left)

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
        self.progress.passed(self._size(rel))
        if not self.pending:
            self.pending = set()  # a set never shrinks: let go of 100,000 slots
            self.done.set()

    def _guard(
        self,
        loaded: dict[str, Synced],
        missing_here: int,
        listed: dict[str, RemoteEntry],
        shadowed: set[str],
    ) -> None:
        """The max-delete guard, for what happened while the sidecar was down. A record it
        drops is dropped from the store too (the state tells it)."""
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
            return
        unlisted = self._poller.excluded
        leaving = self._state.moves.leaving  # renamed in S3: its object is under a new key
        missing_there = [
            rel
            for rel in files
            if rel not in listed
            and rel not in shadowed
            and not unlisted(rel, False)
            and not leaving(rel)
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


def _missing_files(tree: Tree, loaded: dict[str, Synced], *, count: bool) -> int:
    """How many synced files (not directories) are gone from the folder, for the max-delete
    guard (`count`; 0 without it): one lstat per synced path, in a thread. A path that cannot
    be looked at (EACCES) is not counted: its pass tells. Whether a file still there holds the
    synced bytes is each pass's question (`Pipeline`, `proof.unproven`): a restart reads only
    the files whose ctime moved since their record."""
    if not count:
        return 0
    paths = (rel for rel, synced in loaded.items() if synced.local.kind is not Kind.DIR)
    return sum(1 for _, st in tree.lstat_many(paths) if st is None)
