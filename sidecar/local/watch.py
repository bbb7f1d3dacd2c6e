"""Recursive inotify, reporting changes as relative paths (`LocalChanges`).

The events are read and decoded here, not by asyncinotify (inotify.py: ~3 us per event where
asyncinotify's own objects cost ~46), in the event loop's reader callback; which directory each
watch is on is kept in `Watches` (watches.py).

Events are handled synchronously, in kernel order, so `barrier()` can do what mobius3 needs a
flush file for: a non-blocking read of everything the kernel has queued. A write that returned
before `barrier()` was called has its IN_MODIFY handled when `barrier()` returns, without
creating a file or waiting a round trip.

New directories are watched before they are listed, so nothing created inside them in between
is missed; listing runs in a thread so that a tree of many files does not block the loop.

A directory that cannot be watched (ENOSPC: fs.inotify.max_user_watches reached; ENOMEM) is
remembered in `unwatched` with the reason, and still listed, descended into and reported:
every directory in the tree is either watched or in `unwatched` (until it is found gone).
Nothing reports changes inside an unwatched directory, so `scan_unwatched` (run periodically
by `LocalEvents.unwatched_loop`) tries to watch each again and re-lists it; a directory that
gets its watch leaves `unwatched`. Its failure is reported through `on_error` once, not at
every retry.
"""

from __future__ import annotations

import array
import asyncio
import logging
import os
from collections.abc import Callable, Mapping
from typing import Protocol

from asyncinotify import Inotify

from .inotify import (
    IN_ATTRIB,
    IN_CLOSE_WRITE,
    IN_CREATE,
    IN_DELETE,
    IN_DELETE_SELF,
    IN_IGNORED,
    IN_ISDIR,
    IN_MODIFY,
    IN_MOVED_FROM,
    IN_MOVED_TO,
    IN_Q_OVERFLOW,
    dispatch,
    read_queued,
)
from .watches import Watches

log = logging.getLogger("sidecar.watch")


class LocalChanges(Protocol):
    """What the watcher reports. Called synchronously from the event loop, in kernel order."""

    def modified(self, rel: str) -> None: ...
    def closed(self, rel: str) -> None: ...
    def created(self, rel: str, is_dir: bool) -> None: ...
    def attrib(self, rel: str, is_dir: bool) -> None: ...
    def removed(self, rel: str, is_dir: bool) -> None: ...
    def moved_out(self, rel: str, is_dir: bool, cookie: int) -> None: ...
    def moved_in(self, rel: str, is_dir: bool, cookie: int) -> None: ...
    def found(self, rel: str, is_dir: bool) -> None: ...
    def overflowed(self) -> None: ...
    def root_lost(self) -> None: ...


def _list_dirs(root: str, rel_dirs: list[str]) -> list[tuple[str, list[tuple[str, bool]]]]:
    """Entries of each directory as (name, is_dir), not following symlinks. Runs in a thread."""
    listed: list[tuple[str, list[tuple[str, bool]]]] = []
    for rel_dir in rel_dirs:
        entries: list[tuple[str, bool]] = []
        try:
            with os.scandir(os.path.join(root, rel_dir) if rel_dir else root) as it:
                for entry in it:
                    try:
                        is_dir = entry.is_dir(follow_symlinks=False)
                    except OSError:
                        continue
                    entries.append((entry.name, is_dir))
        except (FileNotFoundError, NotADirectoryError, PermissionError) as error:
            log.debug("cannot list %r: %s", rel_dir, error)
        listed.append((rel_dir, entries))
    return listed


