"""`Syncer`: the facade users program against. It keeps mobius3's signature and asyncio API
(`start, stop = Syncer(...)`) so existing users switch by changing an import, turns the
arguments into the one frozen `Settings` (mobius3's names mapped by the table of settings,
defaults from it), and moves through one explicit lifecycle:

    NEW --start()--> RESTORING --restored--> SYNCING --stop()--> STOPPING --> CLOSED

`start()` builds the running parts (`Engine`) and restores the bucket into the folder; a second
`start()` is refused; `stop()` before `start()` or after `stop()` has nothing to do. What the
sidecar does with each path is decided elsewhere (the README's module table is the map).
"""

from __future__ import annotations

import asyncio
import enum
import logging
import os
import ssl
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from ..aws.chain import provider_from_environment
from ..aws.credentials import CredentialsFactory, CredentialsProvider
from ..aws.http import HttpClient
from ..core.model import SyncMode
from ..metrics import Metrics
from ..s3.endpoint import Endpoint
from ..settings.arguments import from_arguments, unexpected
from ..settings.table import (
    DOWNLOAD_CONCURRENCY,
    EXCLUDE_LOCAL,
    EXCLUDE_REMOTE,
    POLL_INTERVAL,
    PREFIX,
    SHUTDOWN_TIMEOUT,
    TRUST_AFTER,
    UPLOAD_CONCURRENCY,
    UPLOAD_ON_CREATE,
    WORK_NAME,
)
from .engine import Engine

log = logging.getLogger("sidecar")

DEFAULT_WORK_DIR = WORK_NAME.default
DEFAULT_STOP_TIMEOUT = SHUTDOWN_TIMEOUT.default  # the command's SIGTERM budget

_IGNORED_MOBIUS3_ARGUMENTS = frozenset(
    {
        "get_credentials",
        "get_pool",
        "flush_file_root",
        "flush_file_timeout",
        "directory_watch_timeout",
        "get_logger_adapter",
        "cloudwatch_monitoring_endpoint",
        "cloudwatch_monitoring_region",
        "cloudwatch_monitoring_namespace",
    }
)


class Phase(enum.Enum):
    NEW = "new"
    RESTORING = "restoring"
    SYNCING = "syncing"
    STOPPING = "stopping"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class SyncStatus:
    started: bool
    restore_done: bool
    last_poll_success: float | None  # monotonic
    last_poll_error: str | None
    s3_reachable: bool
    fatal: str | None
    pending_uploads: int


@dataclass(frozen=True, slots=True)
class FlushResult:
    """What `Syncer.flush` found: `flushed` when every local change made before the call is
    in S3; otherwise `pending` names what is not (yet). `open_for_writing`: files an app has
    written and not closed; what it wrote there is uploaded when it closes them (or after
    SYNC_OPEN_FILE_TIMEOUT idle), not as part of the flush."""

    flushed: bool
    pending: list[str]
    open_for_writing: list[str]
    seconds: float


DEFAULT_FLUSH_TIMEOUT = 30.0


