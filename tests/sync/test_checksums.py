"""Checksums as the proof of content, on every bucket: every upload sends a SHA-256 additional
checksum (a COMPOSITE one for a multipart upload, its parts' digests read as the parts are
sent), S3 keeps it, downloads are checked against it, and a file's bytes are proven by it where
the ETag is not an MD5 (an SSE-KMS bucket). Against moto's server, whose ETags stay MD5s under
SSE-KMS: the sidecar goes by the `x-amz-server-side-encryption: aws:kms` S3 answers, as on AWS,
where those ETags prove nothing."""

from __future__ import annotations

import hashlib
import os
import zlib
from base64 import b64encode
from pathlib import Path
from typing import Any

import pytest
from support.bucket import Bucket
from support.faultproxy import FaultProxy
from support.folders import conflict_copies
from support.metrics import metric
from support.waiting import eventually, in_thread

from sidecar import checksums
from sidecar.ops.fetch import Content
from sidecar.ops.job import IntegrityError
from sidecar.s3.client import ObjectHead

MiB = 1024 * 1024
PARTS = {"multipart_threshold": 5 * MiB, "multipart_chunksize": 5 * MiB}


def _sha256(data: bytes) -> str:
    return b64encode(hashlib.sha256(data).digest()).decode()


def _composite(data: bytes, part: int) -> str:
    digests = [hashlib.sha256(data[i : i + part]).digest() for i in range(0, len(data), part)]
    return f"{_sha256(b''.join(digests))}-{len(digests)}"


def _checksum(bucket: Bucket, key: str) -> str | None:
    """What S3 holds, as a GET with checksums says it (moto's HEAD leaves a composite
    checksum's `-<parts>` out)."""
    got = bucket.client.get_object(Bucket=bucket.name, Key=key, ChecksumMode="ENABLED")
    got["Body"].read()
    value = got.get("ChecksumSHA256")
    return None if value is None else str(value)


def _kms_by_default(bucket: Bucket) -> None:
    bucket.client.put_bucket_encryption(
        Bucket=bucket.name,
        ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms"}}]
        },
    )


def _rewrite_keeping_size_and_mtime(path: Path, data: bytes) -> None:
    before = os.lstat(path)
    assert len(data) == before.st_size
    with open(path, "r+b") as file:
        file.write(data)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


def test_the_composite_checksum_is_s3s() -> None:
    data = os.urandom(2 * 1024 + 7)
    stream = checksums.Composite(1024)
    for index in range(0, len(data), 100):
        stream.update(data[index : index + 100])
    assert stream.value() == _composite(data, 1024)
    assert checksums.parts(stream.value()) == 3
    assert checksums.parts(_sha256(data)) == 0
    exact = checksums.Composite(1024)
    exact.update(data[:2048])
    assert exact.value() == _composite(data[:2048], 1024)


async def test_every_upload_sends_a_sha256_checksum_that_s3_keeps(
    syncer_factory: Any, bucket: Bucket, proxy: FaultProxy
) -> None:
    """One PUT read whole, one streamed, one in parts: S3 holds each one's SHA-256 (full, or
    composite from the parts)."""
    syncer = await syncer_factory(endpoint=proxy.endpoint_pattern, **PARTS)
    files = {
        "small.txt": b"small",
        "streamed.bin": os.urandom(MiB),
        "big.bin": os.urandom(11 * MiB),
    }
    for name, data in files.items():
        (syncer.folder / name).write_bytes(data)
    await eventually(lambda: in_thread(lambda: sorted(bucket.list_keys()) == sorted(files)))
    await syncer._running().scheduler.wait_idle()
    assert await in_thread(_checksum, bucket, "small.txt") == _sha256(files["small.txt"])
    assert await in_thread(_checksum, bucket, "streamed.bin") == _sha256(files["streamed.bin"])
    assert await in_thread(_checksum, bucket, "big.bin") == _composite(files["big.bin"], 5 * MiB)
    ours = [r for r in proxy.requests if "/probe-" not in r.path]  # not the endpoint's probe
    puts = [r for r in ours if r.method == "PUT"]
    assert len(puts) == 2 + 3  # two PUTs, three parts
    assert all(r.header("x-amz-checksum-sha256") for r in puts)
    assert all(r.header("x-amz-sdk-checksum-algorithm") == "SHA256" for r in puts)
    created = [r for r in ours if r.creates_version and r.method == "POST"]
    assert [r.header("x-amz-checksum-algorithm") for r in created] == ["SHA256"]
    # What was written is looked at once more (a HEAD) after its second: asking for checksums.
    await eventually(
        lambda: any(r.method == "HEAD" for r in proxy.requests), what="a HEAD after the upload"
    )
    reads = [r for r in proxy.requests if r.method in ("GET", "HEAD") and "list-type" not in r.path]
    assert all(r.header("x-amz-checksum-mode") == "ENABLED" for r in reads)


