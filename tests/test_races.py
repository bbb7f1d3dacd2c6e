"""Races between the app, the watcher, the workers and S3, each forced with a real proxy that
holds S3's answers (faultproxy.py) so the app's next move lands while a pass is awaiting S3."""

from __future__ import annotations

import os
import stat
from typing import Any

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
