"""What was last synced, kept on disk in the working folder, so that a restart on a volume that
survived (EFS, a host path) still knows it.

Without it, a restarted sidecar cannot tell "changed in S3 while I was down" from "changed
here", nor "deleted here" from "never synced": every difference becomes a conflict copy, and
files deleted in S3 come back from the folder. With it, the same decisions are made as if the
sidecar had never stopped.

SQLite from the standard library, one row per synced path, in the hidden working folder (a
fresh volume starts without one). Changes are noted in memory as they happen and written in
batches from one background thread; a crash loses at most the last batch, which only makes
those paths look never-synced: the safe direction. A batch that cannot be written (a full disk)
is kept for the next, and the failure logged once (`health`, loophealth.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor

from ..loophealth import LoopHealth
from .model import Kind, LocalEntry, RemoteEntry, Synced

log = logging.getLogger("sidecar.store")

_FORMAT = "1"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS synced (
    rel TEXT PRIMARY KEY,
    kind INTEGER NOT NULL, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
    mode INTEGER NOT NULL, ino INTEGER NOT NULL,
    etag TEXT, rsize INTEGER, last_modified TEXT, is_dir INTEGER,
    rmtime_ns INTEGER, rmode INTEGER, ctime_ns INTEGER, part_size INTEGER, checksum TEXT
);
"""
# The columns in the order of a row (`_Row`): named, since earlier versions added some later.
_SELECT = (
    "SELECT rel, kind, size, mtime_ns, mode, ino, etag, rsize, last_modified, is_dir, "
    "rmtime_ns, rmode, ctime_ns, part_size, checksum FROM synced"
)
_UPSERT = (
    "INSERT OR REPLACE INTO synced (rel, kind, size, mtime_ns, mode, ino, etag, rsize, "
    "last_modified, is_dir, rmtime_ns, rmode, ctime_ns, part_size, checksum) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_Row = tuple[
    str,
    int,
    int,
    int,
    int,
    int,
    str | None,
    int | None,
    str | None,
    int | None,
    int | None,
    int | None,
    int | None,
    int | None,
    str | None,
]


_WRITTEN_BY = "<="  # in the last_modified column: not listed yet, written by us at most then


_UNSETTLED = "~"  # at its end: seen within its Last-Modified second (RemoteEntry.unsettled)


def _last_modified_column(remote: RemoteEntry) -> str:
    """The Last-Modified we know, or, for our own write not listed yet, the server's clock
    when it answered us (so a restart can still tell another client's later change); marked
    when it was seen within its second."""
    column = remote.last_modified
    if not column and remote.written_by:
        column = _WRITTEN_BY + remote.written_by
    return column + _UNSETTLED if remote.unsettled else column


def _row(rel: str, synced: Synced) -> _Row:
    local, remote = synced.local, synced.remote
    return (
        rel,
        int(local.kind),
        local.size,
        local.mtime_ns,
        local.mode,
        local.ino,
        remote.etag if remote else None,
        remote.size if remote else None,
        _last_modified_column(remote) if remote else None,
        int(remote.is_dir) if remote else None,
        remote.mtime_ns if remote else None,
        remote.mode if remote else None,
        local.ctime_ns,
        remote.part_size if remote and remote.part_size else None,
        remote.checksum if remote and remote.checksum else None,
    )


def _synced(row: _Row) -> Synced:
    (_, kind, size, mtime_ns, mode, ino, etag, rsize, last_modified, is_dir, rmtime, rmode) = row[
        :12
    ]
    ctime, part_size, checksum = row[12], row[13], row[14]
    remote = None
    if etag is not None:
        column = last_modified or ""
        unsettled = column.endswith(_UNSETTLED)
        known, _, written_by = column.removesuffix(_UNSETTLED).partition(_WRITTEN_BY)
        remote = RemoteEntry(
            etag,
            rsize or 0,
            known,
            bool(is_dir),
            rmtime,
            rmode,
            written_by=written_by,
            unsettled=unsettled,
            part_size=part_size or 0,
            checksum=checksum or "",
        )
    return Synced(LocalEntry(Kind(kind), size, mtime_ns, mode, ino, ctime or 0), remote)


class StateUnavailable(Exception):
    """The saved state is there but cannot be read now (a full disk, an I/O error, a lock held
    elsewhere): nothing may be decided without it, so the start stops, touching nothing."""


# SQLite's own verdicts (`sqlite_errorname`, Python 3.11+), by their primary code: only these
# prove the file is not a database we can ever read; any other error may pass (ENOSPC, EIO,
# a lock) and leaves the file as it is.
_CORRUPT = ("SQLITE_CORRUPT", "SQLITE_NOTADB")


def _proven_corrupt(error: BaseException) -> bool:
    if isinstance(error, ValueError | TypeError):  # a row no version of ours wrote
        return True
    name = getattr(error, "sqlite_errorname", "") or ""
    return isinstance(name, str) and name.startswith(_CORRUPT)


