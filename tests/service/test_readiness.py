"""`/readyz` is true as soon as the restore is done and the folder is being synced, however long
the restore took."""

from __future__ import annotations

from typing import Any

from support.bucket import Bucket
from support.waiting import in_thread


async def test_ready_at_once_after_a_restore_longer_than_three_polls(
    syncer_factory: Any, bucket: Bucket, proxy: Any
) -> None:
    """Ten objects fetched one at a time through a proxy that holds every GET half a second:
    the restore takes longer than three poll intervals (1 s) plus twice its listing. Its
    listing is as fresh as its end: ready the moment `start` returns (before, `/readyz` said
    the poll was failing until the next listing: 10 s on a 10 s interval)."""
    for index in range(10):
        await in_thread(bucket.put, f"f{index}.txt", b"x")
    proxy.faults.methods = {"GET"}
    proxy.faults.delay = 0.5
    syncer = await syncer_factory(
        endpoint=proxy.endpoint_pattern, download_interval=1, concurrent_downloads=1
    )
    checks = syncer.readiness()
    assert checks["restore"]["ok"]
    assert checks["poll"]["ok"], checks
    proxy.faults.delay = 0
