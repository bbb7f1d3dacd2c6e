"""The one signed-request path (aws/signed.py) with each service's rules, against real servers on
127.0.0.1: a scripted aiohttp server answering as S3 or SQS would (clock skew, rejected
credentials, refusals, oversized answers), and moto for what every write carries. The signer and
the clients are the product's own; only the server's answers are chosen by the test."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime, parsedate_to_datetime
from typing import Any

import pytest
from aiohttp import web
from support.bucket import Bucket
from support.s3_server import REGION
from support.waiting import in_thread

from sidecar import checksums
from sidecar.aws.credentials import Credentials, StaticCredentials
from sidecar.aws.http import HttpClient, Origin
from sidecar.aws.outage import Outage
from sidecar.aws.sqs import ANSWER_LIMIT, QueueClient, QueueError, QueueUrl, sqs_requests
from sidecar.backoff import REQUEST, Backoff
from sidecar.metrics import Metrics
from sidecar.s3.client import S3Client, S3Error, s3_requests
from sidecar.s3.endpoint import Endpoint

FAST = Backoff(first=0.01, cap=0.01)


@dataclass
class Scripted:
    """Answers each request with the next of `answers` (status, headers, body), then 200s;
    records each request's headers and the connection it came on."""

    answers: list[tuple[int, dict[str, str], bytes]] = field(default_factory=list)
    seen: list[dict[str, str]] = field(default_factory=list)
    connections: set[int] = field(default_factory=set)
    port: int = 0

    async def handle(self, request: web.Request) -> web.Response:
        await request.read()
        self.seen.append(dict(request.headers))
        assert request.transport is not None
        self.connections.add(id(request.transport))
        if self.answers:
            status, headers, body = self.answers.pop(0)
            return web.Response(status=status, headers=headers, body=body)
        if request.headers.get("X-Amz-Target", "").startswith("AmazonSQS."):
            return web.Response(body=b'{"Messages": []}', content_type="application/json")
        return web.Response(headers={"ETag": '"e"'})


@pytest.fixture
async def scripted() -> AsyncIterator[Scripted]:
    server = Scripted()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", server.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server.port = runner.addresses[0][1]
    yield server
    await runner.cleanup()


class Counted(StaticCredentials):
    """Keys that count how often they were asked for and rejected."""

    def __init__(self) -> None:
        super().__init__(Credentials("AKIDEXAMPLE", "secret"))
        self.gets = 0
        self.invalidated = 0

    async def get(self) -> Credentials:
        self.gets += 1
        return await super().get()

    def invalidate(self) -> None:
        self.invalidated += 1


@dataclass
class Clients:
    http: HttpClient
    s3: S3Client
    queue: QueueClient
    metrics: Metrics
    credentials: Counted

    def retries(self, reason: str) -> float:
        return _sample(self.metrics, "s3sync_s3_retries_total", reason=reason)


def _sample(metrics: Metrics, name: str, **labels: str) -> float:
    return sum(
        sample.value
        for family in metrics.registry.collect()
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    )


@pytest.fixture
async def clients(scripted: Scripted) -> AsyncIterator[Clients]:
    http = HttpClient()
    metrics = Metrics()
    credentials = Counted()
    endpoint = Endpoint.parse(f"http://127.0.0.1:{scripted.port}/{{}}/", "b")
    s3 = S3Client(
        s3_requests(
            http, endpoint, region=REGION, credentials=credentials, metrics=metrics, retry=FAST
        ),
        endpoint,
        "b",
    )
    url = QueueUrl.parse(f"http://127.0.0.1:{scripted.port}/123456789012/events")
    queue = QueueClient(sqs_requests(http, url, region=REGION, credentials=credentials), url)
    yield Clients(http, s3, queue, metrics, credentials)
    await http.close()


def s3_error(code: str) -> bytes:
    return f"<Error><Code>{code}</Code><Message>m</Message></Error>".encode()


def sqs_error(code: str) -> bytes:
    return json.dumps({"__type": f"com.amazonaws.sqs#{code}", "message": "m"}).encode()


