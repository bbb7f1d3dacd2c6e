"""The HTTP endpoints' door: their listening sockets, the loop that accepts connections, and
which ones it lets in. Anyone who can reach the port (in awsvpc networking, anything in the VPC)
can connect without credentials; nothing such a peer does may take what the sync needs, nor
lock the task's own health check out.

- Connections: at most `limit` open at once. A connection from inside the task (its source is
  the very address it reached: the health check, the app over 127.0.0.1) may take any of them;
  one from outside only `limit - limit // 4`, so a quarter stays for the task whatever floods
  the port. One more is reset at once (no FIN, no TIME_WAIT here) and counted by peer
  (`s3sync_http_connections_refused_total{peer}`). The rule is `admit`, a pure function.
- Descriptors: a connection is accepted only while the `Budget` (descriptors.py) leaves the
  sync its reserve. While it does not, nothing is accepted: connections wait in the kernel's
  backlog (`BACKLOG` deep; past it the kernel drops them), no descriptor is taken from the
  sync, and accepting resumes once descriptors are free (`s3sync_http_accepting`; logged on
  the transitions). An `accept` that fails for want of descriptors or memory waits the same way.
- Stalled answers: a connection whose answer is not being read (its send buffer here has not
  shrunk for `deadline` seconds) is aborted, so a peer that stops reading cannot hold a
  connection, and its descriptor, forever. Checked every second over the few connections open.

How long a request may take to arrive (headers, body) and to stay idle is aiohttp's to enforce,
set in endpoints.py; each admitted socket goes to aiohttp's server unchanged
(`connect_accepted_socket`, as asyncio's own accept loop does). That loop is not used (aiohttp's
`TCPSite`) because it accepts up to `backlog` sockets each time the port is readable, whatever
descriptors are left, and cannot be paused: under a flood it took the last descriptors and
logged `socket.accept() out of system resource` in a loop while the sync failed with EMFILE.

Invariant: the endpoints hold at most `limit` descriptors for connections (plus one for the
instant a refused one is reset), and take none while open descriptors are at the Budget's
ceiling. The counts of open connections are exact: each connection's protocol passes every
event on to aiohttp's and tells the listener when it ends. Refusing costs an accept, a
`getsockname` and a reset.
"""

from __future__ import annotations

import asyncio
import enum
import errno
import logging
import socket
import struct
import time
from collections.abc import Callable
from typing import Any

from ..metrics import Metrics
from .descriptors import Budget

log = logging.getLogger("sidecar.http")

BACKLOG = 1024  # connections the kernel holds for us until accepted (capped by somaxconn)
TURN = 16  # connections taken in a row before the rest of the event loop gets its turn
WAIT_FOR_DESCRIPTORS = 0.25  # seconds between looks at the descriptors while short of them
ACCEPT_RETRY = 1.0  # seconds before accepting again after accept() failed for want of resources
WATCH_EVERY = 1.0  # seconds between looks for stalled answers
# accept() errors that mean "not now" (no descriptor, no memory), not "this connection failed"
_SHORT = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}
_RESET = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends a reset


class Peer(enum.Enum):
    TASK = "task"  # the connection comes from the address it reached: this network namespace
    OUTSIDE = "outside"


def outside_share(limit: int) -> int:
    """Connections that peers outside the task may hold at once."""
    return limit - limit // 4


def admit(peer: Peer, task: int, outside: int, limit: int) -> bool:
    """Whether a new connection from `peer` is let in, with `task` and `outside` ones open."""
    if task + outside >= limit:
        return False
    return peer is Peer.TASK or outside < outside_share(limit)


def peer_of(conn: socket.socket, address: Any) -> Peer:
    """TASK when the connection's source is the address it reached (only this network
    namespace can connect from that address: in awsvpc, the task's containers)."""
    return Peer.TASK if address[0] == conn.getsockname()[0] else Peer.OUTSIDE


class _Connection(asyncio.Protocol):
    """One connection let in: aiohttp's protocol for it (`inner`) gets every event, and the
    listener is told when it ends (its descriptor is freed then: asyncio closes the socket right
    after `connection_lost`). Also notes how its answer moves, for `stalled`."""

    def __init__(
        self, inner: asyncio.Protocol, peer: Peer, ended: Callable[[_Connection], None]
    ) -> None:
        self.inner = inner
        self.peer = peer
        self._ended = ended
        self.transport: asyncio.Transport | None = None
        self._unsent = 0  # bytes waiting in its send buffer at the last look
        self._since = 0.0  # when they last shrank (or appeared)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received()

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        try:
            self.inner.connection_lost(exc)
        finally:
            self._ended(self)

    def stalled(self, now: float, deadline: float) -> bool:
        """Whether its answer has waited, not shrinking, for `deadline` seconds."""
        unsent = 0 if self.transport is None else self.transport.get_write_buffer_size()
        if unsent == 0 or self._unsent == 0 or unsent < self._unsent:
            self._since = now
        self._unsent = unsent
        return unsent > 0 and now - self._since >= deadline


