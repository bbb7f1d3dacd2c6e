"""What S3 answers of an object: `ObjectHead`, what a HEAD or a GET says of it (its ETag, size,
dates, the sidecar's metadata, whether it is archived, its checksum), and `PutResult`, what a
write answered (the new version's ETag, its checksum, the part size it was uploaded with).
Parsed from the answer's headers; pure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .. import checksums
from .metadata import (
    is_archived,
    normalize_etag,
    normalize_last_modified,
    parse_http_date,
    parse_mode,
    parse_mtime,
    seen_unsettled,
)


@dataclass(frozen=True, slots=True)
class ObjectHead:
    etag: str
    size: int
    last_modified: str  # normalised (see metadata.normalize_last_modified)
    modified_ns: int | None  # Last-Modified as a time
    mtime_ns: int | None
    mode: int | None
    content_type: str
    encryption: str | None
    answered_at: str = ""  # the server's `Date`, normalised like Last-Modified
    archived: bool = False  # a GET is refused until it is restored (metadata.is_archived)
    checksum: str = ""  # x-amz-checksum-*, where S3 states one we compute (checksums.py)

    @property
    def unsettled(self) -> bool:
        """Seen within its Last-Modified second (see RemoteEntry.unsettled)."""
        return seen_unsettled(self.last_modified, self.answered_at)

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> ObjectHead:
        return cls(
            etag=normalize_etag(headers.get("ETag", "")),
            size=int(headers.get("Content-Length", "0") or 0),
            last_modified=normalize_last_modified(headers.get("Last-Modified", "")),
            modified_ns=parse_http_date(headers.get("Last-Modified")),
            mtime_ns=parse_mtime(headers.get("x-amz-meta-mtime")),
            mode=parse_mode(headers.get("x-amz-meta-mode")),
            content_type=headers.get("Content-Type", ""),
            encryption=headers.get("x-amz-server-side-encryption"),
            answered_at=normalize_last_modified(headers.get("Date", "")),
            archived=is_archived(
                headers.get("x-amz-storage-class"),
                headers.get("x-amz-archive-status"),
                headers.get("x-amz-restore"),
            ),
            checksum=checksums.from_headers(headers, normalize_etag(headers.get("ETag", ""))),
        )


@dataclass(frozen=True, slots=True)
class PutResult:
    """What S3 answered to a write: the ETag, the encryption, and the server's `Date` in the
    normalised Last-Modified form (the object's Last-Modified is not later than that)."""

    etag: str
    encryption: str | None
    answered_at: str = ""
    part_size: int = 0  # uploaded in parts of this size (all but the last); 0: one PUT
    checksum: str = ""  # the SHA-256 checksum sent with it, which S3 checked (checksums.py)

    @classmethod
    def from_headers(
        cls, headers: Mapping[str, str], etag: str | None = None, checksum: str = ""
    ) -> PutResult:
        return cls(
            etag if etag is not None else normalize_etag(headers.get("ETag", "")),
            headers.get("x-amz-server-side-encryption"),
            normalize_last_modified(headers.get("Date", "")),
            checksum=checksum,
        )
