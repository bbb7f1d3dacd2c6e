"""Waiting for local changes to reach S3: `flush`, a durability barrier for the changes made
before the call (POST /flush, `Syncer.flush`), and `drain`, every change before a stop.

Both first make every change the app made known: inotify's queue read to the end (`barrier`)
and the directories without a watch scanned (nothing reports what was written in them since
the last periodic scan). A rescan under way after an inotify overflow is waited for, and what
it finds counts as made before the call. A file open for writing is not waited for: what it
holds is uploaded when it is closed (or after SYNC_OPEN_FILE_TIMEOUT idle), so both name such
files (`SyncState.writers`) instead. An SQLite database with a change not yet snapshotted
(SYNC_SQLITE=snapshot) is submitted at once: its snapshot is part of both. Neither changes what
a pass does; they only wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from ..core.scheduler import Scheduler
from ..core.state import SyncState
from ..local.events import LocalEvents
from ..local.watch import Watcher

log = logging.getLogger("sidecar")


class Flush:
    def __init__(
        self, *, scheduler: Scheduler, watcher: Watcher, events: LocalEvents, state: SyncState
    ) -> None:
        self._scheduler = scheduler
        self._watcher = watcher
        self._events = events
        self._state = state

    async def drain(self, timeout: float | None) -> list[str]:  # noqa: ASYNC109
        """Until every local change is in S3, retrying now what waited for a back-off, for at
        most `timeout` seconds (None: as long as it takes). What waits to come from S3 is not
        waited for (it is not lost: S3 still holds it for the next start). Returns the paths
        whose local changes are not in S3, and the files open for writing."""
        scheduler, watcher = self._scheduler, self._watcher
        watcher.barrier()
        self._events.snapshot_databases()
        await self._scan_unwatched()
        deadline = None if timeout is None else time.monotonic() + timeout
        scheduler.expedite()  # once: what waits for a back-off gets one more try now
        while True:
            watcher.barrier()  # may report an overflow: the rescan then starts now
            rescan = self._events.rescanning
            if rescan is None and not scheduler.pending_local():
                break
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                break
            wait = min(remaining, 1.0) if remaining is not None else None
            with contextlib.suppress(TimeoutError):
                if rescan is not None:  # what it finds is submitted as it goes
                    await asyncio.wait_for(asyncio.shield(rescan), wait)
                else:
                    await scheduler.wait_settled(1.0 if wait is None else wait)
        return sorted(set(scheduler.pending_local()) | self._state.writers)

    async def flush(self, timeout: float) -> tuple[list[str], list[str]]:  # noqa: ASYNC109
        """Until every local change made before the call is in S3, for at most `timeout`
        seconds. Returns (the paths still waiting, the files open for writing: their unclosed
        writes are not part of it)."""
        scheduler, watcher = self._scheduler, self._watcher
        deadline = time.monotonic() + timeout
        watcher.barrier()  # every write that returned before the call is now known
        self._events.snapshot_databases()
        await self._scan_unwatched()
        cutoff = time.monotonic()
        waiting = set(scheduler.local_changes_before(cutoff))
        while True:
            watcher.barrier()
            rescan = self._events.rescanning
            remaining = deadline - time.monotonic()
            if rescan is not None:
                if remaining <= 0:
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(rescan), remaining)
                cutoff = time.monotonic()
                waiting |= set(scheduler.local_changes_before(cutoff))
                continue
            waiting = {
                rel
                for rel in waiting
                if (since := scheduler.local_since(rel)) is not None and since <= cutoff
            }
            if not waiting or remaining <= 0:
                break
            await scheduler.wait_settled(min(remaining, 1.0))
        return sorted(waiting), sorted(self._state.writers)

    async def _scan_unwatched(self) -> None:
        """What was written in the directories without a watch since their last scan."""
        try:
            await self._events.scan_unwatched()
        except Exception as error:
            log.error("scan of unwatched directories failed: %s", error)
