"""The table of settings: one row (`Setting`, setting.py) per setting, bound to its field of
`Settings`, the one frozen value that the service and the engine read.

Everything else is built from these rows or checked against them by a test: the environment's
variables and their validation (config.py), `Syncer`'s defaults and keyword arguments
(arguments.py), mobius3's command line (service/cli.py) and the README's configuration table
(`readme_table`; scripts/settings_table.py writes it, tests/service/test_settings_table.py checks
it).
Adding a setting is a row here, its field in `Settings`, and the code that reads it. The rows of
what every request to S3 says (encryption, storage class, ACL, requester pays) are in writes.py,
imported here: every row is a name of this module. A row's
module-level name is its field's in capitals (checked by a test), so `Syncer` can take its
defaults by name. Rows are in the order in which problems are reported and the README lists
them. Standard library, core/model.py and partitions.py only: importing it (with setting.py)
takes about 10 ms on the shared 2-core test machine, once per process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from typing import Any

from ..core.model import SyncMode
from ..partitions import s3_endpoint
from . import parsers
from .databases import SQLITE, SQLITE_FILES_ALONE, SQLITE_INTERVAL, SQLITE_QUIET
from .roles import ROLE_ARN, ROLE_EXTERNAL_ID, ROLE_SESSION_NAME
from .setting import NO_DEFAULT, ROW, Setting
from .writes import ACL, REQUEST_PAYER, SSE, SSE_BUCKET_KEY, SSE_KMS_KEY_ID, STORAGE_CLASS

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
MODES = tuple(mode.value for mode in SyncMode)
QUEUED_POLL_INTERVAL = 300.0  # SYNC_POLL_INTERVAL's default with SYNC_QUEUE_URL


def default_endpoint(region: str, *, fips: bool = False, dualstack: bool = False) -> str:
    """S3's endpoint for `region` in its partition (partitions.py); ValueError for FIPS in a
    partition without FIPS endpoints."""
    return s3_endpoint(region, fips=fips, dualstack=dualstack)


_either = parsers.either


DIRECTORY = Setting(
    NO_DEFAULT,
    env="SYNC_DIR",
    parse=parsers.directory,
    expected="the path of a directory (created if missing)",
    meaning="Local folder to keep in sync (the shared volume); created if missing.",
    example="/data",
    tidy=parsers.absolute,
    required=True,
)
BUCKET = Setting(
    NO_DEFAULT,
    env="SYNC_BUCKET",
    parse=parsers.bucket,
    expected="an S3 bucket name: 3 to 63 lowercase letters, digits, dots and hyphens, starting "
    "and ending with a letter or digit",
    meaning="Bucket to sync with.",
    example="my-bucket",
    required=True,
)
REGION = Setting(
    NO_DEFAULT,
    env="SYNC_REGION",
    parse=parsers.nonempty,
    expected="an AWS region such as eu-west-2",
    meaning="Region of the bucket; falls back to `AWS_REGION`, then `AWS_DEFAULT_REGION`, then "
    "the `region` of the shared config file's profile.",
    example="eu-west-2",
    required=True,
)
ENDPOINT = Setting(
    NO_DEFAULT,  # default_endpoint(region), in config.load_settings
    env="SYNC_ENDPOINT",
    parse=parsers.nonempty,
    expected="an http(s) URL with {} where the bucket name goes, e.g. "
    "https://{}.s3.eu-west-2.amazonaws.com/ or http://127.0.0.1:9000/{}/",
    meaning="S3 endpoint pattern with `{}` for the bucket: virtual-hosted or path-style. "
    "Unset: S3's regional endpoint in the region's partition (`amazonaws.com.cn` in China), "
    "`s3-fips.` with `AWS_USE_FIPS_ENDPOINT=true`, `s3.dualstack.` with "
    "`AWS_USE_DUALSTACK_ENDPOINT=true`, as the AWS SDKs build it.",
    example="http://minio:9000/{}/",
    shown=default_endpoint("<region>"),
)
PREFIX = Setting(
    "",
    env="SYNC_PREFIX",
    parse=parsers.prefix,
    expected="a key prefix ending in '/' (and not starting with one), e.g. team-a/",
    meaning="Key prefix in the bucket that maps to the folder; ends with `/`.",
    example="team-a/",
    note="empty: whole bucket",
    flag="--prefix",
)
POLL_INTERVAL = Setting(
    10.0,
    env="SYNC_POLL_INTERVAL",
    parse=parsers.number(0.1, 86400),
    expected="seconds, a number from 0.1 to 86400",
    meaning="Seconds from the start of one listing of the prefix (for remote changes) to the "
    "start of the next: how stale the folder may get without a queue (with `SYNC_QUEUE_URL`, a "
    "backstop). Each listing is followed by a rest at least as long as it took (listing takes "
    "at most half the time, of the store and of the sidecar): one slower than half this "
    "stretches it to twice the listing, with a warning. A file whose key is deleted in S3 is "
    "deleted here when two listings in a row miss the key (an event deletes it at once).",
    example="30",
    note=f"{QUEUED_POLL_INTERVAL:g} with `SYNC_QUEUE_URL`",
    argument="download_interval",
    tidy=float,
)
TRUST_AFTER = Setting(
    0.0,
    meaning="mobius3's `local_modification_persistance`: for this many seconds, what our own "
    "requests changed is trusted over a listing (for stores that are only eventually "
    "consistent).",
    argument="local_modification_persistance",
    tidy=float,
)
EXCLUDE_LOCAL = Setting(
    "^$",
    env="SYNC_EXCLUDE_LOCAL",
    parse=parsers.regex,
    expected="a Python regular expression",
    meaning="Regex on the full local path: never uploaded, never changed by a remote change.",
    example=r".*\.swp$",
    note="nothing",
    flag="--exclude-local",
    tidy=parsers.compiled,
)
EXCLUDE_REMOTE = Setting(
    "^$",
    env="SYNC_EXCLUDE_REMOTE",
    parse=parsers.regex,
    expected="a Python regular expression",
    meaning="Regex on the key relative to the prefix: never downloaded.",
    example="^tmp/",
    note="nothing",
    flag="--exclude-remote",
    tidy=parsers.compiled,
)
UPLOAD_ON_CREATE = Setting(
    "^$",
    env="SYNC_UPLOAD_ON_CREATE",
    parse=parsers.regex,
    expected="a Python regular expression",
    meaning="Regex on the full local path: uploaded when created, not when closed.",
    example=r".*\.lock$",
    note="nothing",
    flag="--upload-on-create",
    tidy=parsers.compiled,
)
UPLOAD_CONCURRENCY = Setting(
    32,
    env="SYNC_UPLOAD_CONCURRENCY",
    parse=parsers.integer(1, 512),
    expected="an integer from 1 to 512",
    meaning="Paths uploaded at the same time (1–512).",
    example="64",
    argument="concurrent_uploads",
    tidy=parsers.at_least_one,
)
DOWNLOAD_CONCURRENCY = Setting(
    16,
    env="SYNC_DOWNLOAD_CONCURRENCY",
    parse=parsers.integer(1, 512),
    expected="an integer from 1 to 512",
    meaning="Paths downloaded at the same time (1–512).",
    example="32",
    argument="concurrent_downloads",
    tidy=parsers.at_least_one,
)
LOG_LEVEL = Setting(
    "INFO",
    env="SYNC_LOG_LEVEL",
    parse=parsers.choice(*LOG_LEVELS),
    expected="one of " + ", ".join(LOG_LEVELS),
    meaning=_either(LOG_LEVELS, "`") + ".",
    example="DEBUG",
    flag="--log-level",
    service=True,
)
LOG_FORMAT = Setting(
    "text",
    env="SYNC_LOG_FORMAT",
    parse=parsers.choice("json", "text"),
    expected="json or text",
    meaning="`json` (one object per line) or `text`.",
    example="json",
    service=True,
)
TLS_VERIFY = Setting(
    True,
    env="SYNC_TLS_VERIFY",
    parse=parsers.boolean,
    expected="true or false",
    meaning="Verify the endpoint's TLS certificate; `false` only for test stores.",
    example="false",
    service=True,  # Syncer takes an ssl_context
)
CA_BUNDLE: Setting[str | None] = Setting(
    None,
    env="SYNC_CA_BUNDLE",
    parse=parsers.existing_file,
    expected="the path of a readable PEM file",
    meaning="PEM file of extra CAs to trust for the endpoint.",
    example="/etc/ssl/private-ca.pem",
    note="system CAs",
    service=True,  # Syncer takes an ssl_context
)
MULTIPART_THRESHOLD = Setting(
    16 * 1024 * 1024,
    env="SYNC_MULTIPART_THRESHOLD",
    parse=parsers.parse_size,
    expected="a size from 5MiB to 5GiB, e.g. 16MiB",
    meaning="Files at least this large are uploaded in parallel parts (5MiB–5GiB).",
    example="64MiB",
    show=parsers.format_size,
)
MULTIPART_CHUNKSIZE = Setting(
    16 * 1024 * 1024,
    env="SYNC_MULTIPART_CHUNKSIZE",
    parse=parsers.parse_size,
    expected="a size from 5MiB to 5GiB, e.g. 16MiB",
    meaning="Part size (grown to stay within 10,000 parts).",
    example="32MiB",
    show=parsers.format_size,
)
MULTIPART_CONCURRENCY = Setting(
    4,
    meaning="Parts of one file uploaded at the same time.",
)
MAX_DELETE_PERCENT = Setting(
    50.0,
    env="SYNC_MAX_DELETE_PERCENT",
    parse=parsers.number(0, 100),
    expected="a number from 0 to 100",
    meaning="Max-delete guard, see rule 10; `100` turns it off.",
    example="100",
    tidy=float,
)
SHUTDOWN_TIMEOUT = Setting(
    25.0,
    env="SYNC_SHUTDOWN_TIMEOUT",
    parse=parsers.number(0, 3600),
    expected="seconds, a number from 0 to 3600",
    meaning="Seconds to keep uploading after SIGTERM.",
    example="100",
    service=True,  # Syncer.stop(timeout=...)
)
HTTP_PORT = Setting(
    9464,
    env="SYNC_HTTP_PORT",
    parse=parsers.integer(1, 65535),
    expected="a TCP port number from 1 to 65535",
    meaning="Port for `/metrics`, `/healthz`, `/readyz`, `/startupz`, `POST /flush`.",
    example="9464",
    service=True,
)
HTTP_HOST = Setting(
    "0.0.0.0",  # noqa: S104 - all interfaces, as documented
    env="SYNC_HTTP_HOST",
    parse=parsers.host,
    expected="an IP address (IPv6 without brackets) or a host name, e.g. 127.0.0.1",
    meaning="Address those endpoints listen on; `127.0.0.1` keeps them inside the task "
    "(loopback only).",
    example="127.0.0.1",
    note="all interfaces",
    service=True,
)
HTTP_MAX_CONNECTIONS = Setting(
    64,
    env="SYNC_HTTP_MAX_CONNECTIONS",
    parse=parsers.integer(8, 65536),
    expected="an integer from 8 to 65536",
    meaning="Connections to those endpoints open at once; a quarter of them only for "
    "connections from inside the task (the health check, the app), so that a flood from the "
    "network never locks them out. One more is reset at once and counted (see "
    "[HTTP endpoints](#http-endpoints-sync_http_port-9464)).",
    example="256",
    service=True,
)
HTTP_REQUEST_TIMEOUT = Setting(
    5.0,
    env="SYNC_HTTP_REQUEST_TIMEOUT",
    parse=parsers.number(1, 60),
    expected="seconds, a number from 1 to 60",
    meaning="Seconds a request to those endpoints may take to arrive (its line and headers, "
    "from the connection or the previous answer), that the rest of a body is waited for, and "
    "that an answer may go unread; then the connection is closed.",
    example="10",
    service=True,
)
STALL_TIMEOUT = Setting(
    300.0,
    env="SYNC_STALL_TIMEOUT",
    parse=parsers.number(10, 86400),
    expected="seconds, a number from 10 to 86400",
    meaning="Seconds without progress on waiting uploads, while S3 answers, before the process "
    "exits 1 to be restarted.",
    example="600",
    tidy=float,
)
MODE = Setting(
    SyncMode.BIDIRECTIONAL.value,
    env="SYNC_MODE",
    parse=parsers.choice(*MODES),
    expected=_either(MODES),
    meaning=_either(MODES, "`") + " (see [One-way modes](#one-way-modes-sync_mode)).",
    example="upload-only",
    tidy=parsers.mode_value,
)
QUEUE_URL: Setting[str | None] = Setting(
    None,
    env="SYNC_QUEUE_URL",
    parse=parsers.queue_url,
    expected="an SQS queue URL, https://sqs.<region>.amazonaws.com/<account id>/<queue name>",
    meaning="SQS queue receiving the bucket's events: remote changes in about a second (see "
    "[Change notifications](#change-notifications-sync_queue_url)).",
    example="https://sqs.eu-west-2.amazonaws.com/123456789012/s3sync-app",
    note="none: poll only",
    tidy=parsers.optional_queue_url,
)
OPEN_FILE_TIMEOUT = Setting(
    60.0,
    env="SYNC_OPEN_FILE_TIMEOUT",
    parse=parsers.number(1, 86400),
    expected="seconds, a number from 1 to 86400",
    meaning="Seconds without writes after which a file never closed is uploaded.",
    example="300",
    tidy=float,
)
WORK_NAME = Setting(
    ".s3sync-sidecar",
    meaning="mobius3's `download_directory`: the hidden working folder inside the folder "
    "(downloads in progress, the saved sync state).",
    argument="download_directory",
)
CREDENTIALS_SOURCE = Setting(
    "auto",
    meaning="Where credentials come from: `auto` (the chain), `environment` or `ecs` "
    "(mobius3's `--credentials-source`).",
    service=True,  # Syncer takes a credentials provider
)


@dataclass(frozen=True, slots=True)
class Settings:
    """Every setting, by its one name; from the environment (`config.load_settings`) or from
    `Syncer`'s arguments (`arguments.from_arguments`)."""

    directory: str = DIRECTORY.field()  # absolute once it is the Syncer's
    bucket: str = BUCKET.field()
    region: str = REGION.field()
    endpoint: str = ENDPOINT.field()  # the pattern, with {} for the bucket
    prefix: str = PREFIX.field()
    poll_interval: float = POLL_INTERVAL.field()
    trust_after: float = TRUST_AFTER.field()
    exclude_local: str = EXCLUDE_LOCAL.field()
    exclude_remote: str = EXCLUDE_REMOTE.field()
    upload_on_create: str = UPLOAD_ON_CREATE.field()
    upload_concurrency: int = UPLOAD_CONCURRENCY.field()
    download_concurrency: int = DOWNLOAD_CONCURRENCY.field()
    log_level: str = LOG_LEVEL.field()
    log_format: str = LOG_FORMAT.field()
    tls_verify: bool = TLS_VERIFY.field()
    ca_bundle: str | None = CA_BUNDLE.field()
    multipart_threshold: int = MULTIPART_THRESHOLD.field()
    multipart_chunksize: int = MULTIPART_CHUNKSIZE.field()
    multipart_concurrency: int = MULTIPART_CONCURRENCY.field()
    max_delete_percent: float = MAX_DELETE_PERCENT.field()
    shutdown_timeout: float = SHUTDOWN_TIMEOUT.field()
    http_port: int = HTTP_PORT.field()
    http_host: str = HTTP_HOST.field()
    http_max_connections: int = HTTP_MAX_CONNECTIONS.field()
    http_request_timeout: float = HTTP_REQUEST_TIMEOUT.field()
    stall_timeout: float = STALL_TIMEOUT.field()
    mode: str = MODE.field()  # a SyncMode's value
    queue_url: str | None = QUEUE_URL.field()
    open_file_timeout: float = OPEN_FILE_TIMEOUT.field()
    role_arn: str | None = ROLE_ARN.field()
    role_external_id: str | None = ROLE_EXTERNAL_ID.field()
    role_session_name: str | None = ROLE_SESSION_NAME.field()
    sse: str | None = SSE.field()
    sse_kms_key_id: str | None = SSE_KMS_KEY_ID.field()
    sse_bucket_key: bool | None = SSE_BUCKET_KEY.field()
    storage_class: str | None = STORAGE_CLASS.field()
    acl: str | None = ACL.field()
    request_payer: str | None = REQUEST_PAYER.field()
    sqlite: str = SQLITE.field()  # "snapshot" or "off"
    sqlite_files_alone: str = SQLITE_FILES_ALONE.field()
    sqlite_quiet: float = SQLITE_QUIET.field()
    sqlite_interval: float = SQLITE_INTERVAL.field()
    work_name: str = WORK_NAME.field()
    credentials_source: str = CREDENTIALS_SOURCE.field()

    @property
    def work_dir(self) -> str:
        return os.path.join(self.directory, self.work_name)

    @property
    def identity(self) -> str:
        """What a saved sync state must have been saved for, to be trusted at start."""
        return "|".join(
            (
                self.endpoint.format(self.bucket),
                self.bucket,
                self.prefix,
                os.path.realpath(self.directory),
            )
        )

    @property
    def connections(self) -> int:
        """HTTP connections the transfers can use at once."""
        return self.upload_concurrency + self.download_concurrency + self.multipart_concurrency


ROWS: tuple[tuple[str, Setting[Any]], ...] = tuple(
    (field.name, field.metadata[ROW]) for field in fields(Settings)
)


def readme_table() -> str:
    """The README's configuration table: one row per variable, in table order."""
    lines = ["| variable | meaning | default | example |", "|---|---|---|---|"]
    lines += [row.markdown_row() for _, row in ROWS if row.env is not None]
    return "\n".join(lines)
