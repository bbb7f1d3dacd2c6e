"""S3 event notifications as they arrive through SQS: what changed, read from any of the forms
S3 publishes, with nothing decided here (pure; `changes.py` acts on it).

Accepted forms, each raw or wrapped in an SNS notification (`{"Type": "Notification",
"Message": "<json>"}`, SNS's default delivery to SQS):

- S3's own notification JSON: `{"Records": [{"eventName": "ObjectCreated:Put", "eventTime":
  …, "s3": {"bucket": {"name": …}, "object": {"key": <URL-encoded, `+` for spaces>, "size",
  "eTag", "sequencer"}}}]}`, and its `s3:TestEvent`, sent when a notification is configured;
- EventBridge's: `{"detail-type": "Object Created" | "Object Deleted", "source": "aws.s3",
  "time": …, "detail": {"bucket": {"name": …}, "object": {"key": <as is>, "size", "etag",
  "sequencer"}}}`.

Anything else is `MalformedMessage`: a message is never half understood. Events of other kinds
(restores, tagging, lifecycle transitions) parse to no event: they change no bytes we sync.

`sequencer` is S3's per-key order (events arrive in any order and at least once): hexadecimal
of varying length, compared after left-padding (`sequencer_order`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import unquote_plus

MAX_MESSAGE_BYTES = 256 * 1024  # SQS's largest message


class MalformedMessage(ValueError):
    """Not a message we understand, said in words for the log."""


@dataclass(frozen=True, slots=True)
class ObjectEvent:
    bucket: str
    key: str  # decoded: the object's real key
    created: bool  # ObjectCreated (put, post, copy, multipart); otherwise ObjectRemoved
    etag: str  # "" when the event does not say (removals)
    size: int | None
    sequencer: str  # "" when the event does not carry one
    time: float | None  # seconds since the epoch, as S3 stamped the event
    name: str  # S3's event name (ObjectCreated:Copy) or EventBridge's reason (CopyObject)


@dataclass(frozen=True, slots=True)
class Notification:
    """One SQS message: its object events, or a test event (S3 checking the destination)."""

    events: tuple[ObjectEvent, ...] = ()
    test: bool = False


def sequencer_order(sequencer: str) -> str:
    """A form of `sequencer` that sorts as S3 orders events for one key."""
    return sequencer.upper().rjust(32, "0")


def parse_message(body: str) -> Notification:
    if len(body.encode()) > MAX_MESSAGE_BYTES:
        raise MalformedMessage(f"a message of {len(body.encode())} bytes, over SQS's limit")
    try:
        document = json.loads(body)
    except ValueError as error:
        raise MalformedMessage(f"not JSON: {error}") from None
    if isinstance(document, dict) and document.get("Type") == "Notification":
        inner = document.get("Message")
        if not isinstance(inner, str):
            raise MalformedMessage("an SNS notification without a Message")
        try:
            document = json.loads(inner)
        except ValueError as error:
            raise MalformedMessage(
                f"an SNS notification whose Message is not JSON: {error}"
            ) from None
    if not isinstance(document, dict):
        raise MalformedMessage("not a JSON object")
    if document.get("Event") == "s3:TestEvent":
        return Notification(test=True)
    if "Records" in document:
        return Notification(tuple(_s3_records(document["Records"])))
    if document.get("source") == "aws.s3" and "detail-type" in document:
        event = _eventbridge(document)
        return Notification(() if event is None else (event,))
    raise MalformedMessage("neither an S3 notification, an EventBridge event nor a test event")


def _s3_records(records: Any) -> list[ObjectEvent]:
    if not isinstance(records, list):
        raise MalformedMessage("Records is not a list")
    events: list[ObjectEvent] = []
    for record in records:
        if not isinstance(record, dict):
            raise MalformedMessage("a record is not an object")
        name = _text(record, "eventName")
        created = name.startswith("ObjectCreated:")
        if not created and not name.startswith("ObjectRemoved:"):
            continue
        s3 = _object(record, "s3")
        obj = _object(s3, "object")
        events.append(
            ObjectEvent(
                bucket=_text(_object(s3, "bucket"), "name"),
                key=unquote_plus(_text(obj, "key")),
                created=created,
                etag=str(obj.get("eTag") or "").strip('"'),
                size=_size(obj),
                sequencer=str(obj.get("sequencer") or ""),
                time=_time(record.get("eventTime")),
                name=name,
            )
        )
    return events


def _eventbridge(document: dict[str, Any]) -> ObjectEvent | None:
    kind = document.get("detail-type")
    if kind not in ("Object Created", "Object Deleted"):
        return None
    detail = _object(document, "detail")
    obj = _object(detail, "object")
    return ObjectEvent(
        bucket=_text(_object(detail, "bucket"), "name"),
        key=_text(obj, "key"),  # EventBridge gives the key as it is
        created=kind == "Object Created",
        etag=str(obj.get("etag") or "").strip('"'),
        size=_size(obj),
        sequencer=str(obj.get("sequencer") or ""),
        time=_time(document.get("time")),
        name=str(detail.get("reason") or kind),
    )


def _object(parent: dict[str, Any], name: str) -> dict[str, Any]:
    value = parent.get(name)
    if not isinstance(value, dict):
        raise MalformedMessage(f"{name!r} is missing or not an object")
    return value


def _text(parent: dict[str, Any], name: str) -> str:
    value = parent.get(name)
    if not isinstance(value, str) or not value:
        raise MalformedMessage(f"{name!r} is missing or not text")
    return value


def _size(obj: dict[str, Any]) -> int | None:
    size = obj.get("size")
    return size if isinstance(size, int) and not isinstance(size, bool) and size >= 0 else None


def _time(value: Any) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
