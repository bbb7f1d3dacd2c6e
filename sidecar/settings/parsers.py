"""Parsers of setting values: each takes the text of one variable and returns its value, or
raises ValueError (the caller names the variable and shows the expected form). Pure, except
`directory` and `existing_file`, which look at the filesystem without changing it.

At the end, tidiers: what `Syncer` makes of a Python value passed to it (a row's `tidy`), as
lenient as mobius3 was (a count below 1 is 1) but failing at once on what cannot work."""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Callable
from typing import TypeVar

from ..core.model import SyncMode

T = TypeVar("T")

MIN_PART = 5 * 1024 * 1024  # S3's smallest multipart part
MAX_PART = 5 * 1024**3  # and its largest


def either(choices: tuple[str, ...], code: str = "") -> str:
    """`a, b or c`, each in `code` quotes (the expected form of a choice)."""
    quoted = [f"{code}{choice}{code}" for choice in choices]
    return ", ".join(quoted[:-1]) + " or " + quoted[-1]


def nonempty(value: str) -> str:
    if not value.strip():
        raise ValueError
    return value


_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


def bucket(value: str) -> str:
    """Today's S3 naming rules (a placeholder such as REPLACE_WITH_BUCKET fails here, at
    start-up, rather than later against S3)."""
    if not _BUCKET.fullmatch(value) or ".." in value or re.fullmatch(r"[\d.]+", value):
        raise ValueError
    return value


def prefix(value: str) -> str:
    """`team-a` would also take in `team-ab/...` and name files `b/...`: a folder's prefix
    ends with `/` (mobius3 took any string; with a bare word it went wrong the same way)."""
    if value.startswith("/") or "//" in value or (value and not value.endswith("/")):
        raise ValueError
    return value


def regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as error:
        raise ValueError from error
    return value


def number(low: float, high: float) -> Callable[[str], float]:
    def parse(value: str) -> float:
        number = float(value)
        if not low <= number <= high:  # also refuses NaN
            raise ValueError
        return number

    return parse


def integer(low: int, high: int) -> Callable[[str], int]:
    def parse(value: str) -> int:
        number = int(value, 10)
        if not low <= number <= high:
            raise ValueError
        return number

    return parse


def choice(*choices: str) -> Callable[[str], str]:
    def parse(value: str) -> str:
        normal = value.strip().lower()
        for choice in choices:
            if normal == choice.lower():
                return choice
        raise ValueError

    return parse


def boolean(value: str) -> bool:
    normal = value.strip().lower()
    if normal in ("1", "true", "yes", "on"):
        return True
    if normal in ("0", "false", "no", "off"):
        return False
    raise ValueError


_SIZE = re.compile(r"(\d+)\s*(|b|k|kb|kib|m|mb|mib|g|gb|gib)", re.IGNORECASE)
_UNITS = {
    "": 1,
    "b": 1,
    "k": 1024,
    "kb": 1000,
    "kib": 1024,
    "m": 1024**2,
    "mb": 1000**2,
    "mib": 1024**2,
    "g": 1024**3,
    "gb": 1000**3,
    "gib": 1024**3,
}


def parse_size(value: str) -> int:
    """A part size (`16MiB`, `64mb`, `5242880`) within S3's limits for multipart parts."""
    match = _SIZE.fullmatch(value.strip())
    if match is None:
        raise ValueError
    size = int(match.group(1)) * _UNITS[match.group(2).lower()]
    if not MIN_PART <= size <= MAX_PART:
        raise ValueError
    return size


def format_size(size: int) -> str:
    """A size as `parse_size` reads it back, in the largest binary unit that divides it."""
    for unit in ("GiB", "MiB", "KiB"):
        if size and size % _UNITS[unit.lower()] == 0:
            return f"{size // _UNITS[unit.lower()]}{unit}"
    return str(size)


def existing_file(value: str) -> str:
    if not os.path.isfile(value) or not os.access(value, os.R_OK):
        raise ValueError
    return value


_HOST_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")


def host(value: str) -> str:
    """An IP address (v4, or v6 without brackets) or a DNS host name: what to bind to."""
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        pass
    name = value[:-1] if value.endswith(".") else value
    labels = name.split(".")
    if (
        len(name) > 253
        or not all(_HOST_LABEL.fullmatch(label) for label in labels)
        or labels[-1].isdigit()  # 300.1.2.3 or 10.0.0: a mistyped address, not a name
    ):
        raise ValueError
    return value


