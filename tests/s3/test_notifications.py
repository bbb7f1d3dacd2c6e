"""Remote changes through S3 event notifications (SYNC_QUEUE_URL), end to end: moto's server
delivers the bucket's real notifications to a real SQS queue it serves (SigV4 on), and the
sidecar long-polls that queue. Listings are made rarely here (an hour apart), so whatever
arrives sooner came through the queue."""

from __future__ import annotations

import json
import os
import stat
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from support.bucket import Bucket
from support.folders import read
from support.metrics import metric, requests
from support.s3_server import S3Server
from support.waiting import eventually, in_thread

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


@pytest.fixture
def queue(moto_server: S3Server, bucket: Bucket) -> Queue:
    """A queue receiving the bucket's ObjectCreated/ObjectRemoved events, emptied of the test
    event S3 sends when the notification is configured."""
    sqs = moto_server.client("sqs")
    url = sqs.create_queue(QueueName=f"q-{uuid.uuid4().hex[:12]}")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    bucket.client.put_bucket_notification_configuration(
        Bucket=bucket.name,
        NotificationConfiguration={
            "QueueConfigurations": [
                {"QueueArn": arn, "Events": ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"]}
            ]
        },
    )
    sqs.purge_queue(QueueUrl=url)
    return Queue(url, arn, sqs)


def s3_event(bucket: str, key: str, name: str, etag: str = "", size: int = 0) -> dict[str, Any]:
    obj: dict[str, Any] = {"key": key}
    if name.startswith("ObjectCreated"):
        obj |= {"eTag": etag, "size": size}
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
    await in_thread(bucket.put, "meanwhile.txt", b"found by a listing")
    await eventually(lambda: read(syncer.folder / "meanwhile.txt") == b"found by a listing")

    proxy.faults.down = False
    await eventually(
        lambda: syncer.readiness()["queue"]["ok"], timeout=90, what="the queue answers again"
    )
    await in_thread(bucket.put, "after.txt", b"through the queue")
    await eventually(lambda: read(syncer.folder / "after.txt") == b"through the queue")
    assert syncer._running().problems() == []


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
