"""Remote changes as they happen: S3 event notifications read from an SQS queue
(`SYNC_QUEUE_URL`), fed into the same fold as a listing's findings (`fold.apply_findings`), so
the decision stays in `reconcile`.

One loop (`run`), shaped like the poller: long-poll (20 s, ten messages), handle the batch,
delete what was handled; its health in one record (`health`, loophealth.py), which logs on
transitions only (failing, answering again).

Invariants:
- An event is a hint, never a fact: the object is looked at (one HEAD) and what S3 holds now
  is folded in. An old, duplicated or reordered event therefore cannot undo a newer change,
  and a removal event for an object that exists deletes nothing.
- Only what S3 confirmed is remembered (`Confirmed`): an event's sequencer is kept for its key
  only when the HEAD made after it found what it says (the object with its ETag, and its size
  when it gives one; for a removal, no object), and it then spares exactly that event's
  repeats (S3 delivers at least once) a request. A sequencer itself is never proof: S3's
  answers carry none, and anyone allowed to send to the queue can write `F`x40. So no
  sequencer, however high, makes the feed pass over an event with another: a genuine later
  change (a lower sequencer than a forged one) is looked at at once, and a reordered older
  event costs one HEAD, which finds the newer object and changes nothing.
- No request for what is known to be stale or ours: events for other buckets, keys outside
  the prefix or excluded, removals of what we know is gone, and creations of the ETag we know
  with a Last-Modified second after the event's time.
- Nothing a sender puts on the queue ends the loop, and so the process. A message is deleted
  only once every event in it was ignored or folded in; one whose HEAD failed comes back after
  the queue's visibility timeout (and goes to its dead-letter queue after its receive count).
  A body that is not an event notification, of any size, depth or encoding, is malformed
  (events.py): logged once, counted and deleted. Any exception in handling a batch is
  contained: the batch is handled again a message at a time, and a message that fails alone
  is deleted with one warning (the first of a run with its traceback), counted (`failed`),
  and a listing is asked for, which finds whatever it named.
- The queue failing (unreachable, denied, missing, an answer it cannot read) is logged once,
  counted, shown by readiness and in `/healthz`'s degraded list, and backed off (1 s doubling
  to 60 s); a listing runs at once and then at the fallback interval, and one runs as soon as
  the queue answers again: events sent while it was away may be lost. `FAILED_IN_A_ROW`
  messages failing in a row degrade the feed the same way (`/healthz` says so, listings at the
  fallback interval) until one is handled; neither ever makes the process exit. An
  `s3:TestEvent` also asks for a listing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

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

ORDER_MEMORY = 100_000  # keys whose last confirmed sequencer is remembered
HEADS_AT_ONCE = 8
FAILED_IN_A_ROW = 3  # messages whose handling failed, in a row, that degrade the feed
QUEUE_FAILING = "event_queue"  # Health conditions (`/healthz`'s degraded list)
EVENTS_FAILING = "event_handling"


class FeedHealth(Protocol):
    """What the feed tells the sidecar's health (engine/health.py's `Health`)."""

    def degrade(self, condition: str, subject: str, text: str) -> None: ...
    def recover(self, condition: str, subject: str = "") -> None: ...


@dataclass(slots=True)
class _Wanted:
    """A key to look at: its path, and every event of the batch that named it."""

    rel: str
    is_dir: bool
    events: list[ObjectEvent] = field(default_factory=list)


@dataclass(slots=True)
class _Batch:
    """One received batch: the events to look at, and which messages wait on which keys."""

    wanted: dict[str, _Wanted] = field(default_factory=dict)
    waiting: dict[str, set[str]] = field(default_factory=dict)  # receipt -> keys
    done: list[str] = field(default_factory=list)  # receipts with nothing left to look at


class Confirmed:
    """Per key, the sequencer of the last event S3 confirmed (for the `ORDER_MEMORY` keys
    confirmed last): a repeat of it needs no request. Nothing else is ever remembered."""

    def __init__(self) -> None:
        self._sequencers: OrderedDict[str, str] = OrderedDict()

    def repeats(self, event: ObjectEvent) -> bool:
        """Whether `event` is one S3 confirmed already (the same key and sequencer)."""
        known = self._sequencers.get(event.key)
        return bool(event.sequencer) and known == sequencer_order(event.sequencer)

    def learn(
        self, key: str, events: list[ObjectEvent], found: RemoteEntry | None
    ) -> ObjectEvent | None:
        """Of the events that named `key`, the latest that what one HEAD made after them found
        (`found`: the object, or None for none) confirms, its sequencer now remembered; None
        when the HEAD confirmed none of them (forged, or overtaken by another change)."""
        confirmed = [event for event in events if _confirms(event, found)]
        if not confirmed:
            return None
        latest = max(confirmed, key=lambda event: sequencer_order(event.sequencer))
        if latest.sequencer:
            self._sequencers[key] = sequencer_order(latest.sequencer)
            self._sequencers.move_to_end(key)
            if len(self._sequencers) > ORDER_MEMORY:
                self._sequencers.popitem(last=False)
        return latest


class Handling:
    """Messages whose handling raised, in a row: `FAILED_IN_A_ROW` of them degrade the feed
    (said once, and in `/healthz`) until one is handled."""

    def __init__(self, conditions: FeedHealth, fallback: Callable[[], float]) -> None:
        self._conditions = conditions
        self._fallback = fallback
        self.in_a_row = 0

    @property
    def failing(self) -> bool:
        return self.in_a_row >= FAILED_IN_A_ROW

    def failed(self, error: Exception) -> None:
        self.in_a_row += 1
        if self.in_a_row == FAILED_IN_A_ROW:
            fallback = self._fallback()
            log.warning(
                "S3 events keep failing to be handled: listing every %gs until one is", fallback
            )
            self._conditions.degrade(
                EVENTS_FAILING,
                "",
                f"S3 events from SYNC_QUEUE_URL keep failing to be handled ({_short(error)}): "
                f"changes in S3 are found by listing every {fallback:g}s until one is",
            )

    def handled(self) -> None:
        if self.failing:
            log.info("S3 events are handled again")
            self._conditions.recover(EVENTS_FAILING)
        self.in_a_row = 0


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
        conditions: FeedHealth,
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
        self._conditions = conditions
        self._confirmed = Confirmed()
        self.handling = Handling(conditions, lambda: poller.fallback_interval)
        self.health = LoopHealth[Exception](  # a success: the queue answered
            log,
            failing="the event queue is failing (%s): listing every %gs until it answers again",
            recovered="the event queue answers again",
            errors=metrics.notification_errors,
            kind=lambda error: error.kind if isinstance(error, QueueError) else "error",
        )

    @property
    def degraded(self) -> bool:
        """Whether S3's changes are found by listing (at the fallback interval) instead: the
        queue fails, or the events it brings keep failing."""
        return self.health.failing or self.handling.failing

    async def run(self) -> None:
        """Receive and handle, forever. Never raises but for cancellation."""
        failures = 0  # in a row: how long to wait after the next (backoff.py's QUEUE)
        try:
            attributes = await self._queue.attributes()
        except Exception as error:
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
            except Exception as error:  # a QueueError; anything else is contained the same way
                self._failed(error)
                failures += 1
                await asyncio.sleep(QUEUE.delay(failures))
                continue
            failures = 0
            self._answered()
            if messages:
                await self._contained(messages)

    def _failed(self, error: Exception) -> None:
        fallback = self._poller.fallback_interval
        if self.health.failed(error, fallback):
            self._conditions.degrade(
                QUEUE_FAILING,
                "",
                f"the event queue (SYNC_QUEUE_URL) is failing ({_short(error)}): changes in "
                f"S3 are found by listing every {fallback:g}s until it answers again",
            )
            # now, and from then on at the fallback interval, not after the interval under way
            self._poller.request_listing("the event queue is failing")

    def _answered(self) -> None:
        if self.health.succeeded():
            self._conditions.recover(QUEUE_FAILING)
            self._poller.request_listing("events may have been lost while the queue failed")

    async def _contained(self, messages: list[Message]) -> None:
        """`handle`, with any exception contained: the batch again a message at a time, and a
        message that fails alone deleted (`_unhandled`). Never raises but for cancellation."""
        try:
            await self.handle(messages)
            return
        except Exception as error:
            if len(messages) == 1:
                await self._unhandled(messages[0], error)
                return
        for message in messages:
            try:
                await self.handle([message])
            except Exception as error:
                await self._unhandled(message, error)

    async def _unhandled(self, message: Message, error: Exception) -> None:
        """A message whose handling raised, alone: deleted with one warning (the first in a row
        with its traceback), counted, and a listing asked for to find what it named."""
        first = self.handling.in_a_row == 0
        self._metrics.inc(self._metrics.notification_messages, "failed")
        log.warning(
            "deleting a message whose handling failed (%s): %s; listing the prefix instead",
            message.id,
            _short(error),
            exc_info=error if first else None,
        )
        self._poller.request_listing("an event could not be handled")
        self.handling.failed(error)
        try:
            await self._delete([message.receipt])
        except Exception as failure:  # it comes back after the visibility timeout
            log.debug("could not delete message %s: %s", message.id, _short(failure))

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
                wanted = batch.wanted.setdefault(event.key, _Wanted(*target))
                wanted.events.append(event)
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
        self.handling.handled()

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
        if self._confirmed.repeats(event):
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
        found: dict[str, RemoteEntry | None] = {}  # by key
        failed: set[str] = set()

        async def look(key: str, wanted: _Wanted) -> None:
            async with limit:
                try:
                    head = await self._s3.head_object(key)
                    found[key] = None if head is None else entry_of(head, is_dir=wanted.is_dir)
                except Exception as error:  # a 403, S3 away: the message comes back later
                    failed.add(key)
                    log.warning("cannot look at %r after its event: %s", key, _short(error))

        await asyncio.gather(*(look(key, wanted) for key, wanted in batch.wanted.items()))
        findings = {batch.wanted[key].rel: entry for key, entry in found.items()}
        changed = apply_findings(
            self._state, findings, started=started, busy=self._scheduler.is_busy
        )
        for rel in changed:
            self._scheduler.submit(rel, DOWNLOAD)
        metrics, now = self._metrics, time.time()
        for key, entry in found.items():
            metrics.inc(metrics.notification_events, "applied")
            confirmed = self._confirmed.learn(key, batch.wanted[key].events, entry)
            if confirmed is not None and confirmed.time is not None:
                metrics.observe(metrics.notification_lag, value=max(0.0, now - confirmed.time))
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


def _confirms(event: ObjectEvent, found: RemoteEntry | None) -> bool:
    """Whether what a HEAD made after `event` found is what the event says S3 did: for a
    creation, the object with its ETag (and size, when it gives one); for a removal, none."""
    if not event.created:
        return found is None
    return (
        found is not None
        and bool(event.etag)
        and normalize_etag(event.etag) == normalize_etag(found.etag)
        and (event.size is None or event.size == found.size)
    )


def _covers(known: RemoteEntry, event: ObjectEvent) -> bool:
    """Whether what we know of an object is certainly newer than a creation event for it: the
    same bytes, written (by us or seen listed) in a second after the event's time."""
    if normalize_etag(event.etag) != known.etag or event.time is None:
        return False
    if event.size is not None and event.size != known.size:
        return False
    second = known.last_modified or known.written_by
    return second.isdigit() and int(second) > int(event.time)


def _short(error: BaseException) -> str:
    """An error in a few words for a log line or `/healthz` (its text may quote a message)."""
    text = f"{type(error).__name__}: {error}"
    return text if len(text) <= 300 else text[:297] + "..."