class Watcher:
    _sink: LocalChanges  # set by start()

    def __init__(
        self,
        root: str,
        reserved: str,
        on_error: Callable[[str, BaseException], None],
    ) -> None:
        self._root = root
        self._reserved = reserved
        self._on_error = on_error
        self._inotify: Inotify | None = None
        self._fd = -1
        self._queued = array.array("i", [0])
        self._watches = Watches(root, on_error)
        # Read-only views, looked up once per event.
        self._dir_of = self._watches.dir_of
        self._inode_handlers = self._watches.inode_handlers
        self._scans: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.alive = False

    @property
    def watch_count(self) -> int:
        return self._watches.count()

    @property
    def unwatched(self) -> Mapping[str, str]:
        """Directories in the tree that have no watch, and why (read-only view)."""
        return self._watches.unwatched

    async def start(self, sink: LocalChanges) -> None:
        """Watch the whole tree, report every entry in it through `sink.found`, then every
        change. `barrier()` may be called before: it has nothing to drain then."""
        if self._inotify is not None:
            raise RuntimeError("Watcher already started")
        self._sink = sink
        self._loop = asyncio.get_running_loop()
        inotify = Inotify()
        self._inotify = inotify
        self._watches.open(inotify)
        self._fd = inotify.fd
        os.set_blocking(self._fd, False)  # barrier() must never wait
        self._loop.add_reader(self._fd, self.barrier)
        self.alive = True
        await self.scan("")

    async def close(self) -> None:
        self.alive = False
        for task in list(self._scans):
            task.cancel()
        await asyncio.gather(*self._scans, return_exceptions=True)
        if self._inotify is not None and self._loop is not None:
            self._loop.remove_reader(self._fd)
            self._inotify.close()
            self._inotify = None
            self._watches.open(None)
            self._fd = -1

    def barrier(self) -> None:
        """Handle every event the kernel has queued, now."""
        fd = self._fd
        queued = self._queued
        while fd >= 0:
            try:
                data = read_queued(fd, queued)
            except OSError as error:
                self.alive = False
                self._on_error("inotify read", error)
                return
            if data is None:
                return
            dispatch(data, self._handle, self._on_error)

    def _handle(self, wd: int, mask: int, cookie: int, name: str) -> None:
        if mask & IN_Q_OVERFLOW:
            log.warning("inotify queue overflowed: rescanning the whole folder")
            self._sink.overflowed()
            return
        rel_dir = self._dir_of.get(wd)
        if rel_dir is None:
            inode = self._inode_handlers.get(wd)
            if inode is not None:
                if mask & IN_IGNORED:
                    self._watches.forget_inode(wd)
                else:
                    inode(wd, mask)
            return  # else a watch already dropped (its directory was moved or deleted)
        if mask & IN_IGNORED:
            self._watches.forget(wd)
            return
        if mask & IN_DELETE_SELF:
            if rel_dir == "":
                self._sink.root_lost()
            return
        if not name:
            return
        if rel_dir:
            rel = rel_dir + "/" + name
        elif name == self._reserved:
            return
        else:
            rel = name
        is_dir = bool(mask & IN_ISDIR)
        sink = self._sink
        if mask & IN_MODIFY and not is_dir:
            # (`tar -x` makes directories report IN_MODIFY; only a file is ever "being written")
            sink.modified(rel)
        if mask & IN_CLOSE_WRITE:
            sink.closed(rel)
        if mask & IN_ATTRIB:
            sink.attrib(rel, is_dir)
        if mask & IN_CREATE:
            sink.created(rel, is_dir)
            if is_dir:
                self._start_scan(rel)
        if mask & IN_MOVED_TO:
            sink.moved_in(rel, is_dir, cookie)
            if is_dir:
                self._start_scan(rel)
        if mask & IN_MOVED_FROM and is_dir:
            # The watches below keep reporting under the old name: drop them. (A deleted
            # directory's watches go by themselves, with IN_IGNORED.)
            self._watches.drop_subtree(rel)
        if mask & IN_DELETE:
            if is_dir:
                self._watches.forget_unwatched(rel)  # (a watched one goes with IN_IGNORED)
            sink.removed(rel, is_dir)
        if mask & IN_MOVED_FROM:
            sink.moved_out(rel, is_dir, cookie)

    def watch_inode(self, fd: int, handler: Callable[[int, int], None]) -> int | None:
        """Watch the file open as `fd` itself, even once no name reaches it: `handler(wd,
        mask)` hears of its IN_MODIFY and IN_CLOSE_WRITE. None if it cannot be watched."""
        return self._watches.watch_inode(fd, handler)

    def unwatch_inode(self, wd: int) -> None:
        self._watches.unwatch_inode(wd)

    # -- scanning ------------------------------------------------------------------------

    def _start_scan(self, rel: str) -> None:
        task = asyncio.get_running_loop().create_task(self.scan(rel))
        self._scans.add(task)
        task.add_done_callback(self._scan_done)

    def _scan_done(self, task: asyncio.Task[None]) -> None:
        self._scans.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self._on_error("scan", task.exception())  # type: ignore[arg-type]

    async def scan(self, top: str) -> None:
        """Watch `top` and everything below it, then report each entry through `found`.

        Each directory is watched before it is listed, so an entry created in between is seen
        either by the listing or by the watch. A directory that cannot be watched is listed
        and descended into all the same.
        """
        await self._scan([top], revisit=True)

    async def scan_unwatched(self) -> None:
        """Try again to watch each unwatched directory, and list it: report every entry in it
        through `found`, and scan the directories in it that are neither watched nor known to
        be unwatched (created since). Watched subdirectories are not descended into: their
        watches report for them. Costs one inotify_add_watch and one listing per unwatched
        directory, and a `found` per entry in them; nothing when every directory is watched.
        """
        unwatched = self._watches.unwatched
        if unwatched:
            await self._scan(sorted(unwatched), revisit=False)

    async def _scan(self, level: list[str], *, revisit: bool) -> None:
        loop = asyncio.get_running_loop()
        watches = self._watches
        unwatched = watches.unwatched
        while level and self.alive:
            listable = [rel for rel in level if watches.add(rel) or rel in unwatched]
            listed = await loop.run_in_executor(None, _list_dirs, self._root, listable)
            level = []
            for rel_dir, entries in listed:
                for name, is_dir in entries:
                    if rel_dir == "" and name == self._reserved:
                        continue
                    rel = f"{rel_dir}/{name}" if rel_dir else name
                    self._sink.found(rel, is_dir)
                    if is_dir and (revisit or not (watches.is_watched(rel) or rel in unwatched)):
                        level.append(rel)

    async def rescan(self) -> None:
        """After an overflow: re-watch and re-report the whole tree."""
        await self.scan("")
