"""`/metrics`, `/healthz`, `/readyz`, `/startupz` and `POST /flush` on aiohttp's server.

- `/metrics`: Prometheus text from the syncer's own registry (prometheus-client's handler).
- `/healthz`: liveness. 200 while the event loop answers and every internal task is alive;
  503 with the reasons otherwise (a stalled queue, a dead task, a deleted folder). A 200 says
  `"status": "degraded"` when something works less well than it should (directories inotify
  could not watch, synced by a periodic scan); `"degraded"` lists what, in every answer.
- `/readyz`: current readiness. 200 only while the bucket is restored into the folder, the last
  poll succeeded within three poll intervals, and credentials are valid; otherwise 503 with a
  JSON body naming the failing check. An S3 or credentials outage makes it fail: it is for
  dashboards and alerts, never for a check that gets the container killed.
- `/startupz`: what the container health check asks (`s3sync-sidecar healthcheck`): "ready
  once, then alive". 503 until the initial restore has finished; from then on 200 for as long
  as `/healthz` is, whatever S3 and the credentials do. It still holds an app that
  `dependsOn … HEALTHY` until the folder is complete, and an outage can never get the task
  replaced and its unsynced changes lost with it.
- `POST /flush?timeout=30`: a durability barrier (`Syncer.flush`). 200 once every local change
  made before the call is in S3; 504 when `timeout` seconds pass first, naming what is pending;
  503 while not syncing (restoring, stopping). Files still open for writing are listed, not
  waited for. One flush costs an inotify drain and a wait: nothing is listed or re-read.

No endpoint asks who calls it: whoever reaches the port may read every one and flush (by
default the port is on every interface). Who is let in, how many at once, and that the sync's
open files are never taken is listener.py's; how long a request may take is aiohttp's, set here.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from aiohttp import web
from prometheus_client.aiohttp import make_aiohttp_handler

from ..engine.syncer import DEFAULT_FLUSH_TIMEOUT
from ..settings.table import HTTP_MAX_CONNECTIONS, HTTP_REQUEST_TIMEOUT
from .descriptors import Budget
from .listener import Listener, outside_share

if TYPE_CHECKING:
    from ..engine.syncer import Syncer

log = logging.getLogger("sidecar.http")

MAX_FLUSH_TIMEOUT = 3600.0
MAX_LINE = 4096  # bytes of the request line and of each header
MAX_HEADERS = 32
SHUTDOWN_GRACE = 1.0  # seconds a stop waits for handlers still running (a flush)


def _json(status: int, body: dict[str, Any]) -> web.Response:
    return web.Response(status=status, text=json.dumps(body), content_type="application/json")


class HealthServer:
    """The endpoints on aiohttp's server, behind the `Listener` (listener.py: how many
    connections, from whom, and never the sync's descriptors). What a peer sends is bounded by
    aiohttp's own options: a request's line and headers must arrive within `deadline` seconds
    (SYNC_HTTP_REQUEST_TIMEOUT) of the connection or of the previous answer (an idle keep-alive
    connection is closed then too), within `MAX_LINE` bytes a line and `MAX_HEADERS` headers; no
    endpoint reads a body, and what is left of one after the answer is read and dropped for at
    most `deadline` seconds, then the connection closed. A handler whose peer goes away is
    cancelled (a flush no one waits for stops waiting), and a stop waits `SHUTDOWN_GRACE`
    seconds for handlers still running."""

    def __init__(
        self,
        syncer: Syncer,
        host: str,
        port: int,
        *,
        max_connections: int = HTTP_MAX_CONNECTIONS.default,
        deadline: float = HTTP_REQUEST_TIMEOUT.default,
        transfer_connections: int = 0,
    ) -> None:
        self._syncer = syncer
        self._host = host
        self._port = port
        self._max_connections = max_connections
        self._deadline = deadline
        self._transfer_connections = transfer_connections
        self._runner: web.AppRunner | None = None
        self._listener: Listener | None = None
        self._restored_once = False

    def application(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/metrics", make_aiohttp_handler(self._syncer.metrics.registry))
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/startupz", self._startupz)
        app.router.add_post("/flush", self._flush)
        return app

    async def start(self) -> None:
        """Serving, or OSError (the address cannot be bound) with nothing left open."""
        runner = web.AppRunner(
            self.application(),
            access_log=None,
            handler_cancellation=True,
            shutdown_timeout=SHUTDOWN_GRACE,
            keepalive_timeout=self._deadline,
            lingering_time=self._deadline,
            max_line_size=MAX_LINE,
            max_field_size=MAX_LINE,
            max_headers=MAX_HEADERS,
        )
        await runner.setup()
        assert runner.server is not None
        listener = Listener(
            runner.server,
            limit=self._max_connections,
            budget=Budget(self._transfer_connections),
            metrics=self._syncer.metrics,
            deadline=self._deadline,
        )
        try:
            await listener.start(self._host, self._port)
        except BaseException:
            await runner.cleanup()
            raise
        self._runner, self._listener = runner, listener
        log.info(
            "serving /metrics, /healthz, /readyz, /startupz and POST /flush on %s port %d: at "
            "most %d connections (%d from outside the task), requests within %gs",
            self._host,
            self._port,
            listener.limit,
            outside_share(listener.limit),
            self._deadline,
        )

    @property
    def addresses(self) -> list[tuple[str, int]]:
        """(address, port) of every listening socket, once started."""
        return [] if self._listener is None else self._listener.addresses

    async def close(self) -> None:
        if self._listener is not None:
            await self._listener.close()
            self._listener = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def _liveness(self) -> tuple[int, dict[str, Any]]:
        problems = self._syncer.health_problems()
        degraded = self._syncer.degraded()
        status = "unhealthy" if problems else "degraded" if degraded else "ok"
        body = {"status": status, "problems": problems, "degraded": degraded}
        return 503 if problems else 200, body

    async def _healthz(self, request: web.Request) -> web.Response:
        return _json(*self._liveness())

    async def _readyz(self, request: web.Request) -> web.Response:
        checks = self._syncer.readiness()
        failing = [name for name, check in checks.items() if not check["ok"]]
        return _json(
            503 if failing else 200,
            {"status": "not ready" if failing else "ready", "failing": failing, "checks": checks},
        )

    async def _flush(self, request: web.Request) -> web.Response:
        raw = request.query.get("timeout", str(DEFAULT_FLUSH_TIMEOUT))
        try:
            timeout = float(raw)
        except ValueError:
            timeout = -1.0
        if not 0 < timeout <= MAX_FLUSH_TIMEOUT:
            return _json(
                400,
                {
                    "status": "bad request",
                    "error": f"timeout={raw!r}: expected seconds, more than 0 and at most "
                    f"{MAX_FLUSH_TIMEOUT:g}",
                },
            )
        phase = self._syncer.phase.value
        if phase != "syncing":
            return _json(503, {"status": "not syncing", "phase": phase})
        result = await self._syncer.flush(timeout)
        body: dict[str, Any] = {
            "status": "flushed" if result.flushed else "timeout",
            "seconds": round(result.seconds, 3),
            "pending_count": len(result.pending),
            "pending": result.pending[:100],
            "open_for_writing": result.open_for_writing[:100],
        }
        return _json(200 if result.flushed else 504, body)

    async def _startupz(self, request: web.Request) -> web.Response:
        if not self._restored_once:
            self._restored_once = bool(self._syncer.readiness()["restore"]["ok"])
        code, body = self._liveness()
        if not self._restored_once:
            code, body["status"] = 503, "starting"
        return _json(code, {"status": body.pop("status"), "restored": self._restored_once, **body})
