"""Which directory each inotify watch is on, which directories have none and why, and the
watches on single files (a replaced version, replaced.py): the watcher's bookkeeping.

Every directory in the tree is either watched (`dir_of`, by watch descriptor) or in `unwatched`
with the reason (ENOSPC: fs.inotify.max_user_watches reached; ENOMEM), until it is found gone.
A watch is forgotten when the kernel says it went (IN_IGNORED: `forget`), and a directory that
moved away takes its watches below with it (`drop_subtree`): they would keep reporting under
the old name. A directory's failure to be watched is reported through `on_error` once, not at
every retry.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path

from asyncinotify import Inotify, Mask, Watch

from ..core.keys import is_under
from .inotify import INODE_MASK, WATCH_MASK

log = logging.getLogger("sidecar.watch")


def _why(error: OSError) -> str:
    """Why a directory has no watch, as /healthz and the logs say it."""
    if error.errno == errno.ENOSPC:
        return "ENOSPC: fs.inotify.max_user_watches reached"
    name = errno.errorcode.get(error.errno or 0, "error")
    return f"{name}: {error.strerror or error}"


class Watches:
    """The watches of one inotify instance (`open`ed by the watcher's start); see the module."""

    def __init__(self, root: str, on_error: Callable[[str, BaseException], None]) -> None:
        self._root = root
        self._on_error = on_error
        self._inotify: Inotify | None = None
        self._rel_by_wd: dict[int, str] = {}
        self._wd_by_rel: dict[str, int] = {}
        self._watch_by_wd: dict[int, Watch] = {}
        self._unwatched: dict[str, str] = {}  # directory -> why it has no watch
        # Watches on single files (by descriptor, see `watch_inode`), with their handlers.
        self._inode_handlers: dict[int, Callable[[int, int], None]] = {}

    def open(self, inotify: Inotify | None) -> None:
        """The instance watches are added to from now on (None: closed, none are)."""
        self._inotify = inotify

    @property
    def dir_of(self) -> Mapping[int, str]:
        """Each directory watch's directory, by watch descriptor (read-only view)."""
        return self._rel_by_wd

    @property
    def inode_handlers(self) -> Mapping[int, Callable[[int, int], None]]:
        """Each single-file watch's handler, by watch descriptor (read-only view)."""
        return self._inode_handlers

    @property
    def unwatched(self) -> Mapping[str, str]:
        """Directories in the tree that have no watch, and why (read-only view)."""
        return self._unwatched

    def count(self) -> int:
        return len(self._rel_by_wd)

    def is_watched(self, rel_dir: str) -> bool:
        return rel_dir in self._wd_by_rel

    def add(self, rel_dir: str) -> bool:
        """Watch the directory `rel_dir`; False if it has no watch (gone, or in `unwatched`)."""
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
            watch = inotify.add_watch(Path(f"/proc/self/fd/{fd}"), INODE_MASK)
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
        self.forget(wd)
        if self._inotify is not None and watch is not None:
            with contextlib.suppress(OSError):
                self._inotify.rm_watch(watch)

    def forget_inode(self, wd: int) -> None:
        """A single file's watch went by itself (IN_IGNORED)."""
        self._inode_handlers.pop(wd, None)
        self.forget(wd)

    def forget(self, wd: int) -> None:
        """The watch `wd` is gone (IN_IGNORED, or removed)."""
        rel = self._rel_by_wd.pop(wd, None)
        self._watch_by_wd.pop(wd, None)
        watches = getattr(self._inotify, "_watches", None)
        if isinstance(watches, dict):
            # asyncinotify forgets a watch when *its* reader sees IN_IGNORED; ours reads instead.
            watches.pop(wd, None)
        if rel is not None and self._wd_by_rel.get(rel) == wd:
            del self._wd_by_rel[rel]

    def forget_unwatched(self, rel: str) -> None:
        """`rel` is gone: so is every unwatched directory at or below it."""
        for sub in [sub for sub in self._unwatched if is_under(sub, rel)]:
            del self._unwatched[sub]

    def drop_subtree(self, rel: str) -> None:
        """A directory left (deleted or moved away): its watches now describe nothing we own."""
        self.forget_unwatched(rel)
        inotify = self._inotify
        for sub, wd in list(self._wd_by_rel.items()):
            if sub and is_under(sub, rel):
                watch = self._watch_by_wd.get(wd)
                self.forget(wd)
                if inotify is not None and watch is not None:
                    with contextlib.suppress(OSError):  # already gone with its directory
                        inotify.rm_watch(watch)


__all__ = ["Watches"]
