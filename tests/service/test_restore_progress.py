"""A long restore says how it goes: on a timer in the log (objects and bytes done, the rates, the
time left), in `/readyz`'s `restore` check and in the `s3sync_restore_*` gauges, while each
transfer's own line is at DEBUG; after the restore, transfers are logged at INFO again.

The figures themselves are a pure record (sidecar/engine/progress.py), tested row by row; the
service runs in this process (so that the timer's interval can be made short) against moto
behind a proxy that slows every GET, so that the restore lasts long enough to be watched."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
import signal

import pytest
from support.bucket import Bucket
from support.local_http import http_get as get
from support.metrics import scrape, series
from support.waiting import eventually, in_thread

from sidecar.engine import restore
from sidecar.engine.progress import RestoreProgress, duration_text, size_text
from sidecar.service.service import Service
from sidecar.settings.config import load_settings

# -- the figures, row by row ---------------------------------------------------------------------


def test_nothing_done_yet_has_no_rate_and_no_estimate() -> None:
    progress = RestoreProgress()
    progress.expect(100, 1000)
    progress.begin(10.0)
    assert progress.rates(12.0) == (0.0, 0.0)
    assert progress.seconds_left(12.0) is None
    assert progress.line(12.0) == (
        "restoring: 0 of 100 objects, 0 B of 1000 B, 0 objects/s, 0 B/s, time left unknown yet"
    )


@pytest.mark.parametrize(
    ("objects", "size", "done", "done_bytes", "elapsed", "left"),
    [
        # Small objects: bound by requests; the object rate says 40 s, the byte rate 10 s.
        (1000, 1_000_000, 200, 500_000, 10.0, 40.0),
        # Large objects: bound by bandwidth; 2 of 10 in 10 s says 40 s, the bytes 90 s.
        (10, 10_000_000, 2, 1_000_000, 10.0, 90.0),
        # Every byte done (directories left): the objects tell.
        (10, 100, 5, 100, 5.0, 5.0),
        # Done with more than expected (S3 changed meanwhile): nothing left, never negative.
        (10, 100, 12, 150, 6.0, 0.0),
    ],
)
def test_the_time_left_is_the_larger_of_the_two_estimates(
    objects: int, size: int, done: int, done_bytes: int, elapsed: float, left: float
) -> None:
    progress = RestoreProgress()
    progress.expect(objects, size)
    progress.begin(100.0)
    for _ in range(done - 1):
        progress.passed(0)
    progress.passed(done_bytes)
    assert progress.seconds_left(100.0 + elapsed) == pytest.approx(left)
    figures = progress.figures(100.0 + elapsed)
    assert figures["objects_done"] == done and figures["bytes_done"] == done_bytes
    assert figures["objects_per_second"] == pytest.approx(done / elapsed, abs=0.05)
    assert figures["bytes_per_second"] == round(done_bytes / elapsed)


def test_a_finished_restore_is_complete_and_keeps_its_rates() -> None:
    progress = RestoreProgress()
    progress.expect(4, 4096)
    progress.begin(0.0)
    progress.passed(1024)
    progress.passed(1024)
    progress.passed(0)  # failed three times: done, its bytes not counted
    progress.passed(1024)
    progress.finish(2.0)
    figures = progress.figures(50.0)  # long after: the rates are the restore's own
    assert figures == {
        "objects": 4,
        "objects_done": 4,
        "bytes": 4096,
        "bytes_done": 4096,
        "objects_per_second": 2.0,
        "bytes_per_second": 2048,
        "seconds_left": 0.0,
    }


@pytest.mark.parametrize(
    ("size", "text"),
    [(0, "0 B"), (1023, "1023 B"), (1536, "1.5 KiB"), (5 << 20, "5.0 MiB"), (3 << 40, "3.0 TiB")],
)
def test_sizes_read_as_people_read_them(size: int, text: str) -> None:
    assert size_text(size) == text


@pytest.mark.parametrize(
    ("seconds", "text"), [(0.4, "0s"), (59, "59s"), (75, "1m15s"), (3725, "1h02m"), (-3, "0s")]
)
def test_durations_read_as_people_read_them(seconds: float, text: str) -> None:
    assert duration_text(seconds) == text


# -- the restore of a running service ------------------------------------------------------------

SIZES = [1000 * (index + 1) for index in range(24)]  # 300,000 bytes in all


async def test_a_long_restore_reports_its_progress(
    sidecar_env: dict[str, str],
    bucket: Bucket,
    proxy,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.DEBUG, logger="sidecar")
    monkeypatch.setattr(restore, "PROGRESS_INTERVAL", 0.3)
    for index, size in enumerate(SIZES):
        await in_thread(bucket.put, f"restore/{index:02d}.bin", b"x" * size)
    proxy.faults.methods = {"GET"}
    proxy.faults.delay = 0.3  # two at a time: about 3.6 s for the 24 objects
    env = {
        **sidecar_env,
        "SYNC_ENDPOINT": proxy.endpoint_pattern,
        "SYNC_DOWNLOAD_CONCURRENCY": "2",
    }
    service = Service(load_settings(env), env)
    port = service.settings.http_port
    task = asyncio.create_task(service.run())
    seen: list[dict[str, object]] = []

    async def some_done() -> None:
        status, body = await get(port, "/readyz")
        assert status == 503
        check = json.loads(body)["checks"]["restore"]
        seen.append(check)
        assert 0 < check["objects_done"] < check["objects"]
        assert isinstance(check["seconds_left"], float) and check["seconds_left"] > 0
        samples = (await scrape(port)).samples
        assert series(samples, "s3sync_restore_objects") == check["objects"]
        assert series(samples, "s3sync_restore_bytes") == sum(SIZES)
        assert 0 < series(samples, "s3sync_restore_objects_done") < check["objects"]
        assert series(samples, "s3sync_restore_bytes_done") > 0
        assert series(samples, "s3sync_restore_objects_per_second") > 0
        assert series(samples, "s3sync_restore_bytes_per_second") > 0
        assert series(samples, "s3sync_restore_seconds_left") > 0

    try:
        await eventually(some_done, timeout=30, interval=0.05, what="the restore half done")
        proxy.faults.delay = 0
        await eventually(lambda: service.syncer.status().restore_done, timeout=30)
        status, body = await get(port, "/readyz")
        assert status == 200
        check = json.loads(body)["checks"]["restore"]
        assert check["objects"] == check["objects_done"] == seen[-1]["objects"]
        assert check["bytes"] == check["bytes_done"] == sum(SIZES)
        assert check["seconds_left"] == 0
        samples = (await scrape(port)).samples
        assert series(samples, "s3sync_restore_seconds_left") == 0
        assert series(samples, "s3sync_restore_bytes_done") == sum(SIZES)

        records = [r for r in caplog.records if r.name.startswith("sidecar")]
        listed = [r.getMessage() for r in records if r.getMessage().startswith("restore: ")]
        (found,) = listed
        assert re.fullmatch(
            rf"restore: 24 objects listed in [\d.]+s; {check['objects']} paths to look at, "
            r"293\.0 KiB in S3",
            found,
        ), found
        lines = [r for r in records if r.getMessage().startswith("restoring: ")]
        assert lines and all(r.levelno == logging.INFO for r in lines)
        pattern = re.compile(
            r"restoring: (\d+) of (\d+) objects, [\d.]+ K?i?B of 293\.0 KiB, \d+ objects/s, "
            r"[\d.]+ K?i?B/s, (about \w+ left|time left unknown yet)"
        )
        done = []
        for line in lines:
            match = pattern.fullmatch(line.getMessage())
            assert match, line.getMessage()
            done.append(int(match.group(1)))
        assert done == sorted(done), "done only grows"
        downloads = [r for r in records if r.getMessage().startswith("downloaded restore/")]
        assert len(downloads) == len(SIZES)
        assert all(r.levelno == logging.DEBUG for r in downloads), "per-file lines at DEBUG"

        # After the restore, a transfer is logged at INFO again.
        await in_thread(bucket.put, "after.txt", b"after")
        await eventually(
            lambda: [r for r in caplog.records if r.getMessage() == "downloaded after.txt"],
            timeout=30,
        )
        (after,) = [r for r in caplog.records if r.getMessage() == "downloaded after.txt"]
        assert after.levelno == logging.INFO
    finally:
        service.request_stop(signal.SIGTERM)
        assert await asyncio.wait_for(task, 60) == 0
    assert not math.isnan(series(samples, "s3sync_restore_objects_per_second"))
