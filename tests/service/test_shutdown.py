"""Stopping: on SIGTERM (or `Syncer.stop()`) the sidecar finishes what is queued and in flight,
within its timeout, then exits 0; if anything is left it names each path and exits 1; a second
signal exits at once. Real processes, moto, real inotify: a burst in flight, an overflow the
stop must rescan, a `tar -xf` just before, S3 unreachable. (Stopping with S3 failing, in
process: s3/test_faults.py; directories inotify cannot watch: sync/test_unwatched.py.)"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import tarfile
import time
from pathlib import Path
from typing import Any

from support.bucket import Bucket
from support.environments import sidecar_environment
from support.inotify_queue import small_inotify_queue
from support.metrics import metric
from support.s3_server import REGION
from support.waiting import eventually, in_thread


async def test_sigterm_with_a_burst_in_flight(run_sidecar, sidecar_env, bucket: Bucket) -> None:
    port = int(sidecar_env["SYNC_HTTP_PORT"])
    process = run_sidecar([], sidecar_env)
    await process.answering(port, "/readyz")
    folder = Path(sidecar_env["SYNC_DIR"])
    for index in range(200):
        (folder / f"late-{index:03d}").write_bytes(str(index).encode())
    process.process.send_signal(signal.SIGTERM)
    assert await process.wait() == 0, process.text()
    keys = await in_thread(bucket.list_keys)
    assert keys == [f"late-{index:03d}" for index in range(200)]


async def test_clean_stop_after_tar_extract_exits_zero(
    run_sidecar: Any, bucket: Bucket, tmp_path: Path
) -> None:
    source = tmp_path / "source"
    for number in range(3):
        sub = source / f"dir{number}" / "inner"
        sub.mkdir(parents=True)
        (sub / "file.txt").write_bytes(b"tar content %d" % number)
        os.utime(sub, (1_600_000_000, 1_600_000_000))
        os.utime(sub.parent, (1_600_000_000, 1_600_000_000))
    archive = tmp_path / "tree.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(source, arcname="tree")
    folder = tmp_path / "tar-target"
    sidecar = run_sidecar([], sidecar_environment(bucket, folder, SYNC_POLL_INTERVAL="0.5"))
    await sidecar.ready()
    subprocess.run(["tar", "-xf", str(archive), "-C", str(folder)], check=True)
    expected = {f"tree/dir{n}/inner/file.txt" for n in range(3)}
    await eventually(lambda: expected <= set(bucket.list_keys()), timeout=30)
    sidecar.process.send_signal(signal.SIGTERM)
    assert await sidecar.wait() == 0, sidecar.text()
    assert "local changes not uploaded" not in sidecar.text()


async def test_stop_right_after_an_overflow_uploads_what_the_rescan_finds(
    run_sidecar: Any, bucket: Bucket, tmp_path: Path
) -> None:
    folder = tmp_path / "overflow"
    with small_inotify_queue(32):
        sidecar = run_sidecar([], sidecar_environment(bucket, folder, SYNC_POLL_INTERVAL="0.5"))
        await sidecar.ready()
    pid = sidecar.process.pid
    os.kill(pid, signal.SIGSTOP)
    try:
        for number in range(40):  # 3 events each: the queue of 32 overflows
            (folder / f"burst-{number}.txt").write_bytes(b"x" * number)
        # A deep new tree makes the rescan take a while: it walks one level at a time.
        deep = folder.joinpath(*["d"] * 60)
        deep.mkdir(parents=True)
        (deep / "one-more.txt").write_bytes(b"written last")
        os.kill(pid, signal.SIGTERM)  # handled as it wakes, with the overflow
    finally:
        os.kill(pid, signal.SIGCONT)
    assert await sidecar.wait() == 0, sidecar.text()
    keys = await in_thread(bucket.list_keys)
    assert "inotify queue overflowed" in sidecar.text()
    assert "/".join(["d"] * 60) + "/one-more.txt" in keys, sidecar.text()
    assert {f"burst-{n}.txt" for n in range(40)} <= set(keys)
    assert "every local change is in S3" in sidecar.text()


async def test_stop_in_the_same_instant_as_an_overflow_uploads_what_the_rescan_finds(
    syncer_factory: Any, bucket: Bucket, tmp_path: Path
) -> None:
    """In-process, so the overflow and the stop land in one turn of the event loop: the test
    writes without yielding (the watcher cannot read meanwhile), then stops at once. The queue
    is filled with writes to two open files (they queue no upload), and the folder holds many
    excluded files, so the rescan takes a while after the scheduler has gone idle."""
    folder = tmp_path / "folder"
    bulk = folder / "bulk"
    bulk.mkdir(parents=True)
    for number in range(20_000):
        (bulk / f"{number}.skip").touch()
    with small_inotify_queue(32):
        syncer = await syncer_factory(directory=folder, exclude_local=r".*\.skip$")
    with open(folder / "a.log", "wb") as a, open(folder / "b.log", "wb") as b:
        for _ in range(40):  # alternating, so inotify cannot merge them: the queue overflows
            for file in (a, b):
                file.write(b"x")
                file.flush()
    (bulk / "last.txt").write_bytes(b"written last")
    left = await syncer.stop()
    assert metric(syncer, "s3sync_inotify_overflows_total") >= 1
    assert left == []
    keys = set(await in_thread(bucket.list_keys))
    assert "bulk/last.txt" in keys
    assert {"a.log", "b.log"} <= keys


async def test_stop_returns_within_its_default_timeout_when_uploads_keep_failing(
    syncer_factory: Any, bucket: Bucket, proxy: Any
) -> None:
    from sidecar.engine.syncer import DEFAULT_STOP_TIMEOUT

    syncer = await syncer_factory(endpoint=proxy.endpoint_pattern)
    proxy.faults.methods = {"PUT"}
    proxy.faults.fail_next = 10**9
    (syncer.folder / "stuck.txt").write_bytes(b"cannot be uploaded")
    await eventually(lambda: proxy.seen["PUT"] > 0, what="a failing upload")
    started = time.monotonic()
    left = await asyncio.wait_for(syncer.stop(), DEFAULT_STOP_TIMEOUT + 15)
    assert time.monotonic() - started < DEFAULT_STOP_TIMEOUT + 10
    assert left == ["stuck.txt"]


async def test_sigterm_with_s3_unreachable_names_what_is_left(
    run_sidecar, bucket: Bucket, proxy, tmp_path: Path
) -> None:
    folder = tmp_path / "data"
    sidecar = run_sidecar(
        [str(folder), bucket.name, proxy.endpoint_pattern, REGION],
        {**bucket.server.env(), "SYNC_SHUTDOWN_TIMEOUT": "2"},
    )
    await sidecar.ready()
    proxy.faults.down = True
    (folder / "unsent.txt").write_bytes(b"no way out")
    started = asyncio.get_running_loop().time()
    sidecar.process.send_signal(signal.SIGTERM)
    assert await sidecar.wait() == 1
    assert asyncio.get_running_loop().time() - started < 15
    assert "unsent.txt" in sidecar.text()


async def test_second_signal_exits_at_once(
    run_sidecar, bucket: Bucket, proxy, tmp_path: Path
) -> None:
    folder = tmp_path / "data"
    sidecar = run_sidecar(
        [str(folder), bucket.name, proxy.endpoint_pattern, REGION],
        {**bucket.server.env(), "SYNC_SHUTDOWN_TIMEOUT": "600"},
    )
    await sidecar.ready()
    proxy.faults.down = True
    (folder / "stuck.txt").write_bytes(b"stuck")
    sidecar.process.send_signal(signal.SIGTERM)
    await eventually(lambda: "SIGTERM received" in sidecar.text())
    sidecar.process.send_signal(signal.SIGTERM)
    assert await sidecar.wait(timeout=10) == 128 + signal.SIGTERM