class SyncedStore:
    def __init__(self, path: str, identity: str) -> None:
        self._path = path
        self._identity = identity  # endpoint, bucket, prefix, folder: a state for another is void
        self._pending: dict[str, Synced | None] = {}
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="state-store")
        self._connection: sqlite3.Connection | None = None
        self.health = LoopHealth[Exception](
            log, failing="cannot save the sync state (%s); retrying", level=logging.ERROR
        )
        self.saved_etags_md5: bool | None = None  # proof.EtagKnowledge, as last saved
        self._pending_meta: dict[str, str] = {}

    # -- in the store's thread -----------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        if self._connection is None:
            connection = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            connection.executescript(_SCHEMA)
            columns = {row[1] for row in connection.execute("PRAGMA table_info(synced)")}
            added = (("ctime_ns", "INTEGER"), ("part_size", "INTEGER"), ("checksum", "TEXT"))
            for column, kind in added:  # saved by an earlier version: unknown
                if column not in columns:
                    connection.execute(f"ALTER TABLE synced ADD COLUMN {column} {kind}")
            self._connection = connection
        return self._connection

    def _load(self) -> dict[str, Synced]:
        """The saved records, if they are this folder's. A state proven corrupt or proven
        another's (bucket, prefix, folder, format) is set aside under another name, never
        deleted, and the start goes on without it; one that cannot be read now raises
        `StateUnavailable` and is left exactly as it is (seed: a full disk at start made the
        old code delete it, and deletions made while down were undone)."""
        try:
            connection = self._connect()
            meta = dict(connection.execute("SELECT key, value FROM meta").fetchall())
            if meta and (meta.get("format") != _FORMAT or meta.get("identity") != self._identity):
                self._set_aside(
                    "foreign",
                    "the saved sync state is for another bucket, prefix or folder (or an older "
                    "format)",
                )
                return {}
            if not meta:
                self._claim(self._connect())
                return {}
            etags = meta.get("etags")
            self.saved_etags_md5 = None if etags is None else etags == "md5"
            rows = connection.execute(_SELECT).fetchall()
            return {row[0]: _synced(row) for row in rows}
        except (sqlite3.Error, ValueError, TypeError) as error:
            if not _proven_corrupt(error):
                self._disconnect()
                raise StateUnavailable(
                    f"the saved sync state {self._path} cannot be read now ({error}); it is "
                    "left as it is, and nothing is synced until it can be read (free space, "
                    "or fix what the error names, then restart)"
                ) from error
            self._set_aside(
                "corrupt", f"the saved sync state cannot be read: it is not a database ({error})"
            )
            return {}
        except OSError as error:
            self._disconnect()
            raise StateUnavailable(
                f"the saved sync state {self._path} cannot be read now ({error}); it is left "
                "as it is"
            ) from error

    def _claim(self, connection: sqlite3.Connection) -> None:
        """A new state file: say whose it is."""
        connection.execute("BEGIN")
        connection.executemany(
            "INSERT OR REPLACE INTO meta VALUES (?, ?)",
            [("format", _FORMAT), ("identity", self._identity)],
        )
        connection.execute("COMMIT")

    def _disconnect(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(sqlite3.Error):
                self._connection.close()
            self._connection = None

    def _set_aside(self, why: str, reason: str) -> None:
        """Keep the state file (and its journal) under another name, and start a new one."""
        self._disconnect()
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
        aside = f"{self._path}.{why}-{stamp}"
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.rename(self._path + suffix, aside + suffix)
        log.warning(
            "%s: kept as %s; starting without it (nothing is deleted at start without a saved "
            "state)",
            reason,
            aside,
        )
        self._claim(self._connect())

    def _write(self, batch: dict[str, Synced | None], meta: dict[str, str]) -> None:
        connection = self._connect()
        upserts = [_row(rel, synced) for rel, synced in batch.items() if synced is not None]
        deletes = [(rel,) for rel, synced in batch.items() if synced is None]
        connection.execute("BEGIN")
        try:
            connection.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", meta.items())
            connection.executemany(
                _UPSERT,
                upserts,
            )
            connection.executemany("DELETE FROM synced WHERE rel = ?", deletes)
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")

    def _close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    # -- from the event loop -------------------------------------------------------------

    async def load(self) -> dict[str, Synced]:
        return await asyncio.get_running_loop().run_in_executor(self._thread, self._load)

    def note(self, rel: str, synced: Synced | None) -> None:
        self._pending[rel] = synced

    def note_etags(self, md5: bool) -> None:
        """Save what proof.EtagKnowledge learned (with the next flush)."""
        self._pending_meta["etags"] = "md5" if md5 else "other"

    async def flush(self) -> None:
        if not self._pending and not self._pending_meta:
            return
        batch, self._pending = self._pending, {}
        meta, self._pending_meta = self._pending_meta, {}
        try:
            await asyncio.get_running_loop().run_in_executor(self._thread, self._write, batch, meta)
        except (sqlite3.Error, OSError) as error:
            # Keep the batch for the next try (a full disk may clear). Meanwhile the file only
            # lags behind, which makes paths look never-synced after a restart: the safe side.
            self._pending = {**batch, **self._pending}
            self._pending_meta = {**meta, **self._pending_meta}
            self.health.failed(error)
        else:
            self.health.succeeded()

    async def close(self) -> None:
        await self.flush()
        await asyncio.get_running_loop().run_in_executor(self._thread, self._close)
        self._thread.shutdown(wait=True)
