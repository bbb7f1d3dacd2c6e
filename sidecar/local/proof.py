"""Whether a local file holds exactly an object's bytes, proven by the object's additional checksum
where it is known (checksums.py: every upload of ours sends a SHA-256 one, and a GET or HEAD brings
back another tool's SHA-256, SHA-1 or CRC32), else by its ETag: its MD5 for a single-part upload,
the MD5 of the parts' MD5s for a multipart one (`<md5>-<parts>`). A multipart object's part size is
the one we uploaded it with, else guessed from the common ones. Size and mtime are never proof: a
same-size rewrite with its mtime put back (`rsync -t`, `tar`, reproducible builds) keeps both.

`same_as_object` answers None when it cannot tell: no checksum known and an ETag that is not an
MD5 (SSE-KMS, SSE-C, other stores), or a multipart one whose part size is not among those
guessed. Cost: one read of the file (about 1.5 ms of CPU per MiB for the MD5, 0.5 for the
SHA-256, measured here), off the event loop.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable

from .. import checksums
from ..core.model import Kind, LocalEntry, RemoteEntry, Synced, is_plain_md5
from .localfs import READ_SIZE
from .safefs import Tree

_MiB = 1024 * 1024
MIN_PART = 5 * _MiB  # S3's smallest part (all but the last)
MAX_PARTS = 10_000


def provable(remote: RemoteEntry | None, md5_etags: bool | None) -> bool:
    """Whether anything can prove a file holds `remote`'s bytes: its checksum, or an ETag where
    ETags are MD5s."""
    return remote is not None and (bool(remote.checksum) or bool(md5_etags))


def verifiable(encryption: str | None) -> bool:
    """With SSE-KMS or SSE-C the ETag is not the MD5 of the content."""
    return encryption in (None, "", "AES256")


def part_sizes(size: int, etag: str, chunksize: int) -> list[int]:
    """The part sizes a multipart upload of `size` bytes with this ETag (`<md5>-<parts>`) may
    have used: ours, the common defaults (8 MiB for the AWS CLI, 5 to 64 MiB), and the even
    split rounded to a MiB; only those that give exactly that many parts, and are parts S3
    takes (5 MiB at least, at most 10,000 of them): a hostile count never makes a proof hash
    a file in tiny parts."""
    count_text = etag.rpartition("-")[2]
    if not count_text.isdigit() or not 1 <= int(count_text) <= MAX_PARTS:
        return []
    count = int(count_text)
    even = -(-size // count)
    candidates = [chunksize, max(chunksize, -(-size // 10_000)), -(-even // _MiB) * _MiB, even]
    candidates += [n * _MiB for n in (5, 8, 16, 32, 64, 100, 128)]
    fits = [
        p
        for p in dict.fromkeys(candidates)
        if (p >= MIN_PART or count == 1) and p > 0 and -(-size // p) == count
    ]
    return fits[:4]


def md5_of(fd: int) -> str:
    md5 = hashlib.md5(usedforsecurity=False)  # what S3 puts in an ETag
    offset = 0
    while chunk := os.pread(fd, READ_SIZE, offset):
        md5.update(chunk)
        offset += len(chunk)
    return md5.hexdigest()


def _multipart_etag(fd: int, part_size: int) -> str:
    digests = hashlib.md5(usedforsecurity=False)  # how S3 builds a multipart ETag
    count = 0
    offset = 0
    while True:
        part = hashlib.md5(usedforsecurity=False)
        read = 0
        while read < part_size:
            chunk = os.pread(fd, min(READ_SIZE, part_size - read), offset)
            if not chunk:
                break
            part.update(chunk)
            read += len(chunk)
            offset += len(chunk)
        if not read:
            break
        digests.update(part.digest())
        count += 1
    return f"{digests.hexdigest()}-{count}"


def by_checksum(
    fd: int, size: int, checksum: str, chunksize: int, part_size: int = 0
) -> bool | None:
    """Whether the open file `fd` (of `size` bytes) holds the object with this additional
    checksum (checksums.py: SHA-256, SHA-1 or CRC32); None if it cannot tell (a composite one
    whose part size is neither known nor among those guessed). Blocking."""
    algorithm = checksums.split(checksum)[0]
    if not checksums.parts(checksum):
        return checksums.of_file(fd, 0, algorithm) == checksum
    if part_size > 0:
        return checksums.of_file(fd, part_size, algorithm) == checksum
    for guess in part_sizes(size, checksum, chunksize):
        if checksums.of_file(fd, guess, algorithm) == checksum:
            return True
    return None


def same_as_object(
    fd: int,
    size: int,
    etag: str,
    chunksize: int,
    part_size: int = 0,
    *,
    checksum: str = "",
    md5_etags: bool = True,
) -> bool | None:
    """Whether the open file `fd` (of `size` bytes) holds the object with this checksum (where
    known: `by_checksum`), else this ETag; None if neither can tell. `part_size`: the size its
    parts are known to have had (we uploaded it): a multipart ETag or checksum then tells either
    way. `md5_etags`: False where ETags are known not to be MD5s (SSE-KMS, SSE-C). Blocking:
    run it in an executor."""
    if checksum:
        said = by_checksum(fd, size, checksum, chunksize, part_size)
        if said is not None:
            return said
    if not md5_etags:
        return None
    if is_plain_md5(etag):
        return md5_of(fd) == etag
    if "-" in etag and part_size > 0:
        return _multipart_etag(fd, part_size) == etag
    if "-" in etag:
        sizes = part_sizes(size, etag, chunksize)
        if not sizes:
            return None
        if any(_multipart_etag(fd, part_size) == etag for part_size in sizes):
            return True
        return None  # another part size than those guessed may still give it
    return None


def file_is_object(
    tree: Tree, rel: str, size: int, remote: RemoteEntry, chunksize: int, *, md5_etags: bool = True
) -> bool | None:
    """Whether the file at `rel` (of `size` bytes) holds the object `remote`, by its checksum
    or ETag and the part size we uploaded it with, if we did (`same_as_object`)."""
    fd = tree.open(rel, os.O_RDONLY | os.O_NONBLOCK)
    try:
        return same_as_object(
            fd,
            size,
            remote.etag,
            chunksize,
            remote.part_size,
            checksum=remote.checksum,
            md5_etags=md5_etags,
        )
    finally:
        os.close(fd)


def still_synced(
    tree: Tree, rel: str, synced: Synced | None, chunksize: int, md5_etags: bool = True
) -> bool:
    """Whether the file at `rel`, whose stat matches the synced record, also still holds the
    synced bytes: False only when the checksum or ETag proves it does not (a rewrite that kept
    the size and the mtime, made while nothing watched: before a restart). Read before any
    operation that would replace or delete the local file because S3 changed."""
    if synced is None or synced.remote is None or synced.local.kind is not Kind.FILE:
        return True
    said = file_is_object(
        tree, rel, synced.local.size, synced.remote, chunksize, md5_etags=md5_etags
    )
    return said is not False


def unproven(now: LocalEntry, synced: Synced | None) -> bool:
    """Whether the file `now` may hold other bytes than the synced ones though nothing a pass
    compares shows it: its ctime moved since the record was proven (`LocalEntry.ctime_ns`),
    and its size, mtime and inode did not (the mode may have: a chmod with the write). A write
    that put the size and mtime back, made while nothing reported it (the sidecar down or
    starting, an inotify overflow, a directory without a watch), looks exactly so; so does a
    touch put back, or a chmod and back. Only the bytes can tell (`still_synced`)."""
    if synced is None or synced.remote is None:
        return False
    old = synced.local
    return (
        now.kind is Kind.FILE
        and old.kind is Kind.FILE
        and old.ctime_ns not in (0, now.ctime_ns)  # moved (0: saved before ctimes were)
        and now.size == old.size
        and now.mtime_ns == old.mtime_ns
        and now.ino == old.ino
    )


class EtagKnowledge:
    """Whether this bucket's ETags are MD5s (no SSE-KMS or SSE-C answer seen): None until an
    upload or a download says (`saw`), False for good once one says not. It is saved with the
    state (`on_learned`), so a restart knows it before its first transfer: a remote delete at
    start-up proves the local bytes only where ETags can prove anything."""

    def __init__(self, on_learned: Callable[[bool], None] = lambda md5: None) -> None:
        self.md5: bool | None = None
        self._on_learned = on_learned

    def restore(self, saved: bool | None) -> None:
        if self.md5 is None:
            self.md5 = saved

    def saw(self, encryption: str | None) -> None:
        learned = self.md5 is not False and verifiable(encryption)
        if learned != self.md5:
            self.md5 = learned
            self._on_learned(learned)
