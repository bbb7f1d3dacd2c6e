"""What S3's answers say about an object, as the state knows objects (`RemoteEntry`): a HEAD's
headers (`entry_of`), and a listed entry completed by the headers of the GET that fetched it
(`fetched`). Used by the change feed (a HEAD after each event), the pipeline's look after a
failed condition (`Checks.learn_remote`), downloads and conflicts.

Pure: no request is made here. An entry made from a HEAD carries the object's mode and mtime
(`x-amz-meta-*`), which listings never do; `unsettled` says S3 answered within the object's
Last-Modified second (metadata.seen_unsettled); `archived`, whether its GET would be refused
until it is restored (metadata.is_archived).
"""

from __future__ import annotations

from ..core.model import RemoteEntry
from .client import ObjectHead


def entry_of(head: ObjectHead, *, is_dir: bool = False) -> RemoteEntry:
    """The remote entry a HEAD describes."""
    return RemoteEntry(
        head.etag,
        head.size,
        head.last_modified,
        is_dir,
        head.mtime_ns,
        head.mode,
        unsettled=head.unsettled,
        archived=head.archived,
        checksum=head.checksum,
    )


def fetched(listed: RemoteEntry, head: ObjectHead) -> RemoteEntry:
    """A listed entry, completed by the headers of the GET that fetched it (whose
    Last-Modified is the newer if a metadata-only copy landed in between)."""
    # What did not change is the listed value itself: one string or int per path, not two.
    return RemoteEntry(
        listed.etag if head.etag in ("", listed.etag) else head.etag,
        listed.size if head.size == listed.size else head.size,
        listed.last_modified
        if head.last_modified in ("", listed.last_modified)
        else head.last_modified,
        listed.is_dir,
        head.mtime_ns,
        head.mode,
        unsettled=head.unsettled,
        part_size=listed.part_size if head.etag in ("", listed.etag) else 0,
        archived=head.archived,
        checksum=head.checksum or (listed.checksum if head.etag in ("", listed.etag) else ""),
    )
