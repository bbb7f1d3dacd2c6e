"""Rows of the table of settings (table.py imports them into its `Settings`): a role assumed
with STS `AssumeRole` on top of whichever credentials the chain found (`SYNC_ROLE_ARN`, its
external id and session name), for a bucket in another account. Read by the credentials chain
(aws/chain.py), through the service."""

from __future__ import annotations

from . import parsers
from .setting import Setting

ROLE_ARN: Setting[str | None] = Setting(
    None,
    env="SYNC_ROLE_ARN",
    parse=parsers.role_arn,
    expected="an IAM role ARN, arn:aws:iam::<account id>:role/<name>",
    meaning="Role assumed (STS `AssumeRole`) with whichever credentials were found, for a "
    "bucket in another account (see [Credentials](#credentials)).",
    example="arn:aws:iam::210987654321:role/s3sync-writer",
    note="none: the credentials found",
    service=True,  # read by the credentials chain (aws/chain.py)
)
ROLE_EXTERNAL_ID: Setting[str | None] = Setting(
    None,
    env="SYNC_ROLE_EXTERNAL_ID",
    parse=parsers.external_id,
    expected="2 to 1224 letters, digits and +=,.@:/_-",
    meaning="External id the role's trust policy asks for (`sts:ExternalId`), with "
    "`SYNC_ROLE_ARN`.",
    example="c0ffee-42",
    note="none",
    service=True,
)
ROLE_SESSION_NAME: Setting[str | None] = Setting(
    None,
    env="SYNC_ROLE_SESSION_NAME",
    parse=parsers.session_name,
    expected="2 to 64 letters, digits and +=,.@_-",
    meaning="Session name of `SYNC_ROLE_ARN`'s role, as CloudTrail shows it.",
    example="s3sync-app",
    note="`s3sync-sidecar-<time>`",
    service=True,
)
