"""A remote version is kept as a conflict copy once, however often the conflict's pass is
retried (another S3 server failed the write after the conflict for good: 30 identical copies,
all uploaded) or the sidecar restarted."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from conftest import Bucket, eventually, in_thread, metric

from sidecar.local.conflicts import existing_conflicts


async def test_a_failing_write_after_a_conflict_keeps_one_copy(
    syncer_factory: Any, bucket: Bucket, proxy: Any, tmp_path: Path
) -> None:
    """Both sides change one file; then every conditional write is refused (412 whatever S3
    holds, as Ceph RGW answers a quoted If-Match), so the local version's upload after the
    conflict fails again and again: the S3 version is kept beside it once."""
    syncer = await syncer_factory(endpoint=proxy.endpoint_pattern, download_interval=0.5)
    folder: Path = syncer.folder
    (folder / "doc.txt").write_bytes(b"v1")
    await eventually(lambda: bucket.exists("doc.txt"))
    await syncer._running().scheduler.wait_idle()
    proxy.faults.methods = {"PUT"}  # writes; a read's If-Match still holds
    proxy.faults.refuse_conditions = True
    await in_thread(bucket.put, "doc.txt", b"remote v2")
    (folder / "doc.txt").write_bytes(b"local v2")
    await eventually(lambda: metric(syncer, "s3sync_conflicts_total") >= 1, what="the conflict")
    tries = proxy.seen["PUT"]
    await eventually(lambda: proxy.seen["PUT"] >= tries + 4, timeout=60, what="more refused writes")
    copies = existing_conflicts("doc.txt", [p.name for p in folder.iterdir()])
    assert len(copies) == 1, copies
    assert (folder / copies[0]).read_bytes() == b"remote v2"
    proxy.faults.refuse_conditions = False
    await eventually(lambda: bucket.get("doc.txt") == b"local v2", timeout=60, what="the upload")
    await eventually(lambda: in_thread(lambda: len(bucket.list_keys()) == 2), timeout=60)
    keys = await in_thread(bucket.list_keys)
    assert existing_conflicts("doc.txt", keys) == copies
    assert await in_thread(bucket.get, copies[0]) == b"remote v2"
    assert existing_conflicts("doc.txt", [p.name for p in folder.iterdir()]) == copies
