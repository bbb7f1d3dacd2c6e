"""S3 misbehaving (500s, dropped connections, unreachable) and inotify overflowing: logged,
counted, retried, never fatal, and no change lost. Also `stop()` draining the queue."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from support.bucket import Bucket
from support.metrics import metric
from support.waiting import eventually, in_thread


async def _probed(syncer, bucket: Bucket) -> None:
    """The first write waits for the probe of what S3 honours (s3/probe.py), whose own PUTs
    are not counted: one file synced first, so the faults meet the sidecar's own requests."""
    (syncer.folder / "first.txt").write_bytes(b"first")
    await eventually(lambda: in_thread(lambda: bucket.exists("first.txt")))


async def test_server_errors_are_retried(syncer_factory, bucket: Bucket, proxy) -> None:
    syncer = await syncer_factory(endpoint=proxy.endpoint_pattern)
    await _probed(syncer, bucket)
    proxy.faults.methods = {"PUT"}
    proxy.faults.fail_next = 3
    (syncer.folder / "f.txt").write_bytes(b"survives 500s")
    await eventually(lambda: in_thread(lambda: bucket.get("f.txt") == b"survives 500s"))
    assert metric(syncer, "s3sync_s3_requests_total", operation="PutObject", status="500") == 3
    assert (
        metric(syncer, "s3sync_s3_retries_total", operation="PutObject", reason="InternalError")
        == 3
    )


async def test_dropped_connections_are_retried(syncer_factory, bucket: Bucket, proxy) -> None:
    syncer = await syncer_factory(endpoint=proxy.endpoint_pattern)
    await _probed(syncer, bucket)
    proxy.faults.methods = {"PUT"}
    proxy.faults.drop_next = 2
    (syncer.folder / "g.txt").write_bytes(b"survives drops")
    await eventually(lambda: in_thread(lambda: bucket.get("g.txt") == b"survives drops"))
    # aiohttp itself retries a request once when a reused connection turns out closed.
    assert (
        metric(syncer, "s3sync_s3_retries_total", operation="PutObject", reason="connection") >= 1
    )


async def test_unreachable_s3_loses_nothing(syncer_factory, bucket: Bucket, proxy) -> None:
    syncer = await syncer_factory(endpoint=proxy.endpoint_pattern)
    proxy.faults.down = True
    for index in range(20):
        (syncer.folder / f"offline-{index}.txt").write_bytes(str(index).encode())
    # A listing fails only after its eight attempts: up to 25.4 s of jittered backoff (0.1 s
    # doubling, drawn from zero up), past 19 s in 7 % of runs. The test's 20 s default made
    # it flaky.
    await eventually(
        lambda: metric(syncer, "s3sync_polls_total", result="error") >= 1,
        timeout=60,
        what="a failed poll",
    )
    await eventually(
        lambda: metric(syncer, "s3sync_uploads_total", result="error") >= 1,
        timeout=60,
        what="uploads failing while S3 is away",
    )
    assert syncer.status().s3_reachable is False
    assert metric(syncer, "s3sync_oldest_pending_change_age_seconds") > 0
    proxy.faults.down = False

    def all_there() -> None:
        for index in range(20):
            assert bucket.get(f"offline-{index}.txt") == str(index).encode()

    await eventually(lambda: in_thread(all_there), timeout=90, what="every file after recovery")
    await eventually(lambda: syncer.status().s3_reachable)
    await eventually(lambda: metric(syncer, "s3sync_oldest_pending_change_age_seconds") == 0)


async def test_inotify_overflow_triggers_a_rescan(syncer_factory, bucket: Bucket) -> None:
    limit = int(Path("/proc/sys/fs/inotify/max_queued_events").read_text())
    syncer = await syncer_factory()
    folder: Path = syncer.folder
    noisy = [folder / "noisy-a", folder / "noisy-b"]
    for path in noisy:
        path.write_bytes(b"n")
    await eventually(lambda: in_thread(lambda: bucket.exists("noisy-b")))
    # Block the event loop (the sidecar runs in it) while the kernel queue fills past its limit,
    # then create files whose events are therefore lost. (Alternate two files: the kernel
    # merges an event identical to the one before it.)
    for index in range(limit + 100):
        os.utime(noisy[index % 2], ns=(index, index))
    (folder / "late").mkdir()
    for index in range(30):
        (folder / "late" / f"{index}.txt").write_bytes(str(index).encode())
    (folder / "late-top.txt").write_bytes(b"top")

    def rescanned() -> None:
        assert bucket.get("late-top.txt") == b"top"
        for index in range(30):
            assert bucket.get(f"late/{index}.txt") == str(index).encode()

    await eventually(lambda: in_thread(rescanned), timeout=60, what="lost events recovered")
    assert metric(syncer, "s3sync_inotify_overflows_total") >= 1
    # Watching still works after the rescan.
    (folder / "late" / "after.txt").write_bytes(b"after")
    await eventually(lambda: in_thread(lambda: bucket.get("late/after.txt") == b"after"))


async def test_stop_finishes_queued_uploads(syncer_factory, bucket: Bucket) -> None:
    syncer = await syncer_factory()
    for index in range(150):
        (syncer.folder / f"q-{index:03d}").write_bytes(b"queued")
    left = await syncer.stop(timeout=60)
    assert left == []
    keys = await in_thread(bucket.list_keys)
    assert keys == [f"q-{index:03d}" for index in range(150)]


async def test_stop_with_s3_down_names_what_is_left(syncer_factory, bucket: Bucket, proxy) -> None:
    syncer = await syncer_factory(endpoint=proxy.endpoint_pattern)
    proxy.faults.down = True
    (syncer.folder / "stuck-1.txt").write_bytes(b"1")
    (syncer.folder / "stuck-2.txt").write_bytes(b"2")
    started = asyncio.get_running_loop().time()
    left = await syncer.stop(timeout=2)
    assert asyncio.get_running_loop().time() - started < 10
    assert left == ["stuck-1.txt", "stuck-2.txt"]
