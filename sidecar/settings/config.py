"""Settings from `SYNC_*` environment variables (and mobius3's command line), validated up front.

Every problem is collected and reported at once, naming the variable, showing the value (unless
it is a secret) and the expected form, before anything touches a file or an object. The table
`VARIABLES` is the single source of truth: the README's configuration table is checked against
it by the test suite.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..aws.chain import credential_problems
from ..s3.client import Endpoint
from . import parsers
from .parsers import parse_size

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
QUEUED_POLL_INTERVAL = 300.0  # SYNC_POLL_INTERVAL's default with SYNC_QUEUE_URL


@dataclass(frozen=True, slots=True)
class Settings:
    directory: str
    bucket: str
    endpoint: str
    region: str
    prefix: str = ""
    poll_interval: float = 10.0
    exclude_local: str = "^$"
    exclude_remote: str = "^$"
    upload_on_create: str = "^$"
    upload_concurrency: int = 32
    download_concurrency: int = 16
    log_level: str = "INFO"
    log_format: str = "text"
    tls_verify: bool = True
    ca_bundle: str | None = None
    multipart_threshold: int = 16 * 1024 * 1024
    multipart_chunksize: int = 16 * 1024 * 1024
    max_delete_percent: float = 50.0
    shutdown_timeout: float = 25.0
    open_file_timeout: float = 60.0
    http_port: int = 9464
    http_host: str = "0.0.0.0"  # noqa: S104 - all interfaces, as documented
    stall_timeout: float = 300.0
    credentials_source: str = "auto"  # "auto" (the chain), "environment" or "ecs"
    mode: str = "bidirectional"  # SYNC_MODE
    queue_url: str | None = None  # SYNC_QUEUE_URL


@dataclass(frozen=True, slots=True)
class Problem:
    name: str
    value: str | None  # None: not set (or a secret, never shown)
    expected: str

    def __str__(self) -> str:
        if self.value is None:
            return f"{self.name}: {self.expected}"
        return f"{self.name}={self.value!r}: expected {self.expected}"


class ConfigError(Exception):
    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class Variable:
    name: str
    field: str
    expected: str  # the form, as shown in errors
    meaning: str
    default: str  # as documented
    example: str
    parse: Callable[[str], Any]
    required: bool = False


VARIABLES: tuple[Variable, ...] = (
    Variable(
        "SYNC_DIR",
        "directory",
        "the path of a directory (created if missing)",
        "Local folder to keep in sync (the shared volume).",
        "(required)",
        "/data",
        parsers.directory,
        required=True,
    ),
    Variable(
        "SYNC_BUCKET",
        "bucket",
        "an S3 bucket name: 3 to 63 lowercase letters, digits, dots and hyphens, starting and "
        "ending with a letter or digit",
        "Bucket to sync with.",
        "(required)",
        "my-bucket",
        parsers.bucket,
        required=True,
    ),
    Variable(
        "SYNC_REGION",
        "region",
        "an AWS region such as eu-west-2",
        "Region of the bucket; falls back to AWS_REGION, then AWS_DEFAULT_REGION.",
        "(required)",
        "eu-west-2",
        parsers.nonempty,
        required=True,
    ),
    Variable(
        "SYNC_ENDPOINT",
        "endpoint",
        "an http(s) URL with {} where the bucket name goes, e.g. "
        "https://{}.s3.eu-west-2.amazonaws.com/ or http://127.0.0.1:9000/{}/",
        "S3 endpoint pattern, mobius3 style: virtual-hosted or path-style.",
        "https://{}.s3.<region>.amazonaws.com/",
        "http://minio:9000/{}/",
        parsers.nonempty,
    ),
    Variable(
        "SYNC_PREFIX",
        "prefix",
        "a key prefix ending in '/' (and not starting with one), e.g. team-a/",
        "Key prefix in the bucket that maps to the folder.",
        "(empty: whole bucket)",
        "team-a/",
        parsers.prefix,
    ),
    Variable(
        "SYNC_POLL_INTERVAL",
        "poll_interval",
        "seconds, a number from 0.1 to 86400",
        "How often to list the prefix for remote changes (with SYNC_QUEUE_URL, a backstop: "
        "events can be late or lost).",
        "10 (300 with SYNC_QUEUE_URL)",
        "30",
        parsers.number(0.1, 86400),
    ),
    Variable(
        "SYNC_EXCLUDE_LOCAL",
        "exclude_local",
        "a Python regular expression",
        "Local paths (matched against the full path) never uploaded, and never changed "
        "by a remote change.",
        "^$ (nothing)",
        r".*\.swp$",
        parsers.regex,
    ),
    Variable(
        "SYNC_EXCLUDE_REMOTE",
        "exclude_remote",
        "a Python regular expression",
        "Keys (relative to the prefix) never downloaded.",
        "^$ (nothing)",
        "^tmp/",
        parsers.regex,
    ),
    Variable(
        "SYNC_UPLOAD_ON_CREATE",
        "upload_on_create",
        "a Python regular expression",
        "Local paths uploaded as soon as they are created rather than when closed "
        "(symlinks and hard links always are).",
        "^$ (nothing)",
        r".*\.lock$",
        parsers.regex,
    ),
    Variable(
        "SYNC_UPLOAD_CONCURRENCY",
        "upload_concurrency",
        "an integer from 1 to 512",
        "Paths uploaded at the same time.",
        "32",
        "64",
        parsers.integer(1, 512),
    ),
    Variable(
        "SYNC_DOWNLOAD_CONCURRENCY",
        "download_concurrency",
        "an integer from 1 to 512",
        "Paths downloaded at the same time.",
        "16",
        "32",
        parsers.integer(1, 512),
    ),
    Variable(
        "SYNC_LOG_LEVEL",
        "log_level",
        "one of " + ", ".join(LOG_LEVELS),
        "Log verbosity.",
        "INFO",
        "DEBUG",
        parsers.choice(*LOG_LEVELS),
    ),
    Variable(
        "SYNC_LOG_FORMAT",
        "log_format",
        "json or text",
        "Log lines as JSON objects or as plain text.",
        "text",
        "json",
        parsers.choice("json", "text"),
    ),
    Variable(
        "SYNC_TLS_VERIFY",
        "tls_verify",
        "true or false",
        "Verify the S3 endpoint's TLS certificate (false only for test stores).",
        "true",
        "false",
        parsers.boolean,
    ),
    Variable(
        "SYNC_CA_BUNDLE",
        "ca_bundle",
        "the path of a readable PEM file",
        "Extra CA certificates to trust for the S3 endpoint.",
        "(system CAs)",
        "/etc/ssl/private-ca.pem",
        parsers.existing_file,
    ),
    Variable(
        "SYNC_MULTIPART_THRESHOLD",
        "multipart_threshold",
        "a size from 5MiB to 5GiB, e.g. 16MiB",
        "Files this large or larger are uploaded in parallel parts.",
        "16MiB",
        "64MiB",
        parse_size,
    ),
    Variable(
        "SYNC_MULTIPART_CHUNKSIZE",
        "multipart_chunksize",
        "a size from 5MiB to 5GiB, e.g. 16MiB",
        "Part size for multipart uploads (grown automatically to stay within 10,000 parts).",
        "16MiB",
        "32MiB",
        parse_size,
    ),
    Variable(
        "SYNC_MAX_DELETE_PERCENT",
        "max_delete_percent",
        "a number from 0 to 100",
        "Max-delete guard: a poll that would delete more than this share of the synced "
        "files locally (and more than 10) deletes none of them and logs an error. "
        "100 turns the guard off.",
        "50",
        "100",
        parsers.number(0, 100),
    ),
    Variable(
        "SYNC_SHUTDOWN_TIMEOUT",
        "shutdown_timeout",
        "seconds, a number from 0 to 3600",
        "On SIGTERM, how long to keep uploading queued changes before exiting.",
        "25",
        "100",
        parsers.number(0, 3600),
    ),
    Variable(
        "SYNC_HTTP_PORT",
        "http_port",
        "a TCP port number from 1 to 65535",
        "Port of the HTTP server for /metrics, /healthz, /readyz and /startupz.",
        "9464",
        "9464",
        parsers.integer(1, 65535),
    ),
    Variable(
        "SYNC_HTTP_HOST",
        "http_host",
        "an IP address (IPv6 without brackets) or a host name, e.g. 127.0.0.1",
        "Address the HTTP server for /metrics, /healthz, /readyz and /startupz listens on; "
        "127.0.0.1 keeps them to the task (loopback only).",
        "0.0.0.0 (all interfaces)",
        "127.0.0.1",
        parsers.host,
    ),
    Variable(
        "SYNC_STALL_TIMEOUT",
        "stall_timeout",
        "seconds, a number from 10 to 86400",
        "If changes wait to be uploaded but none has made progress for this long while S3 "
        "answers, the process exits 1 so that it is restarted.",
        "300",
        "600",
        parsers.number(10, 86400),
    ),
    Variable(
        "SYNC_MODE",
        "mode",
        "bidirectional, upload-only or download-only",
        "Which way changes go. upload-only: the folder is the source of truth (never lists, "
        "downloads or deletes locally; overwrites what others write to the same keys). "
        "download-only: S3 is (never writes to it; a local change is kept as a conflict copy "
        "when the key next changes in S3).",
        "bidirectional",
        "upload-only",
        parsers.choice("bidirectional", "upload-only", "download-only"),
    ),
    Variable(
        "SYNC_QUEUE_URL",
        "queue_url",
        "an SQS queue URL, https://sqs.<region>.amazonaws.com/<account id>/<queue name>",
        "SQS queue receiving the bucket's ObjectCreated/ObjectRemoved events (S3's own or "
        "EventBridge's, raw or through SNS): remote changes arrive in about a second, and "
        "the full listing becomes a backstop. One queue per task.",
        "(none: poll only)",
        "https://sqs.eu-west-2.amazonaws.com/123456789012/s3sync-app",
        parsers.queue_url,
    ),
    Variable(
        "SYNC_OPEN_FILE_TIMEOUT",
        "open_file_timeout",
        "seconds, a number from 1 to 86400",
        "A file modified but not closed is uploaded once it has not been written for this long.",
        "60",
        "300",
        parsers.number(1, 86400),
    ),
)

_BY_NAME = {variable.name: variable for variable in VARIABLES}


def default_endpoint(region: str) -> str:
    return "https://{}.s3." + region + ".amazonaws.com/"


def load_settings(
    env: Mapping[str, str],
    overrides: Mapping[str, str] | None = None,
    credentials_source: str = "auto",
) -> Settings:
    """Settings from `env`, with `overrides` (command line values, by variable name) on top.

    Raises ConfigError listing every problem found.
    """
    raw: dict[str, str] = {}
    for variable in VARIABLES:
        value = env.get(variable.name)
        if value is not None and value != "":
            raw[variable.name] = value
    for name, value in (overrides or {}).items():
        raw[name] = value
    if "SYNC_REGION" not in raw:
        for fallback in ("AWS_REGION", "AWS_DEFAULT_REGION"):
            if env.get(fallback):
                raw["SYNC_REGION"] = env[fallback]
                break

    problems: list[Problem] = []
    values: dict[str, Any] = {}
    for variable in VARIABLES:
        value = raw.get(variable.name)
        if value is None:
            if variable.required:
                problems.append(
                    Problem(variable.name, None, f"required: set it to {variable.expected}")
                )
            continue
        try:
            values[variable.field] = variable.parse(value)
        except (ValueError, TypeError):
            problems.append(Problem(variable.name, value, variable.expected))

    if "queue_url" in values and "poll_interval" not in values:
        values["poll_interval"] = QUEUED_POLL_INTERVAL  # events first; listings as a backstop
    if "region" in values and "endpoint" not in values and "SYNC_ENDPOINT" not in raw:
        values["endpoint"] = default_endpoint(values["region"])
    if "endpoint" in values:
        try:
            # Checked even when the bucket is missing or bad, so all problems show at once.
            Endpoint.parse(values["endpoint"], values.get("bucket", "bucket"))
        except ValueError as error:
            problems.append(
                Problem(
                    "SYNC_ENDPOINT",
                    values["endpoint"],
                    f"an endpoint that {error}: " + _BY_NAME["SYNC_ENDPOINT"].expected,
                )
            )
    if values.get("ca_bundle") and values.get("tls_verify") is False:
        problems.append(
            Problem(
                "SYNC_CA_BUNDLE", raw["SYNC_CA_BUNDLE"], "to be unset when SYNC_TLS_VERIFY=false"
            )
        )

    problems.extend(
        Problem(name, None, message)
        for name, message in credential_problems(env, credentials_source)
    )
    if problems:
        raise ConfigError(problems)
    return Settings(**values, credentials_source=credentials_source)
