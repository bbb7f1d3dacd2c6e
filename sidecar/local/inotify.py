"""The kernel's side of inotify: the masks we ask for, and the events read straight from the
descriptor's buffer with `struct`, in the event loop's reader callback.

asyncinotify owns the inotify instance and the watches; it also reads and builds an `Event`,
an `IntFlag`, a `Path` and a weakref for every event: measured at ~46 us per event, 140 us of
CPU per file written in a burst, where reading them here costs ~3 us. The masks are plain ints
for the same reason: IntFlag arithmetic costs microseconds per operation on the hot path.

`read_queued` never waits: it asks the kernel how much is queued (FIONREAD) and reads only
that, so `barrier()` can drain the queue on every upload, and most of the time finds it empty
without building an exception.
"""

from __future__ import annotations

import array
import fcntl
import os
import struct
import termios
from collections.abc import Callable
from typing import Final

from asyncinotify import Mask

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
INODE_MASK = Mask.MODIFY | Mask.CLOSE_WRITE  # a single file's watch (`watch_inode`)

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


def read_queued(fd: int, queued: array.array[int]) -> bytes | None:
    """What the kernel has queued on the non-blocking inotify descriptor `fd`, or None when
    nothing is (`queued`: a one-int buffer for FIONREAD, reused). OSError if the read fails."""
    try:
        fcntl.ioctl(fd, termios.FIONREAD, queued, True)
        if not queued[0]:
            return None
        return os.read(fd, _READ_SIZE)
    except BlockingIOError:
        return None


def dispatch(
    data: bytes,
    handle: Callable[[int, int, int, str], None],
    on_error: Callable[[str, BaseException], None],
) -> None:
    """Each event in `data` to `handle(wd, mask, cookie, name)`, in kernel order (`name`: ""
    for an event on the watched directory or file itself; `cookie`: what pairs the two halves
    of a rename, else 0). An event whose handling raises is reported
    to `on_error`, and the rest are still handled."""
    offset = 0
    size = len(data)
    unpack = _EVENT.unpack_from
    while offset < size:
        wd, mask, cookie, length = unpack(data, offset)
        offset += 16
        name = ""
        if length:
            raw = data[offset : offset + length]
            offset += length
            end = raw.find(0)
            name = os.fsdecode(raw[:end] if end >= 0 else raw)
        try:
            handle(wd, mask, cookie, name)
        except Exception as error:
            # One bad event must not stop the watcher; the path is reconciled later.
            on_error("inotify event", error)


__all__ = [
    "INODE_MASK",
    "IN_ATTRIB",
    "IN_CLOSE_WRITE",
    "IN_CREATE",
    "IN_DELETE",
    "IN_DELETE_SELF",
    "IN_IGNORED",
    "IN_ISDIR",
    "IN_MODIFY",
    "IN_MOVED_FROM",
    "IN_MOVED_TO",
    "IN_Q_OVERFLOW",
    "WATCH_MASK",
    "dispatch",
    "read_queued",
]
