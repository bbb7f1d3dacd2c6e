"""A file rewritten while its upload runs never ends up in S3 as a mix of two versions, and the
final content after the last close is what S3 holds.

The upload is slowed by a real HTTP proxy that throttles request bodies, so the rewrite lands
mid-upload for sure; bucket versioning keeps every object S3 ever stored, so the test sees not
only the final state but every intermediate one.
"""

from __future__ import annotations

import asyncio

import pytest
from support.bucket import Bucket
from support.waiting import eventually, in_thread

# Large enough that the socket buffers between the sidecar and the throttled proxy (a few MiB
# on loopback) cannot hold the rest of the file: when the proxy has seen under 4 MiB, the
# sidecar is certainly still reading the file.
SIZE = 32 * 1024 * 1024


def enable_versioning(bucket: Bucket) -> None:
    bucket.client.put_bucket_versioning(
        Bucket=bucket.name, VersioningConfiguration={"Status": "Enabled"}
    )


def all_versions(bucket: Bucket, key: str) -> list[bytes]:
    versions = bucket.client.list_object_versions(Bucket=bucket.name, Prefix=key)
    bodies = []
    for version in versions.get("Versions", []):
        if version["Key"] != key:
            continue
        response = bucket.client.get_object(
            Bucket=bucket.name, Key=key, VersionId=version["VersionId"]
        )
        bodies.append(response["Body"].read())
    return bodies


@pytest.mark.parametrize("multipart", [False, True], ids=["single-put", "multipart"])
async def test_rewrite_during_upload(
    syncer_factory, bucket: Bucket, proxy, multipart: bool
) -> None:
    await in_thread(enable_versioning, bucket)
    options = (
        {
            "multipart_threshold": 5 * 1024 * 1024,
            "multipart_chunksize": 5 * 1024 * 1024,
            "multipart_concurrency": 1,
        }
        if multipart
        else {}
    )
    syncer = await syncer_factory(endpoint=proxy.endpoint_pattern, **options)
    path = syncer.folder / "data.bin"
    proxy.faults.bytes_per_second = 8 * 1024 * 1024  # ~4 s for the whole file
    proxy.put_started.clear()

    path.write_bytes(b"a" * SIZE)
    await asyncio.wait_for(proxy.put_started.wait(), 20)
    await eventually(lambda: proxy.body_bytes_in_flight > 0, what="upload under way")
    assert proxy.body_bytes_in_flight < 4 * 1024 * 1024, "rewrite must land mid-upload"
    with open(path, "r+b") as file:  # rewrite in place, in two writes
        file.write(b"b" * (SIZE // 2))
        file.flush()
        file.write(b"b" * (SIZE // 2))
    proxy.faults.bytes_per_second = None

    await eventually(
        lambda: in_thread(lambda: bucket.get("data.bin") == b"b" * SIZE),
        timeout=60,
        what="final content in S3",
    )
    versions = await in_thread(all_versions, bucket, "data.bin")
    assert versions, "at least one version"
    for body in versions:
        assert body in (b"a" * SIZE, b"b" * SIZE), "a torn mix reached S3"
    assert b"a" * SIZE not in versions, "the upload of the overwritten version was abandoned"
    assert syncer.metrics.aborted_changed._value.get() >= 1
    if multipart:
        uploads = await in_thread(lambda: bucket.client.list_multipart_uploads(Bucket=bucket.name))
        assert not uploads.get("Uploads"), "the abandoned multipart upload was aborted"


async def test_appends_while_uploading_end_with_the_whole_file(
    syncer_factory, bucket: Bucket, proxy
) -> None:
    await in_thread(enable_versioning, bucket)
    syncer = await syncer_factory(endpoint=proxy.endpoint_pattern)
    path = syncer.folder / "log.txt"
    proxy.faults.bytes_per_second = 2 * 1024 * 1024
    expected = b""
    closed_lengths = []
    for index in range(6):  # each append closes the file: a new upload each time
        line = (f"line {index} ".encode()) * 40_000
        with open(path, "ab") as file:
            file.write(line)
        expected += line
        closed_lengths.append(len(expected))
        await asyncio.sleep(0.2)  # pacing the writer, not synchronising with the sidecar
    proxy.faults.bytes_per_second = None
    await eventually(
        lambda: in_thread(lambda: bucket.get("log.txt") == expected), timeout=60, what="whole file"
    )
    for body in await in_thread(all_versions, bucket, "log.txt"):
        assert len(body) in closed_lengths and expected.startswith(body), (
            "every stored version is a version the file had when it was closed"
        )
