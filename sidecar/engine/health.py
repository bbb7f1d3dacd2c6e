"""Health and readiness: the signals that tell whether the sidecar is syncing, and the two
verdicts built from them.

- Liveness (`problems`, served as `/healthz`): empty while syncing. A dead internal task, a dead
  watcher, a deleted folder, an upload queue that made no progress for `stall_timeout` while S3
  answers, or an event loop blocked for over 10 s is a problem: the service exits so that it is
  restarted, rather than stop syncing silently (mobius3's most reported failure).
- Degraded (`degraded`, in `/healthz`'s body, still a 200): syncing, but less well than it
  should. Directories inotify could not watch are synced by a periodic scan instead, with up
  to one scan interval of delay: a reason to raise fs.inotify.max_user_watches, never one to
  restart (a restart would hit the same limit). The parts note other conditions as they begin
  and end (`degrade`, `recover`): the folder's volume full, paths it may not read or write, the
  change feed failing (its queue, or its events: the prefix is then listed at the fallback
  interval).
- Readiness (`readiness`, served as `/readyz`): restored, a poll succeeded within three poll
  intervals (plus twice the last listing's duration), credentials valid, and, with an event
  queue (SYNC_QUEUE_URL), its last call answered. The poll and the queue are read from their
  loops' health records (loophealth.py).

The signals are fed from outside: `set_reachable` by the S3 client after every answer or
failure, `progressed` by the pipeline after every pass and by transfers as bytes move, and the
loop lag by `lag_loop`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from ..aws.credentials import CredentialsProvider
from ..loophealth import LoopHealth

log = logging.getLogger("sidecar")

# How recently S3 must have answered for a stalled queue to be our fault, not S3's.
_S3_ANSWERED_WITHIN = 60.0
_LOOP_BLOCKED = 10.0
_NAMED = 5  # subjects of a degraded condition named in /healthz; the rest are counted


class Health:
    def __init__(self, *, stall_timeout: float, poll_interval: float) -> None:
        self._stall_timeout = stall_timeout
        self._poll_interval = poll_interval
        self.s3_reachable = True
        self._last_s3_answer = 0.0  # monotonic time of the last answer from S3, any status
        self._last_progress = time.monotonic()  # a pass finished or a chunk moved
        self._loop_lag = 0.0
        # What works less well than it should, by condition and subject (`degrade`).
        self._conditions: dict[str, dict[str, str]] = {}

    def set_reachable(self, reachable: bool) -> None:
        self.s3_reachable = reachable
        if reachable:
            self._last_s3_answer = time.monotonic()

    def progressed(self) -> None:
        self._last_progress = time.monotonic()

    async def lag_loop(self) -> None:
        """How late the loop wakes us: a blocked loop means nothing else runs either."""
        while True:
            before = time.monotonic()
            await asyncio.sleep(1.0)
            self._loop_lag = max(0.0, time.monotonic() - before - 1.0)
            if self._loop_lag > 1.0:
                log.warning("the event loop was blocked for %.1fs", self._loop_lag)

    def problems(
        self,
        *,
        tasks: Sequence[asyncio.Task[None]],
        watcher_alive: bool,
        uploads_waiting: bool,
    ) -> list[str]:
        problems: list[str] = []
        for task in tasks:
            if task.done():
                error = None if task.cancelled() else task.exception()
                problems.append(
                    f"internal task {task.get_name()} stopped: {error!r}"
                    if error
                    else f"internal task {task.get_name()} stopped"
                )
        if not watcher_alive:
            problems.append("the inotify watcher stopped")
        now = time.monotonic()
        if uploads_waiting:
            idle = now - self._last_progress
            if idle > self._stall_timeout and now - self._last_s3_answer < _S3_ANSWERED_WITHIN:
                problems.append(
                    f"the upload queue made no progress for {idle:.0f}s while S3 answers"
                )
        if self._loop_lag > _LOOP_BLOCKED:
            problems.append(f"the event loop was blocked for {self._loop_lag:.1f}s")
        return problems

    def degrade(self, condition: str, subject: str, text: str) -> None:
        """`condition` holds for `subject` (a path, or "" for the whole sidecar): `/healthz`
        says so (`text`, a line per condition, with how many subjects) until `recover`."""
        self._conditions.setdefault(condition, {})[subject] = text

    def recover(self, condition: str, subject: str = "") -> None:
        subjects = self._conditions.get(condition)
        if subjects is not None:
            subjects.pop(subject, None)
            if not subjects:
                del self._conditions[condition]

    def no_space(self, full: bool) -> None:
        """The folder's volume refused a write for lack of space (True), or took one (False)."""
        if full:
            self.degrade(
                "no_space",
                "",
                "the synced folder's volume is full (ENOSPC): downloads wait, and are retried, "
                "until there is space",
            )
        else:
            self.recover("no_space")

    def denied(self, rel: str) -> bool:
        """`rel` could not be read or written for want of permission: shown in `/healthz`
        until a pass over it succeeds. True the first time (the caller says it once)."""
        first = rel not in self._conditions.get("permission", {})
        self.degrade(
            "permission",
            rel,
            f"paths this sidecar (uid {os.getuid()}) may not read or write, retried with "
            "back-off; the app's files must be readable and its folders writable by it",
        )
        return first

    def allowed(self, rel: str) -> None:
        """A pass over `rel` succeeded: whatever was denied there is not any more."""
        if "permission" in self._conditions:
            self.recover("permission", rel)

    def degraded(self, *, unwatched: Mapping[str, str], rescan_interval: float) -> list[str]:
        """One line per reason directories have no inotify watch, with how many; one per
        condition `degrade` noted, with its subjects (the first few named)."""
        lines: list[str] = []
        for _, subjects in sorted(self._conditions.items()):
            text = next(iter(subjects.values()))
            named = [subject for subject in subjects if subject]
            if named:
                shown = ", ".join(repr(subject) for subject in sorted(named)[:_NAMED])
                more = f" and {len(named) - _NAMED} more" if len(named) > _NAMED else ""
                text = f"{text}: {len(named)} ({shown}{more})"
            lines.append(text)
        for why, count in sorted(Counter(unwatched.values()).items()):
            lines.append(
                f"{count} {'directory is' if count == 1 else 'directories are'} not watched by "
                f"inotify ({why}): rescanned every {rescan_interval:g}s instead; raise "
                "fs.inotify.max_user_watches on the host"
            )
        return lines

    def readiness(
        self,
        *,
        restore_done: bool,
        restore_pending: int,
        restore_finished_at: float | None,
        restore_progress: Mapping[str, Any] | None = None,
        poll: LoopHealth[Any] | None,
        last_poll_duration: float,
        credentials: CredentialsProvider | None,
        queue: LoopHealth[Any] | None = None,
    ) -> dict[str, dict[str, Any]]:
        """`poll`: the poller's health (None in upload-only: S3 is never listed); `queue`: the
        change feed's (None without SYNC_QUEUE_URL). The restore's listing is as fresh as the
        restore's end (`restore_finished_at`): a long restore is not a stale poll, or `/readyz`
        would fail just when the folder is ready, until the next listing. `restore_progress`:
        the restore's figures (progress.py), shown in its check."""
        checks: dict[str, dict[str, Any]] = {
            "restore": {"ok": restore_done, "pending": restore_pending, **(restore_progress or {})},
            "poll": {"ok": True, "seconds_since_success": None, "error": None, "polls": False},
            "credentials": {
                "ok": credentials is not None and credentials.valid(),
                "expires": _isoformat(credentials.expiration) if credentials is not None else None,
            },
        }
        if poll is not None:
            allowed = 3 * self._poll_interval + 2 * last_poll_duration
            last = poll.last_success_monotonic
            if last is not None and restore_finished_at is not None:
                last = max(last, restore_finished_at)
            age = None if last is None else time.monotonic() - last
            checks["poll"] = {
                "ok": age is not None and age <= allowed,
                "seconds_since_success": None if age is None else round(age, 3),
                "error": poll.last_error,
            }
        if queue is not None:  # SYNC_QUEUE_URL: failing means changes in S3 arrive a listing late
            checks["queue"] = {"ok": not queue.failing, "error": queue.last_error}
        return checks


def _isoformat(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()
