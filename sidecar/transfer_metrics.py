"""What was synced, a group of `metrics.Metrics` (defined there with the others, apart only for
the module's size): transfers and their bytes, deletes, metadata copies, conflicts, flushes,
renames carried without their bytes, SQLite snapshots."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

# Label values known in advance: their series are created at 0 when the metrics are.
RESULTS = ("ok", "error")
SIDES = ("local", "remote")
RENAME_HOWS = ("server_copy", "local_move")  # a copy in S3, a rename here
RENAME_RESULTS = ("ok", "fallback")
SQLITE_SNAPSHOT_RESULTS = ("uploaded", "unchanged", "busy")


class Transfers:
    """What was synced: transfers, deletes, metadata copies, conflicts, flushes, renames,
    snapshots."""

    def _define_transfers(self, r: CollectorRegistry) -> None:
        self.uploads = Counter(
            "s3sync_uploads",
            "Files, symlinks and directory markers uploaded, by result.",
            ["result"],
            registry=r,
        )
        self.downloads = Counter(
            "s3sync_downloads",
            "Objects downloaded into the folder, by result.",
            ["result"],
            registry=r,
        )
        self.deletes = Counter(
            "s3sync_deletes",
            "Deletes propagated, by side deleted (local or remote) and result.",
            ["side", "result"],
            registry=r,
        )
        self.metadata_updates = Counter(
            "s3sync_metadata_updates",
            "Metadata-only changes (mode, mtime) propagated, by side.",
            ["side", "result"],
            registry=r,
        )
        self.sqlite_snapshots = Counter(
            "s3sync_sqlite_snapshots",
            "Consistent snapshots of SQLite databases taken (SYNC_SQLITE=snapshot), by result: "
            "'uploaded', 'unchanged' (the same bytes as the version in S3: not uploaded), "
            "'busy' (locked for every try: taken again later).",
            ["result"],
            registry=r,
        )
        self.sqlite_snapshot_seconds = Histogram(
            "s3sync_sqlite_snapshot_duration_seconds",
            "Time one snapshot of an SQLite database took (the copy and its MD5).",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
            registry=r,
        )
        for result in SQLITE_SNAPSHOT_RESULTS:
            self.sqlite_snapshots.labels(result)
        self.conflicts = Counter(
            "s3sync_conflicts",
            "Paths changed on both sides; both versions were kept.",
            registry=r,
        )
        self.uploaded_bytes = Counter(
            "s3sync_uploaded_bytes", "Bytes of file content uploaded.", registry=r
        )
        self.downloaded_bytes = Counter(
            "s3sync_downloaded_bytes", "Bytes of object content downloaded.", registry=r
        )
        self.aborted_changed = Counter(
            "s3sync_uploads_abandoned_changed",
            "Uploads abandoned because the file changed while it was read (re-uploaded after).",
            registry=r,
        )
        self.renames = Counter(
            "s3sync_renames",
            "Renames carried without their bytes, by how (server_copy: a CopyObject for a local "
            "one; local_move: a rename here for one in S3) and result (fallback: transferred).",
            ["how", "result"],
            registry=r,
        )
        self.bytes_saved = Counter(
            "s3sync_bytes_saved", "File bytes renames did not transfer.", ["how"], registry=r
        )
        self.flushes = Counter(
            "s3sync_flushes",
            "Durability barriers (POST /flush, Syncer.flush): 'ok' when every change made "
            "before the call reached S3 in time, 'timeout' otherwise.",
            ["result"],
            registry=r,
        )
        for result in RESULTS:
            for counter in (self.uploads, self.downloads):
                counter.labels(result)
            for side in SIDES:
                self.deletes.labels(side, result)
                self.metadata_updates.labels(side, result)
        for how in RENAME_HOWS:
            self.bytes_saved.labels(how)
            for result in RENAME_RESULTS:
                self.renames.labels(how, result)
        self.flushes.labels("ok")
        self.flushes.labels("timeout")


__all__ = ["RESULTS", "Transfers"]
