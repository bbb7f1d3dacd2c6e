"""Rows of the table of settings (table.py imports them into its `Settings`): what every
request that creates an object version says to S3 (`SYNC_SSE`, `SYNC_SSE_KMS_KEY_ID`,
`SYNC_SSE_BUCKET_KEY`, `SYNC_STORAGE_CLASS`, `SYNC_ACL`; s3/client.py's `write_headers`), and
what every request says (`SYNC_REQUEST_PAYER`; `request_headers`). Unset, nothing is sent and
the bucket's defaults apply. That a KMS key or a bucket key goes with `SYNC_SSE=aws:kms` is
checked across rows by config.py."""

from __future__ import annotations

from . import parsers
from .setting import Setting

_either = parsers.either

SSE: Setting[str | None] = Setting(
    None,
    env="SYNC_SSE",
    parse=parsers.sse,
    expected=_either(parsers.SSE_ALGORITHMS),
    meaning="Server-side encryption of every write that creates an object version (PUT, "
    "multipart upload, the metadata copy of a chmod or touch): "
    + _either(parsers.SSE_ALGORITHMS, "`")
    + ".",
    example="aws:kms",
    note="the bucket's default",
    tidy=parsers.optional(parsers.sse),
)
SSE_KMS_KEY_ID: Setting[str | None] = Setting(
    None,
    env="SYNC_SSE_KMS_KEY_ID",
    parse=parsers.kms_key_id,
    expected="a KMS key ID, key ARN, alias/name or alias ARN, without spaces",
    meaning="The KMS key of `SYNC_SSE=aws:kms` or `aws:kms:dsse` (else the bucket's default, or "
    "the AWS managed key `aws/s3`).",
    example="alias/s3sync",
    note="the bucket's default",
    tidy=parsers.optional(parsers.kms_key_id),
)
SSE_BUCKET_KEY: Setting[bool | None] = Setting(
    None,
    env="SYNC_SSE_BUCKET_KEY",
    parse=parsers.boolean,
    expected="true or false",
    meaning="With `SYNC_SSE=aws:kms`: an S3 Bucket Key (`true`: fewer, cheaper KMS requests) or "
    "not (`false`).",
    example="true",
    note="the bucket's setting",
    tidy=parsers.optional_flag,
)
STORAGE_CLASS: Setting[str | None] = Setting(
    None,
    env="SYNC_STORAGE_CLASS",
    parse=parsers.storage_class,
    expected=_either(parsers.STORAGE_CLASSES) + " (no archive class: what is written is read)",
    meaning="Storage class of every object written, metadata copies included (else a copy is "
    "`STANDARD`): " + _either(parsers.STORAGE_CLASSES, "`") + ".",
    example="INTELLIGENT_TIERING",
    note="STANDARD",
    tidy=parsers.optional(parsers.storage_class),
)
ACL: Setting[str | None] = Setting(
    None,
    env="SYNC_ACL",
    parse=parsers.acl,
    expected="a canned ACL: " + _either(parsers.CANNED_ACLS),
    meaning="Canned ACL of every object written, metadata copies included (else a copy resets "
    "it), e.g. `bucket-owner-full-control` for another account's bucket.",
    example="bucket-owner-full-control",
    note="none sent",
    tidy=parsers.optional(parsers.acl),
)
REQUEST_PAYER: Setting[str | None] = Setting(
    None,
    env="SYNC_REQUEST_PAYER",
    parse=parsers.request_payer,
    expected="requester",
    meaning="`requester`: on every S3 request (reads and listings too), for a Requester Pays "
    "bucket.",
    example="requester",
    note="the bucket owner pays",
    tidy=parsers.optional(parsers.request_payer),
)
