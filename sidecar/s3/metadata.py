"""S3's wire formats for what the sidecar stores or reads beside an object (`object_headers`:
what a file's object carries): `x-amz-meta-mtime`, `x-amz-meta-mode` (mobius3's and rclone's
forms), `Last-Modified` in its two date forms (a listing's to the millisecond, a HEAD's or a
GET's to the second: `listed_time`), ETags with or without their quotes, whether an object seen
at the server's `Date` may still change within its Last-Modified second (`seen_unsettled`), and
whether its bytes can be read now or only once it is restored (`is_archived`: its storage class,
archive tier and restore status).

Pure functions; every parser returns None (never raises) for a value it cannot use, since these
headers come from other tools and other clients.
"""

from __future__ import annotations

import hashlib
import mimetypes
import os
import stat
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from functools import lru_cache

from ..core.model import Kind, LocalEntry, is_plain_md5, kind_of_mode


def object_headers(rel: str, local: LocalEntry) -> dict[str, str]:
    """What an object written for the file `local` at `rel` carries: its mtime and mode, and a
    Content-Type from its extension (so objects open sensibly when served straight from S3)."""
    return {
        "x-amz-meta-mtime": format_mtime(local.mtime_ns),
        "x-amz-meta-mode": format_mode(local.mode),
        "Content-Type": _content_type(os.path.splitext(rel)[1])
        if local.kind is Kind.FILE
        else "application/octet-stream",
    }


@lru_cache(maxsize=512)
def _content_type(suffix: str) -> str:
    content_type, _ = mimetypes.guess_type("name" + suffix.lower(), strict=False)
    return content_type or "application/octet-stream"


def format_mtime(mtime_ns: int) -> str:
    """Seconds since the epoch as a decimal string: a float for rclone and mobius3, exact for us."""
    sign = "-" if mtime_ns < 0 else ""
    seconds, nanos = divmod(abs(mtime_ns), 1_000_000_000)
    return f"{sign}{seconds}.{nanos:09d}"


def parse_mtime(value: str | None) -> int | None:
    """Nanoseconds from `x-amz-meta-mtime` (a float string in seconds); None if unusable."""
    if not value:
        return None
    value = value.strip()
    whole, dot, fraction = value.partition(".")
    try:
        if dot and whole.lstrip("-").isdigit() and fraction.isdigit():
            nanos = int((fraction + "000000000")[:9])
            sign = -1 if whole.startswith("-") else 1
            return int(whole) * 1_000_000_000 + sign * nanos
        seconds = float(value)
    except ValueError:
        return None
    if not abs(seconds) <= 1e11:  # NaN or absurd
        return None
    return round(seconds * 1_000_000_000)


