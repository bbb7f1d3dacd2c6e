"""Ordering: one path is never synced by two workers at once, changes that arrive meanwhile
are coalesced into one more pass, and different paths proceed concurrently. Then the same
promise end to end: a churn of writes and deletes on one key reaches S3 in order."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from collections.abc import Callable

import pytest
from support.bucket import Bucket
from support.waiting import eventually, in_thread

from sidecar.core.scheduler import CHECK, CHECK_WORKERS, DOWNLOAD, UPLOAD, Scheduler


class Held:
    """A scheduler's `process` that holds every pass until `release` is set, counting the
    passes under way at once by `key(rel, pool)`, the most seen, and every pass by path."""

    def __init__(self, key: Callable[[str, str], str]) -> None:
        self.key = key
        self.running: Counter[str] = Counter()
        self.most: Counter[str] = Counter()
        self.passes: Counter[str] = Counter()
        self.release = asyncio.Event()

    async def __call__(self, rel: str, pool: str) -> None:
        key = self.key(rel, pool)
        self.running[key] += 1
        self.most[key] = max(self.most[key], self.running[key])
        self.passes[rel] += 1
        await self.release.wait()
        self.running[key] -= 1


async def test_one_path_is_never_processed_twice_at_once() -> None:
    process = Held(lambda rel, pool: rel)
    running, most, passes, release = process.running, process.most, process.passes, process.release
    scheduler = Scheduler({UPLOAD: 4, DOWNLOAD: 2})
    scheduler.start(process)
    try:
        scheduler.submit("a", UPLOAD)
        await eventually(lambda: passes["a"] == 1)
        for _ in range(10):  # changes while "a" is being synced: one more pass, not ten
            scheduler.submit("a", UPLOAD)
            scheduler.submit("a", DOWNLOAD)
        for rel in ("b", "c", "d"):
            scheduler.submit(rel, UPLOAD)
        await eventually(lambda: sum(running.values()) == 4, what="four paths at once")
        assert scheduler.running(UPLOAD) == 4
        release.set()
        await asyncio.wait_for(scheduler.wait_idle(), 5)
    finally:
        await scheduler.close()
    assert passes == {"a": 2, "b": 1, "c": 1, "d": 1}
    assert max(most.values()) == 1
    assert scheduler.pending_local() == ["a", "b", "c", "d"]  # nobody called done()


async def test_a_change_cancels_a_waiting_retry() -> None:
    passes: list[str] = []

    async def process(rel: str, pool: str) -> None:
        passes.append(pool)

    scheduler = Scheduler({UPLOAD: 1, DOWNLOAD: 1})
    scheduler.start(process)
    try:
        scheduler.later("x", DOWNLOAD, 3600)
        assert scheduler.has_work() and scheduler.delayed() == 1
        scheduler.submit("x", DOWNLOAD)  # something changed: no need to wait for the backoff
        await asyncio.wait_for(scheduler.wait_idle(), 5)
        assert passes == [DOWNLOAD]
        scheduler.later("y", UPLOAD, 3600)
        scheduler.expedite()  # shutting down: retry now
        await asyncio.wait_for(scheduler.wait_idle(), 5)
        assert passes == [DOWNLOAD, UPLOAD]
    finally:
        await scheduler.close()


async def test_an_expedited_retry_does_not_also_fire_when_its_time_comes() -> None:
    """A stop retries a failing path now; the timer of its back-off is cancelled, or it fires
    later and takes the next retry's place: two chains of tries, one every second while each
    line said two (the stop drain of the field report's item 8)."""
    passes: list[float] = []
    loop = asyncio.get_running_loop()

    async def process(rel: str, pool: str) -> None:
        passes.append(loop.time())
        scheduler.later(rel, pool, 0.4)  # fails again: the next try in 0.4 s

    scheduler = Scheduler({UPLOAD: 1})
    scheduler.start(process)
    try:
        scheduler.later("x", UPLOAD, 0.2)
        scheduler.expedite()
        await asyncio.sleep(1.5)
    finally:
        await scheduler.close()
    gaps = [later - earlier for earlier, later in itertools.pairwise(passes)]
    assert len(passes) in (4, 5), passes  # at once, then every 0.4 s; not a second chain
    assert min(gaps) >= 0.35, gaps


async def test_a_scan_that_finds_a_path_being_looked_at_says_no_local_change() -> None:
    """A directory without a watch is listed every interval, each known path in it reported
    with nothing new to say (`rescan`). One reported while a pass over it is under way (a key
    only S3 holds, failing to be placed in a folder the app made private) is no local change:
    the pass under way looks at the folder anyway. Before, it became one, and a stop waited its
    whole timeout for it and exited 1 (the non-root lane, 1 run in a full suite)."""
    process = Held(lambda rel, pool: rel)
    scheduler = Scheduler({UPLOAD: 1, DOWNLOAD: 1})
    scheduler.start(process)
    try:
        scheduler.submit("private/report.csv", DOWNLOAD)  # a listing found it
        await eventually(lambda: process.running["private/report.csv"] == 1)
        scheduler.submit("private/report.csv", UPLOAD, rescan=True)  # the scan, meanwhile
        scheduler.submit("private/other.csv", UPLOAD, rescan=True)  # one not being looked at
        assert scheduler.pending_local() == ["private/other.csv"]
        process.release.set()
        await asyncio.wait_for(scheduler.wait_idle(), 5)
        assert process.passes["private/report.csv"] == 2  # looked at again all the same
        assert scheduler.pending_local() == ["private/other.csv"]
        scheduler.submit("private/report.csv", UPLOAD)  # an event: a local change
        assert scheduler.pending_local() == ["private/other.csv", "private/report.csv"]
    finally:
        await scheduler.close()


async def test_oldest_local_change_is_kept_until_done() -> None:
    async def process(rel: str, pool: str) -> None:
        return None

    scheduler = Scheduler({UPLOAD: 1, DOWNLOAD: 1})
    scheduler.start(process)
    try:
        assert scheduler.oldest_local_change() is None
        scheduler.submit("first", UPLOAD)
        first = scheduler.oldest_local_change()
        scheduler.submit("second", UPLOAD)
        scheduler.submit("remote-only", DOWNLOAD)
        await asyncio.wait_for(scheduler.wait_idle(), 5)
        assert scheduler.oldest_local_change() == first
        scheduler.done("first")
        assert scheduler.pending_local() == ["second"]
        scheduler.done("second")
        assert scheduler.oldest_local_change() is None
    finally:
        await scheduler.close()


async def test_checks_go_two_at_a_time_beside_the_downloads() -> None:
    """What a listing hands back only to learn metadata (the HEAD after our own upload's
    second) goes to the check pool: two at a time, however many there are, while remote
    content changes still use the whole download pool."""
    process = Held(lambda rel, pool: pool)
    running, most, release = process.running, process.most, process.release
    scheduler = Scheduler({UPLOAD: 4, DOWNLOAD: 8, CHECK: CHECK_WORKERS})
    scheduler.start(process)
    try:
        for index in range(50):
            scheduler.submit(f"settled-{index}", CHECK)
        for index in range(6):
            scheduler.submit(f"changed-{index}", DOWNLOAD)
        await eventually(lambda: running[DOWNLOAD] == 6, what="every download at once")
        assert running[CHECK] == CHECK_WORKERS == 2
        assert scheduler.queued(CHECK) == 48
        release.set()
        await asyncio.wait_for(scheduler.wait_idle(), 5)
    finally:
        await scheduler.close()
    assert most == {CHECK: 2, DOWNLOAD: 6}


async def test_a_pool_without_workers_hands_its_paths_to_the_download_pool() -> None:
    passes: list[tuple[str, str]] = []

    async def process(rel: str, pool: str) -> None:
        passes.append((rel, pool))

    scheduler = Scheduler({UPLOAD: 1, DOWNLOAD: 1})
    scheduler.start(process)
    try:
        scheduler.submit("x", CHECK)
        await asyncio.wait_for(scheduler.wait_idle(), 5)
    finally:
        await scheduler.close()
    assert passes == [("x", DOWNLOAD)]


async def test_paths_submitted_before_the_start_wait_and_a_second_start_is_refused() -> None:
    passes: list[tuple[str, str]] = []

    async def process(rel: str, pool: str) -> None:
        passes.append((rel, pool))

    scheduler = Scheduler({UPLOAD: 1, DOWNLOAD: 1})
    scheduler.submit("early", UPLOAD)  # the watch reports before the workers start
    assert scheduler.queued(UPLOAD) == 1
    scheduler.start(process)
    try:
        with pytest.raises(RuntimeError, match="already started"):
            scheduler.start(process)
        await asyncio.wait_for(scheduler.wait_idle(), 5)
    finally:
        await scheduler.close()
    assert passes == [("early", UPLOAD)]
    assert len(scheduler.tasks) == 0  # closed: the one start's two workers are gone


async def test_writes_and_deletes_of_one_key_reach_s3_in_order(
    syncer_factory, bucket: Bucket
) -> None:
    await in_thread(
        lambda: bucket.client.put_bucket_versioning(
            Bucket=bucket.name, VersioningConfiguration={"Status": "Enabled"}
        )
    )
    syncer = await syncer_factory()
    path = syncer.folder / "churn.txt"
    for index in range(40):
        path.write_bytes(f"version {index:02d}".encode())
        if index % 4 == 3:
            path.unlink()
        if index % 10 == 9:
            await asyncio.sleep(0.05)  # pacing the writer, not waiting for the sidecar
    path.write_bytes(b"version 99")

    await eventually(lambda: in_thread(lambda: bucket.get("churn.txt") == b"version 99"))
    await asyncio.wait_for(syncer._running().scheduler.wait_idle(), 30)
    listing = await in_thread(
        lambda: bucket.client.list_object_versions(Bucket=bucket.name, Prefix="churn.txt")
    )
    numbers = []
    for version in reversed(listing.get("Versions", [])):  # S3 lists the newest first
        body = await in_thread(
            lambda v=version["VersionId"]: bucket.client.get_object(
                Bucket=bucket.name, Key="churn.txt", VersionId=v
            )["Body"].read()
        )
        numbers.append(int(body.split()[1]))
    assert numbers == sorted(numbers), f"an older version overtook a newer one: {numbers}"
    assert numbers[-1] == 99
    assert len(numbers) < 41, "coalesced: not every intermediate version was uploaded"
