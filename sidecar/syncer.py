"""`Syncer`: wires the watcher, the poller, the scheduler and the transfers together, and offers
mobius3's asyncio API (`start, stop = Syncer(...)`) so existing users switch by changing an import.

Data flows one way: inotify events and listings mark paths dirty; a worker takes a dirty path,
gathers the facts (lstat now, remote now, last synced), asks `reconcile` what to do, and hands
the decision to `Transfers`. Nothing here decides anything about a single path by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import ssl
import stat
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import aiohttp

from .aws.credentials import CredentialsError, CredentialsProvider, provider_from_environment
from .keys import KeyMapper, SkipReason, UnsyncableName
from .localfs import UnsafeParentError, local_entry
from .metrics import Metrics
from .model import Hint, Kind, RemoteEntry, Synced
from .poll import Poller, apply_snapshot
from .reconcile import Decision, Facts, Op, reconcile
from .s3.client import (
    BodyChanged,
    Endpoint,
    NotFound,
    PreconditionFailed,
    S3Client,
    S3Error,
    S3Unavailable,
)
from .scheduler import DOWNLOAD, UPLOAD, Direction, Scheduler
from .state import SyncState
from .store import SyncedStore
from .transfer import IntegrityError, LocalChanged, Transfers, TransferSettings
from .watch import Watcher

log = logging.getLogger("sidecar")

DEFAULT_WORK_DIR = ".s3sync-sidecar"

# Decisions that act on the local folder because of what S3 says: never taken for a path whose
# remote side is unknown (shadowed).
_REMOTE_DRIVEN = frozenset(
    {Op.DOWNLOAD, Op.DELETE_LOCAL, Op.RMDIR, Op.MKDIR, Op.APPLY_REMOTE_META, Op.CONFLICT}
)
# Of those, what shutdown skips: a conflict still carries a local change to upload.
_SKIPPED_AT_STOP = _REMOTE_DRIVEN - {Op.CONFLICT}
_IGNORED_MOBIUS3_ARGUMENTS = frozenset(
    {
        "get_credentials",
        "get_pool",
        "flush_file_root",
        "flush_file_timeout",
        "directory_watch_timeout",
        "get_logger_adapter",
        "cloudwatch_monitoring_endpoint",
        "cloudwatch_monitoring_region",
        "cloudwatch_monitoring_namespace",
    }
)


@dataclass(frozen=True, slots=True)
class SyncStatus:
    started: bool
    restore_done: bool
    last_poll_success: float | None  # monotonic
    last_poll_error: str | None
    s3_reachable: bool
    fatal: str | None
    pending_uploads: int


class Syncer:
    """Continuously sync `directory` with `bucket`/`prefix`, both ways.

    `start, stop = Syncer(...)` works as with mobius3; so does `syncer = Syncer(...)`,
    `await syncer.start()`, `await syncer.stop()`.
    """

    def __init__(  # noqa: PLR0917 - mobius3's positional signature
        self,
        directory: str | os.PathLike[str],
        bucket: str,
        endpoint: str,
        region: str,
        prefix: str = "",
        concurrent_uploads: int = 32,
        concurrent_downloads: int = 16,
        download_interval: float = 10,
        exclude_remote: str = r"^$",
        exclude_local: str = r"^$",
        upload_on_create: str = r"^$",
        local_modification_persistance: float = 0,
        download_directory: str = DEFAULT_WORK_DIR,
        *,
        credentials: CredentialsProvider | None = None,
        ssl_context: ssl.SSLContext | bool | None = None,
        multipart_threshold: int = 16 * 1024 * 1024,
        multipart_chunksize: int = 16 * 1024 * 1024,
        multipart_concurrency: int = 4,
        max_delete_percent: float = 50,
        open_file_timeout: float = 60,
        stall_timeout: float = 300,
        metrics: Metrics | None = None,
        **mobius3_arguments: Any,
    ) -> None:
        unknown = set(mobius3_arguments) - _IGNORED_MOBIUS3_ARGUMENTS
        if unknown:
            raise TypeError(f"Syncer() got unexpected arguments: {', '.join(sorted(unknown))}")
        for name in sorted(mobius3_arguments):
            log.warning("ignoring mobius3 argument %s: not needed by s3sync-sidecar", name)
        if prefix and not prefix.endswith("/"):
            log.warning(
                "prefix %r does not end with '/': keys are the prefix followed by the path, so "
                "it also takes in keys such as %r",
                prefix,
                prefix + "x/...",
            )
        self._root = os.path.abspath(os.fspath(directory))
        self._bucket = bucket
        self._endpoint = Endpoint.parse(endpoint, bucket)
        self._region = region
        self._prefix = prefix
        self._uploads = max(1, int(concurrent_uploads))
        self._downloads = max(1, int(concurrent_downloads))
        self._interval = float(download_interval)
        self._exclude_remote = re.compile(exclude_remote)
        self._exclude_local = re.compile(exclude_local)
        self._upload_on_create = re.compile(upload_on_create)
        self._trust_after = float(local_modification_persistance)
        self._work_name = download_directory
        self._credentials = credentials
        self._owns_credentials = False  # a provider passed in belongs to the caller
        self._ssl = ssl_context
        self._multipart = (multipart_threshold, multipart_chunksize, multipart_concurrency)
        self._max_delete = float(max_delete_percent)
        self._open_file_timeout = float(open_file_timeout)
        self._stall_timeout = float(stall_timeout)
        self.metrics = metrics if metrics is not None else Metrics()

        self._keys = KeyMapper(prefix, len(os.fsencode(self._root)), download_directory)
        # What a saved sync state must have been saved for, to be trusted at start.
        self._identity = "|".join(
            (endpoint.format(bucket), bucket, prefix, os.path.realpath(self._root))
        )
        self._state = SyncState()
        self._started = False
        self._stopping = False
        self._restore_done = asyncio.Event()
        self._restore_pending: set[str] = set()
        self._restore_started = 0.0
        self._writing: set[str] = set()
        self._changed_streak: dict[str, int] = {}
        self._fatal: str | None = None
        self._s3_reachable = True
        self._last_s3_answer = 0.0  # monotonic time of the last answer from S3, any status
        self._last_progress = time.monotonic()  # a pass finished or a chunk left
        self._loop_lag = 0.0
        self._watching = False
        self._tasks: list[asyncio.Task[None]] = []
        self._session: aiohttp.ClientSession | None = None
        self._scheduler: Scheduler | None = None
        self._watcher: Watcher | None = None
        self._transfers: Transfers | None = None
        self._s3: S3Client | None = None
        self._poller: Poller | None = None
        self._rescanning: asyncio.Task[None] | None = None
        self._store: SyncedStore | None = None
        self._shut = False  # closed: a second stop() has nothing to do

    def __iter__(self) -> Iterator[Callable[..., Any]]:
        yield self.start
        yield self.stop

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        """Restore the bucket into the folder, then keep syncing in the background."""
        if self._started:
            raise RuntimeError("Syncer already started")
        self._started = True
        try:
            await self._start()
        except BaseException:
            await self._close()
            raise

    async def _start(self) -> None:
        root = self._root
        os.makedirs(root, exist_ok=True)
        work_dir = os.path.join(root, self._work_name)
        os.makedirs(work_dir, exist_ok=True)
        _clean_work_dir(work_dir)

        credentials = self._credentials
        if credentials is None:
            # The chain the AWS SDKs use in containers: keys, then the ECS endpoint.
            credentials = self._credentials = provider_from_environment(os.environ)
            self._owns_credentials = True
        connections = self._uploads + self._downloads + self._multipart[2]
        connector = aiohttp.TCPConnector(
            limit=connections,
            limit_per_host=connections,
            ttl_dns_cache=300,
            ssl=self._ssl if self._ssl is not None else True,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False,
            skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding"),
        )
        self._s3 = S3Client(
            session=self._session,
            endpoint=self._endpoint,
            bucket=self._bucket,
            region=self._region,
            credentials=credentials,
            metrics=self.metrics,
            on_reachable=self._set_reachable,
        )
        self._poller = Poller(
            s3=self._s3, keys=self._keys, exclude_remote=self._exclude_remote, metrics=self.metrics
        )
        self._scheduler = Scheduler(
            self._process, {UPLOAD: self._uploads, DOWNLOAD: self._downloads}
        )
        self._watcher = Watcher(root, self._work_name, _Events(self), self._on_watch_error)
        threshold, chunksize, concurrency = self._multipart
        self._transfers = Transfers(
            settings=TransferSettings(
                root=root,
                work_dir=work_dir,
                multipart_threshold=threshold,
                multipart_chunksize=chunksize,
                multipart_concurrency=concurrency,
            ),
            keys=self._keys,
            s3=self._s3,
            state=self._state,
            metrics=self.metrics,
            barrier=self._watcher.barrier,
            submit_local=lambda rel: self._submit_local(rel, Hint.CONTENT),
            submit_parent=lambda rel: self._scheduler_submit(rel, UPLOAD),
            progress=self._progressed,
        )
        scheduler = self._scheduler
        self.metrics.bind_gauges(
            queue_depth=lambda d: float(scheduler.queued(cast(Direction, d))),
            in_flight=lambda d: float(scheduler.running(cast(Direction, d))),
            oldest_pending=self._oldest_pending_age,
            files_tracked=lambda: float(self._state.synced_count),
            watches=lambda: float(self._watcher.watch_count) if self._watcher else 0.0,
        )

        log.info("starting: %s <-> s3://%s/%s", root, self._bucket, self._prefix)
        self._restore_started = time.monotonic()
        self._store = SyncedStore(os.path.join(work_dir, "state.sqlite3"), self._identity)
        loaded = await self._store.load()
        for rel, synced in loaded.items():
            self._state.set_synced(rel, synced)
        snapshot = await self._poller.list()
        self._poller.succeeded()
        applied = apply_snapshot(
            self._state, snapshot, busy=lambda rel: False, max_delete_percent=100, initial=True
        )
        if loaded:
            await self._check_saved_state(loaded, snapshot.entries, snapshot.shadowed)
        self._state.on_synced = self._store.note
        for rel in applied.changed:
            self._state.get(rel).initial = True
        # Every path synced before the restart is looked at too: what changed or went while
        # the sidecar was down, on either side, is handled as if it had never stopped.
        self._restore_pending = set(applied.changed) | {
            rel for rel in loaded if self._state.get(rel).synced is not None
        }
        self._scheduler.start()
        await self._watcher.start()
        self._watching = True
        for rel in self._restore_pending:
            self._scheduler.submit(rel, DOWNLOAD)
        if not self._restore_pending:
            self._restore_done.set()
        await self._restore_done.wait()
        duration = time.monotonic() - self._restore_started
        self.metrics.restore_duration.set(duration)
        self.metrics.restore_done.set(1)
        log.info("restored %d objects in %.2fs; syncing", len(snapshot.entries), duration)
        self._tasks.append(asyncio.create_task(self._persist_loop(), name="state-store"))
        self._tasks.append(asyncio.create_task(self._poll_loop(), name="poller"))
        self._tasks.append(asyncio.create_task(self._sweep_loop(), name="open-file-sweeper"))
        self._tasks.append(asyncio.create_task(self._lag_loop(), name="loop-lag-monitor"))

    async def _check_saved_state(
        self, loaded: dict[str, Synced], listed: dict[str, RemoteEntry], shadowed: set[str]
    ) -> None:
        """The max-delete guard, for what happened while the sidecar was down: if too many
        synced files are gone from the folder (a volume wiped or swapped), or from S3 (a prefix
        emptied, a listing gone wrong), their records are dropped instead of their deletions
        propagated, so those files are restored instead of deleted."""
        files = [rel for rel, synced in loaded.items() if synced.local.kind is not Kind.DIR]
        if self._max_delete >= 100 or not files:
            return
        limit = max(10.0, len(files) * self._max_delete / 100)
        missing_here = await asyncio.get_running_loop().run_in_executor(
            None, _count_missing, self._root, files
        )
        if missing_here > limit:
            self.metrics.delete_guard_trips.inc()
            log.error(
                "%d of %d synced files are gone from the folder since the last run, more "
                "than the max-delete guard allows: not deleting them in S3 (they are "
                "restored from it)",
                missing_here,
                len(files),
            )
            for rel in loaded:
                self._state.set_synced(rel, None)
            assert self._store is not None
            await self._store.forget_all()
            return
        missing_there = [rel for rel in files if rel not in listed and rel not in shadowed]
        if len(missing_there) > limit:
            self.metrics.delete_guard_trips.inc()
            log.error(
                "%d of %d synced files are gone from S3 since the last run, more than the "
                "max-delete guard allows: not deleting them here (they are uploaded "
                "again)",
                len(missing_there),
                len(files),
            )
            assert self._store is not None
            for rel in missing_there:
                self._state.set_synced(rel, None)
                self._store.note(rel, None)

    async def stop(self, timeout: float | None = None) -> list[str]:  # noqa: ASYNC109
        """Finish queued uploads (for at most `timeout` seconds), then stop watching and close.

        Returns the paths whose local changes could not be uploaded in time.
        """
        if not self._started or self._shut:
            return []
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        left: list[str] = []
        scheduler = self._scheduler
        watcher = self._watcher
        if scheduler is not None and watcher is not None:
            deadline = None if timeout is None else time.monotonic() + timeout
            while True:
                watcher.barrier()
                scheduler.expedite()
                if not scheduler.busy():
                    break
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        scheduler.wait_idle(), None if remaining is None else min(remaining, 1.0)
                    )
            left = sorted(set(scheduler.pending_local()) | self._writing)
        await self._close()
        if left:
            log.error(
                "stopped with %d local changes not uploaded: %s", len(left), ", ".join(left[:50])
            )
        else:
            log.info("stopped; every local change is in S3")
        return left

    async def _close(self) -> None:
        self._shut = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if self._rescanning is not None:
            self._rescanning.cancel()
            await asyncio.gather(self._rescanning, return_exceptions=True)
        if self._scheduler is not None:
            await self._scheduler.close()
        if self._watcher is not None:
            await self._watcher.close()
        if self._session is not None:
            await self._session.close()
        if self._credentials is not None and self._owns_credentials:
            await self._credentials.close()
        if self._store is not None:
            await self._store.close()

    def status(self) -> SyncStatus:
        poller = self._poller
        return SyncStatus(
            started=self._started,
            restore_done=self._restore_done.is_set(),
            last_poll_success=poller.last_success_monotonic if poller else None,
            last_poll_error=poller.last_error if poller else None,
            s3_reachable=self._s3_reachable,
            fatal=self._fatal,
            pending_uploads=len(self._scheduler.pending_local()) if self._scheduler else 0,
        )

    @property
    def internal_tasks(self) -> list[asyncio.Task[None]]:
        """Every long-lived task; a dead one means the sidecar stopped syncing."""
        tasks = list(self._tasks)
        if self._scheduler is not None:
            tasks.extend(self._scheduler.tasks)
        return tasks

    def health_problems(self) -> list[str]:
        """Why the sidecar is not syncing (empty when it is): the process should exit so that
        it gets restarted, rather than stop syncing silently."""
        problems: list[str] = []
        if self._fatal:
            problems.append(self._fatal)
        if not self._started or self._stopping:
            return problems
        for task in self.internal_tasks:
            if task.done():
                error = None if task.cancelled() else task.exception()
                problems.append(
                    f"internal task {task.get_name()} stopped: {error!r}"
                    if error
                    else f"internal task {task.get_name()} stopped"
                )
        if self._watcher is not None and self._watching and not self._watcher.alive:
            problems.append("the inotify watcher stopped")
        scheduler = self._scheduler
        now = time.monotonic()
        if scheduler is not None and (scheduler.queued(UPLOAD) or scheduler.running(UPLOAD)):
            idle = now - self._last_progress
            if idle > self._stall_timeout and now - self._last_s3_answer < 60:
                problems.append(
                    f"the upload queue made no progress for {idle:.0f}s while S3 answers"
                )
        if self._loop_lag > 10:
            problems.append(f"the event loop was blocked for {self._loop_lag:.1f}s")
        return problems

    def readiness(self) -> dict[str, dict[str, Any]]:
        """The checks `/readyz` reports: restored, polling, credentials."""
        poller = self._poller
        now = time.monotonic()
        last = poller.last_success_monotonic if poller is not None else None
        allowed = 3 * self._interval + 2 * (poller.last_duration if poller else 0.0)
        poll_age = None if last is None else now - last
        credentials = self._credentials
        return {
            "restore": {"ok": self._restore_done.is_set(), "pending": len(self._restore_pending)},
            "poll": {
                "ok": poll_age is not None and poll_age <= allowed,
                "seconds_since_success": None if poll_age is None else round(poll_age, 3),
                "error": poller.last_error if poller is not None else None,
            },
            "credentials": {
                "ok": credentials is not None and credentials.valid(),
                "expires": _isoformat(credentials.expiration) if credentials is not None else None,
            },
        }

    # -- background loops ----------------------------------------------------------------

    async def _poll_loop(self) -> None:
        assert self._poller is not None and self._scheduler is not None
        while True:
            await asyncio.sleep(self._interval)
            await self.poll_once()

    async def poll_once(self) -> None:
        """List the prefix and sync whatever changed in S3. Never raises."""
        poller, scheduler = self._poller, self._scheduler
        assert poller is not None and scheduler is not None
        try:
            snapshot = await poller.list()
        except asyncio.CancelledError:
            raise
        except Exception as error:
            poller.failed(error)
            log.warning("poll failed: %s", error)
            return
        applied = apply_snapshot(
            self._state,
            snapshot,
            busy=scheduler.is_busy,
            max_delete_percent=self._max_delete,
            initial=False,
            trust_after=self._trust_after,
        )
        poller.succeeded()
        if applied.held_deletions:
            self.metrics.delete_guard_trips.inc()
            log.error(
                "S3 lists %d fewer synced files than before, more than the max-delete guard "
                "(%g%%) allows: not deleting them locally. If this is intended, raise "
                "SYNC_MAX_DELETE_PERCENT and restart.",
                applied.held_deletions,
                self._max_delete,
            )
        for rel in applied.changed:
            scheduler.submit(rel, DOWNLOAD)

    async def _sweep_loop(self) -> None:
        """A file modified and never closed (truncate(2), a long-lived writer that went idle)
        would otherwise never be uploaded: upload it once it has been quiet for a while."""
        while True:
            await asyncio.sleep(min(5.0, self._open_file_timeout))
            now = time.monotonic()
            for rel in list(self._writing):
                ps = self._state.peek(rel)
                if ps is None or not ps.writing:
                    self._writing.discard(rel)
                    continue
                if now - ps.last_modify >= self._open_file_timeout:
                    ps.writing = False
                    self._writing.discard(rel)
                    self._submit_local(rel, Hint.CONTENT)

    async def _persist_loop(self) -> None:
        """Write what changed in the synced records, about once a second."""
        assert self._store is not None
        while True:
            await asyncio.sleep(1.0)
            await self._store.flush()

    async def _lag_loop(self) -> None:
        """How late the loop wakes us: a blocked loop means nothing else runs either."""
        while True:
            before = time.monotonic()
            await asyncio.sleep(1.0)
            self._loop_lag = max(0.0, time.monotonic() - before - 1.0)
            if self._loop_lag > 1.0:
                log.warning("the event loop was blocked for %.1fs", self._loop_lag)

    # -- local events --------------------------------------------------------------------

    def _excluded_local(self, rel: str) -> bool:
        return self._exclude_local.match(self._root + "/" + rel) is not None

    def _scheduler_submit(self, rel: str, direction: Direction) -> None:
        if self._scheduler is not None:
            self._scheduler.submit(rel, direction)

    def _submit_local(self, rel: str, hint: Hint) -> None:
        if self._excluded_local(rel):
            return
        if hint:
            self._state.get(rel).hint |= hint
        self._scheduler_submit(rel, UPLOAD)

    def _modified(self, rel: str) -> None:
        ps = self._state.get(rel)
        ps.writing = True
        ps.mod_gen += 1
        ps.last_modify = time.monotonic()
        self._writing.add(rel)

    def _closed(self, rel: str) -> None:
        ps = self._state.get(rel)
        ps.writing = False
        self._writing.discard(rel)
        self._submit_local(rel, Hint.CONTENT)

    def _created(self, rel: str, is_dir: bool) -> None:
        if is_dir:
            self._submit_local(rel, Hint.CONTENT)
            return
        path = self._root + "/" + rel
        try:
            st = os.lstat(path)
        except OSError:
            return
        # A regular file is uploaded when closed after writing; what is complete the moment it
        # appears (a symlink, a hard link, a path the user names) goes now.
        if (
            stat.S_ISLNK(st.st_mode)
            or (stat.S_ISREG(st.st_mode) and st.st_nlink > 1)
            or self._upload_on_create.match(path)
        ):
            self._submit_local(rel, Hint.CONTENT)

    def _removed(self, rel: str) -> None:
        ps = self._state.get(rel)
        ps.writing = False
        self._writing.discard(rel)
        self._submit_local(rel, Hint.NONE)

    def _moved_out(self, rel: str, is_dir: bool) -> None:
        self._removed(rel)
        if is_dir:
            # Nothing below a moved directory reports its own departure.
            for sub in self._state.under(rel):
                self._removed(sub)

    def _overflowed(self) -> None:
        self.metrics.inotify_overflows.inc()
        if self._rescanning is not None and not self._rescanning.done():
            return
        self._rescanning = asyncio.get_running_loop().create_task(self._rescan())

    async def _rescan(self) -> None:
        """Events were lost: reconsider every known path, then everything on disk."""
        for rel, ps in list(self._state.paths.items()):
            ps.writing = False  # the close may have been among the lost events
            self._submit_local(rel, Hint.NONE)
        self._writing.clear()
        assert self._watcher is not None
        await self._watcher.rescan()

    def _on_watch_error(self, what: str, error: BaseException) -> None:
        self.metrics.inc(self.metrics.local_errors, "watch")
        log.error("%s failed: %s", what, error)

    def _root_lost(self) -> None:
        self._fatal = f"the synced folder {self._root} was deleted"
        log.error("%s: nothing more can be synced", self._fatal)

    def _set_reachable(self, reachable: bool) -> None:
        self._s3_reachable = reachable
        if reachable:
            self._last_s3_answer = time.monotonic()

    def _progressed(self) -> None:
        self._last_progress = time.monotonic()

    def _oldest_pending_age(self) -> float:
        if self._scheduler is None:
            return 0.0
        since = self._scheduler.oldest_local_change()
        return 0.0 if since is None else time.monotonic() - since

    # -- one path ------------------------------------------------------------------------

    async def _process(self, rel: str, direction: Direction) -> None:
        transfers, scheduler = self._transfers, self._scheduler
        assert transfers is not None and scheduler is not None
        state = self._state
        ps = state.get(rel)
        settled = True  # the path needs no further work unless something changes
        waiting = False
        try:
            if self._excluded_local(rel):
                self.metrics.inc(self.metrics.skipped, SkipReason.EXCLUDED.value)
                return
            facts = Facts(
                local=local_entry(transfers.path(rel)),
                remote=ps.remote,
                synced=ps.synced,
                remote_children=state.remote_children(rel),
                hint=ps.hint,
                writing=ps.writing,
                initial=ps.initial,
            )
            decision = reconcile(facts)
            op = decision.op
            if (op in _REMOTE_DRIVEN and ps.shadowed) or (
                op in _SKIPPED_AT_STOP and self._stopping
            ):
                return
            if op is Op.WAIT:
                settled = False
                waiting = True
                return
            if op is Op.SKIP:
                self._skip(rel, decision)
                return
            if op is not Op.NOTHING:
                log.debug("%s: %s", rel, op.value)
                await transfers.execute(rel, facts, decision, ps)
            ps.hint = Hint.NONE
            ps.failures = 0
            ps.initial = False
            self._changed_streak.pop(rel, None)
            if decision.again:
                settled = False
                scheduler.submit(rel, direction)
        except LocalChanged:
            settled = False
            streak = self._changed_streak.get(rel, 0) + 1
            self._changed_streak[rel] = streak
            if streak <= 3:
                scheduler.submit(rel, direction)
            else:
                scheduler.later(rel, direction, min(5.0, 0.05 * 2**streak))
        except BodyChanged:
            settled = False  # the writer's close brings it back; a rescan does too
            log.debug("%s changed while it was uploaded; waiting for its close", rel)
            if not ps.writing:
                scheduler.submit(rel, direction)
        except (PreconditionFailed, NotFound):
            # S3 no longer holds what the decision saw (changed, or deleted since the listing):
            # learn what it holds now, and decide again.
            settled = False
            seen = ps.remote
            try:
                await transfers.refresh_remote(rel)
            except Exception as error:
                self._failed(rel, direction, error)
            else:
                if ps.remote == seen:  # S3 contradicts itself: do not spin on it
                    self._failed(rel, direction, S3Unavailable(f"{rel!r}: S3 answers disagree"))
                else:
                    scheduler.submit(rel, direction)
        except UnsyncableName as error:
            self.metrics.inc(self.metrics.skipped, error.reason.value)
            log.warning("not syncing %r: %s", rel, error)
        except UnsafeParentError as error:
            self.metrics.inc(self.metrics.skipped, SkipReason.UNSAFE_KEY.value)
            log.warning("not downloading %r: %s", rel, error)
        except (
            S3Error,
            S3Unavailable,
            IntegrityError,
            aiohttp.ClientError,
            TimeoutError,
            CredentialsError,
        ) as error:
            settled = False
            self._failed(rel, direction, error)
        except PermissionError as error:
            self.metrics.inc(self.metrics.skipped, SkipReason.UNREADABLE.value)
            self.metrics.inc(self.metrics.local_errors, "permission")
            log.warning("cannot sync %r: %s", rel, error)
        except OSError as error:
            settled = False
            self.metrics.inc(self.metrics.local_errors, "io")
            self._failed(rel, direction, error)
        finally:
            self._last_progress = time.monotonic()
            if settled:
                scheduler.done(rel)
            if rel in self._restore_pending and (settled or waiting or ps.failures >= 3):
                if not settled and not waiting:
                    log.error("could not restore %r at start; still retrying", rel)
                self._restore_pending.discard(rel)
                if not self._restore_pending:
                    self._restore_done.set()
            state.prune(rel)

    def _skip(self, rel: str, decision: Decision) -> None:
        self.metrics.inc(self.metrics.skipped, decision.reason)
        log.warning("not syncing %r: %s", rel, decision.reason.replace("_", " "))

    def _failed(self, rel: str, direction: Direction, error: BaseException) -> None:
        assert self._scheduler is not None
        ps = self._state.get(rel)
        ps.failures += 1
        delay = min(300.0, 0.5 * 2 ** min(ps.failures, 10))
        counter = self.metrics.uploads if direction == UPLOAD else self.metrics.downloads
        self.metrics.inc(counter, "error")
        log.warning(
            "sync of %r failed (attempt %d, retrying in %.0fs): %s", rel, ps.failures, delay, error
        )
        self._scheduler.later(rel, direction, delay)


class _Events:
    """The watcher's view of the syncer (keeps the event methods off the public API)."""

    __slots__ = ("_syncer",)

    def __init__(self, syncer: Syncer) -> None:
        self._syncer = syncer

    def modified(self, rel: str) -> None:
        self._syncer._modified(rel)

    def closed(self, rel: str) -> None:
        self._syncer._closed(rel)

    def created(self, rel: str, is_dir: bool) -> None:
        self._syncer._created(rel, is_dir)

    def attrib(self, rel: str, is_dir: bool) -> None:
        self._syncer._submit_local(rel, Hint.META)

    def removed(self, rel: str, is_dir: bool) -> None:
        self._syncer._removed(rel)

    def moved_out(self, rel: str, is_dir: bool) -> None:
        self._syncer._moved_out(rel, is_dir)

    def moved_in(self, rel: str, is_dir: bool) -> None:
        self._syncer._submit_local(rel, Hint.CONTENT)

    def found(self, rel: str, is_dir: bool) -> None:
        self._syncer._submit_local(rel, Hint.NONE)

    def overflowed(self) -> None:
        self._syncer._overflowed()

    def root_lost(self) -> None:
        self._syncer._root_lost()


def _count_missing(root: str, rels: list[str]) -> int:
    """How many of `rels` are gone from the folder (in a thread: one lstat each)."""
    return sum(not os.path.lexists(f"{root}/{rel}") for rel in rels)


def _isoformat(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _clean_work_dir(work_dir: str) -> None:
    """Temporary files left by a crash: ours are named by 32 hex digits."""
    for name in os.listdir(work_dir):
        if len(name) == 32 and all(c in "0123456789abcdef" for c in name):
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(work_dir, name))


__all__ = ["DEFAULT_WORK_DIR", "SyncStatus", "Syncer"]
