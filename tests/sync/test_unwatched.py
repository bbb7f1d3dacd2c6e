"""Directories inotify cannot watch (ENOSPC: fs.inotify.max_user_watches reached) are still
synced, by a periodic scan, and say so: a metric, and /healthz answering 200 "degraded".

The real command runs in its own user namespace (`unshare --user --map-root-user`), where the
inotify watch limit is that namespace's own (/proc/sys/user/max_inotify_watches, Linux 5.11+):
the test lowers it for the sidecar alone, never for the other processes on the machine.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.bucket import Bucket
from support.environments import sidecar_environment
from support.local_http import free_port
from support.local_http import http_get as get
from support.metrics import scrape, series
from support.sidecars import SidecarProcess
from support.waiting import eventually, in_thread

LIMIT = "/proc/sys/user/max_inotify_watches"
UNSHARE = shutil.which("unshare")
NSENTER = shutil.which("nsenter")


def _user_namespaces_work() -> bool:
    if UNSHARE is None or NSENTER is None or not os.path.exists(LIMIT):
        return False
    probe = subprocess.run(
        [UNSHARE, "--user", "--map-root-user", "sh", "-c", f"echo 5 > {LIMIT}"],
        capture_output=True,
        timeout=10,
        check=False,
    )
    return probe.returncode == 0


pytestmark = pytest.mark.skipif(
    not _user_namespaces_work(), reason="needs user namespaces with their own inotify limit"
)


class NamespacedSidecar(SidecarProcess):
    """`s3sync-sidecar` in a user namespace of its own, whose inotify watch limit we set."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        assert UNSHARE is not None
        # unshare execs the command: the same pid
        super().__init__([], env, log, prefix=[UNSHARE, "--user", "--map-root-user"])

    def set_watch_limit(self, limit: int) -> None:
        """Watches held stay valid; each new one fails with ENOSPC once `limit` are held."""
        assert NSENTER is not None
        subprocess.run(
            [NSENTER, "-t", str(self.process.pid), "-U", "sh", "-c", f"echo {limit} > {LIMIT}"],
            check=True,
            timeout=10,
        )


@pytest.fixture
def sidecars(tmp_path: Path) -> Iterator[list[NamespacedSidecar]]:
    started: list[NamespacedSidecar] = []
    yield started
    for sidecar in started:
        sidecar.kill()  # its namespace, and the lowered limit, go with it


def environment(bucket: Bucket, folder: Path, port: int, poll_interval: float) -> dict[str, str]:
    """What `run_sidecar` would give the command (these tests start it themselves)."""
    return {
        "PATH": os.environ["PATH"],
        **sidecar_environment(
            bucket,
            folder,
            SYNC_POLL_INTERVAL=str(poll_interval),
            SYNC_HTTP_PORT=str(port),
            SYNC_LOG_FORMAT="text",
        ),
    }


async def gauge(port: int, name: str) -> float:
    return series((await scrape(port)).samples, name)


async def unwatched(port: int, expected: float) -> bool:
    return await gauge(port, "s3sync_inotify_unwatched_directories") == expected


async def test_unwatched_directories_are_scanned_reported_and_watched_again(
    bucket: Bucket, tmp_path: Path, sidecars: list[NamespacedSidecar]
) -> None:
    folder, port = tmp_path / "data", free_port()
    sidecar = NamespacedSidecar(environment(bucket, folder, port, 0.5), tmp_path / "log")
    sidecars.append(sidecar)
    await sidecar.answering(port, "/startupz")
    assert await gauge(port, "s3sync_inotify_unwatched_directories") == 0
    status, body = await get(port, "/healthz")
    assert status == 200 and json.loads(body)["status"] == "ok"

    sidecar.set_watch_limit(1)  # the root's watch is held: every new directory fails
    (folder / "new" / "dir").mkdir(parents=True)
    (folder / "new" / "dir" / "file.txt").write_bytes(b"first")
    await eventually(
        lambda: in_thread(lambda: "new/dir/file.txt" in bucket.list_keys()),
        what="a file in an unwatched directory uploaded",
    )
    assert await in_thread(bucket.get, "new/dir/file.txt") == b"first"
    assert await gauge(port, "s3sync_inotify_unwatched_directories") == 2  # new, new/dir
    status, body = await get(port, "/healthz")
    health = json.loads(body)
    assert status == 200, body
    assert health["status"] == "degraded" and health["problems"] == []
    assert len(health["degraded"]) == 1
    assert "2 directories" in health["degraded"][0]
    assert "max_user_watches" in health["degraded"][0]
    assert (await get(port, "/startupz"))[0] == 200  # the container health check: alive

    # Changes and deletes inside them are found too, with no event to announce them.
    (folder / "new" / "dir" / "file.txt").write_bytes(b"second")
    await eventually(
        lambda: in_thread(lambda: bucket.get("new/dir/file.txt") == b"second"),
        what="a change in an unwatched directory uploaded",
    )
    (folder / "new" / "dir" / "file.txt").unlink()
    await eventually(
        lambda: in_thread(lambda: not bucket.exists("new/dir/file.txt")),
        what="a delete in an unwatched directory propagated",
    )

    sidecar.set_watch_limit(100_000)  # raised: the next scan watches them
    await eventually(lambda: unwatched(port, 0), what="directories watched again")

    async def watched_again() -> None:
        assert await gauge(port, "s3sync_inotify_watches") == 3
        status, body = await get(port, "/healthz")
        assert status == 200 and json.loads(body)["status"] == "ok", body

    await eventually(watched_again)
    (folder / "new" / "dir" / "after.txt").write_bytes(b"after")
    await eventually(lambda: in_thread(lambda: "new/dir/after.txt" in bucket.list_keys()))
    sidecar.process.send_signal(signal.SIGTERM)
    assert await sidecar.wait() == 0, sidecar.text()


async def test_stop_scans_unwatched_directories_before_exiting(
    bucket: Bucket, tmp_path: Path, sidecars: list[NamespacedSidecar]
) -> None:
    """A file written in an unwatched directory just before SIGTERM is uploaded: the periodic
    scan (a minute away here) is not waited for, the stop scans them itself."""
    folder, port = tmp_path / "data", free_port()
    sidecar = NamespacedSidecar(environment(bucket, folder, port, 60), tmp_path / "log")
    sidecars.append(sidecar)
    await sidecar.answering(port, "/startupz")
    sidecar.set_watch_limit(1)
    (folder / "new" / "dir").mkdir(parents=True)
    await eventually(lambda: unwatched(port, 2), what="both new directories unwatched")
    (folder / "new" / "dir" / "last.txt").write_bytes(b"last words")
    sidecar.process.send_signal(signal.SIGTERM)
    assert await sidecar.wait() == 0, sidecar.text()
    assert await in_thread(bucket.get, "new/dir/last.txt") == b"last words"
