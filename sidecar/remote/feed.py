"""Remote changes as they happen: S3 event notifications read from an SQS queue
(`SYNC_QUEUE_URL`), fed into the same fold as a listing's findings (`fold.apply_findings`), so
the decision stays in `reconcile`.

One loop (`run`), shaped like the poller: long-poll (20 s, ten messages), handle the batch,
delete what was handled; its health in one record (`health`, loophealth.py), which logs on
transitions only (failing, answering again).

Invariants:
- An event is a hint, never a fact: the object is looked at (one HEAD) and what S3 holds now
  is folded in. An old, duplicated or reordered event therefore cannot undo a newer change,
  and a removal event for an object that exists deletes nothing. Per-key `sequencer` order
  (when events carry one) skips events older than one already applied, without a request.
- No request for what is known to be stale or ours: events for other buckets, keys outside
  the prefix or excluded, removals of what we know is gone, and creations of the ETag we know
  with a Last-Modified second after the event's time.
- A message is deleted only once every event in it was ignored or folded in; one whose HEAD
  failed comes back after the queue's visibility timeout (and goes to its dead-letter queue
  after its receive count). A malformed message is logged, counted and deleted.
- The queue failing (unreachable, denied, missing) is logged once, counted, shown by
  readiness, and backed off (1 s doubling to 60 s); meanwhile listings run at the fallback
  interval, and one runs as soon as the queue answers again: events sent while it was away
  may be lost. An `s3:TestEvent` also asks for a listing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from ..aws.sqs import Message, QueueClient, QueueError
from ..backoff import QUEUE
from ..core.keys import KeyMapper, UnsyncableName, parents_of
from ..core.model import RemoteEntry
from ..core.scheduler import DOWNLOAD, Scheduler
from ..core.state import SyncState
from ..loophealth import LoopHealth
from ..metrics import Metrics
from ..s3.client import S3Client
from ..s3.entries import entry_of
from ..s3.events import MalformedMessage, ObjectEvent, parse_message, sequencer_order
from ..s3.metadata import normalize_etag
from .fold import apply_findings
from .poll import Poller

log = logging.getLogger("sidecar.changes")

ORDER_MEMORY = 100_000  # keys whose last applied sequencer is remembered
HEADS_AT_ONCE = 8


@dataclass(slots=True)
class _Batch:
    """One received batch: the events to look at, and which messages wait on which keys."""

    wanted: dict[str, tuple[str, bool, ObjectEvent]] = field(default_factory=dict)
    waiting: dict[str, set[str]] = field(default_factory=dict)  # receipt -> keys
    done: list[str] = field(default_factory=list)  # receipts with nothing left to look at


class ChangeFeed:
    def __init__(
        self,
        *,
        queue: QueueClient,
        s3: S3Client,
        bucket: str,
        keys: KeyMapper,
        excluded: Callable[[str, bool], bool],
        state: SyncState,
        scheduler: Scheduler,
        poller: Poller,
        metrics: Metrics,
    ) -> None:
        self._queue = queue
        self._s3 = s3
        self._bucket = bucket
        self._keys = keys
        self._excluded = excluded
        self._state = state
        self._scheduler = scheduler
        self._poller = poller
        self._metrics = metrics
        self._order: OrderedDict[str, str] = OrderedDict()
        self.health = LoopHealth[QueueError](  # a success: the queue answered
            log,
            failing="the event queue is failing (%s): listing every %gs until it answers again",
            recovered="the event queue answers again",
            errors=metrics.notification_errors,
            kind=lambda error: error.kind,
        )

    async def run(self) -> None:
        """Receive and handle, forever. Never raises but for cancellation."""
        failures = 0  # in a row: how long to wait after the next (backoff.py's QUEUE)
        try:
            attributes = await self._queue.attributes()
        except QueueError as error:
            self._failed(error)
        else:
            self._answered()
            log.info(
                "receiving S3 events from %s (%s messages waiting)",
                self._queue.queue.url,
                attributes.get("ApproximateNumberOfMessages", "?"),
            )
        while True:
            try:
                messages = await self._queue.receive()
            except QueueError as error:
                self._failed(error)
                failures += 1
                await asyncio.sleep(QUEUE.delay(failures))
                continue
            failures = 0
            self._answered()
            if messages:
                await self.handle(messages)

    def _failed(self, error: QueueError) -> None:
        self.health.failed(error, self._poller.fallback_interval)

    def _answered(self) -> None:
        if self.health.succeeded():
            self._poller.request_listing("events may have been lost while the queue failed")

    async def handle(self, messages: list[Message]) -> None:
        """Look at what a batch names, fold it in, and delete what was handled."""
        metrics = self._metrics
        batch = _Batch()
        for message in messages:
            try:
                notification = parse_message(message.body)
            except MalformedMessage as error:
                metrics.inc(metrics.notification_messages, "malformed")
                log.warning(
                    "deleting a message the sidecar cannot read (%s): %s", message.id, error
                )
                batch.done.append(message.receipt)
                continue
            if notification.test:
                metrics.inc(metrics.notification_messages, "test")
                self._poller.request_listing("S3 sent a test event")
                batch.done.append(message.receipt)
                continue
            metrics.inc(metrics.notification_messages, "handled")
            keys: set[str] = set()
            for event in notification.events:
                metrics.inc(metrics.notification_events, "received")
                target = self._target(event)
                if target is None:
                    metrics.inc(metrics.notification_events, "ignored")
                    continue
                rel, is_dir = target
                batch.wanted[event.key] = (rel, is_dir, _later(batch.wanted.get(event.key), event))
                keys.add(event.key)
            if keys:
                batch.waiting[message.receipt] = keys
            else:
                batch.done.append(message.receipt)
        failed = await self._look(batch)
        handled = batch.done + [
            receipt for receipt, keys in batch.waiting.items() if not keys & failed
        ]
        await self._delete(handled)

    def _target(self, event: ObjectEvent) -> tuple[str, bool] | None:
        """The path an event is about, or None when it needs no look."""
        if event.bucket != self._bucket:
            return None
        prefix = self._keys.prefix
        if not event.key.startswith(prefix) or event.key == prefix:
            return None
        try:
            name = self._keys.rel_for_key(event.key)
        except UnsyncableName:
            return None  # the listing reports it (once), as for any such key
        if self._excluded(name.rel, name.is_dir):
            return None
        if event.sequencer:
            last = self._order.get(event.key)
            if last is not None and sequencer_order(event.sequencer) <= last:
                return None
        state = self._state
        if any(
            (ps := state.peek(p)) is not None and ps.remote is not None and not ps.remote.is_dir
            for p in parents_of(name.rel)
        ):
            return None  # below a file's name: shadowed, as listings decide
        ps = state.peek(name.rel)
        known = ps.remote if ps is not None else None
        if not event.created:
            return None if known is None else (name.rel, name.is_dir)
        if known is not None and _covers(known, event):
            return None
        return name.rel, name.is_dir

    async def _look(self, batch: _Batch) -> set[str]:
        """HEAD every wanted key and fold the answers in; the keys that could not be looked at."""
        if not batch.wanted:
            return set()
        started = time.monotonic()
        limit = asyncio.Semaphore(HEADS_AT_ONCE)
        findings: dict[str, RemoteEntry | None] = {}
        failed: set[str] = set()

        async def look(key: str, rel: str, is_dir: bool) -> None:
            async with limit:
                try:
                    head = await self._s3.head_object(key)
                except Exception as error:  # a 403, S3 away: the message comes back later
                    failed.add(key)
                    log.warning("cannot look at %r after its event: %s", key, error)
                    return
            findings[rel] = None if head is None else entry_of(head, is_dir=is_dir)

        await asyncio.gather(
            *(look(key, rel, is_dir) for key, (rel, is_dir, _) in batch.wanted.items())
        )
        changed = apply_findings(
            self._state, findings, started=started, busy=self._scheduler.is_busy
        )
        for rel in changed:
            self._scheduler.submit(rel, DOWNLOAD)
        metrics, now = self._metrics, time.time()
        for key, (_, _, event) in batch.wanted.items():
            if key in failed:
                continue
            metrics.inc(metrics.notification_events, "applied")
            if event.time is not None:
                metrics.observe(metrics.notification_lag, value=max(0.0, now - event.time))
            if event.sequencer:
                self._order[key] = sequencer_order(event.sequencer)
                self._order.move_to_end(key)
                if len(self._order) > ORDER_MEMORY:
                    self._order.popitem(last=False)
        return failed

    async def _delete(self, receipts: list[str]) -> None:
        for start in range(0, len(receipts), 10):
            try:
                undeleted = await self._queue.delete(receipts[start : start + 10])
            except QueueError as error:
                self._failed(error)  # they come back and are looked at again: harmless
                return
            if undeleted:
                log.debug("%d messages were not deleted; they will come back", undeleted)


def _later(seen: tuple[str, bool, ObjectEvent] | None, event: ObjectEvent) -> ObjectEvent:
    """Of two events for one key in a batch, the one S3 ordered later (for the lag and order)."""
    if seen is None:
        return event
    old = seen[2]
    if event.sequencer and old.sequencer:
        return event if sequencer_order(event.sequencer) > sequencer_order(old.sequencer) else old
    return event


def _covers(known: RemoteEntry, event: ObjectEvent) -> bool:
    """Whether what we know of an object is certainly newer than a creation event for it: the
    same bytes, written (by us or seen listed) in a second after the event's time."""
    if normalize_etag(event.etag) != known.etag or event.time is None:
        return False
    if event.size is not None and event.size != known.size:
        return False
    second = known.last_modified or known.written_by
    return second.isdigit() and int(second) > int(event.time)
