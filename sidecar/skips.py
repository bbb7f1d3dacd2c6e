"""Why a key or a path is not synced: the one vocabulary of skips, used by the key mapping
(`core/keys.py`: names that cannot be paths or keys), the decision (`core/reconcile.py`:
unsupported types, type conflicts, excluded paths), listings (shadowed keys) and passes
(unreadable files, unsafe parents, objects S3 holds archived, SQLite databases' companions).

Each value is a label of `s3sync_skipped_paths_total{reason}`, created at 0 with the metrics
(metrics.py), so the set is small and its values never change: alerts and dashboards name them.
"""

from __future__ import annotations

from enum import StrEnum


class SkipReason(StrEnum):
    """Why a key or a path is not synced; used as a metric label, so keep the set small."""

    INVALID_UTF8 = "invalid_utf8"
    UNSAFE_KEY = "unsafe_key"
    NAME_TOO_LONG = "name_too_long"
    KEY_TOO_LONG = "key_too_long"
    RESERVED = "reserved"
    EXCLUDED = "excluded"
    SHADOWED = "shadowed"
    TYPE_CONFLICT = "type_conflict"
    UNSUPPORTED_TYPE = "unsupported_type"
    UNREADABLE = "unreadable"
    OUTSIDE_PREFIX = "outside_prefix"
    ARCHIVED = "archived"  # GLACIER, DEEP_ARCHIVE: not readable until restored in S3
    # An SQLite database's -wal, -shm or -journal: synced only as part of its database's
    # snapshot (SYNC_SQLITE=snapshot), never on its own; counted once per path.
    SQLITE_COMPANION = "sqlite_companion"
