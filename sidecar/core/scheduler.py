"""Per-path exclusive work queues.

A path is never processed by two workers at once, so PUTs and DELETEs of one key reach S3 in the
order the changes happened (mobius3's FIFO lock per path). Changes that arrive while a path is
being processed are coalesced into one more pass afterwards: the pass looks at the state *then*,
so intermediate versions that no longer exist are never uploaded.

Three pools of workers: paths changed locally go to the upload pool, paths changed remotely to
the download pool, so a burst on one side never starves the other. Paths a listing hands back
only to learn an object's metadata (the same bytes under a new Last-Modified: the one HEAD after
each of our uploads' second, another client's chmod or touch) go to the check pool, two wide: a
listing after a burst of uploads finds hundreds of them, and sent sixteen at a time their HEADs
queued ahead of the next writes' PUTs on a server that answers one request at a time. Measured
on moto's server, single writes at 20/s, close to visible: p99 64-70 ms with those HEADs in the
download pool, 17-20 ms two at a time (`bench/run.py --server moto --rows 4`).
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
Direction = Literal["upload", "download", "check"]
UPLOAD: Final = "upload"
DOWNLOAD: Final = "download"
CHECK: Final = "check"
DIRECTIONS: Final[tuple[Direction, ...]] = (UPLOAD, DOWNLOAD, CHECK)
CHECK_WORKERS: Final = 2


class Scheduler:
    def __init__(
        self,
        process: Callable[[str, Direction], Awaitable[None]],
        workers: dict[Direction, int],
    ) -> None:
        self._process = process
        self._workers = workers
        # A pool given no workers hands its paths to the download pool rather than hold them.
        self._lane: dict[Direction, Direction] = {
            direction: direction if workers.get(direction) else DOWNLOAD for direction in DIRECTIONS
        }
        self._queues: dict[Direction, asyncio.Queue[str]] = {d: asyncio.Queue() for d in DIRECTIONS}
        self._queued: dict[str, Direction] = {}
        self._running: dict[str, Direction] = {}
        self._again: dict[str, Direction] = {}
        self._delayed: dict[str, tuple[asyncio.TimerHandle, Direction]] = {}
        self._running_count = dict.fromkeys(DIRECTIONS, 0)
        self._local_since: dict[str, float] = {}  # insertion order: the first is the oldest
        self._tasks: list[asyncio.Task[None]] = []
        self._idle = asyncio.Event()
        self._idle.set()
        self._settled = asyncio.Event()  # set whenever a local change is done (flush waits)

    def start(self) -> None:
        for direction, count in self._workers.items():
            for number in range(count):
                task = asyncio.get_running_loop().create_task(
                    self._worker(direction), name=f"{direction}-worker-{number}"
                )
                self._tasks.append(task)

    @property
    def tasks(self) -> list[asyncio.Task[None]]:
        return self._tasks

    async def close(self) -> None:
        for handle, _ in self._delayed.values():
            handle.cancel()
        self._delayed.clear()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    def submit(self, rel: str, direction: Direction) -> None:
        direction = self._lane[direction]
        if direction == UPLOAD and rel not in self._local_since:
            self._local_since[rel] = time.monotonic()
        delayed = self._delayed.pop(rel, None)
        if delayed is not None:
            delayed[0].cancel()
            if delayed[1] == UPLOAD:
                direction = UPLOAD
        if rel in self._running:
            previous = self._again.get(rel)
            self._again[rel] = UPLOAD if previous == UPLOAD else direction
            return
        if rel in self._queued:
            return
        self._queued[rel] = direction
        self._idle.clear()
        self._queues[direction].put_nowait(rel)

    def later(self, rel: str, direction: Direction, delay: float) -> None:
        """Process `rel` again after `delay` seconds (a retry), unless a change comes first."""
        if rel in self._delayed or rel in self._queued:
            return
        handle = asyncio.get_running_loop().call_later(delay, self._fire, rel)
        self._delayed[rel] = (handle, direction)
        self._idle.clear()

    def expedite(self) -> None:
        """Shutting down: retry now whatever was waiting for a backoff to end."""
        for rel in list(self._delayed):
            self._fire(rel)

    def _fire(self, rel: str) -> None:
        entry = self._delayed.pop(rel, None)
        if entry is not None:
            self.submit(rel, entry[1])

    def done(self, rel: str) -> None:
        """The local change at `rel` is in S3 (or there is nothing left to send)."""
        idle = rel not in self._queued and rel not in self._again and rel not in self._delayed
        if idle and self._local_since.pop(rel, None) is not None:
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

    def queued(self, direction: Direction) -> int:
        return self._queues[direction].qsize()

    def running(self, direction: Direction) -> int:
        return self._running_count[direction]

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

    def has_work(self) -> bool:
        """Anything queued, running, or waiting for a retry."""
        return bool(self._queued or self._running or self._delayed)

    async def wait_idle(self) -> None:
        """Until nothing is queued, running, or waiting for a retry."""
        while self.has_work():
            self._idle.clear()
            await self._idle.wait()

    async def _worker(self, direction: Direction) -> None:
        queue = self._queues[direction]
        while True:
            rel = await queue.get()
            if self._queued.pop(rel, None) is None:
                continue
            if not self._queued:
                self._queued = {}  # a dict never shrinks: a restore's 100,000 slots go
            self._running[rel] = direction
            self._running_count[direction] += 1
            try:
                await self._process(rel, direction)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("unexpected error while syncing %r", rel)
            finally:
                self._running_count[direction] -= 1
                del self._running[rel]
                again = self._again.pop(rel, None)
                if again is not None:
                    self.submit(rel, again)
                if not self.has_work():
                    self._idle.set()
