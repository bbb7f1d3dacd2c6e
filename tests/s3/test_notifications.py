"""Remote changes through S3 event notifications (SYNC_QUEUE_URL), end to end: moto's server
delivers the bucket's real notifications to a real SQS queue it serves (SigV4 on), and the
sidecar long-polls that queue. Listings are made rarely here (an hour apart), so whatever
arrives sooner came through the queue."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import stat
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from support.bucket import Bucket
from support.environments import sidecar_environment
from support.folders import read
from support.hostile import HOSTILE_BODIES, NOT_UTF8_BYTES, NOT_UTF8_MARK, SQS_LIMIT
from support.local_http import free_port, http_get
from support.metrics import metric, requests, scrape, series
from support.s3_server import S3Server
from support.sidecars import SidecarProcess
from support.waiting import eventually, in_thread

from sidecar.remote import feed
from sidecar.s3.metadata import format_mode

HOUR = 3600


@dataclass
class Queue:
    url: str
    arn: str
    sqs: Any

    def send(self, body: str | dict[str, Any]) -> None:
        text = body if isinstance(body, str) else json.dumps(body)
        self.sqs.send_message(QueueUrl=self.url, MessageBody=text)

    def waiting(self) -> int:
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=self.url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]) + int(
            attributes["ApproximateNumberOfMessagesNotVisible"]
        )


def new_queue(moto_server: S3Server) -> Queue:
    sqs = moto_server.client("sqs")
    url = sqs.create_queue(QueueName=f"q-{uuid.uuid4().hex[:12]}")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    return Queue(url, arn, sqs)


@pytest.fixture
def quiet_queue(moto_server: S3Server, bucket: Bucket) -> Queue:
    """A queue the bucket does not notify: the test is S3's only voice on it, and sends events
    as S3 writes them, sequencers included (moto's own carry none)."""
    return new_queue(moto_server)


@pytest.fixture
def queue(moto_server: S3Server, bucket: Bucket) -> Queue:
    """A queue receiving the bucket's ObjectCreated/ObjectRemoved events, emptied of the test
    event S3 sends when the notification is configured."""
    queue = new_queue(moto_server)
    sqs, url, arn = queue.sqs, queue.url, queue.arn
    bucket.client.put_bucket_notification_configuration(
        Bucket=bucket.name,
        NotificationConfiguration={
            "QueueConfigurations": [
                {"QueueArn": arn, "Events": ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"]}
            ]
        },
    )
    sqs.purge_queue(QueueUrl=url)
    return queue


def s3_event(
    bucket: str, key: str, name: str, etag: str = "", size: int = 0, sequencer: str = ""
) -> dict[str, Any]:
    obj: dict[str, Any] = {"key": key}
    if name.startswith("ObjectCreated"):
        obj |= {"eTag": etag, "size": size}
    if sequencer:
        obj["sequencer"] = sequencer
    return {
        "Records": [
            {
                "eventName": name,
                "eventTime": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
                "s3": {"bucket": {"name": bucket}, "object": obj},
            }
        ]
    }


async def handled(syncer: Any, queue: Queue) -> None:
    """Until the queue is empty: every message received, handled and deleted."""
    await eventually(lambda: queue.waiting() == 0, what="the queue emptied")
    await syncer._running().scheduler.wait_idle()


async def test_changes_in_s3_arrive_through_the_queue(
    syncer_factory, bucket: Bucket, queue: Queue
) -> None:
    syncer = await syncer_factory(download_interval=HOUR, queue_url=queue.url)
    folder: Path = syncer.folder
    listings = requests(syncer, "ListObjectsV2")

    await in_thread(bucket.put, "notes/a.txt", b"one")
    await eventually(lambda: read(folder / "notes" / "a.txt") == b"one", what="created")
    await in_thread(bucket.put, "notes/a.txt", b"two, longer")
    await eventually(lambda: read(folder / "notes" / "a.txt") == b"two, longer", what="changed")
    mode = {"mode": format_mode(stat.S_IFREG | 0o751)}
    await in_thread(bucket.set_metadata, "notes/a.txt", mode)
    await eventually(
        lambda: stat.S_IMODE(os.lstat(folder / "notes" / "a.txt").st_mode) == 0o751,
        what="a metadata-only copy",
    )
    await in_thread(bucket.delete, "notes/a.txt")
    await eventually(lambda: not (folder / "notes" / "a.txt").exists(), what="deleted")

    assert requests(syncer, "ListObjectsV2") == listings  # none of it came from a listing
    assert requests(syncer, "PutObject") == 0
    assert metric(syncer, "s3sync_notification_events_total", result="applied") >= 4
    assert metric(syncer, "s3sync_notification_lag_seconds_count") >= 4
    await handled(syncer, queue)


async def test_our_own_writes_come_back_as_events_and_change_nothing(
    syncer_factory, bucket: Bucket, queue: Queue
) -> None:
    syncer = await syncer_factory(download_interval=HOUR, queue_url=queue.url)
    path = syncer.folder / "mine.txt"
    path.write_bytes(b"written here")
    await eventually(lambda: bucket.exists("mine.txt"))
    await eventually(
        lambda: metric(syncer, "s3sync_notification_events_total", result="received") >= 1,
        what="the echo",
    )
    await handled(syncer, queue)
    path.unlink()
    await eventually(lambda: not bucket.exists("mine.txt"))
    await eventually(
        lambda: metric(syncer, "s3sync_notification_events_total", result="received") >= 2,
        what="the delete's echo",
    )
    await handled(syncer, queue)
    assert metric(syncer, "s3sync_downloads_total") == 0
    assert requests(syncer, "GetObject") == 0
    assert not path.exists()
    assert requests(syncer, "PutObject") == 1  # nothing went up again


async def test_stale_duplicated_and_forged_events_never_delete_or_undo(
    syncer_factory, bucket: Bucket, queue: Queue
) -> None:
    """An event is a hint: the object is looked at, and what S3 holds now decides. A removal
    event for an object that exists, an old creation event after a newer version, and the
    same event twice change nothing."""
    syncer = await syncer_factory(download_interval=HOUR, queue_url=queue.url)
    folder: Path = syncer.folder
    old_etag = await in_thread(bucket.put, "keep.txt", b"old")
    await eventually(lambda: read(folder / "keep.txt") == b"old")
    await in_thread(bucket.put, "keep.txt", b"new version")
    await eventually(lambda: read(folder / "keep.txt") == b"new version")
    await handled(syncer, queue)
    downloads = metric(syncer, "s3sync_downloads_total")

    removed = s3_event(bucket.name, "keep.txt", "ObjectRemoved:Delete")
    await in_thread(queue.send, removed)
    await in_thread(queue.send, removed)
    await in_thread(queue.send, s3_event(bucket.name, "keep.txt", "ObjectCreated:Put", old_etag, 3))
    await handled(syncer, queue)

    assert read(folder / "keep.txt") == b"new version"
    assert await in_thread(bucket.get, "keep.txt") == b"new version"
    assert metric(syncer, "s3sync_downloads_total") == downloads
    assert requests(syncer, "DeleteObject") == 0


async def test_what_is_not_ours_or_not_understood_is_skipped_and_deleted(
    syncer_factory, bucket: Bucket, queue: Queue
) -> None:
    syncer = await syncer_factory(prefix="team/", download_interval=HOUR, queue_url=queue.url)
    heads = requests(syncer, "HeadObject")
    for body in (
        "not json at all",
        {"Records": "nope"},
        s3_event("another-bucket", "team/x.txt", "ObjectCreated:Put", "e", 1),
        s3_event(bucket.name, "other-team/x.txt", "ObjectCreated:Put", "e", 1),
        s3_event(bucket.name, "team/never-existed.txt", "ObjectRemoved:Delete"),
    ):
        await in_thread(queue.send, body)
    await handled(syncer, queue)
    assert metric(syncer, "s3sync_notification_messages_total", result="malformed") == 2
    assert metric(syncer, "s3sync_notification_events_total", result="ignored") == 3
    assert requests(syncer, "HeadObject") == heads  # not one request for any of them
    assert syncer._running().problems() == []
    # and the feed still works
    await in_thread(bucket.put, "team/real.txt", b"real")
    await eventually(lambda: read(syncer.folder / "real.txt") == b"real")


async def test_a_test_event_asks_for_a_listing(
    syncer_factory, bucket: Bucket, queue: Queue
) -> None:
    syncer = await syncer_factory(download_interval=HOUR, queue_url=queue.url)
    listings = requests(syncer, "ListObjectsV2")
    await in_thread(queue.send, {"Service": "Amazon S3", "Event": "s3:TestEvent"})
    await eventually(lambda: requests(syncer, "ListObjectsV2") == listings + 1, what="a listing")
    assert metric(syncer, "s3sync_notification_messages_total", result="test") == 1


async def test_an_unreachable_queue_is_reported_and_listings_take_over(
    syncer_factory, bucket: Bucket, queue: Queue, proxy: Any
) -> None:
    """The queue behind a proxy that goes down: readiness says so, errors are counted,
    listings run at the fallback interval meanwhile, and one runs when the queue is back."""
    through_proxy = queue.url.replace(queue.url.split("/")[2], f"127.0.0.1:{proxy.port}")
    proxy.faults.down = True
    syncer = await syncer_factory(download_interval=2, queue_url=through_proxy)
    await eventually(
        lambda: not syncer.readiness()["queue"]["ok"], what="readiness says the queue fails"
    )
    assert syncer.readiness()["queue"]["error"]
    assert metric(syncer, "s3sync_notification_queue_errors_total", kind="unreachable") >= 1
    assert metric(syncer, "s3sync_notification_queue_failing") == 1, "the alerts' gauge"
    await in_thread(bucket.put, "meanwhile.txt", b"found by a listing")
    await eventually(lambda: read(syncer.folder / "meanwhile.txt") == b"found by a listing")

    proxy.faults.down = False
    await eventually(
        lambda: syncer.readiness()["queue"]["ok"], timeout=90, what="the queue answers again"
    )
    assert metric(syncer, "s3sync_notification_queue_failing") == 0
    await in_thread(bucket.put, "after.txt", b"through the queue")
    await eventually(lambda: read(syncer.folder / "after.txt") == b"through the queue")
    assert syncer._running().problems() == []


async def test_a_queue_that_fails_between_listings_an_hour_apart_is_listed_for_at_once(
    syncer_factory, bucket: Bucket, queue: Queue, proxy: Any
) -> None:
    """With the queue doing the work, listings are far apart (here an hour). When it goes
    away, the prefix is listed at once and then at the fallback interval (not after the hour
    under way), and /healthz lists the feed as degraded until the queue answers again."""
    syncer = await syncer_factory(download_interval=HOUR, queue_url=through(proxy, queue.url))
    engine = syncer._running()
    await in_thread(bucket.put, "before.txt", b"through the queue")
    await eventually(lambda: read(syncer.folder / "before.txt") == b"through the queue")
    assert syncer.degraded() == []

    proxy.faults.down = True  # the long poll under way ends (up to 20 s), the next one fails
    await eventually(
        lambda: any(
            "event queue (SYNC_QUEUE_URL) is failing" in line for line in syncer.degraded()
        ),
        timeout=45,
        what="/healthz says the feed is degraded",
    )
    assert engine._poll_interval() == engine.poller.fallback_interval
    await in_thread(bucket.put, "meanwhile.txt", b"found by a listing")
    await eventually(
        lambda: read(syncer.folder / "meanwhile.txt") == b"found by a listing",
        timeout=25,
        what="a listing within the fallback interval, not after the hour under way",
    )

    proxy.faults.down = False
    await eventually(lambda: syncer.degraded() == [], timeout=90, what="the queue back")
    assert engine._poll_interval() == HOUR
    assert engine.problems() == []


@pytest.mark.parametrize("turns", [0, 1, 2])
async def test_a_listing_asked_for_as_the_sidecar_stops_never_holds_up_the_stop(
    syncer_factory, bucket: Bucket, queue: Queue, turns: int
) -> None:
    """The feed asks for listings at any moment (the queue failing or back, a test event, an
    event it could not handle), the stop's among them. The poller waited for the ask with
    asyncio.wait_for, which on Python 3.11 swallows a cancellation that comes just after what
    it waits for: the poller went back to waiting an hour, and the stop waited for it."""
    syncer = await syncer_factory(download_interval=HOUR, queue_url=queue.url)
    poller = next(t for t in syncer.internal_tasks if t.get_name() == "poller")
    syncer._running().poller.request_listing("a test")
    for _ in range(turns):  # the cancellation that many loop turns after the ask
        await asyncio.sleep(0)
    poller.cancel()
    try:
        await eventually(poller.done, timeout=5, what="the poller ended by its cancellation")
    finally:
        poller.cancel()  # once more, so that a poller that went on lets the test end


async def test_another_metadata_copy_in_the_second_of_our_upload_is_applied(
    syncer_factory, bucket: Bucket, queue: Queue, proxy: Any
) -> None:
    """Another tool copies what we just uploaded onto itself with a new mode, in the same
    second: no listing can tell that from our own write, but its event makes us look. The
    queue's answers are held a second, so both events come in one batch and one HEAD, made
    after the copy, is the first to tell us our write's Last-Modified."""
    proxy.faults.methods = {"POST"}
    proxy.faults.delay = 1.0
    through_proxy = queue.url.replace(queue.url.split("/")[2], f"127.0.0.1:{proxy.port}")
    syncer = await syncer_factory(download_interval=HOUR, queue_url=through_proxy)
    path = syncer.folder / "tool.sh"
    for attempt in range(5):
        await eventually(lambda: time.time() % 1 < 0.3, what="the start of a second")
        path.write_bytes(f"#!/bin/sh\necho {attempt}\n".encode())
        await eventually(
            lambda: bucket.exists("tool.sh") and bucket.get("tool.sh") == path.read_bytes(),
            interval=0.01,
        )
        written = int((await in_thread(bucket.head, "tool.sh"))["LastModified"].timestamp())
        await in_thread(bucket.set_metadata, "tool.sh", {"mode": format_mode(stat.S_IFREG | 0o700)})
        copied = int((await in_thread(bucket.head, "tool.sh"))["LastModified"].timestamp())
        if copied == written:
            break
        await handled(syncer, queue)
    else:
        raise AssertionError("could not copy within the second of the upload")
    await eventually(
        lambda: stat.S_IMODE(os.lstat(path).st_mode) == 0o700, what="their mode applied"
    )
    await handled(syncer, queue)
    assert stat.S_IMODE(os.lstat(path).st_mode) == 0o700
    assert path.read_bytes() == await in_thread(bucket.get, "tool.sh")


def looks(syncer: Any) -> int:
    """How many keys the change feed looked at (a HEAD each) after their events."""
    return int(metric(syncer, "s3sync_notification_events_total", result="applied"))


def through(proxy: Any, url: str) -> str:
    """`url` by way of the fault proxy."""
    return url.replace(url.split("/")[2], f"127.0.0.1:{proxy.port}")


async def test_no_message_ends_the_process_and_each_is_deleted_with_one_warning(
    run_sidecar, bucket: Bucket, queue: Queue, proxy: Any, tmp_path: Path
) -> None:
    """Issue 24, item 2: `"[" * 5000` on the queue killed the change feed, and so the process,
    again after every restart. Every body a sender can put there (support/hostile.py: nested
    past the decoder's depth, near SQS's size limit, bytes that are not UTF-8, the wrong shape
    at every level, SNS wrapping garbage, EventBridge without its detail), waiting at the start
    or arriving later, is deleted with one warning and counted, the real command keeps running
    and healthy, and the genuine events among them are applied at once."""
    proxy.faults.replace = (NOT_UTF8_MARK.encode(), NOT_UTF8_BYTES)
    names = list(HOSTILE_BODIES)
    for name in names[::2]:  # waiting when the sidecar starts, as after a restart
        await in_thread(queue.send, HOSTILE_BODIES[name])
    port = free_port()
    folder = tmp_path / "data"
    sidecar: SidecarProcess = run_sidecar(
        [],
        sidecar_environment(
            bucket,
            folder,
            SYNC_QUEUE_URL=through(proxy, queue.url),
            SYNC_POLL_INTERVAL=str(HOUR),
            SYNC_HTTP_PORT=str(port),
        ),
    )
    await sidecar.answering(port, "/readyz")
    listed = series(
        (await scrape(port)).samples,
        "s3sync_s3_requests_total",
        operation="ListObjectsV2",
        status="200",
    )

    def alive() -> None:
        assert sidecar.process.poll() is None, sidecar.text()

    def arrived(name: str, data: bytes) -> bool:
        alive()
        return read(folder / name) == data

    def emptied() -> bool:
        alive()
        return queue.waiting() == 0

    await in_thread(bucket.put, "first.txt", b"first")
    await eventually(lambda: arrived("first.txt", b"first"), what="an event after the first")
    for name in names[1::2]:
        await in_thread(queue.send, HOSTILE_BODIES[name])
    await in_thread(bucket.put, "second.txt", b"second")
    await eventually(lambda: arrived("second.txt", b"second"), what="an event after the rest")
    await eventually(emptied, timeout=30, what="every message deleted")
    alive()
    assert sidecar.text().count("deleting a message the sidecar cannot read") == len(names)
    samples = (await scrape(port)).samples
    assert series(samples, "s3sync_notification_messages_total", result="malformed") == len(names)
    assert series(samples, "s3sync_notification_messages_total", result="failed") == 0
    assert series(samples, "s3sync_notification_events_total", result="applied") >= 2
    assert (
        series(samples, "s3sync_s3_requests_total", operation="ListObjectsV2", status="200")
        == listed
    ), "both files came through the queue, none by a listing"
    status, body = await http_get(port, "/healthz")
    assert (status, json.loads(body)) == (200, {"status": "ok", "problems": [], "degraded": []})
    sidecar.process.send_signal(signal.SIGTERM)
    assert await sidecar.wait() == 0, sidecar.text()


async def test_messages_too_large_to_read_ten_at_a_time_are_read_one_at_a_time(
    syncer_factory, bucket: Bucket, queue: Queue
) -> None:
    """Ten bodies of SQS's largest size make one answer of 10 MiB, over what the client reads:
    that receive fails (once), and the next ones ask for a message each, so that each is read
    and deleted rather than the whole batch coming back and failing forever."""
    await in_thread(
        lambda: queue.sqs.set_queue_attributes(
            QueueUrl=queue.url, Attributes={"VisibilityTimeout": "2"}
        )
    )
    for _ in range(10):
        await in_thread(queue.send, "x" * SQS_LIMIT)
    syncer = await syncer_factory(download_interval=HOUR, queue_url=queue.url)
    await eventually(lambda: queue.waiting() == 0, timeout=45, what="every message deleted")
    assert metric(syncer, "s3sync_notification_messages_total", result="malformed") == 10
    await in_thread(bucket.put, "after.txt", b"after")
    await eventually(lambda: read(syncer.folder / "after.txt") == b"after")
    assert syncer._running().problems() == []


async def test_a_feed_that_keeps_failing_lists_instead_says_so_and_recovers(
    syncer_factory, bucket: Bucket, queue: Queue, monkeypatch: pytest.MonkeyPatch, caplog
) -> None:
    """Any exception in handling a batch is contained (here a fold that raises, as a bug
    would): each message is deleted with one warning and counted, a listing finds what it
    named, and after three in a row the feed is degraded (listings at the fallback interval,
    said in /healthz's degraded list) until an event is handled again. No task ends."""
    fold = feed.apply_findings
    broken = True

    def failing_fold(*args: Any, **kwargs: Any) -> list[str]:
        if broken:
            raise RuntimeError("a bug in the fold")
        return fold(*args, **kwargs)

    monkeypatch.setattr(feed, "apply_findings", failing_fold)
    syncer = await syncer_factory(download_interval=HOUR, queue_url=queue.url)
    engine = syncer._running()
    caplog.set_level(logging.INFO, logger="sidecar")
    for number in range(3):
        await in_thread(bucket.put, f"f{number}.txt", b"listed")
    await eventually(
        lambda: all(read(syncer.folder / f"f{n}.txt") == b"listed" for n in range(3)),
        what="what the messages named, found by the listings they asked for",
    )
    await handled(syncer, queue)
    assert metric(syncer, "s3sync_notification_messages_total", result="failed") == 3
    warnings = [r for r in caplog.records if "whose handling failed" in r.getMessage()]
    assert len(warnings) == 3 and [bool(r.exc_info) for r in warnings] == [True, False, False]
    assert any("keep failing to be handled" in line for line in syncer.degraded())
    assert engine._poll_interval() == engine.poller.fallback_interval
    assert engine.problems() == []

    broken = False
    await in_thread(bucket.put, "after.txt", b"through the queue")
    await eventually(lambda: read(syncer.folder / "after.txt") == b"through the queue")
    await eventually(lambda: syncer.degraded() == [], what="the feed no longer degraded")
    assert engine._poll_interval() == HOUR
    assert "S3 events are handled again" in caplog.text


FORGED = "F" * 40


@pytest.mark.parametrize(
    "forgery",
    ["another-etag", "no-object", "a-removal-of-an-object-that-exists", "the-objects-own-etag"],
)
async def test_a_forged_event_never_silences_the_genuine_ones(
    syncer_factory, bucket: Bucket, quiet_queue: Queue, forgery: str
) -> None:
    """Issue 24, item 3: a creation event for doc.txt with sequencer F x40 was remembered
    whatever its HEAD found, and every genuine event after it (a lower sequencer) was dropped
    until the next listing. Now only what S3 confirmed is remembered, and a sequencer, which
    S3's answers never confirm, silences nothing: not even when the forger knows the object's
    ETag (the MD5 of bytes it knows), so that the HEAD finds what the event says."""
    syncer = await syncer_factory(download_interval=HOUR, queue_url=quiet_queue.url)
    doc = syncer.folder / "doc.txt"
    listings = requests(syncer, "ListObjectsV2")
    genuine = iter(f"0064D3901D0005924{n}" for n in range(10))  # S3's, rising

    async def put(data: bytes) -> str:
        etag = await in_thread(bucket.put, "doc.txt", data)
        event = s3_event(
            bucket.name, "doc.txt", "ObjectCreated:Put", etag, len(data), next(genuine)
        )
        await in_thread(quiet_queue.send, event)
        return str(etag)

    etag = ""
    if forgery != "no-object":
        etag = await put(b"v1")
        await eventually(lambda: read(doc) == b"v1", what="v1, through its event")
        await handled(syncer, quiet_queue)
    forged = {
        "another-etag": s3_event(bucket.name, "doc.txt", "ObjectCreated:Put", "0" * 32, 2, FORGED),
        "no-object": s3_event(bucket.name, "doc.txt", "ObjectCreated:Put", "0" * 32, 2, FORGED),
        "a-removal-of-an-object-that-exists": s3_event(
            bucket.name, "doc.txt", "ObjectRemoved:Delete", sequencer=FORGED
        ),
        "the-objects-own-etag": s3_event(
            bucket.name, "doc.txt", "ObjectCreated:Put", etag, 2, FORGED
        ),
    }[forgery]
    looked = looks(syncer)
    await in_thread(quiet_queue.send, forged)
    await handled(syncer, quiet_queue)
    assert looks(syncer) == looked + 1  # looked at, like any event
    assert read(doc) == (None if forgery == "no-object" else b"v1")  # and it changed nothing

    await put(b"v2, genuine")
    await eventually(
        lambda: read(doc) == b"v2, genuine",
        timeout=10,
        what="the genuine change at once, not at the next listing (an hour away)",
    )
    assert requests(syncer, "ListObjectsV2") == listings  # the queue's doing, not a listing's


async def test_a_repeat_of_an_event_s3_confirmed_costs_no_request(
    syncer_factory, bucket: Bucket, quiet_queue: Queue
) -> None:
    """S3 delivers at least once: the repeats of an event whose HEAD confirmed it are spared a
    request; those of an event S3 did not confirm are looked at each time (nothing of them is
    remembered); a reordered older event costs a look that changes nothing."""
    syncer = await syncer_factory(download_interval=HOUR, queue_url=quiet_queue.url)
    doc = syncer.folder / "doc.txt"
    etag = await in_thread(bucket.put, "doc.txt", b"v1")
    first = s3_event(bucket.name, "doc.txt", "ObjectCreated:Put", etag, 2, "0064D3901D00059241")
    await in_thread(quiet_queue.send, first)
    await eventually(lambda: read(doc) == b"v1")
    await handled(syncer, quiet_queue)
    looked, heads = looks(syncer), requests(syncer, "HeadObject")
    for _ in range(2):
        await in_thread(quiet_queue.send, first)
        await handled(syncer, quiet_queue)
    assert (looks(syncer), requests(syncer, "HeadObject")) == (looked, heads)
    assert metric(syncer, "s3sync_notification_events_total", result="ignored") == 2

    unconfirmed = s3_event(bucket.name, "doc.txt", "ObjectCreated:Put", "0" * 32, 2, FORGED)
    for _ in range(2):
        await in_thread(quiet_queue.send, unconfirmed)
        await handled(syncer, quiet_queue)
    assert looks(syncer) == looked + 2

    etag = await in_thread(bucket.put, "doc.txt", b"v2 now")
    second = s3_event(bucket.name, "doc.txt", "ObjectCreated:Put", etag, 6, "0064D3901D00059242")
    await in_thread(quiet_queue.send, second)
    await eventually(lambda: read(doc) == b"v2 now")
    await in_thread(quiet_queue.send, first)  # late, after the newer one
    await handled(syncer, quiet_queue)
    assert read(doc) == b"v2 now"
    assert metric(syncer, "s3sync_downloads_total") == 2


async def test_a_rename_whose_copy_and_delete_come_in_two_batches_is_moved_here(
    syncer_factory, bucket: Bucket, queue: Queue
) -> None:
    """Another client's `mv` through the queue, its copy's event handled before its delete's
    arrives: the new key holds the object of the synced file still here under the old name, so
    it is copied from that file (proven by the ETag), not downloaded; the delete's event then
    removes the old file. No GetObject, no listing."""
    syncer = await syncer_factory(download_interval=HOUR, queue_url=queue.url)
    folder: Path = syncer.folder
    data = os.urandom(50_000)
    (folder / "report.pdf").write_bytes(data)
    await eventually(lambda: bucket.exists("report.pdf"), what="uploaded")
    assert (await syncer.flush()).flushed
    await handled(syncer, queue)
    gets, listings = requests(syncer, "GetObject"), requests(syncer, "ListObjectsV2")

    await in_thread(
        lambda: bucket.client.copy_object(
            Bucket=bucket.name,
            Key="2026/report.pdf",
            CopySource={"Bucket": bucket.name, "Key": "report.pdf"},
        )
    )
    await eventually(lambda: read(folder / "2026" / "report.pdf") == data, what="copied here")
    await handled(syncer, queue)
    assert read(folder / "report.pdf") == data  # its key is still there: so is the file
    await in_thread(bucket.delete, "report.pdf")
    await eventually(lambda: not (folder / "report.pdf").exists(), what="the old name gone")
    await handled(syncer, queue)

    assert read(folder / "2026" / "report.pdf") == data
    assert requests(syncer, "GetObject") == gets  # no byte of it downloaded
    assert requests(syncer, "ListObjectsV2") == listings  # all of it came through the queue
    assert metric(syncer, "s3sync_renames_total", how="local_move", result="ok") == 1
    assert metric(syncer, "s3sync_bytes_saved_total", how="local_move") == len(data)