class Listener:
    """Listens on `host`:`port` and hands the connections it lets in to `factory` (aiohttp's
    server). `start` binds and starts accepting, `close` stops (the connections are the
    server's to close)."""

    def __init__(
        self,
        factory: Callable[[], asyncio.Protocol],
        *,
        limit: int,
        budget: Budget,
        metrics: Metrics,
        deadline: float,
    ) -> None:
        self._factory = factory
        self.limit = limit
        self._budget = budget
        self._metrics = metrics
        self._deadline = deadline
        self._sockets: list[socket.socket] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._open: set[_Connection] = set()
        self._count = {Peer.TASK: 0, Peer.OUTSIDE: 0}  # of the connections in `_open`
        self._accepting = True  # False while waiting for descriptors
        for peer in Peer:
            metrics.http_connections.labels(peer.value).set_function(
                lambda p=peer: self._count[p]  # type: ignore[misc]
            )

    @property
    def addresses(self) -> list[tuple[str, int]]:
        return [(str(s.getsockname()[0]), int(s.getsockname()[1])) for s in self._sockets]

    async def start(self, host: str, port: int) -> None:
        """Binds every address `host` names (as asyncio's create_server does: IPv6 sockets
        v6-only, SO_REUSEADDR) and starts accepting. OSError if one cannot be bound."""
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        try:
            for family, kind, proto, _, address in dict.fromkeys(infos):
                sock = socket.socket(family, kind, proto)
                self._sockets.append(sock)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                try:
                    sock.bind(address)
                except OSError as error:
                    raise OSError(error.errno, f"cannot bind {address}: {error.strerror}") from None
                sock.listen(BACKLOG)
                sock.setblocking(False)
        except BaseException:
            self._close_sockets()
            raise
        self._tasks = [
            asyncio.create_task(self._accept(s), name="http-accept") for s in self._sockets
        ]
        self._tasks.append(asyncio.create_task(self._watch(), name="http-watch"))

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        self._close_sockets()

    def _close_sockets(self) -> None:
        for sock in self._sockets:
            sock.close()
        self._sockets = []

    async def _accept(self, listening: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        taken = 0
        while True:
            if not self._budget.room():
                await self._wait_for_descriptors()
            taken += 1
            if taken % TURN == 0:
                # sock_accept does not yield while connections are queued, nor does a refusal:
                # under a flood this loop would keep the sync from running.
                await asyncio.sleep(0)
            try:
                conn, address = await loop.sock_accept(listening)
            except OSError as error:
                if error.errno in _SHORT:
                    await self._wait_for_descriptors(error)
                continue  # else the peer gave up before it was taken (ECONNABORTED, EPROTO...)
            try:
                await self._take(loop, conn, address)
            except OSError:
                conn.close()  # it went away while being looked at
            except Exception:
                conn.close()
                log.exception("HTTP connection dropped: unexpected error")

    async def _take(
        self, loop: asyncio.AbstractEventLoop, conn: socket.socket, address: Any
    ) -> None:
        """Hands `conn` to the server, or resets it when its peer's share is taken."""
        peer = peer_of(conn, address)
        if not admit(peer, self._count[Peer.TASK], self._count[Peer.OUTSIDE], self.limit):
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET)
            conn.close()
            self._metrics.inc(self._metrics.http_refused, peer.value)
            return
        connection = _Connection(self._factory(), peer, self._forget)
        self._open.add(connection)
        self._count[peer] += 1
        self._budget.took()
        try:
            await loop.connect_accepted_socket(lambda: connection, conn)
        except BaseException:
            self._forget(connection)  # never made, so never lost
            raise

    def _forget(self, connection: _Connection) -> None:
        if connection in self._open:
            self._open.remove(connection)
            self._count[connection.peer] -= 1

    async def _watch(self) -> None:
        """Every second: abort the connections whose answer stalled."""
        while True:
            await asyncio.sleep(WATCH_EVERY)
            now = time.monotonic()
            for connection in list(self._open):
                if connection.stalled(now, self._deadline) and connection.transport is not None:
                    log.debug("aborting a connection whose answer is not read")
                    connection.transport.abort()

    async def _wait_for_descriptors(self, error: OSError | None = None) -> None:
        """Until the Budget has room again, accepting nothing; logged on the transitions (once
        for every listening socket). After a failed accept, a second at least (as asyncio's own
        accept loop pauses)."""
        if self._accepting:
            self._accepting = False
            self._metrics.http_accepting.set(0)
            why = f"accept failed: {error.strerror}" if error is not None else "descriptors short"
            log.warning(
                "HTTP endpoints not accepting connections (%s): %d files open, %d the most they "
                "may take the process to; waiting for descriptors to be freed",
                why,
                self._budget.counted,
                self._budget.ceiling(),
            )
        pause = ACCEPT_RETRY if error is not None else WAIT_FOR_DESCRIPTORS
        while True:
            await asyncio.sleep(pause)
            if self._budget.room(fresh=True):
                break
            pause = WAIT_FOR_DESCRIPTORS
        if not self._accepting:
            self._accepting = True
            self._metrics.http_accepting.set(1)
            log.info(
                "HTTP endpoints accepting connections again: %d files open", self._budget.counted
            )
