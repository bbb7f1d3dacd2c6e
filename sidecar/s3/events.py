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

A body is whatever anyone allowed to send to the queue put there, so every body ends in a
`Notification` or a `MalformedMessage`, never in another exception: one over `MAX_MESSAGE_BYTES`
(an S3 event is about 1 KiB) is not parsed; JSON nested deeper than the decoder goes
(`"[" * 5000`: a RecursionError) is malformed, as is text that is not UTF-8 (lone surrogates,
from a JSON escape or from bytes the SQS answer did not hold as UTF-8); every field read is
checked for its type before it is used (nothing is `str()`-ed: a list nested 990 deep in an
`eTag` would recurse), and a field S3 always gives in one form (a key as UTF-8 of at most
1,024 bytes, a sequencer in hexadecimal, a size a count of bytes) in another makes the message
malformed; an absent optional field is absent.

`sequencer` is S3's per-key order (events arrive in any order and at least once): hexadecimal
of varying length, compared after left-padding (`sequencer_order`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import unquote_to_bytes

from ..core.keys import KEY_MAX

MAX_MESSAGE_BYTES = 256 * 1024  # more than any event notification (SQS allows 1 MiB)
MAX_SEQUENCER = 64  # hexadecimal digits; S3's have 16 to 18
_HEX = re.compile(r"[0-9A-Fa-f]+")


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
    """The events in one message's body; `MalformedMessage` (only) for anything else."""
    size = len(body.encode("utf-8", "surrogatepass"))
    if size > MAX_MESSAGE_BYTES:
        raise MalformedMessage(f"a message of {size} bytes, more than any S3 event notification")
    document = _json(body, "")
    if isinstance(document, dict) and document.get("Type") == "Notification":
        inner = document.get("Message")
        if not isinstance(inner, str):
            raise MalformedMessage("an SNS notification without a Message")
        document = _json(inner, "an SNS notification whose Message is ")
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


def _json(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except RecursionError:
        raise MalformedMessage(f"{what}JSON nested too deep to read") from None
    except ValueError as error:
        raise MalformedMessage(f"{what}not JSON: {error}") from None


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
                key=_key(_text(obj, "key"), encoded=True),
                created=created,
                etag=_optional_text(obj, "eTag").strip('"'),
                size=_size(obj),
                sequencer=_sequencer(obj),
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
        key=_key(_text(obj, "key"), encoded=False),  # EventBridge gives the key as it is
        created=kind == "Object Created",
        etag=_optional_text(obj, "etag").strip('"'),
        size=_size(obj),
        sequencer=_sequencer(obj),
        time=_time(document.get("time")),
        name=_optional_text(detail, "reason") or kind,
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


def _optional_text(parent: dict[str, Any], name: str) -> str:
    """A field that may be absent (""), but is text when it is there."""
    value = parent.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise MalformedMessage(f"{name!r} is not text")
    return value


def _key(text: str, *, encoded: bool) -> str:
    """An object's key as S3 holds it: UTF-8 (after URL-decoding S3's form, `+` for spaces) of
    at most 1,024 bytes, as S3 allows; anything else is no key S3 could have sent."""
    try:
        data = unquote_to_bytes(text.replace("+", " ")) if encoded else text.encode("utf-8")
        key = data.decode("utf-8")
    except UnicodeError:
        raise MalformedMessage("a key that is not UTF-8") from None
    if len(data) > KEY_MAX:
        raise MalformedMessage(f"a key of {len(data)} bytes, longer than S3 allows")
    return key


def _sequencer(obj: dict[str, Any]) -> str:
    value = _optional_text(obj, "sequencer")
    if value and (len(value) > MAX_SEQUENCER or not _HEX.fullmatch(value)):
        raise MalformedMessage("a sequencer that is not S3's (hexadecimal)")
    return value


def _size(obj: dict[str, Any]) -> int | None:
    size = obj.get("size")
    if size is None:
        return None
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise MalformedMessage("'size' is not a count of bytes")
    return size


def _time(value: Any) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except (ValueError, OverflowError):
        return None
