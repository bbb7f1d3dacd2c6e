"""The sidecar as a long-running service: the syncer, its HTTP endpoints, signals, and a
supervisor that turns "stopped syncing" into an exit ECS can see and restart.

mobius3 users report that it "stops syncing but does not exit". Here a dead internal task, a
stalled upload queue (while S3 answers), a blocked event loop or a deleted folder is logged
with its reason and ends the process with exit code 1.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import ssl
from collections.abc import Mapping

from ..aws.chain import provider_from_environment
from ..aws.credentials import Credentials, CredentialsFactory, CredentialsProvider
from ..aws.http import HttpClient, tls_context
from ..engine.syncer import Syncer
from ..metrics import Metrics, without_created_series
from ..settings.arguments import as_arguments
from ..settings.table import Settings
from .descriptors import raise_open_files_limit, reserve
from .endpoints import HealthServer

log = logging.getLogger("sidecar.service")

EXIT_OK = 0
EXIT_FAILED = 1

SUPERVISE_EVERY = 1.0


def ssl_context(settings: Settings) -> ssl.SSLContext:
    return tls_context(verify=settings.tls_verify, ca_bundle=settings.ca_bundle)


def credentials_factory(
    settings: Settings, env: Mapping[str, str], metrics: Metrics
) -> CredentialsFactory:
    """Builds the provider the settings name, on the sidecar's one HTTP client, its refreshes
    and failures shown in `metrics`."""

    def refreshed(credentials: Credentials) -> None:
        expiration = credentials.expiration
        metrics.credentials_expiry.set(expiration.timestamp() if expiration else 0)

    def failed(error: BaseException) -> None:
        metrics.credentials_refresh_failures.inc()
        log.warning("fetching credentials failed: %s", error)

    def build(http: HttpClient) -> CredentialsProvider:
        return provider_from_environment(
            env,
            settings.credentials_source,
            http=http,
            region=settings.region,
            on_refresh=refreshed,
            on_failure=failed,
        )

    return build


def build_syncer(settings: Settings, metrics: Metrics, credentials: CredentialsFactory) -> Syncer:
    return Syncer(
        **as_arguments(settings),
        credentials=credentials,
        ssl_context=ssl_context(settings),
        metrics=metrics,
    )


class Service:
    def __init__(self, settings: Settings, env: Mapping[str, str]) -> None:
        self.settings = settings
        without_created_series()  # the command's process: nothing else's metrics live here
        metrics = Metrics()
        self.syncer = build_syncer(settings, metrics, credentials_factory(settings, env, metrics))
        self.http = HealthServer(
            self.syncer,
            settings.http_host,
            settings.http_port,
            max_connections=settings.http_max_connections,
            deadline=settings.http_request_timeout,
            transfer_connections=settings.connections,
        )
        self._stop = asyncio.Event()
        self._signals: list[int] = []

    def request_stop(self, signum: int) -> None:
        """First signal: graceful stop. Second: exit at once (the operator insists)."""
        self._signals.append(signum)
        name = signal.Signals(signum).name
        if len(self._signals) > 1:
            log.error("second %s: exiting now, without waiting for uploads", name)
            logging.shutdown()
            os._exit(128 + signum)
        log.info(
            "%s received: finishing queued uploads (up to %gs)",
            name,
            self.settings.shutdown_timeout,
        )
        self._stop.set()

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.request_stop, signum)
        limit = raise_open_files_limit()
        kept = reserve(self.settings.connections, limit.soft)
        log.info(
            "%s; %d kept for the sync, never taken by HTTP connections", limit.describe(), kept
        )
        try:
            try:
                await self.http.start()
            except OSError as error:
                log.error(
                    "cannot serve HTTP on %s port %d: %s",
                    self.settings.http_host,
                    self.settings.http_port,
                    error,
                )
                return EXIT_FAILED
            return await self._run()
        finally:
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(signum)
            await self.http.close()

    async def _run(self) -> int:
        starting = asyncio.create_task(self.syncer.start(), name="start")
        stopping = asyncio.create_task(self._stop.wait(), name="wait-for-signal")
        try:
            while not starting.done():
                await asyncio.wait(
                    {starting, stopping},
                    timeout=SUPERVISE_EVERY,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                if stopping.done() and not starting.done():
                    starting.cancel()
                    await asyncio.gather(starting, return_exceptions=True)
                    log.error("stopped before the initial restore finished")
                    return EXIT_FAILED
                if not starting.done() and (problems := self.syncer.health_problems()):
                    return await self._give_up(problems, starting)
            error = starting.exception()
            if error is not None:
                log.error("cannot start: %s", error)
                return EXIT_FAILED
            while not stopping.done():
                await asyncio.wait({stopping}, timeout=SUPERVISE_EVERY)
                if problems := self.syncer.health_problems():
                    return await self._give_up(problems)
            left = await self.syncer.stop(timeout=self.settings.shutdown_timeout)
            return EXIT_FAILED if left else EXIT_OK
        finally:
            stopping.cancel()

    async def _give_up(
        self, problems: list[str], starting: asyncio.Task[None] | None = None
    ) -> int:
        log.error("stopped syncing, exiting so that it is restarted: %s", "; ".join(problems))
        if starting is not None:
            starting.cancel()
            await asyncio.gather(starting, return_exceptions=True)
        else:
            # Whatever stalled is unlikely to move now: a short last try, then out.
            await self.syncer.stop(timeout=min(5.0, self.settings.shutdown_timeout))
        return EXIT_FAILED
