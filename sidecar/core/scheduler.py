"""Per-path exclusive work queues.

A path is never processed by two workers at once, so PUTs and DELETEs of one key reach S3 in the
order the changes happened (mobius3's FIFO lock per path). Changes that arrive while a path is
being processed are coalesced into one more pass afterwards: the pass looks at the state *then*,
so intermediate versions that no longer exist are never uploaded.

Three pools of workers: paths changed locally go to the upload pool, paths changed remotely to
the download pool, so a burst on one side never starves the other. A pool is where a path waits
and which workers take it, not what its pass does: a pass decides for itself (`reconcile`), and a
path handed to the download pool may turn out to be an upload. Paths a listing hands back
only to learn an object's metadata (the same bytes under a new Last-Modified: the one HEAD after
each of our uploads' second, another client's chmod or touch) go to the check pool, two wide: a
listing after a burst of uploads finds hundreds of them, and sent sixteen at a time their HEADs
queued ahead of the next writes' PUTs on a server that answers one request at a time. Measured
on moto's server, single writes at 20/s, close to visible: p99 64-70 ms with those HEADs in the
download pool, 17-20 ms two at a time (`bench/run.py --server moto --rows 4`).

The start-up restore hands every path it found (`RESTORE`: what S3 changed, and what was synced
before a restart) to the download pool. Every entry in the folder was already reported to the
upload pool by the watch that comes first (`Watcher.start`), and a queued path stays where it
is: what the restore adds to the download pool is what the folder does not hold, S3's to bring
in, or a synced file deleted here while the sidecar was down (whose pass deletes it in S3).

The workers start with `start(process)`, once: `process` is the pass (the pipeline's), built
after the scheduler it submits to; what is submitted before waits in the queues.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Final, Literal

log = logging.getLogger("sidecar.scheduler")


# Plain strings, not an Enum: they key dicts on the hot path, and Enum hashing is Python code.
# They are also the `direction` label of the queue metrics (s3sync_queue_depth and
# s3sync_transfers_in_flight): users' dashboards name them.
Pool = Literal["upload", "download", "check"]
UPLOAD: Final = "upload"
DOWNLOAD: Final = "download"
CHECK: Final = "check"
POOLS: Final[tuple[Pool, ...]] = (UPLOAD, DOWNLOAD, CHECK)
RESTORE: Final = DOWNLOAD  # the start-up restore's pool (see above)
CHECK_WORKERS: Final = 2


Process = Callable[[str, Pool], Awaitable[None]]  # one pass over a path, in a pool's worker


class Scheduler:
    def __init__(self, workers: dict[Pool, int]) -> None:
        self._process: Process | None = None  # given by `start`
        self._workers = workers
        # A pool given no workers hands its paths to the download pool rather than hold them.
        self._lane: dict[Pool, Pool] = {
            pool: pool if workers.get(pool) else DOWNLOAD for pool in POOLS
        }
        self._queues: dict[Pool, asyncio.Queue[str]] = {pool: asyncio.Queue() for pool in POOLS}
        self._queued: dict[str, Pool] = {}
        self._running: dict[str, Pool] = {}
        self._again: dict[str, Pool] = {}
        self._again_news: set[str] = set()  # of `_again`: those a change (not only a scan) asked
        self._delayed: dict[str, tuple[asyncio.TimerHandle, Pool]] = {}
        self._running_count = dict.fromkeys(POOLS, 0)
        self._local_since: dict[str, float] = {}  # insertion order: the first is the oldest
        self._tasks: list[asyncio.Task[None]] = []
        self._idle = asyncio.Event()
        self._idle.set()
        self._settled = asyncio.Event()  # set whenever a local change is done (flush waits)

    def start(self, process: Process) -> None:
        """Start every pool's workers, each running `process` on the paths it takes. Once."""
        if self._process is not None:
            raise RuntimeError("the scheduler's workers are already started")
        self._process = process
        for pool, count in self._workers.items():
            for number in range(count):
                task = asyncio.get_running_loop().create_task(
                    self._worker(pool, process), name=f"{pool}-worker-{number}"
                )
                self._tasks.append(task)

    @property
    def tasks(self) -> list[asyncio.Task[None]]:
        return self._tasks

    async def close(self) -> None:
        for handle, _ in self._delayed.values():
            handle.cancel()
        self._delayed.clear()
        self._again_news.clear()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    def submit(self, rel: str, pool: Pool, *, rescan: bool = False, retry: bool = False) -> None:
        """Process `rel` in `pool`. A change cancels a retry's back-off (the path changed: look
        at once); a `rescan` (a scan that reports what exists, with nothing new to say) does
        not: a path failing with back-off is retried when its back-off says, however often a
        directory without a watch is listed, nor is it a local change when the path is being
        looked at already."""
        pool = self._lane[pool]
        if rescan and rel in self._delayed:
            return
        news = not retry and not (rescan and self.is_busy(rel))
        if pool == UPLOAD and news and rel not in self._local_since:
            # A retry is not a new change: whether a local change waits was said before (and
            # `not_local` may have found that none does); nor is a scan's report of a path a
            # pass is looking at already (it looks at the folder anyway).
            self._local_since[rel] = time.monotonic()
        delayed = self._delayed.pop(rel, None)
        if delayed is not None:
            delayed[0].cancel()
            if delayed[1] == UPLOAD:
                pool = UPLOAD
        if rel in self._running:
            previous = self._again.get(rel)
            self._again[rel] = UPLOAD if previous == UPLOAD else pool
            if news:
                self._again_news.add(rel)
            return
        if rel in self._queued:
            return
        self._queued[rel] = pool
        self._idle.clear()
        self._queues[pool].put_nowait(rel)

    def later(self, rel: str, pool: Pool, delay: float) -> None:
        """Process `rel` again after `delay` seconds (a retry), unless a change comes first."""
        if rel in self._delayed or rel in self._queued:
            return
        handle = asyncio.get_running_loop().call_later(delay, self._fire, rel)
        self._delayed[rel] = (handle, pool)
        self._idle.clear()

    def expedite(self) -> None:
        """Shutting down: retry now whatever was waiting for a backoff to end (its timer
        cancelled: left, it would fire later and take the next retry's place, doubling the
        tries of a path that keeps failing)."""
        for rel, (handle, _) in list(self._delayed.items()):
            handle.cancel()
            self._fire(rel)

    def _fire(self, rel: str) -> None:
        entry = self._delayed.pop(rel, None)
        if entry is not None:
            self.submit(rel, entry[1], retry=True)

    def done(self, rel: str) -> None:
        """The local change at `rel` is in S3 (or there is nothing left to send)."""
        idle = rel not in self._queued and rel not in self._again and rel not in self._delayed
        if idle and self._local_since.pop(rel, None) is not None:
            self._settled.set()

    def not_local(self, rel: str) -> None:
        """A pass found no local change at `rel` to send (what waits is S3's, to place here):
        not a pending local change, for flush, stop and the lag gauge, until one is reported."""
        if self._local_since.pop(rel, None) is not None:
            self._settled.set()

    def local_since(self, rel: str) -> float | None:
        """Since when (monotonic) the local change at `rel` has waited for S3; None if none."""
        return self._local_since.get(rel)

    def local_changes_before(self, moment: float) -> list[str]:
        """Paths whose local change, waiting since before `moment`, is not in S3 yet."""
        return [rel for rel, since in self._local_since.items() if since <= moment]

    async def wait_settled(self, timeout: float) -> None:  # noqa: ASYNC109
        """Until a local change is done, or `timeout` seconds."""
        self._settled.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._settled.wait(), timeout)

    def queued(self, pool: Pool) -> int:
        return self._queues[pool].qsize()

    def running(self, pool: Pool) -> int:
        return self._running_count[pool]

    def delayed(self) -> int:
        return len(self._delayed)

    def oldest_local_change(self) -> float | None:
        for since in self._local_since.values():
            return since
        return None

    def pending_local(self) -> list[str]:
        """Paths whose local change is not in S3 yet."""
        return list(self._local_since)

    def is_busy(self, rel: str) -> bool:
        return rel in self._running or rel in self._queued or rel in self._delayed

    def pending(self, rel: str) -> Pool | None:
        """The pool `rel` is queued, running or waiting a retry in; None if it is in none."""
        delayed = self._delayed.get(rel)
        return (
            self._running.get(rel)
            or self._queued.get(rel)
            or (delayed[1] if delayed is not None else None)
        )

    def has_work(self) -> bool:
        """Anything queued, running, or waiting for a retry."""
        return bool(self._queued or self._running or self._delayed)

    async def wait_idle(self) -> None:
        """Until nothing is queued, running, or waiting for a retry."""
        while self.has_work():
            self._idle.clear()
            await self._idle.wait()

    async def _worker(self, pool: Pool, process: Process) -> None:
        queue = self._queues[pool]
        while True:
            rel = await queue.get()
            if self._queued.pop(rel, None) is None:
                continue
            if not self._queued:
                self._queued = {}  # a dict never shrinks: a restore's 100,000 slots go
            self._running[rel] = pool
            self._running_count[pool] += 1
            try:
                await process(rel, pool)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("unexpected error while syncing %r", rel)
            finally:
                self._running_count[pool] -= 1
                del self._running[rel]
                again = self._again.pop(rel, None)
                if again is not None:
                    news = rel in self._again_news
                    self._again_news.discard(rel)
                    # Only scans asked: a retry's back-off stands, and no local change is new.
                    self.submit(rel, again, rescan=not news, retry=not news)
                if not self.has_work():
                    self._idle.set()
