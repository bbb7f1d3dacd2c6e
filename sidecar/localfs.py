"""Small filesystem helpers: fingerprints, safe directory creation, conflict-copy names.

Nothing here follows a symlink that came from S3: a key `link/x` where `link` is a symlink
must not write through it, so parents are created and checked with `lstat`.
"""

from __future__ import annotations

import os
import stat
from datetime import UTC, datetime
from pathlib import PurePosixPath

from .model import LocalEntry, kind_of_mode

PERMISSION_BITS = 0o777  # setuid/setgid/sticky from S3 are never applied


class UnsafeParentError(OSError):
    """A parent of a download target is a symlink or a file: writing there would escape."""


def entry_from_stat(st: os.stat_result) -> LocalEntry:
    return LocalEntry(
        kind=kind_of_mode(st.st_mode),
        size=st.st_size,
        mtime_ns=st.st_mtime_ns,
        mode=st.st_mode,
        ino=st.st_ino,
    )


def local_entry(path: str) -> LocalEntry | None:
    """The fingerprint of `path` (not following symlinks), or None when nothing is there."""
    try:
        return entry_from_stat(os.lstat(path))
    except (FileNotFoundError, NotADirectoryError):
        return None


def ensure_parents(root: str, rel: str) -> list[str]:
    """Create the missing directories above `rel`; return the relative paths created.

    Refuses (UnsafeParentError) when a parent exists as anything but a real directory.
    """
    created: list[str] = []
    parts = rel.split("/")[:-1]
    current = root
    current_rel = ""
    for part in parts:
        current = current + "/" + part
        current_rel = part if not current_rel else current_rel + "/" + part
        try:
            st = os.lstat(current)
        except FileNotFoundError:
            try:
                os.mkdir(current)
            except FileExistsError:
                st = os.lstat(current)
            else:
                created.append(current_rel)
                continue
        if not stat.S_ISDIR(st.st_mode):
            raise UnsafeParentError(f"parent is not a directory: {current_rel!r}")
    return created


def conflict_name(rel: str, moment: datetime, attempt: int) -> str:
    """`dir/report.txt` becomes `dir/report.sync-conflict-20261125-120000.txt` (Syncthing's
    shape, so the extension still opens the file)."""
    path = PurePosixPath(rel)
    stamp = moment.astimezone(UTC).strftime("%Y%m%d-%H%M%S")
    tag = f".sync-conflict-{stamp}" + (f"-{attempt}" if attempt else "")
    suffix = path.suffix if len(path.suffix) <= 10 else ""
    stem = path.name[: len(path.name) - len(suffix)] if suffix else path.name
    while stem and len((stem + tag + suffix).encode("utf-8")) > 255:
        stem = stem[:-1]
    name = stem + tag + suffix
    return str(path.with_name(name)) if "/" in rel else name
