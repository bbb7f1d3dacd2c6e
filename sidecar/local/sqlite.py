"""SQLite databases in the folder, as files: which file is one (its header, never its name),
which files belong to it (`-wal`, `-shm`, `-journal`: its companions), whether a process holds
it open (SQLite's POSIX locks), and a consistent snapshot of it (`snapshot`). Blocking I/O:
the callers run `snapshot` in an executor; the rest costs a few syscalls.

A snapshot is made with SQLite's online backup API (`sqlite3.Connection.backup`, one step)
from a connection opened read-only (`mode=ro`) into a file in the working folder, so it holds
every transaction committed before it started and nothing of one under way: it is a valid
database by construction, whatever the app does meanwhile. In WAL mode the app's writers go on
(a reader never blocks them). In rollback mode our read lock is held for the copy; an app's
write meanwhile waits in its busy handler (Python's default: 5 s). Measured by `make bench`
row 8 (bench/sqlite_snapshot.py) on the 2-core development machine, 100 MiB under one commit
every 10 ms, medians of 5: WAL mode 0.45 s of wall time and 0.37 CPU-seconds a snapshot (the
app's slowest commit 104 ms, 1.4 ms without snapshots: the two cores shared); rollback mode
0.45 s and 0.37 CPU-seconds (its slowest commit 333 ms: it waited for our lock). A plain read
of the file with its MD5, what any uploader does, is 0.18 s.
Our own busy timeout is short (`BUSY_TIMEOUT`) and retried a few times (`BUSY_TRIES`); still
busy, it raises `Busy` and the path is looked at again later: never an error for the app.

A WAL-mode database closed cleanly has no `-wal`: a read-only connection would create its
`-wal` and `-shm` in the app's folder. Then the file alone is the database: it is copied as
bytes under a shared lock of our own on SQLite's lock bytes (a writer cannot commit meanwhile),
and kept only if its stat did not move and no `-wal` appeared during the copy.

Who holds a database (`held_open`), seen from any process on the volume (POSIX locks are the
kernel's, across containers): every connection in WAL mode holds a shared lock on the `-shm`
file's DMS byte (offset 128) and on the database's shared range for as long as it is open; in
rollback mode a connection holds locks on the database's lock bytes (PENDING_BYTE, 0x40000000,
and the 512 bytes from it) only while a transaction (a read included) is under way. So an idle
rollback-mode connection, between transactions, cannot be seen; nor can a database opened with
`nolock=1` or `locking_mode=EXCLUSIVE` released, or a connection on another host over NFS
without lock support.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import sqlite3
import stat
import struct
import time
from dataclasses import dataclass
from urllib.parse import quote

from .localfs import READ_SIZE
from .safefs import At, Tree, UnsafeParentError

HEADER = b"SQLite format 3\x00"
COMPANIONS = ("-wal", "-shm", "-journal")
PENDING_BYTE = 0x40000000  # SQLite's lock bytes in the database file: PENDING, RESERVED,
LOCK_RANGE = 512  # then the 510 of the SHARED range
SHM_DMS = 128  # the -shm byte every WAL-mode connection holds a shared lock on
BUSY_TIMEOUT = 0.05  # seconds SQLite's busy handler waits for a lock, per try
BUSY_TRIES = 8  # tries before `Busy` (with a growing pause between them: about 1 s in all)
_WAL_VERSION = 2  # header bytes 18 and 19 of a WAL-mode database


class Busy(Exception):
    """The database stayed locked (or hot with a journal to roll back) for every try."""


class NotADatabase(Exception):
    """The file is not (or no longer) an SQLite database."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    size: int
    md5: str
    seconds: float  # wall time the copy took


def companion_base(rel: str) -> str | None:
    """The database `rel` would be a companion of, by its name alone; None if no suffix."""
    for suffix in COMPANIONS:
        if rel.endswith(suffix) and len(rel) > len(suffix) and not rel.endswith("/" + suffix):
            return rel[: -len(suffix)]
    return None


