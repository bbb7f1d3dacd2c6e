"""The running parts of a started `Syncer`, built together (`Parts`) and started, drained and
closed together (`Engine`).

Data flows one way: inotify events (`LocalEvents`) and listings (`Poller`) mark paths dirty in
the `Scheduler`; its workers run one `Pipeline` pass per path (facts, `reconcile`, `Executor`).
`Restore` runs once before the background loops start; `Health` turns the parts' signals into
liveness and readiness. Every part is built in `Parts.__init__` (inside the running loop), each
after the parts it uses, so none is ever missing and nothing points at a part built later;
`start`, `drain` and `close` are called once each, in that order, by `Syncer`. The folder is
held open (`Tree`, safefs.py) from `start` to `close`: operations reach local paths only
through it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import ssl
import time
from collections.abc import Coroutine
from typing import Any, cast

from ..aws.credentials import CredentialsFactory, CredentialsProvider
from ..backoff import archived_looks
from ..core.keys import KeyMapper
from ..core.model import SyncMode
from ..core.scheduler import CHECK, CHECK_WORKERS, DOWNLOAD, POOLS, UPLOAD, Pool, Scheduler
from ..core.state import SyncState
from ..core.store import SyncedStore
from ..local.databases import Databases
from ..local.events import LocalEvents
from ..local.proof import EtagKnowledge
from ..local.replaced import ReplacedVersions
from ..local.safefs import Tree
from ..local.watch import Watcher
from ..local.workdir import is_temp_name
from ..metrics import Metrics
from ..ops.checks import Checks
from ..ops.executor import Executor
from ..ops.workspace import ExecutorSettings, TransferLog, Workspace
from ..remote.feed import ChangeFeed
from ..remote.poll import Poller, PollSettings
from ..settings.table import Settings
from ..skips import SkipReason
from .archived import ArchivedObjects
from .clients import Clients
from .flush import Flush
from .health import Health
from .pipeline import Pipeline
from .restore import Restore

log = logging.getLogger("sidecar")

FALLBACK_POLL_INTERVAL = 10.0  # seconds between listings while the event queue fails


class Parts:
    """Every running part, built once in the order they need each other, and released
    together (`_release`). `stopping` is read by the passes (set by `Engine` when it stops)."""

    def __init__(
        self,
        settings: Settings,
        metrics: Metrics,
        credentials: CredentialsProvider | CredentialsFactory,
        ssl_context: ssl.SSLContext | bool | None,
    ) -> None:
        """`credentials`: a provider (the caller's), or a factory building one on the one
        HTTP client (then the engine's, closed with it)."""
        self.settings = settings
        self.mode = mode = SyncMode(settings.mode)
        self.metrics = metrics
        self.stopping = False
        # The engine's lifecycle: loops started by `Engine.start`, watched, closed.
        self._tasks: list[asyncio.Task[None]] = []
        self._watching = False
        self._closed = False
        root, work_dir = settings.directory, settings.work_dir
        self.health = Health(
            stall_timeout=settings.stall_timeout, poll_interval=settings.poll_interval
        )
        self.clients = Clients.build(
            settings, metrics, credentials, tls=ssl_context, on_reachable=self.health.set_reachable
        )
        self.credentials = self.clients.credentials
        self.s3 = self.clients.s3
        keys = KeyMapper(settings.prefix, len(os.fsencode(root)), settings.work_name)
        # The synced records and their copy on disk, paired once: every change of a record
        # is noted for the store's next write, from the restore's first on.
        self.store = SyncedStore(os.path.join(work_dir, "state.sqlite3"), settings.identity)
        self.state = SyncState(on_synced=self.store.note)
        self.scheduler = Scheduler(
            {
                UPLOAD: settings.upload_concurrency,
                DOWNLOAD: settings.download_concurrency,
                CHECK: CHECK_WORKERS,
            },
        )
        self.watcher = Watcher(root, settings.work_name, self._watch_failed)
        self.tree = Tree(root, settings.work_name)
        self.databases: Databases | None = None
        if settings.sqlite == "snapshot":
            self.databases = Databases(
                tree=self.tree,
                files_alone=re.compile(settings.sqlite_files_alone),
                submit=lambda rel, hint: self.events.submit(rel, hint),  # noqa: PLW0108 - built next
                quiet=settings.sqlite_quiet,
                interval=settings.sqlite_interval,
                skipped=lambda: metrics.inc(metrics.skipped, SkipReason.SQLITE_COMPANION.value),
            )
        self.moves = self.state.moves
        self.events = LocalEvents(
            root=root,
            state=self.state,
            scheduler=self.scheduler,
            watcher=self.watcher,
            moves=self.moves,
            metrics=metrics,
            exclude_local=re.compile(settings.exclude_local),
            upload_on_create=re.compile(settings.upload_on_create),
            open_file_timeout=settings.open_file_timeout,
            databases=self.databases,
        )
        self._flush = Flush(
            scheduler=self.scheduler, watcher=self.watcher, events=self.events, state=self.state
        )
        self.poller = Poller(
            s3=self.s3,
            keys=keys,
            exclude_remote=re.compile(settings.exclude_remote),
            metrics=metrics,
            state=self.state,
            scheduler=self.scheduler,
            settings=PollSettings(
                settings.poll_interval,
                settings.max_delete_percent,
                settings.trust_after,
                fallback=min(settings.poll_interval, FALLBACK_POLL_INTERVAL),
            ),
        )
        self.changes: ChangeFeed | None = None
        if self.clients.queue is not None:
            self.changes = ChangeFeed(
                queue=self.clients.queue,
                s3=self.s3,
                bucket=settings.bucket,
                keys=keys,
                excluded=self.poller.excluded,
                state=self.state,
                scheduler=self.scheduler,
                poller=self.poller,
                metrics=metrics,
                conditions=self.health,
            )
        self.etags = EtagKnowledge(on_learned=self.store.note_etags)
        scheduler = self.scheduler
        self.archived = ArchivedObjects(
            looks=archived_looks(settings.poll_interval),
            health=self.health,
            metrics=metrics,
            submit=lambda rel: scheduler.submit(rel, CHECK),
        )
        transfers = TransferLog()
        self.restore = Restore(
            state=self.state,
            store=self.store,
            poller=self.poller,
            metrics=metrics,
            max_delete_percent=settings.max_delete_percent,
            tree=self.tree,
            etags=self.etags,
            transfers=transfers,
            lists=mode is not SyncMode.UPLOAD_ONLY,
            archived=lambda: len(self.archived),
        )
        self.replaced = ReplacedVersions(
            tree=self.tree,
            watcher=self.watcher,
            metrics=metrics,
            submit=self.events.submit,
            quiet=settings.open_file_timeout,
        )
        executing = ExecutorSettings(
            multipart_threshold=settings.multipart_threshold,
            multipart_chunksize=settings.multipart_chunksize,
            multipart_concurrency=settings.multipart_concurrency,
        )
        checks = Checks(
            tree=self.tree,
            state=self.state,
            s3=self.s3,
            keys=keys,
            barrier=self.watcher.barrier,
            etags=self.etags,
            part_size=executing.multipart_chunksize,
            databases=self.databases,
        )
        workspace = Workspace(
            settings=executing,
            keys=keys,
            tree=self.tree,
            s3=self.s3,
            deletes=self.clients.deletes,
            state=self.state,
            metrics=metrics,
            checks=checks,
            etags=self.etags,
            transfers=transfers,
            databases=self.databases,
        )
        self.pipeline = Pipeline(
            state=self.state,
            executor=Executor(
                workspace, hold_replaced=self.replaced.hold, progress=self.health.progressed
            ),
            checks=checks,
            health=self.health,
            archived=self.archived,
            moves=self.moves,
            scheduler=self.scheduler,
            metrics=metrics,
            excluded=self.events.excluded,
            remote_excluded=self.poller.excluded,
            stopping=lambda: self.stopping,
            submit=self.events.submit,
            passed=self.restore.passed,
            mode=mode,
            s3_failing=lambda: self.clients.s3_outage.under_way,
            databases=self.databases,
        )
        scheduler = self.scheduler
        metrics.bind_gauges(
            pools=POOLS,
            queue_depth=lambda pool: float(scheduler.queued(cast(Pool, pool))),
            in_flight=lambda pool: float(scheduler.running(cast(Pool, pool))),
            oldest_pending=self._oldest_pending_age,
            files_tracked=lambda: float(self.state.synced_count),
            watches=lambda: float(self.watcher.watch_count),
            unwatched=lambda: float(len(self.watcher.unwatched)),
            restore=lambda: self.restore.progress.figures(time.monotonic()),
            queue_failing=self._queue_failing,
        )
        metrics.bind_folder(settings.directory, settings.poll_interval)

    async def _release(self) -> None:
        """Release every part (once the loops that use them are cancelled)."""
        await self.events.close()
        self.replaced.close()
        self.archived.close()
        await self.scheduler.close()
        await self.watcher.close()
        await self.clients.close()
        await self.store.close()
        self.tree.close()

    def _watch_failed(self, what: str, error: BaseException) -> None:
        self.metrics.inc(self.metrics.local_errors, "watch")
        log.error("%s failed: %s", what, error)

    def _queue_failing(self) -> float:
        """1.0 while the change feed fails, its queue or the events it brings (the poller lists
        at the fallback interval meanwhile)."""
        return 1.0 if self.changes is not None and self.changes.degraded else 0.0

    def _oldest_pending_age(self) -> float:
        since = self.scheduler.oldest_local_change()
        return 0.0 if since is None else time.monotonic() - since


class Engine(Parts):
    """The parts' lifecycle (`start`, `drain`, `flush`, `close`) and what they report
    (`tasks`, `problems`, `degraded`, `readiness`)."""

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        """Restore the bucket into the folder, then start the background loops."""
        settings = self.settings
        log.info(
            "starting: %s <-> s3://%s/%s", settings.directory, settings.bucket, settings.prefix
        )
        os.makedirs(settings.work_dir, exist_ok=True)
        _clean_work_dir(settings.work_dir)
        self.tree.start()
        await self.restore.prepare(self._watch)
        self.scheduler.start(self.pipeline.process)
        await self.restore.run(self.scheduler)
        loops: list[tuple[Coroutine[Any, Any, None], str]] = [
            (self._persist_loop(), "state-store"),
            (self.events.sweep_loop(), "open-file-sweeper"),
            (self.replaced.sweep_loop(), "replaced-file-sweeper"),
            (self.events.unwatched_loop(settings.poll_interval), "unwatched-scanner"),
            (self.health.lag_loop(), "loop-lag-monitor"),
        ]
        if self.databases is not None:
            loops.append((self.databases.loop(), "sqlite-snapshots"))
        if self.mode is not SyncMode.UPLOAD_ONLY:  # upload-only never lists S3
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
        return await self._flush.drain(timeout)

    async def flush(self, timeout: float) -> tuple[list[str], list[str]]:  # noqa: ASYNC109
        """Until every local change made before the call is in S3 (flush.py)."""
        return await self._flush.flush(timeout)

    async def close(self) -> None:
        """Release everything; a second call has nothing to do."""
        if self._closed:
            return
        self._closed = True
        self.stopping = True
        await self._cancel_tasks()
        await self._release()

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

    def _poll_interval(self) -> float:
        """SYNC_POLL_INTERVAL; while the change feed is degraded (its queue fails, or its
        events keep failing to be handled), the fallback (at most 10 s)."""
        if self.changes is not None and self.changes.degraded:
            return self.poller.fallback_interval
        return self.settings.poll_interval

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
            unwatched=self.watcher.unwatched, rescan_interval=self.settings.poll_interval
        )

    def readiness(self) -> dict[str, dict[str, Any]]:
        polls = self.mode is not SyncMode.UPLOAD_ONLY  # upload-only never lists S3
        return self.health.readiness(
            restore_done=self.restore.done.is_set(),
            restore_pending=len(self.restore.pending),
            restore_finished_at=self.restore.finished_at,
            restore_progress=self.restore.progress.figures(time.monotonic()),
            poll=self.poller.health if polls else None,
            last_poll_duration=self.poller.last_duration,
            credentials=self.credentials,
            queue=None if self.changes is None else self.changes.health,
        )


def _clean_work_dir(work_dir: str) -> None:
    """Temporary files left by a crash (`is_temp_name`); nothing else in the folder."""
    for name in os.listdir(work_dir):
        if is_temp_name(name):
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(work_dir, name))
