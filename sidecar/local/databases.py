"""The SQLite databases in the folder as units (SYNC_SQLITE=snapshot): which paths are databases
(known by their header, sqlite.py), which are their companions (`-wal`, `-shm`, `-journal`:
never synced on their own), and when each database is due a snapshot.

An app keeps a database open and never closes it, and in WAL mode its commits change only the
`-wal`: so a change of a database is any write, creation, close or removal of the database or
of a companion (`changed`), and the database is submitted for a pass (which snapshots and
uploads it) once the unit has been quiet for `quiet` seconds, or `interval` seconds after its
first change not yet submitted, whichever comes first (`loop`); at a stop or a flush at once
(`expedite`). So under a steady write load a snapshot is taken every `interval` seconds: the
loss window, if the task dies, is `interval` plus one snapshot and upload.

Cost: a companion's first event reads 16 bytes of its database (the header); a known database's
events cost a dictionary update each, and the loop wakes once per due snapshot.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import re
import time
from collections.abc import Callable

from ..core.model import Hint
from .safefs import Tree
from .sqlite import companion_base, is_database, is_database_or_new

SNAPSHOT_HINT = Hint.CONTENT | Hint.WRITTEN

log = logging.getLogger("sidecar")


class Databases:
    def __init__(
        self,
        *,
        tree: Tree,
        files_alone: re.Pattern[str],
        submit: Callable[[str, Hint], None],
        quiet: float,
        interval: float,
        skipped: Callable[[], None] = lambda: None,
    ) -> None:
        self._tree = tree
        self._files_alone = files_alone  # SYNC_SQLITE_FILES_ALONE: full paths synced as files
        self._root = tree.root
        self._submit = submit
        self._quiet = quiet
        self._interval = interval
        self.known: set[str] = set()  # paths found to be databases (by their header)
        self._pending: dict[str, tuple[float, float]] = {}  # rel -> (first, last) change
        self._wake = asyncio.Event()
        self._skipped = skipped  # counts a companion skipped (the first time per path)
        self._companions: set[str] = set()  # those counted

    # -- what a path is ------------------------------------------------------------------

    def covers(self, rel: str) -> bool:
        """Whether a database at `rel` is a unit (not matched by SYNC_SQLITE_FILES_ALONE)."""
        return self._files_alone.match(self._root + "/" + rel) is None

    def is_database(self, rel: str) -> bool:
        """Whether `rel` is a database this covers (its header read)."""
        return self.covers(rel) and is_database(self._tree, rel)

    def found(self, rel: str) -> None:
        """`rel` was read and is a database."""
        self.known.add(rel)

    def lost(self, rel: str) -> None:
        """`rel` is gone, or no longer a database."""
        self.known.discard(rel)
        self._pending.pop(rel, None)

    def base_of(self, rel: str) -> str | None:
        """The database `rel` is a companion of: its base name holds a database now, or an
        empty file (one being created; a database once its first commit is written)."""
        base = companion_base(rel)
        if base is None or not self.covers(base):
            return None
        if base in self.known:
            return base
        if is_database(self._tree, base):
            self.known.add(base)
            return base
        if is_database_or_new(self._tree, base):  # an empty one: a database being created
            return base
        return None

    def companion(self, rel: str) -> bool:
        """Whether `rel` is a companion of a database here: synced only in its database's
        snapshots, never on its own, in either direction. Counted once per path, not logged
        (an app writes its WAL all day)."""
        if self.base_of(rel) is None:
            return False
        if rel not in self._companions:
            self._companions.add(rel)
            self._skipped()
            log.debug("%s: a companion of an SQLite database, synced in its snapshots", rel)
        return True

    def unit_of(self, rel: str) -> str | None:
        """The database whose unit `rel` belongs to: itself if it is a known database, its base
        if it is a companion; None for any other file."""
        if rel in self.known:
            return rel
        return self.base_of(rel)

    # -- when a snapshot is due ----------------------------------------------------------

    def changed(self, rel: str, now: float | None = None) -> None:
        """The database `rel` (or a companion of it) changed."""
        now = time.monotonic() if now is None else now
        pending = self._pending.get(rel)
        if pending is None:
            self._pending[rel] = (now, now)
            self._wake.set()  # a later change only delays it: the loop finds that when it wakes
        else:
            self._pending[rel] = (pending[0], now)

    def due(self, now: float) -> tuple[list[str], float | None]:
        """The databases due a snapshot at `now` (taken off the list), and when the next one
        will be (None: none pending). Pure but for the list."""
        ready = []
        nexts = []
        for rel, (first, last) in self._pending.items():
            at = min(last + self._quiet, first + self._interval)
            if at <= now:
                ready.append(rel)
            else:
                nexts.append(at)
        for rel in ready:
            del self._pending[rel]
        return ready, (heapq.nsmallest(1, nexts)[0] if nexts else None)

    def expedite(self) -> list[str]:
        """Submit every database with a change not yet submitted, now (a stop, a flush)."""
        pending = list(self._pending)
        self._pending.clear()
        for rel in pending:
            self._submit(rel, SNAPSHOT_HINT)
        return pending

    async def loop(self) -> None:
        """Submit each database when it is due (module doc). Never ends by itself."""
        while True:
            ready, next_at = self.due(time.monotonic())
            for rel in ready:
                self._submit(rel, SNAPSHOT_HINT)
            self._wake.clear()
            if next_at is None:
                await self._wake.wait()
                continue
            timeout = max(0.0, next_at - time.monotonic())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    def pending(self) -> list[str]:
        return sorted(self._pending)


__all__ = ["SNAPSHOT_HINT", "Databases"]
