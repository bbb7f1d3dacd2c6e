"""What every write says (`SYNC_SSE`, `SYNC_SSE_KMS_KEY_ID`, `SYNC_SSE_BUCKET_KEY`,
`SYNC_STORAGE_CLASS`, `SYNC_ACL`) and what every request says (`SYNC_REQUEST_PAYER`), end to
end: a Syncer against moto's server through the fault proxy, which sees every request. What
reached S3 is read back with a HEAD (another client's botocore); a metadata copy (chmod, touch)
must restate all of it, or S3 re-encrypts it with the bucket's default, makes it `STANDARD` and
resets its ACL.

moto does not evaluate bucket policies, so "deny s3:PutObject without aws:kms" is played by the
proxy (`Faults.require_on_writes`: 403 AccessDenied to PutObject, CopyObject and
CreateMultipartUpload without the header), as S3 would answer under that policy."""

from __future__ import annotations

import os
import signal
import stat
from pathlib import Path
from typing import Any

import pytest
from support.bucket import Bucket
from support.environments import sidecar_environment
from support.faultproxy import FaultProxy
from support.waiting import eventually, in_thread

from sidecar.s3.metadata import parse_mode

KEY_ARN = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
MiB = 1024 * 1024
SETTINGS: dict[str, Any] = {
    "sse": "aws:kms",
    "sse_kms_key_id": KEY_ARN,
    "sse_bucket_key": True,
    "storage_class": "STANDARD_IA",
    "acl": "bucket-owner-full-control",
    "request_payer": "requester",
    "multipart_threshold": 5 * MiB,
    "multipart_chunksize": 5 * MiB,
}


def _says_it_all(head: dict[str, Any], *, bucket_key: bool = True) -> None:
    assert head.get("ServerSideEncryption") == "aws:kms"
    assert head.get("SSEKMSKeyId") == KEY_ARN
    if bucket_key:
        assert head.get("BucketKeyEnabled") is True
    assert head.get("StorageClass") == "STANDARD_IA"


def _owner_has_full_control(bucket: Bucket, key: str) -> None:
    grants = bucket.client.get_object_acl(Bucket=bucket.name, Key=key)["Grants"]
    assert any(grant["Permission"] == "FULL_CONTROL" for grant in grants), grants
    assert len(grants) >= 1


async def test_every_write_says_encryption_class_and_acl_even_a_metadata_copy(
    syncer_factory: Any, bucket: Bucket, proxy: FaultProxy
) -> None:
    proxy.faults.require_on_writes = ("x-amz-server-side-encryption", "aws:kms")
    syncer = await syncer_factory(endpoint=proxy.endpoint_pattern, **SETTINGS)
    small = syncer.folder / "small.txt"
    small.write_bytes(b"small")
    big = syncer.folder / "big.bin"
    big.write_bytes(os.urandom(11 * MiB))  # three parts
    (syncer.folder / "dir").mkdir()  # a marker
    await eventually(
        lambda: in_thread(lambda: bucket.list_keys() == ["big.bin", "dir/", "small.txt"]),
        timeout=30,
    )
    await syncer._running().scheduler.wait_idle()
    for key in ("small.txt", "big.bin", "dir/"):
        head = await in_thread(bucket.head, key)
        # moto drops a multipart upload's bucket-key flag; the request's header is checked below
        _says_it_all(head, bucket_key=key != "big.bin")
        await in_thread(_owner_has_full_control, bucket, key)
    assert "-" in (await in_thread(bucket.head, "big.bin"))["ETag"], "uploaded in parts"

    # A chmod is a copy onto itself: it restates all of it.
    copies_before = sum(1 for r in proxy.requests if r.header("x-amz-copy-source"))
    os.chmod(small, 0o600)

    def mode_copied() -> None:
        head = bucket.head("small.txt")
        assert parse_mode(head["Metadata"]["mode"]) == stat.S_IFREG | 0o600

    await eventually(lambda: in_thread(mode_copied), what="the chmod in S3")
    os.utime(big, ns=(1_600_000_000_000_000_000, 1_600_000_000_000_000_000))  # a touch

    def mtime_copied() -> None:
        assert bucket.head("big.bin")["Metadata"]["mtime"].startswith("1600000000")

    await eventually(lambda: in_thread(mtime_copied), what="the touch in S3")
    await syncer._running().scheduler.wait_idle()
    copies = [r for r in proxy.requests if r.header("x-amz-copy-source")][copies_before:]
    assert {r.path.partition("?")[0].rpartition("/")[2] for r in copies} == {
        "small.txt",
        "big.bin",
    }, "a metadata copy each"
    _says_it_all(await in_thread(bucket.head, "big.bin"), bucket_key=True)
    _says_it_all(await in_thread(bucket.head, "small.txt"))
    await in_thread(_owner_has_full_control, bucket, "small.txt")

    writes = [r for r in proxy.requests if r.creates_version]
    assert writes
    for request in writes:
        assert request.header("x-amz-server-side-encryption") == "aws:kms", request.path
        assert request.header("x-amz-server-side-encryption-aws-kms-key-id") == KEY_ARN
        assert request.header("x-amz-server-side-encryption-bucket-key-enabled") == "true"
        assert request.header("x-amz-storage-class") == "STANDARD_IA"
        assert request.header("x-amz-acl") == "bucket-owner-full-control"
    # Requester pays: on every request, reads and listings too.
    methods = {r.method for r in proxy.requests}
    assert {"GET", "HEAD", "PUT", "POST"} <= methods
    assert all(r.header("x-amz-request-payer") == "requester" for r in proxy.requests)


