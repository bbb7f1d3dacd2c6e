"""Races between the app, the watcher, the workers and S3, each forced with a real proxy that
holds S3's answers (faultproxy.py) so the app's next move lands while a pass is awaiting S3."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest
from conftest import Bucket, eventually, in_thread


async def _received(proxy: Any, method: str, before: int) -> None:
    await eventually(lambda: proxy.seen[method] > before, what=f"a {method} reached the proxy")


async def test_hints_that_arrive_during_a_pass_survive_it(
    syncer_factory: Any, bucket: Bucket, proxy: Any
) -> None:
    """A same-size rewrite that keeps the mtime (as `rsync -t` or `tar` leave it), then a
    chmod, both while the previous upload is awaiting S3: the pass that ends must not erase the
    content hint, or the next pass sees only a new mode and copies the metadata onto the old
    bytes."""
    syncer = await syncer_factory(endpoint=proxy.endpoint_pattern)
    path = syncer.folder / "data.bin"
    path.write_bytes(b"A" * 64)
    await eventually(lambda: bucket.exists("data.bin") and bucket.get("data.bin") == b"A" * 64)

    proxy.faults.methods = {"PUT"}
    proxy.faults.delay = 1.5  # every PUT waits in the proxy before it reaches S3
    before = proxy.seen["PUT"]
    path.write_bytes(b"B" * 64)
    mtime = os.stat(path).st_mtime_ns
    await _received(proxy, "PUT", before)  # B's upload is past its checks, awaiting S3

    path.write_bytes(b"C" * 64)  # same size...
    os.utime(path, ns=(mtime, mtime))  # ...same mtime as B...
    os.chmod(path, 0o600)  # ...and a new mode
    proxy.faults.delay = 0

    def uploaded_c() -> bool:
        head = bucket.head("data.bin")
        return (
            bucket.get("data.bin") == b"C" * 64
            and stat.S_IMODE(int(head["Metadata"]["mode"])) == 0o600
        )

    await eventually(uploaded_c, timeout=30, what="the rewritten bytes in S3")
    await syncer.poll_once()
    assert await in_thread(bucket.get, "data.bin") == b"C" * 64
    assert path.read_bytes() == b"C" * 64


def test_conflict_copy_falls_back_to_a_copy_where_links_fail(tmp_path: Path) -> None:
    """link() across filesystems fails with EXDEV (as it fails with EPERM or EACCES where hard
    links are refused): the conflict copy is then a real copy, with mode and mtime."""
    from sidecar.conflict import link_as_conflict

    shm = Path("/dev/shm")
    if not shm.is_dir() or os.stat(shm).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("needs /dev/shm on another filesystem than the temporary folder")
    source = shm / f"s3sync-test-{os.getpid()}"
    source.write_bytes(b"the S3 version")
    os.chmod(source, 0o640)
    os.utime(source, ns=(1_600_000_000_000_000_000, 1_600_000_000_000_000_000))

    from sidecar.safefs import At

    shm_fd = os.open(shm, os.O_RDONLY | os.O_DIRECTORY)
    folder_fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        beside = At(folder_fd, "report.txt")
        first = link_as_conflict(At(shm_fd, source.name), beside, "report.txt")
        second = link_as_conflict(At(shm_fd, source.name), beside, "report.txt")
    finally:
        source.unlink()
        os.close(shm_fd)
        os.close(folder_fd)
    assert first != second and first.startswith("report.sync-conflict-")
    for name in (first, second):
        copy = tmp_path / name
        assert copy.read_bytes() == b"the S3 version"
        assert stat.S_IMODE(copy.stat().st_mode) == 0o640
        assert copy.stat().st_mtime_ns == 1_600_000_000_000_000_000