class Syncer:
    """Continuously sync `directory` with `bucket`/`prefix`, both ways.

    `start, stop = Syncer(...)` works as with mobius3; so does `syncer = Syncer(...)`,
    `await syncer.start()`, `await syncer.stop()`.
    """

    def __init__(  # noqa: PLR0917 - mobius3's positional signature
        self,
        directory: str | os.PathLike[str],
        bucket: str,
        endpoint: str,
        region: str,
        prefix: str = PREFIX.default,
        concurrent_uploads: int = UPLOAD_CONCURRENCY.default,
        concurrent_downloads: int = DOWNLOAD_CONCURRENCY.default,
        download_interval: float = POLL_INTERVAL.default,
        exclude_remote: str = EXCLUDE_REMOTE.default,
        exclude_local: str = EXCLUDE_LOCAL.default,
        upload_on_create: str = UPLOAD_ON_CREATE.default,
        local_modification_persistance: float = TRUST_AFTER.default,
        download_directory: str = WORK_NAME.default,
        *,
        credentials: CredentialsProvider | CredentialsFactory | None = None,
        ssl_context: ssl.SSLContext | bool | None = None,
        metrics: Metrics | None = None,
        **arguments: Any,
    ) -> None:
        """Every other setting by its name in the table (settings/table.py): `mode`,
        `queue_url`, `max_delete_percent`, `multipart_threshold`, ...; mobius3's arguments that
        are not needed here are accepted and ignored, with a warning."""
        ignored = arguments.keys() & _IGNORED_MOBIUS3_ARGUMENTS
        unknown = unexpected(arguments.keys() - ignored)
        if unknown:
            raise TypeError(f"Syncer() got unexpected arguments: {', '.join(unknown)}")
        for name in sorted(ignored):
            log.warning("ignoring mobius3 argument %s: not needed by s3sync-sidecar", name)
            del arguments[name]
        if prefix and not prefix.endswith("/"):
            log.warning(
                "prefix %r does not end with '/': keys are the prefix followed by the path, so "
                "it also takes in keys such as %r",
                prefix,
                prefix + "x/...",
            )
        Endpoint.parse(endpoint, bucket)  # ValueError now rather than at start()
        self.settings = from_arguments(
            {
                "directory": directory,
                "bucket": bucket,
                "endpoint": endpoint,
                "region": region,
                "prefix": prefix,
                "concurrent_uploads": concurrent_uploads,
                "concurrent_downloads": concurrent_downloads,
                "download_interval": download_interval,
                "exclude_remote": exclude_remote,
                "exclude_local": exclude_local,
                "upload_on_create": upload_on_create,
                "local_modification_persistance": local_modification_persistance,
                "download_directory": download_directory,
                **arguments,
            }
        )
        self._ssl_context = ssl_context
        # A provider passed in belongs to the caller; one a factory builds, to the engine.
        self._credentials = credentials
        self.metrics = metrics if metrics is not None else Metrics()
        self._phase = Phase.NEW
        self._engine: Engine | None = None

    def __iter__(self) -> Iterator[Callable[..., Any]]:
        yield self.start
        yield self.stop

    @property
    def phase(self) -> Phase:
        return self._phase

    def _running(self) -> Engine:
        if self._engine is None:
            raise RuntimeError(f"Syncer is {self._phase.value}: start() it first")
        return self._engine

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        """Restore the bucket into the folder, then keep syncing in the background."""
        if self._phase is not Phase.NEW:
            raise RuntimeError(f"Syncer already started (it is {self._phase.value})")
        self._phase = Phase.RESTORING
        # By default, the chain the AWS SDKs use (aws/chain.py), built on the one HTTP client.
        credentials = self._credentials
        if credentials is None:
            region = self.settings.region

            def from_environment(http: HttpClient) -> CredentialsProvider:
                return provider_from_environment(os.environ, http=http, region=region)

            credentials = from_environment
        engine = self._engine = Engine(self.settings, self.metrics, credentials, self._ssl_context)
        try:
            await engine.start()
        except BaseException:
            self._phase = Phase.CLOSED
            await engine.close()
            raise
        if self._phase is Phase.RESTORING:
            self._phase = Phase.SYNCING

    async def stop(self, timeout: float | None = DEFAULT_STOP_TIMEOUT) -> list[str]:  # noqa: ASYNC109
        """Finish queued uploads (for at most `timeout` seconds: 25 by default, None waits
        as long as it takes), then stop watching and close.

        Returns the paths whose local changes could not be uploaded in time.
        """
        engine = self._engine
        if engine is None or self._phase in (Phase.STOPPING, Phase.CLOSED):
            return []
        self._phase = Phase.STOPPING
        try:
            left = await engine.drain(timeout)
        finally:
            self._phase = Phase.CLOSED
            await engine.close()
        if left:
            log.error(
                "stopped with %d local changes not uploaded: %s", len(left), ", ".join(left[:50])
            )
        else:
            log.info("stopped; every local change is in S3")
        return left

    # -- what it is doing ----------------------------------------------------------------

    def status(self) -> SyncStatus:
        engine = self._engine
        if engine is None:
            return SyncStatus(False, False, None, None, True, None, 0)
        poll = engine.poller.health
        return SyncStatus(
            started=True,
            restore_done=engine.restore.done.is_set(),
            last_poll_success=poll.last_success_monotonic,
            last_poll_error=poll.last_error,
            s3_reachable=engine.health.s3_reachable,
            fatal=engine.events.fatal,
            pending_uploads=len(engine.scheduler.pending_local()),
        )

    @property
    def internal_tasks(self) -> list[asyncio.Task[None]]:
        """Every long-lived task; a dead one means the sidecar stopped syncing."""
        return [] if self._engine is None else self._engine.tasks

    def health_problems(self) -> list[str]:
        """Why the sidecar is not syncing (empty when it is): the process should exit so that
        it gets restarted, rather than stop syncing silently."""
        engine = self._engine
        return [] if engine is None else engine.problems()

    def degraded(self) -> list[str]:
        """What works less well than it should (directories synced by a periodic scan because
        inotify could not watch them): worth an alert, never a restart."""
        engine = self._engine
        return [] if engine is None else engine.degraded()

    def readiness(self) -> dict[str, dict[str, Any]]:
        """The checks `/readyz` reports: restored, polling, credentials."""
        if self._engine is None:
            return {
                "restore": {"ok": False, "pending": 0},
                "poll": {"ok": False, "seconds_since_success": None, "error": None},
                "credentials": {"ok": False, "expires": None},
            }
        return self._engine.readiness()

    async def flush(self, timeout: float = DEFAULT_FLUSH_TIMEOUT) -> FlushResult:  # noqa: ASYNC109
        """A durability barrier: returns once every local change made before the call
        (closed files, deletes, renames, directories, chmod, touch) is in S3, or after
        `timeout` seconds with what is still pending. Only while syncing."""
        if self._phase is not Phase.SYNCING:
            raise RuntimeError(f"Syncer is {self._phase.value}: flush needs it syncing")
        began = time.monotonic()
        pending, writing = await self._running().flush(timeout)
        result = FlushResult(not pending, pending, writing, time.monotonic() - began)
        self.metrics.inc(self.metrics.flushes, "ok" if result.flushed else "timeout")
        return result

    async def poll_once(self) -> None:
        """List the prefix and sync whatever changed in S3 now (nothing in upload-only): a
        file whose key is deleted in S3 is deleted here when two listings in a row miss the
        key (fold.py's `missed`). Never raises."""
        if SyncMode(self.settings.mode) is SyncMode.UPLOAD_ONLY:
            return
        await self._running().poller.poll()


__all__ = [
    "DEFAULT_FLUSH_TIMEOUT",
    "DEFAULT_STOP_TIMEOUT",
    "DEFAULT_WORK_DIR",
    "FlushResult",
    "Phase",
    "SyncStatus",
    "Syncer",
]
