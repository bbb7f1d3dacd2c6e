"""A broken or hostile endpoint cannot exhaust memory: answers are read up to a cap, then the
connection is closed. A real aiohttp server on 127.0.0.1 plays the endpoint (endless error
documents, endless or falsely announced listings) and counts what it managed to send."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
import pytest
from aiohttp import web
from support.bucket import Bucket

from sidecar.aws.credentials import Credentials, StaticCredentials
from sidecar.aws.http import HttpClient
from sidecar.backoff import Backoff
from sidecar.metrics import Metrics
from sidecar.s3.client import (
    ERROR_DOCUMENT_LIMIT,
    RESULT_LIMIT,
    ResponseTooLarge,
    S3Client,
    S3Error,
    S3Unavailable,
    read_capped,
    s3_requests,
)
from sidecar.s3.endpoint import Endpoint

MiB = 1024 * 1024
CHUNK = 64 * 1024
# What may be in flight beyond the cap when the client closes: both sockets' buffers on
# loopback (a few MiB at most with Linux autotuning), far below what the server would send.
SLACK = 24 * MiB
ENDLESS = 256 * MiB  # the server stops there if nobody cuts it first: far over every cap

LISTING = (
    b'<?xml version="1.0" encoding="UTF-8"?>'
    b'<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
    b"<Name>b</Name><Prefix></Prefix><KeyCount>1</KeyCount><MaxKeys>1000</MaxKeys>"
    b"<IsTruncated>false</IsTruncated><Contents><Key>k</Key>"
    b"<LastModified>2024-01-01T00:00:00.000Z</LastModified><ETag>&quot;e&quot;</ETag>"
    b"<Size>1</Size><StorageClass>STANDARD</StorageClass></Contents></ListBucketResult>"
)


@dataclass
class Hostile:
    """The endpoint: `mode` says how it answers; `sent` and `cut` record each request."""

    mode: str = "listing"
    body_size: int = 0
    sent: list[int] = field(default_factory=list)
    cut: list[bool] = field(default_factory=list)
    port: int = 0

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if self.mode == "listing":
            return web.Response(body=LISTING, content_type="application/xml")
        if self.mode == "head":
            head = web.StreamResponse(status=200, headers={"ETag": '"e"'})
            head.content_length = 10 * 1024**3  # a 10 GiB object: HEAD has no body
            await head.prepare(request)
            await head.write_eof()
            return head
        if self.mode == "sized":  # exactly body_size bytes, with Content-Length
            return web.Response(body=b"x" * self.body_size, content_type="application/xml")
        status = 500 if self.mode == "endless-error" else 200
        response = web.StreamResponse(status=status, headers={"Content-Type": "application/xml"})
        if self.mode == "announced":
            response.content_length = ENDLESS  # a lie the client must not wait to find out
        else:
            response.enable_chunked_encoding()
        await response.prepare(request)
        sent, cut = 0, False
        prologue = b'<?xml version="1.0"?><Error><Code>InternalError</Code><Message>'
        try:
            await response.write(prologue)
            sent += len(prologue)
            while sent < ENDLESS:
                await response.write(b"A" * CHUNK)
                sent += CHUNK
        except (ConnectionError, RuntimeError):  # the client closed the connection
            cut = True
        self.sent.append(sent)
        self.cut.append(cut)
        return response


@pytest.fixture
async def hostile() -> AsyncIterator[Hostile]:
    endpoint = Hostile()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", endpoint.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server = site._server
    assert server is not None
    endpoint.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
    yield endpoint
    await runner.cleanup()


@pytest.fixture
async def client(hostile: Hostile) -> AsyncIterator[S3Client]:
    http = HttpClient()
    endpoint = Endpoint.parse(f"http://127.0.0.1:{hostile.port}/{{}}/", "b")
    requests = s3_requests(
        http,
        endpoint,
        region="us-east-1",
        credentials=StaticCredentials(Credentials("AKIDEXAMPLE", "secret")),
        metrics=Metrics(),
        attempts=3,
        retry=Backoff(first=0.02, cap=0.02, jitter=True),
    )
    yield S3Client(requests, endpoint, "b")
    await http.close()


async def listing(client: S3Client) -> list[str]:
    keys: list[str] = []
    async for page in client.list_objects(""):
        keys.extend(listed.key for listed in page.objects)
    return keys


async def finished(hostile: Hostile, requests: int) -> None:
    """Until the server's handlers have seen the cut (they record after the client left)."""
    async with asyncio.timeout(30):
        while len(hostile.sent) < requests:
            await asyncio.sleep(0.01)