def directory(value: str) -> str:
    if not value.strip():
        raise ValueError
    if os.path.exists(value) and not os.path.isdir(value):
        raise ValueError
    return value


def queue_url(value: str) -> str:
    """An SQS queue URL: http(s), a host, and /<account id>/<queue name>."""
    from ..aws.sqs import QueueUrl  # noqa: PLC0415 - parsers stay importable on their own

    return QueueUrl.parse(value).url


SSE_ALGORITHMS = ("AES256", "aws:kms", "aws:kms:dsse")
# S3's storage classes read at once (an archive class needs a restore before any GET).
STORAGE_CLASSES = (
    *("STANDARD", "STANDARD_IA", "ONEZONE_IA", "INTELLIGENT_TIERING", "GLACIER_IR"),
    "REDUCED_REDUNDANCY",
)
CANNED_ACLS = (
    *("private", "public-read", "public-read-write", "authenticated-read", "aws-exec-read"),
    *("bucket-owner-read", "bucket-owner-full-control"),
)
sse = choice(*SSE_ALGORITHMS)
storage_class = choice(*STORAGE_CLASSES)
acl = choice(*CANNED_ACLS)
request_payer = choice("requester")

_KMS_ALIAS = r"alias/[A-Za-z0-9/_-]{1,250}"
_KMS_ARN = re.compile(
    r"arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:(key/[A-Za-z0-9-]+|" + _KMS_ALIAS + ")"
)
# AWS's key IDs are UUIDs (`mrk-…` for multi-Region keys); other stores' KMS name keys freely
# (MinIO's KES): any name without spaces or control characters.
_KMS_NAME = re.compile(r"[A-Za-z0-9._:/+=@-]{1,2048}")


def kms_key_id(value: str) -> str:
    """A KMS key as S3 takes it in `x-amz-server-side-encryption-aws-kms-key-id`: a key ID, a
    key ARN, an alias (`alias/name`) or an alias ARN; an ARN or an alias must be well formed."""
    value = value.strip()
    if value.startswith("arn:"):
        ok = _KMS_ARN.fullmatch(value)
    elif value.startswith("alias/"):
        ok = re.fullmatch(_KMS_ALIAS, value)
    else:
        ok = _KMS_NAME.fullmatch(value)
    if not ok:
        raise ValueError
    return value


# -- tidiers ---------------------------------------------------------------------------------


def absolute(directory: str | os.PathLike[str]) -> str:
    return os.path.abspath(os.fspath(directory))


def at_least_one(count: int) -> int:
    return max(1, int(count))


def compiled(pattern: str) -> str:
    """The pattern, once it is known to compile (re.error now, not at start())."""
    re.compile(pattern)
    return pattern


def mode_value(mode: str) -> str:
    return SyncMode(mode).value


def optional_queue_url(url: str | None) -> str | None:
    return queue_url(url) if url else None


_ROLE_ARN = re.compile(r"arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}")
_SESSION_NAME = re.compile(r"[\w+=,.@-]{2,64}")
_EXTERNAL_ID = re.compile(r"[\w+=,.@:/-]{2,1224}")


def role_arn(value: str) -> str:
    """An IAM role's ARN, in any partition."""
    if not _ROLE_ARN.fullmatch(value.strip()):
        raise ValueError
    return value.strip()


def session_name(value: str) -> str:
    """An STS role session name: 2 to 64 of letters, digits and +=,.@_-."""
    if not _SESSION_NAME.fullmatch(value.strip()):
        raise ValueError
    return value.strip()


def external_id(value: str) -> str:
    """An STS external id: 2 to 1224 of letters, digits and +=,.@:/_-."""
    if not _EXTERNAL_ID.fullmatch(value.strip()):
        raise ValueError
    return value.strip()


def optional(parse: Callable[[str], T]) -> Callable[[str | None], T | None]:
    """A tidier for an optional setting given to `Syncer`: None stays None, anything else is
    parsed as its variable's text would be (ValueError at once)."""

    def tidy(value: str | None) -> T | None:
        return None if value is None else parse(str(value))

    return tidy


def optional_flag(value: bool | str | None) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    return boolean(value)
