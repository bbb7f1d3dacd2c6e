"""The durability barrier: `Syncer.flush`, `POST /flush` and `s3sync-sidecar flush`. Every
test holds S3's answers in the fault proxy, so a flush that returned early would be seen: what
it promised is checked in the bucket at once, with no waiting."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

from support.bucket import Bucket
from support.environments import sidecar_environment
from support.local_http import free_port
from support.metrics import metric
from support.sidecars import SCRIPT
from support.waiting import eventually, in_thread


async def test_flush_returns_once_every_earlier_change_is_in_s3(
    syncer_factory: Any, bucket: Bucket, proxy: Any
) -> None:
    syncer = await syncer_factory(endpoint=proxy.endpoint_pattern)
    folder: Path = syncer.folder
    (folder / "old.txt").write_bytes(b"to be deleted")
    await eventually(lambda: bucket.exists("old.txt"))
    await syncer._running().scheduler.wait_idle()

    proxy.faults.methods = {"PUT", "DELETE"}
    proxy.faults.delay = 0.5  # every write waits in the proxy: an early return would show
    for number in range(5):
        (folder / f"checkpoint-{number}.bin").write_bytes(b"%d" % number * 1000)
    (folder / "old.txt").unlink()
    (folder / "empty-dir").mkdir()
    os.rename(folder / "checkpoint-4.bin", folder / "renamed.bin")
    result = await syncer.flush(timeout=30)

    keys = set(await in_thread(bucket.list_keys))
    assert result.flushed, result
    assert result.pending == [] and result.open_for_writing == []
    assert {f"checkpoint-{n}.bin" for n in range(4)} | {"renamed.bin", "empty-dir/"} <= keys
    assert "old.txt" not in keys and "checkpoint-4.bin" not in keys
    assert await in_thread(bucket.get, "checkpoint-3.bin") == b"3" * 1000
    assert result.seconds >= 0.5
    assert metric(syncer, "s3sync_flushes_total", result="ok") == 1


async def test_flush_times_out_naming_what_is_pending_then_succeeds(
    syncer_factory: Any, bucket: Bucket, proxy: Any
) -> None:
    syncer = await syncer_factory(endpoint=proxy.endpoint_pattern)
    proxy.faults.methods = {"PUT"}
    proxy.faults.down = True
    (syncer.folder / "stuck.txt").write_bytes(b"S3 is away")
    result = await syncer.flush(timeout=1)
    assert not result.flushed
    assert result.pending == ["stuck.txt"]
    assert metric(syncer, "s3sync_flushes_total", result="timeout") == 1

    proxy.faults.down = False
    result = await syncer.flush(timeout=60)
    assert result.flushed, result
    assert await in_thread(bucket.get, "stuck.txt") == b"S3 is away"


async def test_flush_does_not_wait_for_files_still_open_for_writing(
    syncer_factory: Any, bucket: Bucket
) -> None:
    syncer = await syncer_factory(open_file_timeout=3600)
    with open(syncer.folder / "app.log", "wb") as log:
        log.write(b"first line\n")
        log.flush()
        (syncer.folder / "done.txt").write_bytes(b"closed")
        result = await syncer.flush(timeout=10)
        assert result.flushed
        assert result.open_for_writing == ["app.log"]
        assert await in_thread(bucket.get, "done.txt") == b"closed"
    result = await syncer.flush(timeout=10)
    assert result.flushed and result.open_for_writing == []
    assert await in_thread(bucket.get, "app.log") == b"first line\n"


def _flush_command(port: int, *args: str) -> subprocess.CompletedProcess[str]:
    assert SCRIPT is not None
    return subprocess.run(
        [SCRIPT, "flush", *args],
        env={**os.environ, "SYNC_HTTP_PORT": str(port)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_the_flush_command_and_endpoint(
    run_sidecar: Any, bucket: Bucket, proxy: Any, tmp_path: Path
) -> None:
    port = free_port()
    folder = tmp_path / "data"
    sidecar = run_sidecar(
        [],
        sidecar_environment(
            bucket, folder, SYNC_ENDPOINT=proxy.endpoint_pattern, SYNC_HTTP_PORT=str(port)
        ),
    )
    await sidecar.ready()
    proxy.faults.methods = {"PUT"}
    proxy.faults.delay = 0.5
    (folder / "model.ckpt").write_bytes(b"weights")
    done = await in_thread(_flush_command, port, "--timeout", "30")
    assert done.returncode == 0, done.stderr
    assert '"status": "flushed"' in done.stdout
    assert await in_thread(bucket.get, "model.ckpt") == b"weights"

    proxy.faults.down = True
    (folder / "later.ckpt").write_bytes(b"more weights")
    stuck = await in_thread(_flush_command, port, "--timeout", "1")
    assert stuck.returncode == 1
    assert "later.ckpt" in stuck.stderr and "504" in stuck.stderr
    proxy.faults.down = False

    bad = await in_thread(_flush_command, port, "--timeout", "0")
    assert bad.returncode == 2 and "--timeout" in bad.stderr  # argparse's usage error
    nobody = await in_thread(_flush_command, free_port(), "--timeout", "1")
    assert nobody.returncode == 2 and "flush:" in nobody.stderr

    import aiohttp

    async with aiohttp.ClientSession() as session:
        async with session.post(f"http://127.0.0.1:{port}/flush?timeout=abc") as response:
            assert response.status == 400
            assert "timeout='abc'" in (await response.json())["error"]
        async with session.get(f"http://127.0.0.1:{port}/flush") as response:
            assert response.status == 405
