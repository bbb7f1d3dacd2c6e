"""What a database's upload sends (SYNC_SQLITE=snapshot): a consistent snapshot of it, taken
into the working folder off the event loop (local/sqlite.py), and whether S3 holds those very
bytes already (then nothing is uploaded).

A snapshot that stays locked for every try (`sqlite.Busy`), or finds the file no longer a
database, is `LocalChanged`: the pass decides again after the raced back-off, quietly (never an
error for the app, never a warning per try). After the snapshot the live path must still be the
file the decision saw (`Checks.same_file`: same inode): written since is the next change,
replaced or removed is decided again.
"""

from __future__ import annotations

import asyncio
import functools
import logging

from ..core.model import LocalEntry, RemoteEntry, is_plain_md5
from ..local import sqlite
from ..local.proof import same_as_object
from ..local.safefs import At
from ..local.workdir import discard, temp_name
from .job import Job, LocalChanged
from .workspace import Workspace

log = logging.getLogger("sidecar.upload")


async def take(ws: Workspace, job: Job, local: LocalEntry) -> tuple[At, sqlite.Snapshot]:
    """A snapshot of the database `local` at `job.rel`, in the working folder (the caller
    discards it)."""
    rel = job.rel
    metrics = ws.metrics
    temp = ws.tree.temp(temp_name())
    try:
        loop = asyncio.get_running_loop()
        snap = await loop.run_in_executor(None, sqlite.snapshot, ws.tree, rel, temp)
        metrics.sqlite_snapshot_seconds.observe(snap.seconds)
        ws.checks.same_file(job, local)  # still that database: not replaced, not gone
    except sqlite.Busy as error:
        discard(temp)
        metrics.inc(metrics.sqlite_snapshots, "busy")
        log.debug("%s: locked for every try of its snapshot; again later", rel)
        raise LocalChanged(rel) from error
    except sqlite.NotADatabase as error:
        discard(temp)
        raise LocalChanged(rel) from error
    except BaseException:
        discard(temp)
        raise
    return temp, snap


async def in_s3(fd: int, snap: sqlite.Snapshot, remote: RemoteEntry | None, chunksize: int) -> bool:
    """Whether the object `remote` holds the snapshot's bytes (`fd`): its MD5, or for a
    multipart ETag the file read again (off the loop); a guess that cannot tell is a no."""
    if remote is None or remote.is_dir or remote.size != snap.size:
        return False
    if is_plain_md5(remote.etag):
        return remote.etag == snap.md5
    proven = await asyncio.get_running_loop().run_in_executor(
        None,
        functools.partial(
            same_as_object,
            fd,
            snap.size,
            remote.etag,
            chunksize,
            remote.part_size,
            checksum=remote.checksum,
        ),
    )
    return proven is True


__all__ = ["in_s3", "take"]