async def test_without_the_header_the_policy_refuses_every_upload(
    syncer_factory: Any, bucket: Bucket, proxy: FaultProxy
) -> None:
    """The proxy's stand-in for the bucket policy does refuse: without `SYNC_SSE` nothing
    reaches S3 (what the issue's users saw), and the sidecar keeps the change pending."""
    proxy.faults.require_on_writes = ("x-amz-server-side-encryption", "aws:kms")
    syncer = await syncer_factory(endpoint=proxy.endpoint_pattern)
    (syncer.folder / "small.txt").write_bytes(b"small")
    await eventually(lambda: any(r.creates_version for r in proxy.requests), what="an upload tried")
    result = await syncer.flush(timeout=1)
    assert "small.txt" in result.pending
    assert await syncer.stop(timeout=1) == ["small.txt"], "never uploaded, never dropped"
    assert await in_thread(bucket.list_keys) == []


async def test_nothing_is_sent_when_nothing_is_set(
    syncer_factory: Any, bucket: Bucket, proxy: FaultProxy
) -> None:
    syncer = await syncer_factory(endpoint=proxy.endpoint_pattern)
    (syncer.folder / "a.txt").write_bytes(b"a")
    await eventually(lambda: in_thread(bucket.exists, "a.txt"))
    for request in proxy.requests:
        names = {name.lower() for name in request.headers}
        assert not names & {
            "x-amz-server-side-encryption",
            "x-amz-storage-class",
            "x-amz-acl",
            "x-amz-request-payer",
        }


@pytest.mark.parametrize("sse", ["AES256", "aws:kms:dsse"])
async def test_the_other_encryptions_reach_s3(
    syncer_factory: Any, bucket: Bucket, sse: str, tmp_path: Path
) -> None:
    syncer = await syncer_factory(sse=sse)
    (syncer.folder / "a.txt").write_bytes(b"a")
    await eventually(lambda: in_thread(bucket.exists, "a.txt"))
    assert (await in_thread(bucket.head, "a.txt")).get("ServerSideEncryption") == sse


async def test_the_command_reads_them_from_the_environment(
    run_sidecar: Any, bucket: Bucket, tmp_path: Path
) -> None:
    """The real command, configured by the variables: what it writes says them."""
    folder = tmp_path / "data"
    sidecar = run_sidecar(
        [],
        sidecar_environment(
            bucket,
            folder,
            SYNC_SSE="aws:kms",
            SYNC_SSE_KMS_KEY_ID=KEY_ARN,
            SYNC_STORAGE_CLASS="INTELLIGENT_TIERING",
            SYNC_ACL="bucket-owner-full-control",
            SYNC_REQUEST_PAYER="requester",
            SYNC_POLL_INTERVAL="0.5",
        ),
    )
    await eventually(lambda: "restored" in sidecar.text(), timeout=30)
    (folder / "a.txt").write_bytes(b"a")
    await eventually(lambda: in_thread(bucket.exists, "a.txt"))
    head = await in_thread(bucket.head, "a.txt")
    assert (head["ServerSideEncryption"], head["SSEKMSKeyId"]) == ("aws:kms", KEY_ARN)
    assert head["StorageClass"] == "INTELLIGENT_TIERING"
    await in_thread(_owner_has_full_control, bucket, "a.txt")
    sidecar.process.send_signal(signal.SIGTERM)
    assert await sidecar.wait() == 0, sidecar.text()