async def test_a_normal_listing_is_read(client: S3Client) -> None:
    assert await listing(client) == ["k"]


async def test_an_endless_error_document_is_cut_and_its_status_retried(
    client: S3Client, hostile: Hostile
) -> None:
    hostile.mode = "endless-error"
    with pytest.raises(S3Error) as caught:
        await asyncio.wait_for(listing(client), 60)
    assert caught.value.status == 500
    assert f"over {ERROR_DOCUMENT_LIMIT} bytes" in str(caught.value)
    await finished(hostile, 3)  # 500 is retried: max_attempts requests, each one cut
    assert hostile.cut == [True, True, True]
    assert all(sent < ERROR_DOCUMENT_LIMIT + SLACK for sent in hostile.sent), hostile.sent


async def test_an_endless_listing_is_cut_at_the_result_limit(
    client: S3Client, hostile: Hostile
) -> None:
    hostile.mode = "endless-result"
    with pytest.raises(ResponseTooLarge) as caught:
        await asyncio.wait_for(listing(client), 60)
    assert isinstance(caught.value, S3Unavailable)  # what callers already handle
    assert caught.value.limit == RESULT_LIMIT
    assert "ListObjectsV2" in str(caught.value)
    await finished(hostile, 1)  # not retried at once: the poll will try again
    assert hostile.cut == [True]
    assert hostile.sent[0] < RESULT_LIMIT + SLACK, hostile.sent


async def test_an_announced_huge_listing_is_not_read(client: S3Client, hostile: Hostile) -> None:
    hostile.mode = "announced"
    with pytest.raises(ResponseTooLarge) as caught:
        await asyncio.wait_for(listing(client), 60)
    assert caught.value.announced == ENDLESS
    await finished(hostile, 1)
    assert hostile.cut == [True]
    assert hostile.sent[0] < SLACK, hostile.sent


async def test_head_of_a_huge_object_is_not_mistaken_for_a_huge_answer(
    client: S3Client, hostile: Hostile
) -> None:
    hostile.mode = "head"
    head = await client.head_object("big")
    assert head is not None and head.size == 10 * 1024**3


@pytest.mark.parametrize(("size", "fits"), [(0, True), (1000, True), (1001, False)])
async def test_read_capped_at_the_limit(hostile: Hostile, size: int, fits: bool) -> None:
    hostile.mode = "sized"
    hostile.body_size = size
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{hostile.port}/x") as response,
    ):
        if fits:
            assert await read_capped(response, 1000) == b"x" * size
        else:
            with pytest.raises(ResponseTooLarge):
                await read_capped(response, 1000)
            assert response.closed


async def test_read_capped_stops_a_chunked_body_in_the_middle(hostile: Hostile) -> None:
    hostile.mode = "endless-result"
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{hostile.port}/x") as response,
    ):
        with pytest.raises(ResponseTooLarge) as caught:
            await read_capped(response, 100_000)
        assert caught.value.announced is None
        assert "GET /x" in str(caught.value)
    await finished(hostile, 1)
    assert hostile.cut == [True] and hostile.sent[0] < 100_000 + SLACK


# -- downloads from a hostile endpoint --------------------------------------------------------

LISTING_OF = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
    "<Name>b</Name><Prefix></Prefix><KeyCount>1</KeyCount><MaxKeys>1000</MaxKeys>"
    "<IsTruncated>false</IsTruncated><Contents><Key>{key}</Key>"
    "<LastModified>2024-01-01T00:00:00.000Z</LastModified><ETag>&quot;e&quot;</ETag>"
    "<Size>{size}</Size><StorageClass>STANDARD</StorageClass></Contents></ListBucketResult>"
)


