"""Objects S3 holds archived (GLACIER, DEEP_ARCHIVE, an Intelligent-Tiering archive tier),
whose bytes a pass could not fetch: S3 refuses their GET (403 InvalidObjectState) until someone
restores them (RestoreObject). The sidecar does not restore them (a restore is billed, and
takes minutes to days); it waits for S3 to say they can be read.

- Said once per version (a warning, `s3sync_skipped_paths_total{reason="archived"}`), shown in
  /healthz's "degraded" list with how many, until the path is fetched, replaced or gone (a
  pass that ends otherwise: `cleared`). A new archived version is said again.
- Looked at again with one HEAD (`x-amz-restore: ongoing-request="false"` once restored), one
  poll interval after the skip, then at doubling intervals up to an hour
  (`backoff.archived_looks`): a look is a pass in the check pool (`due` tells the pipeline to
  begin with the HEAD); found readable, that pass downloads it, else the next look is set.
  Listings never look again: they show the storage class of a restored object too, and an
  unchanged entry is never handed back (remote/fold.py), so nothing is retried for ever.
- Not a local change: a download that cannot be made settles the pass. A conflict with an
  archived version waits (the local change stays pending, as it is): S3's version is never
  written over, and is kept beside the local one once it can be read.

Cost: at the default 10 s poll interval an archived object costs nine HEADs in its first
85 minutes, then 24 a day: 10,000 archived objects, 240,000 HEADs a day (about $0.10 at S3's
$0.0004 per 1,000), sent two at a time (the check pool). With `SYNC_QUEUE_URL` the first look
comes after 300 s. A restore requested later is seen within the hour; a restart looks at once.
Memory: one small record per archived path skipped, and one timer for the earliest look.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
from collections.abc import Callable
from dataclasses import dataclass

from ..backoff import Backoff
from ..metrics import Metrics
from ..skips import SkipReason
from .health import Health

log = logging.getLogger("sidecar")

_CONDITION = "archived"
_EARLY = 0.01  # a timer may fire this much before its time (the loop's clock resolution)


@dataclass(slots=True)
class _Skipped:
    etag: str  # the version skipped
    skips: int  # passes that met it archived: the back-off's attempt
    due: float  # loop time of the next look


class ArchivedObjects:
    """The archived objects passes skipped, by path, and when each is looked at again."""

    def __init__(
        self,
        *,
        looks: Backoff,
        health: Health,
        metrics: Metrics,
        submit: Callable[[str], None],
    ) -> None:
        self._looks = looks
        self._health = health
        self._metrics = metrics
        self._submit = submit  # a pass over the path, in the check pool
        self._skipped: dict[str, _Skipped] = {}
        self._heap: list[tuple[float, str]] = []  # (due, rel); stale rows are passed over
        self._timer: asyncio.TimerHandle | None = None
        self._text = (
            "objects S3 holds archived (GLACIER, DEEP_ARCHIVE, an archive tier), not downloaded "
            "until they are restored in S3; each is looked at again (a HEAD) "
            f"{looks.first:g}s after it was found, then at doubling intervals up to every "
            f"{looks.cap:g}s"
        )

    def __len__(self) -> int:
        return len(self._skipped)

    def skipped(self, rel: str, etag: str) -> None:
        """A pass found version `etag` of `rel` archived: said and counted the first time,
        shown in /healthz, and its first look set; after a look (or later), the next. A pass
        before its look (a listing handed it back) keeps the look where it was: when the log
        said."""
        loop = asyncio.get_running_loop()
        known = self._skipped.get(rel)
        if known is not None and known.etag == etag and loop.time() < known.due - _EARLY:
            return
        if known is None or known.etag != etag:
            known = self._skipped[rel] = _Skipped(etag, 0, 0.0)
            self._metrics.inc(self._metrics.skipped, SkipReason.ARCHIVED.value)
            self._health.degrade(_CONDITION, rel, self._text)
            log.warning(
                "not syncing %r: S3 holds it archived (GLACIER, DEEP_ARCHIVE, an archive tier): "
                "it is not downloaded until it is restored in S3 (RestoreObject); looked at "
                "again in %gs, "
                "then at doubling intervals up to every %gs",
                rel,
                self._looks.ceiling(1),
                self._looks.cap,
                extra={"path": rel},
            )
        known.skips += 1
        known.due = loop.time() + self._looks.delay(known.skips)
        heapq.heappush(self._heap, (known.due, rel))
        self._arm(loop)

    def due(self, rel: str) -> bool:
        """Whether `rel` was skipped archived and its look is due: the pass begins with it."""
        known = self._skipped.get(rel)
        return known is not None and asyncio.get_running_loop().time() >= known.due - _EARLY

    def cleared(self, rel: str) -> None:
        """A pass over `rel` ended otherwise (fetched, replaced, gone): nothing archived
        waits there any more."""
        if self._skipped.pop(rel, None) is not None:
            self._health.recover(_CONDITION, rel)
            if not self._skipped:
                self._heap.clear()

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _arm(self, loop: asyncio.AbstractEventLoop) -> None:
        """One timer, for the earliest look."""
        if not self._heap:
            return
        when = self._heap[0][0]
        if self._timer is not None:
            if self._timer.when() <= when:
                return
            self._timer.cancel()
        self._timer = loop.call_at(when, self._fire)

    def _fire(self) -> None:
        self._timer = None
        loop = asyncio.get_running_loop()
        now = loop.time() + _EARLY
        while self._heap and self._heap[0][0] <= now:
            due, rel = heapq.heappop(self._heap)
            known = self._skipped.get(rel)
            if known is not None and known.due == due:
                self._submit(rel)
        self._arm(loop)
