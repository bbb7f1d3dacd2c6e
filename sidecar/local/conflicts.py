"""Conflict copies, side by side as Syncthing keeps them: the name a copy gets
(`conflict_name`), whether a name is one (`is_conflict`), which of some paths are the copies of
a path (`existing_conflicts`), and making one (`make_conflict_copy`, `link_as_conflict`).

A copy of `dir/report.txt` is `dir/report.sync-conflict-20261125-120000.txt`: beside it, the
moment in UTC, the extension kept so the copy still opens. The name is made again for a second
copy in the same second (`-1`, `-2`, ...), and shortened to fit NAME_MAX (255 bytes, whole
characters only). `existing_conflicts` knows a copy by making its name again from the moment
and attempt it carries: exactly the names `conflict_name` makes, never a look-alike.

A copy never overwrites a name (link() or O_EXCL: a taken name is the next attempt) and never
follows a symlink: it is made through `safefs.At`, beside the path in its parent held open.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import PurePosixPath

from .localfs import write_new
from .safefs import At

_MARK = ".sync-conflict-"  # then the moment (`_STAMP`), and the attempt from the second on
_STAMP = "%Y%m%d-%H%M%S"
# The tag in a name, then its extension (up to 10 characters with the dot), then its end.
_TAG = re.compile(re.escape(_MARK) + r"(\d{8}-\d{6})(?:-(\d+))?(?=(?:\.[^./]{1,9})?\Z)")
_ATTEMPTS = 1000


def conflict_name(rel: str, moment: datetime, attempt: int) -> str:
    """`dir/report.txt` becomes `dir/report.sync-conflict-20261125-120000.txt` (Syncthing's
    shape, so the extension still opens the file)."""
    path = PurePosixPath(rel)
    stamp = moment.astimezone(UTC).strftime(_STAMP)
    tag = _MARK + stamp + (f"-{attempt}" if attempt else "")
    suffix = path.suffix if len(path.suffix) <= 10 else ""
    stem = path.name[: len(path.name) - len(suffix)] if suffix else path.name
    while stem and len((stem + tag + suffix).encode("utf-8")) > 255:
        stem = stem[:-1]
    name = stem + tag + suffix
    return str(path.with_name(name)) if "/" in rel else name


def is_conflict(rel: str) -> bool:
    """Whether the last component of `rel` (a path, or a key) has a conflict copy's shape."""
    return _TAG.search(rel.rpartition("/")[2]) is not None


def existing_conflicts(rel: str, paths: Iterable[str]) -> list[str]:
    """Those of `paths` (relative paths, or keys, as `rel` is: a listing of its directory, or
    a bucket's keys) that are conflict copies of `rel`, in their order. A copy of a copy is a
    copy of the copy, not of `rel`; `rel` is never a copy of itself."""
    head = rel.rpartition("/")[0]
    return [
        path
        for path in paths
        if path != rel and path.rpartition("/")[0] == head and _copy_of(path, rel)
    ]


def _copy_of(path: str, rel: str) -> bool:
    for match in _TAG.finditer(path.rpartition("/")[2]):
        try:
            moment = datetime.strptime(match[1], _STAMP).replace(tzinfo=UTC)
        except ValueError:  # not a moment (a 13th month)
            continue
        if conflict_name(rel, moment, int(match[2] or 0)) == path:
            return True
    return False


def make_conflict_copy(beside: At, rel: str, make: Callable[[At], None]) -> str:
    """Call `make(target)` with free conflict-copy names beside `rel` until one is not taken
    (`make` raises FileExistsError for a taken one). Returns the copy's relative path."""
    moment = datetime.now(UTC)
    for attempt in range(_ATTEMPTS):
        name = conflict_name(rel, moment, attempt)
        try:
            make(At(beside.dir_fd, name.rpartition("/")[2]))
        except FileExistsError:
            continue
        return name
    raise FileExistsError(rel)


def link_as_conflict(source: At, beside: At, rel: str) -> str:
    """Give `source` a free conflict-copy name beside `rel` (whose name in its parent is
    `beside`): a hard link, or a copy where the filesystem or the directory refuses links.
    Never overwrites, never follows. Returns the copy's relative path."""

    def make(target: At) -> None:
        try:
            source.link_to(target)
        except OSError as error:
            if error.errno not in _NO_LINKS:
                raise
            _copy_new(source, target)

    return make_conflict_copy(beside, rel, make)


# link() fails with these where copying may still work: no hard links on this filesystem,
# another filesystem, too many links, or a protected_hardlinks refusal on a file not ours.
_NO_LINKS = frozenset({errno.EPERM, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK, errno.EACCES})


def _copy_new(source: At, target: At) -> None:
    """Copy `source` to a new `target` (O_EXCL: FileExistsError if taken), mode and mtime too."""
    st = source.lstat()
    if stat.S_ISLNK(st.st_mode):
        os.symlink(source.readlink(), target.name, dir_fd=target.dir_fd)
        return
    reader = source.open(os.O_RDONLY | os.O_NONBLOCK)
    try:
        write_new(target, reader, stat.S_IMODE(st.st_mode), (st.st_atime_ns, st.st_mtime_ns))
    finally:
        os.close(reader)


__all__ = [
    "conflict_name",
    "existing_conflicts",
    "is_conflict",
    "link_as_conflict",
    "make_conflict_copy",
]
