"""The facts the sync decision is made from: plain, immutable values with no I/O."""

from __future__ import annotations

import stat
from dataclasses import dataclass, field, replace
from enum import Enum, IntEnum, IntFlag


class Kind(IntEnum):
    FILE = 1
    DIR = 2
    SYMLINK = 3
    OTHER = 4  # fifo, socket, device: never synced


def is_plain_md5(etag: str) -> bool:
    """An ETag that is an MD5 (a single PUT's, unencrypted or SSE-S3), normalised."""
    return len(etag) == 32 and not etag.strip("0123456789abcdef")


def kind_of_mode(mode: int) -> Kind:
    if stat.S_ISREG(mode):
        return Kind.FILE
    if stat.S_ISDIR(mode):
        return Kind.DIR
    if stat.S_ISLNK(mode):
        return Kind.SYMLINK
    return Kind.OTHER


@dataclass(frozen=True, slots=True)
class LocalEntry:
    """What `lstat` says about a path: enough to tell whether it changed since the last sync.

    `ctime_ns` is not part of equality: our own renames and links move it too. It only marks a
    file to re-read at a restart (a write with the size and mtime put back changes it)."""

    kind: Kind
    size: int
    mtime_ns: int
    mode: int
    ino: int
    ctime_ns: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class RemoteEntry:
    """One object as S3 describes it. `mtime_ns` and `mode` are known only after a GET or HEAD
    (listings do not carry user metadata); `last_modified` is kept opaque, for change checks.

    After our own write, `last_modified` is unknown ("": S3 does not answer a PUT with it) until
    the next listing; `written_by` is then the server's clock when it answered us, in the same
    normalised form: our write's Last-Modified is not later, so a listed later one is another
    client's write since (a metadata-only copy keeps the ETag).

    `unsettled`: we saw this object while its Last-Modified second was still the current one
    (or we copied it onto itself). Another write in that same second keeping the ETag (a
    metadata-only copy) would move neither, so no listing can show it: once a listing is made
    after that second, the object is looked at once more (a HEAD) before it counts as known.
    Like git's "racy" index entries, to the second of S3's clock.

    `archived`: S3 holds it in an archive storage class (GLACIER, DEEP_ARCHIVE, an archive
    tier) and would refuse its GET until it is restored. A listing says so from the class
    alone; a HEAD or a GET knows whether a restored copy can be read. Not part of equality:
    it is the same object either way."""

    etag: str
    size: int
    last_modified: str = ""
    is_dir: bool = False
    mtime_ns: int | None = None
    mode: int | None = None
    written_by: str = ""
    unsettled: bool = field(default=False, compare=False)
    # The size of its parts (all but the last), where we uploaded it in parts ourselves: with
    # it the multipart ETag proves a file's bytes either way (proof.py); 0 when unknown.
    part_size: int = field(default=0, compare=False)
    archived: bool = field(default=False, compare=False)
    # Its additional checksum (checksums.py: our SHA-256, or what a GET or HEAD stated),
    # the proof of its bytes where the ETag is not an MD5 (proof.py); "" when unknown.
    checksum: str = field(default="", compare=False)
    # Last-Modified to the millisecond, as a listing gave it (HEAD and GET give seconds): the
    # mtime a download gets where the object carries none of its own. None when not listed.
    modified_ns: int | None = field(default=None, compare=False)

    @classmethod
    def written(
        cls,
        local: LocalEntry,
        etag: str,
        answered_at: str = "",
        part_size: int = 0,
        checksum: str = "",
    ) -> RemoteEntry:
        """What S3 holds after we uploaded `local` and it answered `etag` at `answered_at`.
        Unsettled: S3 answered within the write's own second, and another client that learned
        this ETag in that second (a listing, an event, a HEAD) may copy it onto itself with
        its own metadata before the second ends (chaos seed 61 of the sixth run). Costs one
        HEAD per written path, made by the first listing after its second."""
        is_dir = local.kind is Kind.DIR
        size = 0 if is_dir else local.size
        return cls(
            etag,
            size,
            "",
            is_dir,
            local.mtime_ns,
            local.mode,
            answered_at,
            unsettled=not is_dir,
            part_size=part_size,
            checksum=checksum,
        )

    def written_since(self, listed: RemoteEntry) -> bool:
        """Whether `listed` (the same object, listed after our write) was rewritten after it:
        its Last-Modified is later than the server's clock when it answered our write."""
        ours, theirs = self.written_by, listed.last_modified
        return ours.isdigit() and theirs.isdigit() and int(theirs) > int(ours)

    def settled_by(self, listed: RemoteEntry) -> bool:
        """Whether `listed` (the same object with the same Last-Modified, listed after its
        second) is what must be looked at again: we saw this one while its second lasted."""
        return self.unsettled and not listed.unsettled and not listed.is_dir

    def unchanged_in(self, listed: RemoteEntry) -> bool:
        """Whether `listed` (a listing's entry, or a HEAD's) tells nothing new about this
        object: the same object with the same Last-Modified, no other metadata (a HEAD after
        an event can find a metadata-only copy within the same second), and nothing to look at
        again (`settled_by`). The fold's first check; at 100,000 unchanged keys it is most of
        a listing's fold. `archived` is not compared: a listing gives a restored object's
        class too, and shows an archive tier as no class at all; what a HEAD or a refused GET
        learned stands until the object changes (engine/archived.py looks again)."""
        return listed is self or (
            self.same_object(listed)
            and self.last_modified == listed.last_modified
            and not self.metadata_differs(listed)
            and not self.settled_by(listed)
        )

    def metadata_differs(self, other: RemoteEntry) -> bool:
        """Whether `other` (the same object, looked at with a HEAD) carries a mode or mtime,
        and one other than this one's: a metadata-only copy in the same second, which
        Last-Modified cannot show. (Listed entries carry none, so they never differ.)"""
        return (other.mode is not None and self.mode != other.mode) or (
            other.mtime_ns is not None and self.mtime_ns != other.mtime_ns
        )

    def same_object(self, other: RemoteEntry) -> bool:
        return self.etag == other.etag and self.size == other.size and self.is_dir == other.is_dir

    def may_be_copied_as(self, other: RemoteEntry) -> bool:
        """Whether `other` may hold this object's bytes under another ETag: a copy made in
        other parts (`aws s3 mv` copies a large object in its own 8 MiB parts; one CopyObject
        of an object uploaded in parts gives a plain MD5). Files of one size whose ETags are
        not two different MD5s (those are different bytes). Only a proof of the bytes can
        tell (ops/fetch.py)."""
        return self.same_object(other) or (
            self.size == other.size
            and not self.is_dir
            and not other.is_dir
            and not (is_plain_md5(self.etag) and is_plain_md5(other.etag))
        )

    def with_metadata(self, mtime_ns: int | None, mode: int | None) -> RemoteEntry:
        return replace(self, mtime_ns=mtime_ns, mode=mode)


@dataclass(frozen=True, slots=True)
class Synced:
    """The state both sides agreed on when the path was last synced.

    `remote` is None for a directory that exists remotely only through the keys below it.
    """

    local: LocalEntry
    remote: RemoteEntry | None


class SyncMode(Enum):
    """Which way changes go (SYNC_MODE)."""

    BIDIRECTIONAL = "bidirectional"
    UPLOAD_ONLY = "upload-only"  # the folder is the source of truth: never lists or downloads
    DOWNLOAD_ONLY = "download-only"  # S3 is: never writes to it; local changes stay local


class Hint(IntFlag):
    """What inotify told us about a path since it was last synced."""

    NONE = 0
    CONTENT = 1  # written and closed, created, or moved in
    META = 2  # chmod, touch
    CHILD_REMOVED = 4  # a directory lost a child through a local change
    # Closed after writing (IN_CLOSE_WRITE): changed even if its stat says not (a same-size
    # rewrite with its mtime put back). Our own writes never cause it: downloads are renamed in.
    WRITTEN = 8
