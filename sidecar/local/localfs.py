"""Small filesystem helpers: fingerprints, the one read size, a new file written from an open one.

Nothing here follows a symlink below the synced folder: a path is looked at only through
`safefs.Tree`, so a file reached through a symlinked parent (`link/x` where `link` is a
symlink) is reported absent, never read.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import replace

from ..core.model import LocalEntry, Synced, kind_of_mode
from .safefs import At, Tree

PERMISSION_BITS = 0o777  # setuid/setgid/sticky from S3 are never applied

# How much of a local file's bytes one read (or one write) moves: an upload's streamed chunk,
# a download's writev, an MD5 proof, a byte-for-byte comparison, a copy. Also the largest
# object a download reads whole instead of streaming it.
READ_SIZE = 1 << 20


_MODES: dict[int, int] = {}  # a folder has a few distinct modes: one int object each


def entry_from_stat(st: os.stat_result) -> LocalEntry:
    mode = st.st_mode
    return LocalEntry(
        kind=kind_of_mode(mode),
        size=st.st_size,
        mtime_ns=st.st_mtime_ns,
        mode=_MODES.setdefault(mode, mode) if len(_MODES) < 4096 else mode,
        ino=st.st_ino,
        ctime_ns=st.st_ctime_ns,
    )


def local_entry(tree: Tree, rel: str) -> LocalEntry | None:
    """The fingerprint of `rel` (following no symlink at any component), or None when nothing
    is there, or it is reachable only through a symlinked or non-directory parent."""
    st = tree.lstat_or_none(rel)
    return None if st is None else entry_from_stat(st)


def in_place(at: At, made: LocalEntry) -> LocalEntry:
    """What to record for a file we made and just moved into place at `at`: `made` with the
    ctime it has there (a link, a rename and the removal of the temporary name each move it),
    when `at` still holds that same unchanged file. Otherwise `made` itself: a restart then
    finds the ctime moved and reads the file to prove its bytes, the safe direction. Without
    this, every restart read every file a download had made."""
    try:
        now = entry_from_stat(at.lstat())
    except OSError:
        return made
    return now if now == made else made  # equality covers kind, size, mtime, mode and inode


def changed_by_us(before: LocalEntry, after: LocalEntry, synced: Synced | None) -> LocalEntry:
    """What to record for a file whose metadata we just changed (a chmod, a utime) without
    reading it: `after` with its new ctime only if the file's ctime just `before` our change
    was the one the synced record was proven at (nothing touched the file since). Otherwise
    `after` with the record's ctime: the file was changed by someone else since (a write that
    kept its size and mtime, seen by nothing), so a restart finds the ctime moved and reads it
    to prove its bytes. Recording the new ctime would have declared those bytes synced
    (chaos seed 71024)."""
    proven = synced.local.ctime_ns if synced is not None else 0
    if before.ctime_ns == proven:
        return after
    return replace(after, ctime_ns=proven)


def write_new(target: At, source: int, mode: int, times_ns: tuple[int, int] | None = None) -> None:
    """A new file at `target` (FileExistsError if taken) with the content of the open file
    `source` (read from its start), `mode`, and `times_ns` (atime, mtime) if given. Nothing is
    left at `target` if it fails."""
    fd = target.open(os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        offset = 0
        while chunk := os.pread(source, READ_SIZE, offset):
            offset += len(chunk)
            view = memoryview(chunk)
            while view:
                view = view[os.write(fd, view) :]
        if times_ns is not None:
            os.utime(fd, ns=times_ns)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            target.unlink()
        raise
    os.close(fd)
