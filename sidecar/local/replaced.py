"""Versions the sidecar replaced or deleted while an app may still hold them open.

A download renames the new version over a file, and a delete in S3 unlinks one. An app in
another container that holds the old file open (a log opened for append, a SQLite database)
goes on writing to the old inode, which no name reaches any more: without this, those writes
would vanish without an event (the directory watches use IN_EXCL_UNLINK). So the old inode is
held open for `hold` seconds and watched itself (an inotify watch through /proc/self/fd). If it
is written, its content is saved back into the folder when the writer closes it, or once it has
been quiet for `quiet` seconds: at its old name if that is free (a delete), else as a conflict
copy beside it. Either is then uploaded like any local change, and a warning names it.

What stays impossible: writes that come after the hold ended (without a shared PID namespace
the sidecar cannot see which files another container holds open), and writes through a shared
mmap (they make no inotify event). Cost: one descriptor and one inotify watch per replaced file
for `hold` seconds, at most `limit` at once (the oldest are let go first).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..core.model import Hint
from ..metrics import Metrics
from .conflicts import make_conflict_copy
from .inotify import IN_CLOSE_WRITE
from .localfs import write_new
from .safefs import Tree, UnsafeParentError
from .watch import Watcher

log = logging.getLogger("sidecar.replaced")


@dataclass(slots=True)
class _Held:
    rel: str
    fd: int
    wd: int
    seen: tuple[int, int, int]  # size, mtime, ctime when held, or when last saved
    until: float
    last_write: float = 0.0  # monotonic time of the last IN_MODIFY since `seen`


def _fingerprint(fd: int) -> tuple[int, int, int]:
    st = os.fstat(fd)
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class ReplacedVersions:
    def __init__(
        self,
        *,
        tree: Tree,
        watcher: Watcher,
        metrics: Metrics,
        submit: Callable[[str, Hint], None],
        quiet: float,  # SYNC_OPEN_FILE_TIMEOUT
        hold: float = 600.0,
        limit: int = 256,
    ) -> None:
        self._tree = tree
        self._watcher = watcher
        self._metrics = metrics
        self._submit = submit
        self._hold = hold
        self._quiet = quiet
        self._limit = limit
        self._by_wd: dict[int, _Held] = {}  # insertion order: the first is the oldest

    def hold(self, rel: str, fd: int) -> None:
        """Watch the version of `rel` open as `fd`, which no name reaches any more (or soon
        will not). Takes `fd` over: it is closed when the hold ends."""
        wd = self._watcher.watch_inode(fd, self._event)
        if wd is None:
            os.close(fd)
            return
        old = self._by_wd.pop(wd, None)  # the same inode held again
        if old is not None and old.fd != fd:
            os.close(old.fd)
        self._by_wd[wd] = _Held(rel, fd, wd, _fingerprint(fd), time.monotonic() + self._hold)
        while len(self._by_wd) > self._limit:
            self._release(next(iter(self._by_wd.values())))

    @property
    def held(self) -> int:
        return len(self._by_wd)

    def _event(self, wd: int, mask: int) -> None:
        held = self._by_wd.get(wd)
        if held is None:
            return
        if mask & IN_CLOSE_WRITE:
            self._save_if_written(held)
        else:
            held.last_write = time.monotonic()

    def _save_if_written(self, held: _Held) -> None:
        try:
            now = _fingerprint(held.fd)
            if now == held.seen:
                return
            name = self._save(held)
        except (OSError, UnsafeParentError) as error:
            self._metrics.inc(self._metrics.local_errors, "io")
            log.error("could not save what an app wrote to a replaced %s: %s", held.rel, error)
            return
        held.seen = now
        held.last_write = 0.0
        self._metrics.conflicts.inc()
        log.warning(
            "an app wrote to %s after the sidecar replaced or deleted it (it held the file "
            "open); what it wrote is kept as %s",
            held.rel,
            name,
            extra={"path": held.rel, "operation": "conflict"},
        )
        self._submit(name, Hint.CONTENT)

    def _save(self, held: _Held) -> str:
        """Write the held content at its old name if free, else as a conflict copy."""
        mode = stat.S_IMODE(os.fstat(held.fd).st_mode)
        with self._tree.parent(held.rel) as at:
            try:
                write_new(at, held.fd, mode)
            except FileExistsError:
                return make_conflict_copy(
                    at, held.rel, lambda target: write_new(target, held.fd, mode)
                )
        return held.rel

    async def sweep_loop(self) -> None:
        """Save what was written and then went quiet; let go of holds that are over."""
        while True:
            await asyncio.sleep(min(5.0, self._quiet))
            now = time.monotonic()
            for held in list(self._by_wd.values()):
                if held.last_write and now - held.last_write >= self._quiet:
                    self._save_if_written(held)
                if now >= held.until:
                    self._save_if_written(held)
                    self._release(held)

    def _release(self, held: _Held) -> None:
        self._by_wd.pop(held.wd, None)
        self._watcher.unwatch_inode(held.wd)
        with contextlib.suppress(OSError):
            os.close(held.fd)

    def close(self) -> None:
        for held in list(self._by_wd.values()):
            self._save_if_written(held)
            self._release(held)