def _aware(moment: datetime) -> datetime:
    """A date without a zone is UTC (as S3 and HTTP mean it)."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _http_date(text: str) -> datetime | None:
    """An HTTP date (`Wed, 25 Nov 2026 12:00:00 GMT`), as headers give it."""
    try:
        return _aware(parsedate_to_datetime(text))
    except (TypeError, ValueError, OverflowError):
        return None


def _iso_date(text: str) -> datetime | None:
    """An ISO 8601 date (`2026-11-25T12:00:00.000Z`), as listings give it."""
    try:
        return _aware(datetime.fromisoformat(text.replace("Z", "+00:00")))
    except ValueError:
        return None


def parse_http_date(value: str | None) -> int | None:
    """Nanoseconds from an HTTP date (`Last-Modified`)."""
    return _http_date_ns(value) if value else None


@lru_cache(maxsize=1024)  # objects written in the same second share it
def _http_date_ns(value: str) -> int | None:
    moment = _http_date(value)
    return None if moment is None else int(moment.timestamp()) * 1_000_000_000


@lru_cache(maxsize=4096)  # a listing repeats the seconds its objects were written in
def normalize_last_modified(text: str) -> str:
    """Whole seconds since the epoch, as text: listings say `2026-11-25T12:00:00.000Z`, HEAD
    says `Wed, 25 Nov 2026 12:00:00 GMT`; the same instant must compare equal."""
    text = text.strip()
    moment = (_iso_date(text) or _http_date(text)) if text else None
    return text if moment is None else str(int(moment.timestamp()))


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


@lru_cache(maxsize=4096)
def listed_time(text: str) -> tuple[str, int | None]:
    """A listing's LastModified (`2026-11-25T12:00:00.123Z`): normalised as every Last-Modified
    is (`normalize_last_modified`: whole seconds, to compare), and the instant in nanoseconds
    to the precision the listing gives (milliseconds on AWS and Ceph RGW; moto gives `.000`),
    None when unreadable. The one place a download learns the object's time below the second
    when it carries no `x-amz-meta-mtime`: HEAD and GET answer with HTTP dates, in seconds."""
    text = text.strip()
    moment = _iso_date(text) if text else None
    if moment is None:
        return normalize_last_modified(text), None
    return normalize_last_modified(text), (moment - _EPOCH) // _MICROSECOND * 1000


def seen_unsettled(last_modified: str, seen_at: str) -> bool:
    """Whether an object with `last_modified` seen at the server's `seen_at` (both normalised:
    whole seconds) may still change within that second unseen. Unknown times: settled (a store
    that sends no `Date` would otherwise be looked at again on every listing)."""
    return last_modified.isdigit() and seen_at.isdigit() and int(seen_at) <= int(last_modified)


def normalize_etag(etag: str) -> str:
    """Some stores list ETags without quotes, some with; compare them without."""
    etag = etag.strip()
    if etag.startswith("W/"):
        etag = etag[2:]
    return etag.strip('"')


def multipart_etag(part_etags: Sequence[str]) -> str | None:
    """The ETag S3 gives an object completed from parts with these ETags: the MD5 of their
    MD5s, then `-<count>`. None where a part's ETag is not a plain MD5 (SSE-KMS, SSE-C)."""
    if not part_etags or not all(map(is_plain_md5, part_etags)):
        return None
    digests = b"".join(bytes.fromhex(etag) for etag in part_etags)
    return f"{hashlib.md5(digests, usedforsecurity=False).hexdigest()}-{len(part_etags)}"


def format_mode(mode: int) -> str:
    """The full `st_mode` in decimal, as mobius3 writes it (33188 is a 0644 regular file)."""
    return str(mode)


def parse_mode(value: str | None) -> int | None:
    """`x-amz-meta-mode` in mobius3's decimal form, or rclone's octal form (`100644`)."""
    if not value:
        return None
    value = value.strip()
    if len(value) > 12:
        return None
    try:
        if value.lower().startswith("0o"):
            octal = int(value[2:], 8)
            return octal if _plausible(octal) else None
        if len(value) <= 4 and set(value) <= set("01234567"):
            return int(value, 8)  # `644`, `0755`: how people write permissions by hand
        decimal = int(value, 10)
    except ValueError:
        return None
    if _plausible(decimal):
        return decimal
    try:
        octal = int(value, 8)
    except ValueError:
        return None
    return octal if _plausible(octal) else None


def _plausible(mode: int) -> bool:
    """A permission-only value, or a regular file, directory or symlink mode."""
    if not 0 <= mode <= 0o177777:
        return False
    if stat.S_IFMT(mode) == 0:
        return mode <= 0o7777
    return kind_of_mode(mode) is not Kind.OTHER


# Storage classes whose objects S3 will not GET (403 InvalidObjectState) until a RestoreObject
# has finished; GLACIER_IR (Instant Retrieval) is read as any other class.
ARCHIVED_CLASSES = frozenset({"GLACIER", "DEEP_ARCHIVE"})
# Intelligent-Tiering's opt-in archive tiers (`x-amz-archive-status`), refused the same way.
_ARCHIVE_TIERS = frozenset({"ARCHIVE_ACCESS", "DEEP_ARCHIVE_ACCESS"})


def is_archived(storage_class: str | None, archive_status: str | None, restore: str | None) -> bool:
    """Whether a GET of the object would be refused until it is restored, from a HEAD's (or
    GET's) `x-amz-storage-class`, `x-amz-archive-status` and `x-amz-restore`: archived, and
    no restored copy to read (`ongoing-request="false"`, S3's form; while a restore is under
    way it says "true"). A listing gives only the class: `archived_class`."""
    archived = archived_class(storage_class) or (archive_status or "").strip() in _ARCHIVE_TIERS
    return archived and 'ongoing-request="false"' not in (restore or "").replace(" ", "")


def archived_class(storage_class: str | None) -> bool:
    """Whether objects of this listed storage class are archived (their restore status is
    known only from a HEAD)."""
    return (storage_class or "").strip().upper() in ARCHIVED_CLASSES
