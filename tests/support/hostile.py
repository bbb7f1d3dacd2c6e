"""Queue message bodies that no S3, EventBridge or SNS sender writes, as anyone allowed to send
to the queue may: nested past the JSON decoder's depth, huge, not UTF-8, or JSON of the wrong
shape at every level of each form. `HOSTILE_BODIES` (by a name for test ids) must each be read
as malformed by `parse_message`, and deleted with one warning by the sidecar.

Bytes that are not UTF-8 cannot be sent through SQS (it refuses them; moto answers 500), so
`NOT_UTF8_MARK` stands in a body for them: the fault proxy's `replace` writes the bytes in its
place in the queue's answer, as a server that does not hold bodies as UTF-8 would send them."""

from __future__ import annotations

import json
from typing import Any

NOT_UTF8_MARK = "MARK-NOT-UTF8"
NOT_UTF8_BYTES = b"\xff\xfe\xc3(\xed\xa0\x80"  # never UTF-8: bad starts, a cut pair, a surrogate
SQS_LIMIT = 1024 * 1024  # SQS's largest message body (moto's too)


def received(body: str) -> str:
    """`body` as the sidecar's SQS client hands it to the parser when the queue's answer holds
    `NOT_UTF8_BYTES` where the body has the mark (bytes that are not UTF-8 kept as surrogates)."""
    return body.replace(NOT_UTF8_MARK, NOT_UTF8_BYTES.decode("utf-8", "surrogateescape"))


def _record(**obj: Any) -> dict[str, Any]:
    return {
        "eventName": "ObjectCreated:Put",
        "eventTime": "2026-01-01T00:00:00.000Z",
        "s3": {"bucket": {"name": "b"}, "object": {"key": "k", "eTag": "e", "size": 1, **obj}},
    }


def _records(*records: Any) -> str:
    return json.dumps({"Records": list(records)})


def _eventbridge(detail: Any) -> str:
    document: dict[str, Any] = {"source": "aws.s3", "detail-type": "Object Created"}
    if detail is not None:
        document["detail"] = detail
    return json.dumps(document)


def _sns(message: Any) -> str:
    return json.dumps({"Type": "Notification", "Message": message})


DEEP = 900  # a nesting the decoder takes (in a field that should be text)
HOSTILE_BODIES: dict[str, str] = {
    "deep-array": "[" * 5000,
    "deep-object": "{" * 100000,
    "deep-valid-json": '{"Records": ' + "[" * 5000 + "]" * 5000 + "}",
    "deep-in-a-field": _records(_record(eTag="DEEP")).replace('"DEEP"', "[" * DEEP + "]" * DEEP),
    "not-json": "not json at all",
    "not-utf8": NOT_UTF8_MARK,
    "not-utf8-in-a-key": _records(_record(key=NOT_UTF8_MARK)),
    "lone-surrogate-key": _records(_record(key="\udcff")),
    "key-not-utf8-url-encoded": _records(_record(key="%FF%FE")),
    "key-longer-than-s3-allows": _records(_record(key="k" * 1025)),
    "huge-near-sqs-limit": json.dumps({"Records": [], "pad": "x" * (SQS_LIMIT - 100)}),
    "huge-garbage": "x" * (SQS_LIMIT - 1),
    "a-number": "5",
    "null": "null",
    "a-string": '"Records"',
    "a-list": "[]",
    "an-empty-object": "{}",
    "records-not-a-list": json.dumps({"Records": {"eventName": "ObjectCreated:Put"}}),
    "records-null": json.dumps({"Records": None}),
    "record-not-an-object": _records(None),
    "event-name-not-text": _records({"eventName": 5}),
    "s3-not-an-object": _records({"eventName": "ObjectCreated:Put", "s3": []}),
    "bucket-not-an-object": _records(
        {"eventName": "ObjectCreated:Put", "s3": {"bucket": "b", "object": {"key": "k"}}}
    ),
    "object-missing": _records({"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": "b"}}}),
    "key-not-text": _records(_record(key=5)),
    "key-empty": _records(_record(key="")),
    "etag-not-text": _records(_record(eTag={"a": 1})),
    "size-not-a-count": _records(_record(size="big")),
    "size-negative": _records(_record(size=-1)),
    "sequencer-not-hexadecimal": _records(_record(sequencer="not-hex")),
    "sequencer-not-text": _records(_record(sequencer=["0A"])),
    "sns-wrapping-deep-garbage": _sns("[" * 5000),
    "sns-wrapping-not-json": _sns("garbage"),
    "sns-message-not-text": _sns(5),
    "sns-message-missing": json.dumps({"Type": "Notification"}),
    "sns-wrapping-the-wrong-shape": _sns(json.dumps({"Records": 5})),
    "sns-wrapping-sns": _sns(_sns(json.dumps({"Records": []}))),
    "eventbridge-without-detail": _eventbridge(None),
    "eventbridge-detail-not-an-object": _eventbridge("detail"),
    "eventbridge-without-object": _eventbridge({"bucket": {"name": "b"}}),
    "eventbridge-without-bucket": _eventbridge({"object": {"key": "k"}}),
    "eventbridge-key-not-text": _eventbridge({"bucket": {"name": "b"}, "object": {"key": []}}),
    "eventbridge-reason-not-text": _eventbridge(
        {"bucket": {"name": "b"}, "object": {"key": "k"}, "reason": {"deep": [1]}}
    ),
}