def has_header(data: bytes) -> bool:
    return data[: len(HEADER)] == HEADER


def fd_is_database(fd: int) -> bool:
    return has_header(os.pread(fd, len(HEADER), 0))


def is_database_or_new(tree: Tree, rel: str) -> bool:
    """Whether `rel` is a database, or an empty file: SQLite creates a database's file empty
    and writes its header with the first commit, after its `-journal` (or `-wal`) exists."""
    try:
        fd = tree.open(rel, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return False
    try:
        head = os.pread(fd, len(HEADER), 0)
        return not head or has_header(head)
    except OSError:
        return False
    finally:
        os.close(fd)


def is_database(tree: Tree, rel: str) -> bool:
    """Whether `rel` is a regular file starting with SQLite's header (reached through no
    symlink); False when it cannot be read."""
    try:
        fd = tree.open(rel, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return False
    try:
        return fd_is_database(fd)
    except OSError:
        return False
    finally:
        os.close(fd)


def _conflicting(fd: int, start: int, length: int) -> bool:
    """Whether another process holds a POSIX lock on [start, start+length) of `fd`'s file that
    a write lock would conflict with (F_GETLK: our own process's locks never conflict)."""
    probe = struct.pack("hhqqi", fcntl.F_WRLCK, os.SEEK_SET, start, length, 0)
    answer = fcntl.fcntl(fd, fcntl.F_GETLK, probe)
    kind: int = struct.unpack("hhqqi", answer)[0]
    return kind != fcntl.F_UNLCK


def _probe(at: At, name: str, start: int, length: int) -> bool:
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=at.dir_fd)
    except OSError:
        return False
    try:
        return _conflicting(fd, start, length)
    finally:
        os.close(fd)


def held_open(at: At) -> bool:
    """Whether a process holds the database at `at` open, as far as locks show (module doc)."""
    return _probe(at, at.name, PENDING_BYTE, LOCK_RANGE) or _probe(at, at.name + "-shm", SHM_DMS, 1)


def remove_companions(at: At) -> list[str]:
    """Remove the `-wal`, `-shm` and `-journal` beside the database at `at` (one that nobody
    holds, just replaced by a download: they belong to the version it replaced, and a hot
    journal would be rolled back into the new one). Returns the names removed."""
    removed = []
    for suffix in COMPANIONS:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(at.name + suffix, dir_fd=at.dir_fd)
            removed.append(at.name + suffix)
    return removed


def _exists(at: At, name: str) -> bool:
    try:
        os.stat(name, dir_fd=at.dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True


def _proc_path(dir_fd: int, name: str) -> str:
    """A path to `name` in the directory held open as `dir_fd`: SQLite opens its companions by
    appending to it, so they are looked for in that same directory (no name resolved again)."""
    return f"/proc/self/fd/{dir_fd}/{name}"


def snapshot(tree: Tree, rel: str, temp: At) -> Snapshot:
    """A consistent copy of the database at `rel` written to `temp` (a new name in the
    working folder); raises `Busy`, `NotADatabase` or OSError. Blocking."""
    started = time.monotonic()
    with tree.parent(rel) as at:
        fd = at.open(os.O_RDONLY | os.O_NONBLOCK)
        try:
            header = os.pread(fd, 100, 0)
            if not has_header(header):
                raise NotADatabase(rel)
            if header[18:20] == bytes((_WAL_VERSION, _WAL_VERSION)) and not _exists(
                at, at.name + "-wal"
            ):
                _copy_closed(at, fd, temp)
            else:
                _no_symlinks(at, fd)
                _backup(_proc_path(at.dir_fd, at.name), _proc_path(temp.dir_fd, temp.name), temp)
                _no_symlinks(at, fd, temp)
        finally:
            os.close(fd)
    size, md5 = _digest(temp)
    return Snapshot(size, md5, time.monotonic() - started)


def _no_symlinks(at: At, fd: int, temp: At | None = None) -> None:
    """SQLite opens the database and its companions by name, following symlinks: before and
    after the backup, the name must still be the file held open as `fd` (not a symlink swapped
    in: a database outside the folder would be uploaded), and no `-wal` or `-shm` a symlink.
    UnsafeParentError otherwise (the pass skips the path, as any path reached through one)."""
    held = os.fstat(fd)
    names = (at.name, at.name + "-wal", at.name + "-shm")
    for name in names:
        try:
            st = os.stat(name, dir_fd=at.dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            continue
        same = (st.st_dev, st.st_ino) == (held.st_dev, held.st_ino)
        if not stat.S_ISREG(st.st_mode) or (name == at.name and not same):
            if temp is not None:
                with contextlib.suppress(FileNotFoundError):
                    temp.unlink()
            raise UnsafeParentError(errno.ELOOP, "a database or its companion swapped", name)


def _backup(source: str, target: str, temp: At) -> None:
    uri = "file:" + quote(source) + "?mode=ro"
    for attempt in range(BUSY_TRIES):
        try:
            src = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT, isolation_level=None)
            try:
                dst = sqlite3.connect(target, isolation_level=None)
                try:
                    dst.execute("PRAGMA journal_mode=OFF")
                    src.backup(dst)  # one step: every page under one read transaction
                finally:
                    dst.close()
            finally:
                src.close()
            return
        except sqlite3.OperationalError as error:
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()
            if not _busy(error):
                raise
            time.sleep(0.02 * (attempt + 1))
        except sqlite3.DatabaseError as error:
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()
            raise NotADatabase(str(error)) from error
    raise Busy(source)


def _busy(error: sqlite3.OperationalError) -> bool:
    code = getattr(error, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_READONLY)
    text = str(error)
    return "locked" in text or "busy" in text or "readonly" in text


def _copy_closed(at: At, fd: int, temp: At) -> None:
    """A WAL-mode database with no `-wal` (closed cleanly): its bytes, copied under a shared
    lock on the lock bytes, kept only if nothing moved meanwhile."""
    lock = struct.pack("hhqqi", fcntl.F_RDLCK, os.SEEK_SET, PENDING_BYTE, LOCK_RANGE, 0)
    try:
        fcntl.fcntl(fd, fcntl.F_SETLK, lock)
    except OSError as error:
        raise Busy(at.name) from error
    try:
        before = os.fstat(fd)
        out = temp.open(os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            offset = 0
            while chunk := os.pread(fd, READ_SIZE, offset):
                offset += len(chunk)
                view = memoryview(chunk)
                while view:
                    view = view[os.write(out, view) :]
        finally:
            os.close(out)
        after = os.fstat(fd)
    finally:
        unlock = struct.pack("hhqqi", fcntl.F_UNLCK, os.SEEK_SET, PENDING_BYTE, LOCK_RANGE, 0)
        fcntl.fcntl(fd, fcntl.F_SETLK, unlock)
    moved = (before.st_size, before.st_mtime_ns, before.st_ctime_ns) != (
        after.st_size,
        after.st_mtime_ns,
        after.st_ctime_ns,
    )
    if moved or _exists(at, at.name + "-wal"):
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
        raise Busy(at.name)


def _digest(temp: At) -> tuple[int, str]:
    fd = temp.open(os.O_RDONLY)
    try:
        md5 = hashlib.md5(usedforsecurity=False)  # what S3 puts in an ETag
        size = 0
        while chunk := os.pread(fd, READ_SIZE, size):
            md5.update(chunk)
            size += len(chunk)
        return size, md5.hexdigest()
    finally:
        os.close(fd)


__all__ = [
    "Busy",
    "NotADatabase",
    "Snapshot",
    "companion_base",
    "fd_is_database",
    "held_open",
    "is_database",
    "is_database_or_new",
    "remove_companions",
    "snapshot",
]