async def test_on_an_sse_kms_bucket_a_rewrite_keeping_size_and_mtime_while_down_is_found(
    syncer_factory: Any, bucket: Bucket, tmp_path: Path
) -> None:
    """The issue's case: a bucket whose default encryption is SSE-KMS (its ETags prove
    nothing); a file's bytes change while the sidecar is down, its size and mtime put back.
    The start reads it (its ctime moved), proves it against the recorded SHA-256 checksum, and
    uploads it; the files whose bytes did not change stay as they are."""
    await in_thread(_kms_by_default, bucket)
    folder = tmp_path / "folder"
    syncer = await syncer_factory(directory=folder, **PARTS)
    big = os.urandom(11 * MiB)
    (folder / "small.txt").write_bytes(b"v1 small")
    (folder / "touched.txt").write_bytes(b"v1 touched")
    (folder / "big.bin").write_bytes(big)
    await eventually(lambda: in_thread(lambda: len(bucket.list_keys()) == 3), timeout=30)
    assert (await in_thread(bucket.head, "small.txt"))["ServerSideEncryption"] == "aws:kms"
    assert syncer._running().etags.md5 is False, "S3 said aws:kms: ETags prove nothing"
    assert await syncer.stop(timeout=30) == []

    _rewrite_keeping_size_and_mtime(folder / "small.txt", b"v2 small")
    os.utime(folder / "touched.txt")  # the ctime moves, the bytes do not
    os.utime(folder / "touched.txt", ns=(0, (folder / "small.txt").stat().st_mtime_ns))
    rewritten = big[: 6 * MiB] + os.urandom(MiB) + big[7 * MiB :]  # the second part only
    _rewrite_keeping_size_and_mtime(folder / "big.bin", rewritten)
    restarted = await syncer_factory(directory=folder, **PARTS)
    await eventually(lambda: bucket.get("small.txt") == b"v2 small", what="the small rewrite")
    await eventually(lambda: bucket.get("big.bin") == rewritten, timeout=30, what="the big one")
    await restarted._running().scheduler.wait_idle()
    assert await in_thread(bucket.get, "touched.txt") == b"v1 touched"
    assert conflict_copies(folder, await in_thread(bucket.list_keys)) == []
    assert await in_thread(_checksum, bucket, "small.txt") == _sha256(b"v2 small")


async def test_a_download_is_checked_against_its_checksum(
    syncer_factory: Any, bucket: Bucket, proxy: FaultProxy
) -> None:
    """On an SSE-KMS bucket the ETag cannot check a download; the SHA-256 checksum another
    tool uploaded with does: bytes changed on the way (the proxy rewrites them, the same
    length) never land in the folder, and the object comes down once they arrive whole."""
    await in_thread(_kms_by_default, bucket)
    data = b"good bytes " * 100
    await in_thread(
        lambda: bucket.client.put_object(
            Bucket=bucket.name, Key="doc.txt", Body=data, ChecksumAlgorithm="SHA256"
        )
    )
    proxy.faults.replace = (b"good", b"evil")
    syncer = await syncer_factory(endpoint=proxy.endpoint_pattern)
    await eventually(
        lambda: metric(syncer, "s3sync_downloads_total", result="error") >= 1,
        what="a refused download",
    )
    assert not (syncer.folder / "doc.txt").exists()
    proxy.faults.replace = None
    await syncer.poll_once()
    await eventually(lambda: (syncer.folder / "doc.txt").read_bytes() == data, timeout=30)


def _head(data: bytes, checksum: str, etag: str = "x-3", encryption: str = "aws:kms") -> ObjectHead:
    return ObjectHead(etag, len(data), "", None, None, None, "", encryption, checksum=checksum)


FORGED = [
    # (what S3 states, the part size known from our own upload (0: guessed), forged: refused?)
    ("full", 0, True),
    ("composite", 5 * MiB, True),  # our own upload's part size: a clear no
    ("composite-guessed", 0, False),  # guessed right, but another size could give it: no verdict
]


@pytest.mark.parametrize(("kind", "part_size", "refused"), FORGED, ids=[k for k, _, _ in FORGED])
def test_a_download_is_checked_by_what_s3_states(kind: str, part_size: int, refused: bool) -> None:
    """`fetch.Content`, the check of every download's bytes, row by row: good bytes always
    pass; forged bytes of the same length are refused wherever the checksum can tell."""
    data = os.urandom(11 * MiB)
    forged = data[:-1] + bytes([data[-1] ^ 1])
    checksum = _sha256(data) if kind == "full" else _composite(data, 5 * MiB)
    for body, bad in ((data, False), (forged, refused)):
        content = Content(_head(data, checksum), part_size, 5 * MiB)
        for index in range(0, len(body), MiB):
            content.update(body[index : index + MiB])
        if bad:
            with pytest.raises(IntegrityError):
                content.check("key")
        else:
            content.check("key")


