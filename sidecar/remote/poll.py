"""Finding remote changes: list the prefix every interval (start to start, each listing followed
by a rest at least as long as it took), fold the listing into the state (fold.py:
`apply_snapshot`, with the synced files the last listing missed: deleted here when this one
misses them too), and hand the paths whose remote side changed to the download pool.

Shaped like Home Assistant's DataUpdateCoordinator: one typed loop (`run`), one listing at a
time, its health in one record (`health`, loophealth.py: the last success and the last failure,
logs on transitions only), and no exception ever escaping (`poll`).

Listings give Last-Modified to the second, and a metadata-only copy keeps the ETag: what we saw
of an object while its Last-Modified second lasted (our own copy, a GET or HEAD, a listing
then) is `unsettled`, and the first listing made after that second hands it back as a change,
once, so that one HEAD learns what the second ended with (in the scheduler's two-wide check
pool, with every other same-bytes change: `Applied.checked`). Steady state costs nothing: objects
older than a second are never looked at twice.

Nor are pages read twice: a page that lists the same bytes as a page of the last listing (a
16-byte digest of its `<Contents>`) is taken as it was read then, and a listing made only of such
pages is the last listing again, whose entries the fold passes over by identity. Measured at
100,000 keys on `rclone serve s3`, one listing of an unchanged prefix costs about 0.5
CPU-seconds, most of it reading the 100 pages (25 MB of XML, which rclone sends in 4 KiB chunks:
about 50 reads a page) and hashing them; the fold is about 0.05 s. Parsing the pages would cost
5 CPU-seconds more. The pages kept cost 16 bytes a key plus the listed entries (about 170 bytes
a key where they are not shared with the state).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .. import heap
from ..core.keys import KeyMapper, UnsyncableName, parents_of
from ..core.model import RemoteEntry
from ..core.scheduler import CHECK, DOWNLOAD, Scheduler
from ..core.state import SyncState
from ..loophealth import LoopHealth
from ..metrics import Metrics
from ..s3.client import S3Client
from ..s3.metadata import archived_class, seen_unsettled
from ..s3.xml import ListPage
from ..skips import SkipReason
from .fold import Snapshot, apply_snapshot

log = logging.getLogger("sidecar.poll")


@dataclass(frozen=True, slots=True)
class _Page:
    """A listing page as read: entries by path, in two tuples (16 bytes a key on top of what
    the state holds anyway). `settled`: no entry was seen within its Last-Modified second, so
    the page may be reused while S3 lists the same bytes."""

    rels: tuple[str, ...]
    entries: tuple[RemoteEntry, ...]
    settled: bool


@dataclass(frozen=True, slots=True)
class _Listing:
    """The last listing whose every page was settled: taken as it is when S3 lists the same
    pages again. Its entries are never changed (snapshots are read only)."""

    digests: tuple[bytes, ...]
    entries: dict[str, RemoteEntry]
    shadowed: set[str]


@dataclass(frozen=True, slots=True)
class PollSettings:
    interval: float  # seconds between listings
    max_delete_percent: float
    trust_after: float  # mobius3's local_modification_persistance
    fallback: float = 0.0  # seconds between listings while the event queue fails (0: interval)


class Poller:
    def __init__(
        self,
        *,
        s3: S3Client,
        keys: KeyMapper,
        exclude_remote: re.Pattern[str],
        metrics: Metrics,
        state: SyncState,
        scheduler: Scheduler,
        settings: PollSettings,
    ) -> None:
        self._s3 = s3
        self._keys = keys
        self._exclude = exclude_remote
        self._metrics = metrics
        self._state = state
        self._scheduler = scheduler
        self.settings = settings
        self._reported: set[str] = set()
        self.health = LoopHealth[Exception](
            log,
            failing="poll failed: %s",
            recovered="poll succeeded again",
            describe=lambda error: f"{type(error).__name__}: {error}",
            results=metrics.polls,
            success_time=metrics.last_poll_success,
        )
        self.last_duration = 0.0
        self._wake = asyncio.Event()
        self._pages: dict[bytes, _Page] = {}  # the last listing's settled pages, by digest
        self._last: _Listing | None = None
        # Synced files the last listing missed, deleted here if this one misses them too
        self._missed: set[str] = set()

    def excluded(self, rel: str, is_dir: bool) -> bool:
        """Whether listings leave `rel` out (the remote exclude pattern): S3's side unseen."""
        return self._exclude.match(rel + "/" if is_dir else rel) is not None

    def _skip(self, key: str, reason: SkipReason, detail: str) -> None:
        if key in self._reported:
            return
        self._reported.add(key)
        self._metrics.inc(self._metrics.skipped, reason.value)
        log.warning("not syncing key %r: %s", key, detail)

    async def list(self) -> Snapshot:
        """What S3 lists under the prefix now. A page that lists the same bytes as a page of
        the last listing (its digest) is not parsed again: its entries are taken as they were
        read then, unless one of them was unsettled then. A listing whose every page is such a
        page is the last listing again, entries and shadowed keys as they were."""
        started = time.monotonic()
        prefix = self._keys.prefix
        seen_at = ""  # S3's clock at the first page: an object modified since is unsettled
        held = self._pages
        pages: dict[bytes, _Page] = {}
        read: list[_Page] = []
        digests: list[bytes] = []
        async for page in self._s3.list_objects(prefix, held):
            seen_at = seen_at or page.answered_at
            known = held[page.digest] if page.reused else self._read(page, seen_at)
            if page.digest and known.settled:
                pages[page.digest] = known
            read.append(known)
            digests.append(page.digest)
        self._pages = pages
        last = self._last
        whole = len(pages) == len(read)  # every page kept: the listing can be taken again
        if whole and last is not None and last.digests == tuple(digests):
            entries, shadowed = last.entries, last.shadowed
        else:
            entries, shadowed = self._merge(read)
            self._last = _Listing(tuple(digests), entries, shadowed) if whole else None
        self.last_duration = time.monotonic() - started
        self._metrics.poll_duration.observe(self.last_duration)
        return Snapshot(entries, shadowed, started)

    def _read(self, page: ListPage, seen_at: str) -> _Page:
        """A page's objects as entries by path: keys decoded, mapped and checked (a key that
        cannot be a path is reported once and left out)."""
        prefix = self._keys.prefix
        rels: list[str] = []
        entries: list[RemoteEntry] = []
        settled = True
        for listed in page.objects:
            try:
                key = self._keys.decode_listed_key(listed.key, page.encoded)
                if key == prefix or self._keys.is_probe(key):
                    continue  # the prefix itself, as a marker; a sidecar's probe (s3/probe.py)
                if self._exclude.match(key[len(prefix) :]):
                    continue
                name = self._keys.rel_for_key(key)
            except UnsyncableName as error:
                self._skip(listed.key, error.reason, str(error))
                continue
            unsettled = seen_unsettled(listed.last_modified, seen_at)
            settled = settled and not unsettled
            rels.append(name.rel)
            entries.append(
                RemoteEntry(
                    listed.etag,
                    listed.size,
                    listed.last_modified,
                    name.is_dir,
                    unsettled=unsettled,
                    archived=archived_class(listed.storage_class),
                    modified_ns=listed.modified_ns,
                )
            )
        return _Page(tuple(rels), tuple(entries), settled)

    def _merge(self, read: Sequence[_Page]) -> tuple[dict[str, RemoteEntry], set[str]]:
        """The pages' entries by path, and the paths hidden by a file key above them."""
        entries: dict[str, RemoteEntry] = {}
        for page in read:
            for rel, entry in zip(page.rels, page.entries, strict=True):
                existing = entries.get(rel)
                if existing is None or (existing.is_dir and not entry.is_dir):
                    entries[rel] = entry  # `a` and `a/` both exist: the file wins
        files = {rel for rel, entry in entries.items() if not entry.is_dir}
        shadowed: set[str] = set()
        if files:
            for rel in entries:
                if "/" in rel and any(parent in files for parent in parents_of(rel)):
                    shadowed.add(rel)
        for rel in shadowed:
            del entries[rel]
            self._skip(
                self._keys.prefix + rel,
                SkipReason.SHADOWED,
                "a key with the name of one of its parent directories exists; "
                "that key is kept as the file and this one is ignored",
            )
        return entries, shadowed

    @property
    def fallback_interval(self) -> float:
        return self.settings.fallback or self.settings.interval

    def request_listing(self, why: str) -> None:
        """List at once rather than at the next interval (the change feed asks: a test event,
        the queue back after failing)."""
        if not self._wake.is_set():
            log.info("listing the prefix now: %s", why)
        self._wake.set()

    async def run(self, interval: Callable[[], float] | None = None) -> None:
        """List every interval (`interval()` when given: it may change between listings),
        counted from the start of one listing to the start of the next, or sooner when asked
        to, forever: the interval is how stale the folder may get, so a listing that takes a
        while does not stretch it. But a listing is followed by a rest at least as long as it
        took, so that listing takes at most half the time, of the store (moto or a small
        server answers one request at a time, and the other clients' requests wait behind a
        listing) and of our own downloads: a listing longer than half the interval stretches
        it to twice the listing (with a warning, once until listings take less than a third of
        the interval again)."""
        started = ended = time.monotonic()  # the caller's listing (the restore) came just before
        stretched = False
        while True:
            period = self.settings.interval if interval is None else interval()
            took = self.last_duration
            if took > period / 2 and not stretched:
                log.warning(
                    "listing the prefix took %.1f s, more than half the poll interval (%g s): "
                    "resting as long before the next, so listings start every %.1f s; raise "
                    "SYNC_POLL_INTERVAL to list less often",
                    took,
                    period,
                    2 * took,
                )
                stretched = True
            elif took < period / 3:  # (not half: listings of about half would warn on and on)
                stretched = False
            wait = max(started + period, ended + took) - time.monotonic()
            if wait > 0:
                # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancellation
                # that comes just after the wake (an ask for a listing as the sidecar stops),
                # and the stop would wait for this loop's next interval
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait):
                        await self._wake.wait()
            self._wake.clear()
            started = time.monotonic()
            await self.poll()
            ended = time.monotonic()

    async def poll(self) -> None:
        """List the prefix and sync whatever changed in S3. Never raises."""
        try:
            snapshot = await self.list()
        except asyncio.CancelledError:
            raise
        except Exception as error:
            self.health.failed(error)
            return
        settings = self.settings
        applied = apply_snapshot(
            self._state,
            snapshot,
            busy=self._scheduler.is_busy,
            max_delete_percent=settings.max_delete_percent,
            initial=False,
            trust_after=settings.trust_after,
            unlisted=self.excluded,
            missed=self._missed,
        )
        self._missed = applied.missed
        self.health.succeeded()
        heap.release()  # the pages read and the listing they made, freed
        if applied.held_deletions:
            self._metrics.delete_guard_trips.inc()
            log.error(
                "S3 lists %d fewer synced files than before, more than the max-delete guard "
                "(%g%%) allows: not deleting them locally. If this is intended, raise "
                "SYNC_MAX_DELETE_PERCENT and restart.",
                applied.held_deletions,
                settings.max_delete_percent,
            )
        for rel in applied.changed:
            self._scheduler.submit(rel, DOWNLOAD)
        for rel in applied.checked:
            self._scheduler.submit(rel, CHECK)
