"""The running parts of a started `Syncer`, built together and closed together.

Data flows one way: inotify events (`LocalEvents`) and listings (`Poller`) mark paths dirty in
the `Scheduler`; its workers run one `Pipeline` pass per path (facts, `reconcile`, `Executor`).
`Restore` runs once before the background loops start; `Health` turns the parts' signals into
liveness and readiness. Every part is built in `__init__` (inside the running loop), so none is
ever missing; `start`, `drain` and `close` are called once each, in that order, by `Syncer`.
The folder is held open (`Tree`, safefs.py) from `start` to `close`: operations reach local
paths only through it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Coroutine
from typing import Any, cast

from ..aws.credentials import CredentialsFactory, CredentialsProvider
from ..core.keys import KeyMapper
from ..core.model import SyncMode
from ..core.scheduler import (
    CHECK,
    CHECK_WORKERS,
    DIRECTIONS,
    DOWNLOAD,
    UPLOAD,
    Direction,
    Scheduler,
)
from ..core.state import SyncState
from ..core.store import SyncedStore
from ..local.events import LocalEvents
from ..local.proof import EtagKnowledge
from ..local.replaced import ReplacedVersions
from ..local.safefs import Tree
from ..local.watch import Watcher
from ..metrics import Metrics
from ..ops.executor import Executor
from ..ops.operation import ExecutorSettings, Workspace, is_temp_name
from ..remote.feed import ChangeFeed
from ..remote.poll import Poller, PollSettings
from .clients import Clients
from .health import Health
from .options import SyncOptions
from .pipeline import Pipeline
from .restore import Restore

log = logging.getLogger("sidecar")

FALLBACK_POLL_INTERVAL = 10.0  # seconds between listings while the event queue fails


class Engine:
    def __init__(
        self,
        options: SyncOptions,
        metrics: Metrics,
        credentials: CredentialsProvider | CredentialsFactory,
    ) -> None:
        """`credentials`: a provider (the caller's), or a factory building one on the one
        HTTP client (then the engine's, closed with it)."""
        self.options = options
        self.metrics = metrics
        self.stopping = False
        self._watching = False
        self._closed = False
        self._tasks: list[asyncio.Task[None]] = []
        root, work_dir = options.root, options.work_dir
        self.health = Health(
            stall_timeout=options.stall_timeout, poll_interval=options.poll_interval
        )
        self.clients = Clients.build(
            options, metrics, credentials, on_reachable=self.health.set_reachable
        )
        self.credentials = self.clients.credentials
        self.s3 = self.clients.s3
        keys = KeyMapper(options.prefix, len(os.fsencode(root)), options.work_name)
        self.state = SyncState()
        self.scheduler = Scheduler(
            lambda rel, direction: self.pipeline.process(rel, direction),  # noqa: PLW0108 - built below
            {
                UPLOAD: options.upload_workers,
                DOWNLOAD: options.download_workers,
                CHECK: CHECK_WORKERS,
            },
        )
        self.watcher = Watcher(root, options.work_name, self._watch_failed)
        self.events = LocalEvents(
            root=root,
            state=self.state,
            scheduler=self.scheduler,
            watcher=self.watcher,
            metrics=metrics,
            exclude_local=options.exclude_local,
            upload_on_create=options.upload_on_create,
            open_file_timeout=options.open_file_timeout,
        )
        self.poller = Poller(
            s3=self.s3,
            keys=keys,
            exclude_remote=options.exclude_remote,
            metrics=metrics,
            state=self.state,
            scheduler=self.scheduler,
            settings=PollSettings(
                options.poll_interval,
                options.max_delete_percent,
                options.trust_after,
                fallback=min(options.poll_interval, FALLBACK_POLL_INTERVAL),
            ),
        )
        self.changes: ChangeFeed | None = None
        if self.clients.queue is not None:
            self.changes = ChangeFeed(
                queue=self.clients.queue,
                s3=self.s3,
                bucket=options.bucket,
                keys=keys,
                excluded=self.poller.excluded,
                state=self.state,
                scheduler=self.scheduler,
                poller=self.poller,
                metrics=metrics,
            )
        self.store = SyncedStore(os.path.join(work_dir, "state.sqlite3"), options.identity)
        self.tree = Tree(root, options.work_name)
        self.etags = EtagKnowledge(on_learned=self.store.note_etags)
        self.restore = Restore(
            state=self.state,
            store=self.store,
            poller=self.poller,
            metrics=metrics,
            max_delete_percent=options.max_delete_percent,
            tree=self.tree,
            etags=self.etags,
            lists=options.mode is not SyncMode.UPLOAD_ONLY,
        )
        self.replaced = ReplacedVersions(
            tree=self.tree,
            watcher=self.watcher,
            metrics=metrics,
            submit=self.events.submit,
            quiet=options.open_file_timeout,
        )
        workspace = Workspace(
            settings=ExecutorSettings(
                multipart_threshold=options.multipart_threshold,
                multipart_chunksize=options.multipart_chunksize,
                multipart_concurrency=options.multipart_concurrency,
            ),
            keys=keys,
            tree=self.tree,
            s3=self.s3,
            state=self.state,
            metrics=metrics,
            barrier=self.watcher.barrier,
            hold_replaced=self.replaced.hold,
            progress=self.health.progressed,
            etags=self.etags,
        )
        self.pipeline = Pipeline(
            state=self.state,
            executor=Executor(workspace),
            scheduler=self.scheduler,
            metrics=metrics,
            excluded=self.events.excluded,
            remote_excluded=self.poller.excluded,
            stopping=lambda: self.stopping,
            submit=self.events.submit,
            passed=self.restore.passed,
            mode=options.mode,
        )
        scheduler = self.scheduler
        metrics.bind_gauges(
            directions=DIRECTIONS,
            queue_depth=lambda d: float(scheduler.queued(cast(Direction, d))),
            in_flight=lambda d: float(scheduler.running(cast(Direction, d))),
            oldest_pending=self._oldest_pending_age,
            files_tracked=lambda: float(self.state.synced_count),
            watches=lambda: float(self.watcher.watch_count),
            unwatched=lambda: float(len(self.watcher.unwatched)),
        )
        metrics.bind_folder(str(options.root), options.poll_interval)

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        """Restore the bucket into the folder, then start the background loops."""
        options = self.options
        log.info("starting: %s <-> s3://%s/%s", options.root, options.bucket, options.prefix)
        os.makedirs(options.work_dir, exist_ok=True)
        _clean_work_dir(options.work_dir)
        self.tree.start()
        await self.restore.prepare(self._watch)
        self.scheduler.start()
        await self.restore.run(self.scheduler)
        loops: list[tuple[Coroutine[Any, Any, None], str]] = [
            (self._persist_loop(), "state-store"),
            (self.events.sweep_loop(), "open-file-sweeper"),
            (self.replaced.sweep_loop(), "replaced-file-sweeper"),
            (self.events.unwatched_loop(options.poll_interval), "unwatched-scanner"),
            (self.health.lag_loop(), "loop-lag-monitor"),
        ]
        if options.mode is not SyncMode.UPLOAD_ONLY:  # upload-only never lists S3
            loops.append((self.poller.run(self._poll_interval), "poller"))
        if self.changes is not None:
            loops.append((self.changes.run(), "change-feed"))
        for loop, name in loops:
            self._tasks.append(asyncio.create_task(loop, name=name))

    async def _watch(self) -> None:
        """The whole folder under watch; what it reports waits in the scheduler's queues
        until the workers start (after the restore has prepared)."""
        await self.watcher.start(self.events)
        self._watching = True

    async def drain(self, timeout: float | None) -> list[str]:  # noqa: ASYNC109
        """Stop the loops and finish queued uploads (for at most `timeout` seconds).

        Returns the paths whose local changes could not be uploaded in time."""
        self.stopping = True
        await self._cancel_tasks()
        scheduler, watcher = self.scheduler, self.watcher
        try:  # nothing reports what was written in them since the last periodic scan
            await self.events.scan_unwatched()
        except Exception as error:
            log.error("scan of unwatched directories failed: %s", error)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            watcher.barrier()  # may report an overflow: the rescan then starts now
            scheduler.expedite()
            rescan = self.events.rescanning
            if rescan is None and not scheduler.has_work():
                break
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                break
            wait = min(remaining, 1.0) if remaining is not None else None
            with contextlib.suppress(TimeoutError):
                if rescan is not None:  # what it finds is submitted as it goes
                    await asyncio.wait_for(asyncio.shield(rescan), wait)
                else:
                    await asyncio.wait_for(scheduler.wait_idle(), wait)
        return sorted(set(scheduler.pending_local()) | self.state.writing)

    async def flush(self, timeout: float) -> tuple[list[str], list[str]]:  # noqa: ASYNC109
        """Until every local change made before the call is in S3, for at most `timeout`
        seconds. Returns (the paths still waiting, the files open for writing: their unclosed
        writes are not part of it). A rescan under way (after an inotify overflow) is waited
        for, and what it finds counts as made before the call."""
        began = time.monotonic()
        deadline = began + timeout
        self.watcher.barrier()  # every write that returned before the call is now known
        try:
            await self.events.scan_unwatched()
        except Exception as error:
            log.error("scan of unwatched directories failed: %s", error)
        cutoff = time.monotonic()
        waiting = set(self.scheduler.local_changes_before(cutoff))
        while True:
            self.watcher.barrier()
            rescan = self.events.rescanning
            remaining = deadline - time.monotonic()
            if rescan is not None:
                if remaining <= 0:
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(rescan), remaining)
                cutoff = time.monotonic()
                waiting |= set(self.scheduler.local_changes_before(cutoff))
                continue
            waiting = {
                rel
                for rel in waiting
                if (since := self.scheduler.local_since(rel)) is not None and since <= cutoff
            }
            if not waiting or remaining <= 0:
                break
            await self.scheduler.wait_settled(min(remaining, 1.0))
        return sorted(waiting), sorted(self.state.writing)

    async def close(self) -> None:
        """Release everything; a second call has nothing to do."""
        if self._closed:
            return
        self._closed = True
        self.stopping = True
        await self._cancel_tasks()
        await self.events.close()
        self.replaced.close()
        await self.scheduler.close()
        await self.watcher.close()
        await self.clients.close()
        await self.store.close()
        self.tree.close()

    async def _cancel_tasks(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    async def _persist_loop(self) -> None:
        """Write what changed in the synced records, about once a second."""
        while True:
            await asyncio.sleep(1.0)
            await self.store.flush()

    # -- signals -------------------------------------------------------------------------

    def _watch_failed(self, what: str, error: BaseException) -> None:
        self.metrics.inc(self.metrics.local_errors, "watch")
        log.error("%s failed: %s", what, error)

    def _poll_interval(self) -> float:
        """SYNC_POLL_INTERVAL; while the event queue fails, the fallback (at most 10 s)."""
        if self.changes is not None and self.changes.failing:
            return self.poller.fallback_interval
        return self.options.poll_interval

    def _oldest_pending_age(self) -> float:
        since = self.scheduler.oldest_local_change()
        return 0.0 if since is None else time.monotonic() - since

    @property
    def tasks(self) -> list[asyncio.Task[None]]:
        """Every long-lived task; a dead one means the sidecar stopped syncing."""
        return [*self._tasks, *self.scheduler.tasks]

    def problems(self) -> list[str]:
        problems = [self.events.fatal] if self.events.fatal else []
        if self.stopping:
            return problems
        scheduler = self.scheduler
        return problems + self.health.problems(
            tasks=self.tasks,
            watcher_alive=self.watcher.alive or not self._watching,
            uploads_waiting=bool(scheduler.queued(UPLOAD) or scheduler.running(UPLOAD)),
        )

    def degraded(self) -> list[str]:
        """What works, but less well than it should (served by /healthz with a 200)."""
        return self.health.degraded(
            unwatched=self.watcher.unwatched, rescan_interval=self.options.poll_interval
        )

    def readiness(self) -> dict[str, dict[str, Any]]:
        poller = self.poller
        return self.health.readiness(
            restore_done=self.restore.done.is_set(),
            restore_pending=len(self.restore.pending),
            last_poll=poller.last_success_monotonic,
            last_poll_duration=poller.last_duration,
            poll_error=poller.last_error,
            credentials=self.credentials,
            polls=self.options.mode is not SyncMode.UPLOAD_ONLY,
            queue_error=None if self.changes is None else self.changes.last_error,
            queue=self.changes is not None,
        )


def _clean_work_dir(work_dir: str) -> None:
    """Temporary files left by a crash (`is_temp_name`); nothing else in the folder."""
    for name in os.listdir(work_dir):
        if is_temp_name(name):
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(work_dir, name))
