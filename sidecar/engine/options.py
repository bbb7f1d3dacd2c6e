"""`SyncOptions`: everything a `Syncer` was asked for, as one frozen value, checked and
normalised once (patterns compiled, counts at least 1). Built by `Syncer` from mobius3's
arguments; read by the engine and the parts it builds, never changed."""

from __future__ import annotations

import os
import re
import ssl
from dataclasses import dataclass

from ..core.model import SyncMode
from ..s3.client import Endpoint


@dataclass(frozen=True, slots=True)
class SyncOptions:
    root: str  # absolute
    bucket: str
    endpoint: Endpoint
    endpoint_pattern: str
    region: str
    prefix: str
    upload_workers: int
    download_workers: int
    poll_interval: float
    exclude_remote: re.Pattern[str]
    exclude_local: re.Pattern[str]
    upload_on_create: re.Pattern[str]
    trust_after: float  # mobius3's local_modification_persistance
    work_name: str  # the hidden working folder inside root
    ssl: ssl.SSLContext | bool | None
    multipart_threshold: int
    multipart_chunksize: int
    multipart_concurrency: int
    max_delete_percent: float
    open_file_timeout: float
    stall_timeout: float
    mode: SyncMode = SyncMode.BIDIRECTIONAL
    queue_url: str | None = None  # SQS queue of the bucket's events (changes.py)

    @property
    def work_dir(self) -> str:
        return os.path.join(self.root, self.work_name)

    @property
    def identity(self) -> str:
        """What a saved sync state must have been saved for, to be trusted at start."""
        return "|".join(
            (
                self.endpoint_pattern.format(self.bucket),
                self.bucket,
                self.prefix,
                os.path.realpath(self.root),
            )
        )

    @property
    def connections(self) -> int:
        return self.upload_workers + self.download_workers + self.multipart_concurrency