@pytest.mark.parametrize(
    ("key", "mode"),
    [
        ("link", str(0o120777)),  # a symlink object with an endless, unannounced body
        ("file.bin", "33188"),  # a file with an endless, unannounced body
    ],
)
async def test_a_download_never_reads_or_writes_past_what_is_announced(
    tmp_path, key: str, mode: str
) -> None:
    from sidecar import Syncer

    sent: list[int] = []

    async def handle(request: web.Request) -> web.StreamResponse:
        if "list-type" in request.query:
            body = LISTING_OF.format(key=key, size=10).encode()
            return web.Response(body=body, content_type="application/xml")
        response = web.StreamResponse(
            headers={
                "ETag": '"e"',
                "x-amz-meta-mode": mode,
                "Last-Modified": "Mon, 01 Jan 2024 00:00:00 GMT",
            }
        )
        response.enable_chunked_encoding()
        await response.prepare(request)
        total = 0
        try:
            while total < ENDLESS:
                await response.write(b"B" * CHUNK)
                total += CHUNK
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            sent.append(total)
        return response

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    folder = tmp_path / "folder"
    syncer = Syncer(
        str(folder),
        "b",
        f"http://127.0.0.1:{port}/{{}}/",
        "us-east-1",
        credentials=StaticCredentials(Credentials("AKIDEXAMPLE", "secret")),
        download_interval=60,
    )
    try:
        await asyncio.wait_for(syncer.start(), 60)  # restore gives up on the path, then goes on
        assert not os.path.lexists(folder / key)
        work = os.listdir(folder / ".s3sync-sidecar")
        assert [name for name in work if len(name) == 32] == []  # no temporary file left
        assert sent and max(sent) < SLACK, sent
    finally:
        await syncer.stop(timeout=1)
        await runner.cleanup()


def test_the_test_server_refuses_a_copy_whose_source_changed(bucket: Bucket) -> None:
    """The harness's moto honours `x-amz-copy-source-if-match` as AWS does
    (tests/support/moto_server.py): without it, a copy made on an old read silently stamps
    newer bytes."""
    old = bucket.put("k", b"old")
    bucket.put("k", b"new")
    with pytest.raises(bucket.client.exceptions.ClientError) as refused:
        bucket.client.copy_object(
            Bucket=bucket.name,
            Key="k",
            CopySource={"Bucket": bucket.name, "Key": "k"},
            CopySourceIfMatch=old,
            MetadataDirective="REPLACE",
            Metadata={"mode": "33261"},
        )
    assert refused.value.response["Error"]["Code"] in ("PreconditionFailed", "412")
    assert bucket.head("k")["Metadata"] == {}


def test_the_test_server_states_a_composite_checksum_whole(bucket: Bucket) -> None:
    """The harness's moto states a multipart upload's composite checksum with its part count,
    on a HEAD and after a copy onto itself, as AWS does (tests/support/moto_server.py): without
    it, the value reads as a full-object checksum that no bytes match."""
    client = bucket.client
    part = b"p" * (5 * 1024 * 1024)
    upload = client.create_multipart_upload(Bucket=bucket.name, Key="m", ChecksumAlgorithm="SHA256")
    parts = []
    for number, body in enumerate((part, b"tail"), start=1):
        answer = client.upload_part(
            Bucket=bucket.name,
            Key="m",
            UploadId=upload["UploadId"],
            PartNumber=number,
            Body=body,
            ChecksumAlgorithm="SHA256",
        )
        parts.append(
            {
                "PartNumber": number,
                "ETag": answer["ETag"],
                "ChecksumSHA256": answer["ChecksumSHA256"],
            }
        )
    client.complete_multipart_upload(
        Bucket=bucket.name, Key="m", UploadId=upload["UploadId"], MultipartUpload={"Parts": parts}
    )

    def stated() -> str:
        head = client.head_object(Bucket=bucket.name, Key="m", ChecksumMode="ENABLED")
        return str(head["ChecksumSHA256"])

    first = stated()
    assert first.endswith("-2")
    bucket.set_metadata("m", {"mode": "33188"})
    assert stated() == first
