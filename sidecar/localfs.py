"""Small filesystem helpers: fingerprints, safe directory creation, metadata formats, names.

Nothing here follows a symlink that came from S3: a key `link/x` where `link` is a symlink
must not write through it, so parents are created and checked with `lstat`.
"""

from __future__ import annotations

import os
import stat
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import PurePosixPath

from .model import Kind, LocalEntry, kind_of_mode

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
    moment = _http_date(value) if value else None
    return None if moment is None else int(moment.timestamp()) * 1_000_000_000


def normalize_last_modified(text: str) -> str:
    """Whole seconds since the epoch, as text: listings say `2026-11-25T12:00:00.000Z`, HEAD
    says `Wed, 25 Nov 2026 12:00:00 GMT`; the same instant must compare equal."""
    text = text.strip()
    moment = (_iso_date(text) or _http_date(text)) if text else None
    return text if moment is None else str(int(moment.timestamp()))


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