async def test_a_clock_skew_reported_by_s3_is_corrected_from_its_date(
    clients: Clients, scripted: Scripted
) -> None:
    server_now = datetime.now(UTC) + timedelta(hours=2)
    scripted.answers = [
        (403, {"Date": format_datetime(server_now, usegmt=True)}, s3_error("RequestTimeTooSkewed"))
    ]
    await clients.s3.delete_object("k")
    first, second = (seen["x-amz-date"] for seen in scripted.seen)
    signed_at = datetime.strptime(second, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    assert abs(signed_at - server_now) < timedelta(minutes=1)
    assert datetime.strptime(first, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC) < signed_at
    assert clients.retries("RequestTimeTooSkewed") == 1


async def test_rejected_s3_credentials_are_refreshed_once(
    clients: Clients, scripted: Scripted
) -> None:
    scripted.answers = [(403, {}, s3_error("ExpiredToken"))]
    await clients.s3.delete_object("k")
    assert (len(scripted.seen), clients.credentials.invalidated) == (2, 1)
    assert clients.retries("credentials") == 1

    scripted.answers = [(403, {}, s3_error("ExpiredToken"))] * 2
    with pytest.raises(S3Error) as refused:
        await clients.s3.delete_object("k")
    assert (refused.value.status, refused.value.code) == (403, "ExpiredToken")
    assert (len(scripted.seen), clients.credentials.invalidated) == (4, 2)  # one refresh each


async def test_s3_server_errors_are_retried_and_counted(
    clients: Clients, scripted: Scripted
) -> None:
    scripted.answers = [(500, {}, s3_error("InternalError")), (503, {}, b"")]
    assert (await clients.s3.get_small_object("k")).status == 200
    assert len(scripted.seen) == 3 and len(scripted.connections) == 1
    assert clients.retries("InternalError") == 1 and clients.retries("503") == 1
    requests = _sample(clients.metrics, "s3sync_s3_requests_total", operation="GetObject")
    assert requests == 3


async def test_before_retry_runs_before_each_send_after_the_first(
    clients: Clients, scripted: Scripted
) -> None:
    """What a request must check again before it is sent again (a HEAD standing in for a
    condition the server ignores) runs before each retry, and stops the retries by raising."""
    looks: list[int] = []

    async def look_again() -> None:
        looks.append(len(scripted.seen))

    scripted.answers = [(500, {}, s3_error("InternalError")), (503, {}, b"")]
    signed = clients.s3._requests
    await signed.request("DeleteObject", "DELETE", "/b/k", ok=(204, 200), before_retry=look_again)
    assert looks == [1, 2] and len(scripted.seen) == 3

    class Changed(Exception):
        pass

    async def another_version() -> None:
        raise Changed

    scripted.answers = [(500, {}, s3_error("InternalError"))]
    with pytest.raises(Changed):
        await signed.request("DeleteObject", "DELETE", "/b/k", before_retry=another_version)
    assert len(scripted.seen) == 4  # not sent again


async def test_rejected_sqs_credentials_are_refreshed_once(
    clients: Clients, scripted: Scripted
) -> None:
    scripted.answers = [(400, {}, sqs_error("ExpiredToken"))]
    assert await clients.queue.receive(wait=0) == []
    assert (len(scripted.seen), clients.credentials.invalidated) == (2, 1)
    assert scripted.seen[0]["X-Amz-Target"] == "AmazonSQS.ReceiveMessage"
    assert "/sqs/aws4_request" in scripted.seen[0]["Authorization"]

    scripted.answers = [(400, {}, sqs_error("InvalidClientTokenId"))] * 2
    with pytest.raises(QueueError) as refused:
        await clients.queue.receive(wait=0)
    assert (refused.value.code, refused.value.status) == ("InvalidClientTokenId", 400)
    assert (len(scripted.seen), clients.credentials.invalidated) == (4, 2)


async def test_sqs_refusals_are_not_retried_here(clients: Clients, scripted: Scripted) -> None:
    """The change feed's loop backs off; the path sends each call once."""
    scripted.answers = [(500, {}, sqs_error("InternalError"))]
    with pytest.raises(QueueError) as refused:
        await clients.queue.receive(wait=0)
    assert (refused.value.code, refused.value.status, refused.value.kind) == (
        "InternalError",
        500,
        "error",
    )
    scripted.answers = [(400, {}, sqs_error("AWS.SimpleQueueService.NonExistentQueue"))]
    with pytest.raises(QueueError) as missing:
        await clients.queue.attributes()
    assert missing.value.kind == "missing"
    assert len(scripted.seen) == 2
    assert clients.retries("InternalError") == 0  # the queue's path counts nothing as S3's


async def test_an_sqs_answer_over_its_limit_is_refused(
    clients: Clients, scripted: Scripted
) -> None:
    scripted.answers = [(200, {"Content-Type": "application/json"}, b" " * (ANSWER_LIMIT + 1))]
    with pytest.raises(QueueError) as refused:
        await clients.queue.receive(wait=0)
    assert refused.value.code == "AnswerTooLarge"


async def test_an_unreachable_queue_is_one_error() -> None:
    http = HttpClient()
    url = QueueUrl.parse("http://127.0.0.1:1/123456789012/events")
    queue = QueueClient(sqs_requests(http, url, region=REGION, credentials=Counted()), url)
    try:
        with pytest.raises(QueueError) as refused:
            await queue.receive(wait=0)
        assert refused.value.kind == "unreachable"
    finally:
        await http.close()


async def test_s3_and_the_queue_share_one_pool(clients: Clients, scripted: Scripted) -> None:
    """One HTTP client: a queue call after an S3 request to the same host reuses its
    kept-alive connection."""
    assert (await clients.s3.get_small_object("k")).status == 200
    assert await clients.queue.receive(wait=0) == []
    assert (await clients.s3.get_small_object("k")).status == 200
    assert len(scripted.seen) == 3 and len(scripted.connections) == 1


# -- what every write carries ------------------------------------------------------------------


async def test_every_write_carries_the_write_headers(bucket: Bucket) -> None:
    """`write_headers` (where encryption, storage class or ACL settings will go) reach every
    request that creates an object version: a PUT, a multipart upload and a metadata copy."""
    server = bucket.server
    http = HttpClient()
    endpoint = Endpoint.parse(server.endpoint_pattern, bucket.name)
    credentials = StaticCredentials(Credentials(server.access_key_id, server.secret_access_key))
    requests = s3_requests(
        http, endpoint, region=REGION, credentials=credentials, metrics=Metrics()
    )
    s3 = S3Client(
        requests, endpoint, bucket.name, write_headers={"x-amz-server-side-encryption": "AES256"}
    )
    try:
        put = await s3.put_object("put", b"p", 1, {}, checksum=checksums.full(b"p"))
        assert put.encryption == "AES256"
        upload = await s3.create_multipart_upload("parts", {})

        async def part() -> AsyncIterator[bytes]:
            yield b"m"

        part_sum = checksums.full(b"m")
        etag = await s3.upload_part("parts", upload, 1, part, 1, checksum=part_sum)
        await s3.complete_multipart_upload("parts", upload, [etag], [part_sum])
        bucket.put("copied", b"c")
        await s3.copy_object_metadata("copied", {"x-amz-meta-mode": "33188"}, if_match=None)
        for key in ("put", "parts", "copied"):
            head = await in_thread(bucket.head, key)
            assert head.get("ServerSideEncryption") == "AES256", key
        plain = S3Client(requests, endpoint, bucket.name)
        await plain.put_object("plain", b"x", 1, {}, checksum=checksums.full(b"x"))
        assert "ServerSideEncryption" not in await in_thread(bucket.head, "plain")
    finally:
        await http.close()


def test_origins_are_values() -> None:
    assert Origin("http", "h:1") == Endpoint.parse("http://h:1/{}/", "b").origin
    assert str(Origin("https", "h").url("/b/k?x=1")) == "https://h/b/k?x=1"
    assert parsedate_to_datetime(format_datetime(datetime(2026, 1, 1, tzinfo=UTC), usegmt=True))


async def test_an_sqs_answer_nested_too_deep_is_an_error_not_a_crash(
    clients: Clients, scripted: Scripted
) -> None:
    scripted.answers = [(200, {"Content-Type": "application/json"}, b"[" * 100_000)]
    with pytest.raises(QueueError) as refused:
        await clients.queue.receive(wait=0)
    assert refused.value.code == "InvalidAnswer"
    scripted.answers = [(500, {}, b"[" * 100_000)]
    with pytest.raises(QueueError) as failed:
        await clients.queue.receive(wait=0)
    assert (failed.value.code, failed.value.status) == ("HTTP500", 500)


async def test_an_s3_outage_is_said_when_it_begins_and_when_it_ends_not_per_try(
    clients: Clients, scripted: Scripted, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    scripted.answers = [(500, {}, s3_error("InternalError")), (503, {}, b"")] * 2
    # Two requests at once: their failures are one outage, which ends with the last of them.
    first, second = await asyncio.gather(
        clients.s3.get_small_object("a"), clients.s3.get_small_object("b")
    )
    assert first.status == second.status == 200
    scripted.answers = [(404, {}, b"")]
    assert await clients.s3.head_object("gone") is None  # 404: an answer, nothing to say
    said = [r for r in caplog.records if r.levelno >= logging.INFO]
    assert [r.levelname for r in said] == ["WARNING", "INFO"], [r.getMessage() for r in said]
    assert said[0].getMessage() == (
        "S3 answers HTTP 500 InternalError: retrying GetObject with back-off (up to 7 more "
        "tries, with at most 0s of waits)"
    )
    assert said[1].getMessage().startswith("S3 answers again, after ")
    assert said[1].getMessage().endswith("(4 failed tries retried)")
    assert len([r for r in caplog.records if "retrying GetObject" in r.getMessage()]) == 4


async def test_a_request_that_gives_up_leaves_the_outage_going(
    clients: Clients, scripted: Scripted, caplog: pytest.LogCaptureFixture
) -> None:
    """Nothing answered it: the outage ends only with an answer."""
    caplog.set_level(logging.INFO)
    scripted.answers = [(503, {}, b"")] * 8
    with pytest.raises(S3Error):
        await clients.s3.get_small_object("k")
    assert [r.levelname for r in caplog.records if r.levelno >= logging.INFO] == ["WARNING"]
    await clients.s3.get_small_object("k")
    assert [r.levelname for r in caplog.records if r.levelno >= logging.INFO] == [
        "WARNING",
        "INFO",
    ]


FIRST_OF_8: dict[str, Any] = {"attempt": 1, "attempts": 8, "retry": REQUEST}
SECOND_OF_8: dict[str, Any] = {"attempt": 2, "attempts": 8, "retry": REQUEST}


def test_a_store_that_fails_now_and_then_says_three_outages_a_window(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Throttling under load: two lines per fault would flood the log. A fourth outage within
    the window is said only once the window allows, with how long it has lasted."""
    caplog.set_level(logging.DEBUG)
    now = [0.0]
    outage = Outage("S3", logging.getLogger("test.outage"), per_window=3, clock=lambda: now[0])
    for _ in range(4):
        now[0] += 1.0
        token = object()
        outage.failed(token, "PutObject", "answers HTTP 503 SlowDown", **FIRST_OF_8)
        outage.ended(token, answered=True)
    levels = [r.levelname for r in caplog.records]
    assert levels == ["WARNING", "INFO"] * 3 + ["DEBUG", "DEBUG"]
    token = object()
    outage.failed(token, "PutObject", "answers HTTP 503 SlowDown", **FIRST_OF_8)
    assert caplog.records[-1].levelname == "DEBUG"
    now[0] = 61.0  # a minute after the first outage was said
    outage.failed(token, "PutObject", "answers HTTP 503 SlowDown", **SECOND_OF_8)
    assert caplog.records[-1].levelname == "WARNING"
    assert "for 57s now" in caplog.records[-1].getMessage()
    assert outage.under_way
    outage.ended(token, answered=False)  # gave up: nothing answered
    assert outage.under_way
    outage.ended(object(), answered=True)
    assert not outage.under_way
    assert caplog.records[-1].levelname == "INFO"