def test_without_a_checksum_a_download_is_checked_by_its_md5_etag() -> None:
    data = b"plain"
    etag = hashlib.md5(data).hexdigest()
    for body, bad in ((data, False), (b"plaim", True)):
        content = Content(_head(data, "", etag, encryption="AES256"), 0, 5 * MiB)
        content.update(body)
        if bad:
            with pytest.raises(IntegrityError):
                content.check("key")
        else:
            content.check("key")


def test_a_misstated_checksum_is_overruled_by_an_md5_etag_that_proves_the_bytes() -> None:
    """A store that states a checksum no bytes match (moto did, after a copy) does not block a
    download forever where its ETag is an MD5 that proves the bytes; forged bytes, which match
    neither, are still refused."""
    data = b"the bytes"
    head = _head(data, _sha256(b"another object"), hashlib.md5(data).hexdigest(), "AES256")
    for body, bad in ((data, False), (b"the bytez", True)):
        content = Content(head, 0, 5 * MiB)
        content.update(body)
        md5_of = lambda body=body: hashlib.md5(body).hexdigest()  # noqa: E731
        if bad:
            with pytest.raises(IntegrityError):
                content.check("key", md5_of)
        else:
            content.check("key", md5_of)
    kms = _head(data, _sha256(b"another object"), hashlib.md5(data).hexdigest(), "aws:kms")
    content = Content(kms, 0, 5 * MiB)
    content.update(data)
    with pytest.raises(IntegrityError):  # an SSE-KMS ETag proves nothing: refused
        content.check("key", lambda: hashlib.md5(data).hexdigest())


def _crc32(data: bytes) -> str:
    return b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()


@pytest.mark.parametrize(
    ("headers", "etag", "kept"),
    [
        ({"x-amz-checksum-sha256": "s="}, "e", "s="),
        ({"x-amz-checksum-crc32": "c="}, "e", "crc32:c="),
        ({"x-amz-checksum-sha1": "h="}, "e", "sha1:h="),
        ({"x-amz-checksum-sha256": "s=", "x-amz-checksum-crc32": "c="}, "e", "s="),
        # an SDK's multipart upload with CRC32: a full-object checksum, said so
        ({"x-amz-checksum-crc32": "c=", "x-amz-checksum-type": "FULL_OBJECT"}, "e-3", "crc32:c="),
        ({"x-amz-checksum-crc32": "c=-3", "x-amz-checksum-type": "COMPOSITE"}, "e-3", "crc32:c=-3"),
        ({"x-amz-checksum-crc64nvme": "n="}, "e", ""),  # not in the standard library
        ({"x-amz-checksum-crc32c": "n="}, "e", ""),
        ({}, "e", ""),
    ],
)
def test_what_an_answer_states_is_kept_in_one_form(
    headers: dict[str, str], etag: str, kept: str
) -> None:
    assert checksums.from_headers(headers, etag) == kept


async def test_another_tools_crc32_proves_a_rewrite_while_down_on_an_sse_kms_bucket(
    syncer_factory: Any, bucket: Bucket, tmp_path: Path
) -> None:
    """An object another tool uploaded with the AWS SDKs' default checksum (CRC32), on an
    SSE-KMS bucket: downloaded and checked by it, recorded, and at the next start a rewrite made
    while the sidecar was down, size and mtime put back, is found by it and uploaded."""
    await in_thread(_kms_by_default, bucket)
    data = b"written by another tool"
    await in_thread(
        lambda: bucket.client.put_object(
            Bucket=bucket.name, Key="doc.txt", Body=data, ChecksumAlgorithm="CRC32"
        )
    )
    folder = tmp_path / "folder"
    syncer = await syncer_factory(directory=folder)
    assert (folder / "doc.txt").read_bytes() == data
    assert await syncer.stop(timeout=30) == []
    _rewrite_keeping_size_and_mtime(folder / "doc.txt", b"rewritten by an app!!!!")
    await syncer_factory(directory=folder)
    await eventually(
        lambda: bucket.get("doc.txt") == b"rewritten by an app!!!!", what="the rewrite in S3"
    )
    assert conflict_copies(folder, await in_thread(bucket.list_keys)) == []


def test_a_crc32_checks_a_download() -> None:
    data = b"the bytes"
    for body, bad in ((data, False), (b"the bytez", True)):
        content = Content(_head(data, "crc32:" + _crc32(data), "e", "aws:kms"), 0, 5 * MiB)
        content.update(body)
        if bad:
            with pytest.raises(IntegrityError):
                content.check("key")
        else:
            content.check("key")
