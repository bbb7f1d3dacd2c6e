"""Recursive inotify, reporting changes as relative paths.

asyncinotify owns the inotify instance and the watches; the events themselves are decoded
here, straight from the kernel's buffer with `struct`, in the event loop's reader callback.
(asyncinotify builds an `Event`, an `IntFlag`, a `Path` and a weakref for every event: measured
at ~46 us per event, 140 us of CPU per file written in a burst, where this costs ~3 us.)

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
import contextlib
import errno
import fcntl
import logging
import os
import struct
import termios
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Final, Protocol

from asyncinotify import Inotify, Mask, Watch

from ..core.keys import is_under

log = logging.getLogger("sidecar.watch")

WATCH_MASK = (
    Mask.MODIFY
    | Mask.ATTRIB
    | Mask.CLOSE_WRITE
    | Mask.MOVED_FROM
    | Mask.MOVED_TO
    | Mask.CREATE
    | Mask.DELETE
    | Mask.DELETE_SELF
    | Mask.ONLYDIR
    | Mask.DONT_FOLLOW
    | Mask.EXCL_UNLINK
)

# Plain ints: IntFlag arithmetic costs microseconds per operation on the hot path.
IN_MODIFY: Final = int(Mask.MODIFY)
IN_ATTRIB: Final = int(Mask.ATTRIB)
IN_CLOSE_WRITE: Final = int(Mask.CLOSE_WRITE)
IN_MOVED_FROM: Final = int(Mask.MOVED_FROM)
IN_MOVED_TO: Final = int(Mask.MOVED_TO)
IN_CREATE: Final = int(Mask.CREATE)
IN_DELETE: Final = int(Mask.DELETE)
IN_DELETE_SELF: Final = int(Mask.DELETE_SELF)
IN_Q_OVERFLOW: Final = int(Mask.Q_OVERFLOW)
IN_IGNORED: Final = int(Mask.IGNORED)
IN_ISDIR: Final = int(Mask.ISDIR)
_EVENT: Final = struct.Struct("iIII")  # struct inotify_event: wd, mask, cookie, len
_READ_SIZE: Final = 256 * 1024


class LocalChanges(Protocol):
    """What the watcher reports. Called synchronously from the event loop, in kernel order."""

    def modified(self, rel: str) -> None: ...
    def closed(self, rel: str) -> None: ...
    def created(self, rel: str, is_dir: bool) -> None: ...
    def attrib(self, rel: str, is_dir: bool) -> None: ...
    def removed(self, rel: str, is_dir: bool) -> None: ...
    def moved_out(self, rel: str, is_dir: bool) -> None: ...
    def moved_in(self, rel: str, is_dir: bool) -> None: ...
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


def _why(error: OSError) -> str:
    """Why a directory has no watch, as /healthz and the logs say it."""
    if error.errno == errno.ENOSPC:
        return "ENOSPC: fs.inotify.max_user_watches reached"
    name = errno.errorcode.get(error.errno or 0, "error")
    return f"{name}: {error.strerror or error}"


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
        self._rel_by_wd: dict[int, str] = {}
        self._wd_by_rel: dict[str, int] = {}
        self._watch_by_wd: dict[int, Watch] = {}
        self._unwatched: dict[str, str] = {}  # directory -> why it has no watch
        self._scans: set[asyncio.Task[None]] = set()
        # Watches on single files (by descriptor, see `watch_inode`), with their handlers.
        self._inode_handlers: dict[int, Callable[[int, int], None]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self.alive = False

    @property
    def watch_count(self) -> int:
        return len(self._rel_by_wd)

    @property
    def unwatched(self) -> Mapping[str, str]:
        """Directories in the tree that have no watch, and why (read-only view)."""
        return self._unwatched

    async def start(self, sink: LocalChanges) -> None:
        """Watch the whole tree, report every entry in it through `sink.found`, then every
        change. `barrier()` may be called before: it has nothing to drain then."""
        if self._inotify is not None:
            raise RuntimeError("Watcher already started")
        self._sink = sink
        self._loop = asyncio.get_running_loop()
        inotify = Inotify()
        self._inotify = inotify
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
            self._fd = -1

    def barrier(self) -> None:
        """Handle every event the kernel has queued, now."""
        fd = self._fd
        queued = self._queued
        while fd >= 0:
            try:
                # Ask how much is queued first: every upload calls this, and most of the time
                # nothing is, where a read would raise (and build) BlockingIOError.
                fcntl.ioctl(fd, termios.FIONREAD, queued, True)
                if not queued[0]:
                    return
                data = os.read(fd, _READ_SIZE)
            except BlockingIOError:
                return
            except OSError as error:
                self.alive = False
                self._on_error("inotify read", error)
                return
            offset = 0
            size = len(data)
            unpack = _EVENT.unpack_from
            while offset < size:
                wd, mask, _cookie, length = unpack(data, offset)
                offset += 16
                name = ""
                if length:
                    raw = data[offset : offset + length]
                    offset += length
                    end = raw.find(0)
                    name = os.fsdecode(raw[:end] if end >= 0 else raw)
                try:
                    self._handle(wd, mask, name)
                except Exception as error:
                    # One bad event must not stop the watcher; the path is reconciled later.
                    self._on_error("inotify event", error)

    def _handle(self, wd: int, mask: int, name: str) -> None:
        if mask & IN_Q_OVERFLOW:
            log.warning("inotify queue overflowed: rescanning the whole folder")
            self._sink.overflowed()
            return
        rel_dir = self._rel_by_wd.get(wd)
        if rel_dir is None:
            inode = self._inode_handlers.get(wd)
            if inode is not None:
                if mask & IN_IGNORED:
                    self._inode_handlers.pop(wd, None)
                    self._forget_wd(wd)
                else:
                    inode(wd, mask)
            return  # else a watch already dropped (its directory was moved or deleted)
        if mask & IN_IGNORED:
            self._forget_wd(wd)
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
            sink.moved_in(rel, is_dir)
            if is_dir:
                self._start_scan(rel)
        if mask & IN_MOVED_FROM and is_dir:
            # The watches below keep reporting under the old name: drop them. (A deleted
            # directory's watches go by themselves, with IN_IGNORED.)
            self._drop_subtree(rel)
        if mask & IN_DELETE:
            if is_dir:
                self._forget_unwatched(rel)  # (a watched one goes with IN_IGNORED)
            sink.removed(rel, is_dir)
        if mask & IN_MOVED_FROM:
            sink.moved_out(rel, is_dir)

    # -- watches -------------------------------------------------------------------------

    def _add_watch(self, rel_dir: str) -> bool:
        inotify = self._inotify
        if inotify is None:
            return False
        path = os.path.join(self._root, rel_dir) if rel_dir else self._root
        try:
            # The synced folder itself may be a symlink (a mounted volume's usual shape):
            # follow it there, and nowhere below.
            mask = WATCH_MASK if rel_dir else WATCH_MASK & ~Mask.DONT_FOLLOW
            watch = inotify.add_watch(Path(path), mask)
        except (FileNotFoundError, NotADirectoryError):
            self._unwatched.pop(rel_dir, None)
            return False
        except OSError as error:
            # ENOSPC: fs.inotify.max_user_watches is too low for this tree. The directory is
            # listed anyway, and again by every `scan_unwatched`.
            if rel_dir not in self._unwatched:
                self._on_error(f"watch {rel_dir or '.'}", error)
            self._unwatched[rel_dir] = _why(error)
            return False
        if self._unwatched.pop(rel_dir, None) is not None:
            log.info("watching %r again", rel_dir)
        old = self._rel_by_wd.get(watch.wd)
        if old is not None and old != rel_dir:
            self._wd_by_rel.pop(old, None)
        self._rel_by_wd[watch.wd] = rel_dir
        self._wd_by_rel[rel_dir] = watch.wd
        self._watch_by_wd[watch.wd] = watch
        return True

    def watch_inode(self, fd: int, handler: Callable[[int, int], None]) -> int | None:
        """Watch the file open as `fd` itself, even once no name reaches it: `handler(wd,
        mask)` hears of its IN_MODIFY and IN_CLOSE_WRITE. None if it cannot be watched."""
        inotify = self._inotify
        if inotify is None:
            return None
        try:
            watch = inotify.add_watch(Path(f"/proc/self/fd/{fd}"), Mask.MODIFY | Mask.CLOSE_WRITE)
        except OSError as error:
            self._on_error("watch a replaced file", error)
            return None
        self._watch_by_wd[watch.wd] = watch
        self._inode_handlers[watch.wd] = handler
        return watch.wd

    def unwatch_inode(self, wd: int) -> None:
        watch = self._watch_by_wd.get(wd)
        if self._inode_handlers.pop(wd, None) is None:
            return
        self._forget_wd(wd)
        if self._inotify is not None and watch is not None:
            with contextlib.suppress(OSError):
                self._inotify.rm_watch(watch)

    def _forget_wd(self, wd: int) -> None:
        rel = self._rel_by_wd.pop(wd, None)
        self._watch_by_wd.pop(wd, None)
        watches = getattr(self._inotify, "_watches", None)
        if isinstance(watches, dict):
            # asyncinotify forgets a watch when *its* reader sees IN_IGNORED; ours reads instead.
            watches.pop(wd, None)
        if rel is not None and self._wd_by_rel.get(rel) == wd:
            del self._wd_by_rel[rel]

    def _forget_unwatched(self, rel: str) -> None:
        for sub in [sub for sub in self._unwatched if is_under(sub, rel)]:
            del self._unwatched[sub]

    def _drop_subtree(self, rel: str) -> None:
        """A directory left (deleted or moved away): its watches now describe nothing we own."""
        self._forget_unwatched(rel)
        inotify = self._inotify
        for sub, wd in list(self._wd_by_rel.items()):
            if sub and is_under(sub, rel):
                watch = self._watch_by_wd.get(wd)
                self._forget_wd(wd)
                if inotify is not None and watch is not None:
                    with contextlib.suppress(OSError):  # already gone with its directory
                        inotify.rm_watch(watch)

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
        if self._unwatched:
            await self._scan(sorted(self._unwatched), revisit=False)

    async def _scan(self, level: list[str], *, revisit: bool) -> None:
        loop = asyncio.get_running_loop()
        unwatched, watched = self._unwatched, self._wd_by_rel
        while level and self.alive:
            listable = [rel for rel in level if self._add_watch(rel) or rel in unwatched]
            listed = await loop.run_in_executor(None, _list_dirs, self._root, listable)
            level = []
            for rel_dir, entries in listed:
                for name, is_dir in entries:
                    if rel_dir == "" and name == self._reserved:
                        continue
                    rel = f"{rel_dir}/{name}" if rel_dir else name
                    self._sink.found(rel, is_dir)
                    if is_dir and (revisit or (rel not in watched and rel not in unwatched)):
                        level.append(rel)

    async def rescan(self) -> None:
        """After an overflow: re-watch and re-report the whole tree."""
        await self.scan("")
