"""Parsing S3 event notifications in every form they reach SQS (pure: no queue, no S3)."""

from __future__ import annotations

import json

import pytest
from support.hostile import HOSTILE_BODIES, received

from sidecar.s3.events import (
    MAX_MESSAGE_BYTES,
    MalformedMessage,
    Notification,
    ObjectEvent,
    parse_message,
    sequencer_order,
)


def s3_record(
    name: str = "ObjectCreated:Put", key: str = "team/a+b%2Bc.txt", **obj: object
) -> dict:
    return {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "eventTime": "2026-12-01T12:00:00.250Z",
        "eventName": name,
        "s3": {
            "bucket": {"name": "my-bucket"},
            "object": {"key": key, "size": 5, "eTag": "abc", "sequencer": "0A1B", **obj},
        },
    }


def eventbridge(kind: str = "Object Created", key: str = "team/a b+c.txt") -> dict:
    obj: dict[str, object] = {"key": key, "sequencer": "0064D3901D00059242"}
    if kind == "Object Created":
        obj |= {"size": 7, "etag": "4af9-12"}
    return {
        "version": "0",
        "detail-type": kind,
        "source": "aws.s3",
        "time": "2026-12-01T12:00:01Z",
        "detail": {"bucket": {"name": "my-bucket"}, "object": obj, "reason": "PutObject"},
    }


def sns(inner: dict) -> dict:
    return {"Type": "Notification", "TopicArn": "arn:aws:sns:x:1:t", "Message": json.dumps(inner)}


CREATED = ObjectEvent(
    "my-bucket", "team/a b+c.txt", True, "abc", 5, "0A1B", 1796126400.25, "ObjectCreated:Put"
)


@pytest.mark.parametrize("wrap", [lambda d: d, sns], ids=["raw", "sns"])
def test_an_s3_notification_with_a_url_encoded_key(wrap) -> None:
    assert parse_message(json.dumps(wrap({"Records": [s3_record()]}))) == Notification((CREATED,))


def test_a_removal_and_a_copy_in_one_message() -> None:
    records = [
        s3_record("ObjectRemoved:Delete", key="x", eTag=None, size=None),
        s3_record("ObjectCreated:Copy", key="y"),
    ]
    events = parse_message(json.dumps({"Records": records})).events
    assert [(e.key, e.created, e.etag, e.size, e.name) for e in events] == [
        ("x", False, "", None, "ObjectRemoved:Delete"),
        ("y", True, "abc", 5, "ObjectCreated:Copy"),
    ]


def test_events_that_change_no_bytes_give_nothing() -> None:
    records = [s3_record("ObjectRestore:Completed"), s3_record("ObjectTagging:Put")]
    assert parse_message(json.dumps({"Records": records})) == Notification(())


@pytest.mark.parametrize("wrap", [lambda d: d, sns], ids=["raw", "sns"])
def test_eventbridge_events_keep_the_key_as_it_is(wrap) -> None:
    created = parse_message(json.dumps(wrap(eventbridge()))).events
    assert created == (
        ObjectEvent(
            "my-bucket",
            "team/a b+c.txt",
            True,
            "4af9-12",
            7,
            "0064D3901D00059242",
            1796126401.0,
            "PutObject",
        ),
    )
    deleted = parse_message(json.dumps(wrap(eventbridge("Object Deleted")))).events
    assert [(e.created, e.etag, e.size) for e in deleted] == [(False, "", None)]
    other = eventbridge("Object Restore Completed")
    assert parse_message(json.dumps(other)) == Notification(())


def test_the_test_event() -> None:
    body = {"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "my-bucket"}
    assert parse_message(json.dumps(body)) == Notification(test=True)
    assert parse_message(json.dumps(sns(body))) == Notification(test=True)


@pytest.mark.parametrize(
    "body",
    [
        "",
        "not json",
        "[]",
        "{}",
        json.dumps({"Records": "nope"}),
        json.dumps({"Records": [1]}),
        json.dumps({"Records": [{"eventName": "ObjectCreated:Put"}]}),
        json.dumps({"Records": [s3_record(key="")]}),
        json.dumps({"Type": "Notification", "Message": 5}),
        json.dumps({"Type": "Notification", "Message": "{"}),
        json.dumps({"source": "aws.s3", "detail-type": "Object Created", "detail": []}),
        "x" * (MAX_MESSAGE_BYTES + 1),
    ],
)
def test_what_is_not_understood_is_malformed(body: str) -> None:
    with pytest.raises(MalformedMessage):
        parse_message(body)


@pytest.mark.parametrize("name", list(HOSTILE_BODIES))
def test_no_body_a_sender_writes_raises_anything_but_malformed(name: str) -> None:
    """Nested past the decoder's depth, huge, not UTF-8, or the wrong shape at any level: each
    is malformed, and nothing else (a RecursionError or UnicodeError would end the feed)."""
    with pytest.raises(MalformedMessage):
        parse_message(received(HOSTILE_BODIES[name]))


def test_absent_optional_fields_are_absent() -> None:
    record = s3_record(key="team/k%C3%A9y")
    del record["s3"]["object"]["eTag"], record["s3"]["object"]["size"]
    del record["s3"]["object"]["sequencer"], record["eventTime"]
    (event,) = parse_message(json.dumps({"Records": [record]})).events
    assert (event.key, event.etag, event.size, event.sequencer, event.time) == (
        "team/kéy",
        "",
        None,
        "",
        None,
    )


def test_sequencers_of_different_lengths_compare_as_numbers() -> None:
    assert sequencer_order("0A1B") < sequencer_order("0A1C")
    assert sequencer_order("FF") < sequencer_order("0100")
    assert sequencer_order("0064d3901d00059242") == sequencer_order("0064D3901D00059242")
