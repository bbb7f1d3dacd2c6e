"""A connection flood on a local HTTP port: many connections, each left with a request that
never completes (`INCOMPLETE`: its headers never end), held open and opened again as the server
closes them, as an attacker keeps a server's slots taken (slowloris).

The flood comes from a source address of its own, `OUTSIDE` (127.0.0.2): on Linux all of 127/8
is loopback, so a peer outside the sidecar's task is played without leaving the machine, and a
request from 127.0.0.1 is one from inside the task (the health check, the app). Only
127.0.0.1 is ever connected to.

`Held` is one connection, `hold` opens one, `Flood` keeps many; `limited` runs a command with a
given open-files limit (`prlimit`)."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import time
from types import TracebackType

INCOMPLETE = b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n"  # the blank line never comes
OUTSIDE = "127.0.0.2"
PRLIMIT = shutil.which("prlimit")


def limited(soft: int, hard: int) -> list[str]:
    """The command prefix that runs what follows with this open-files limit (util-linux)."""
    assert PRLIMIT is not None, "prlimit (util-linux) is installed"
    return [PRLIMIT, f"--nofile={soft}:{hard}", "--"]


class Held(asyncio.Protocol):
    """One connection: sends `request` once connected; notes what comes back, and when and how
    the server ended it."""

    def __init__(self, request: bytes) -> None:
        self.request = request
        self.received = b""
        self.opened = 0.0
        self.ended: float | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.opened = time.monotonic()
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        self.received += data

    def eof_received(self) -> bool:
        self._end()
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self._end()

    def _end(self) -> None:
        if self.ended is None:
            self.ended = time.monotonic()

    @property
    def lasted(self) -> float:
        """Seconds from connected to ended by the server (or to now, while open)."""
        return (self.ended if self.ended is not None else time.monotonic()) - self.opened

    def send(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)

    def hang_up(self) -> None:
        """Closes our side gracefully (FIN): the server closes its own, and `ended` is set once
        it has (its socket is closed by then, not merely about to be)."""
        assert self.transport is not None
        self.transport.write_eof()

    def close(self) -> None:
        """Aborts it (a reset): the server finds out when it next looks."""
        if self.transport is not None:
            self.transport.abort()


async def hold(
    port: int, request: bytes = INCOMPLETE, source: str = OUTSIDE, timeout: float = 2.0
) -> Held:
    """A connection to 127.0.0.1:port from `source` that has sent `request`. TimeoutError if it
    could not connect within `timeout` (a server that stopped accepting), ConnectionResetError
    if the server reset it before the connect call returned."""
    loop = asyncio.get_running_loop()
    _, held = await asyncio.wait_for(
        loop.create_connection(lambda: Held(request), "127.0.0.1", port, local_addr=(source, 0)),
        timeout,
    )
    return held


class Flood:
    """`count` connections to 127.0.0.1:port kept open from `source`, each with `request` sent:
    those the server ends are opened again (at most `rate` a second), until the flood ends."""

    TICK = 0.05

    def __init__(
        self,
        port: int,
        count: int,
        request: bytes = INCOMPLETE,
        source: str = OUTSIDE,
        rate: float = 400.0,
    ) -> None:
        self.port = port
        self.count = count
        self.request = request
        self.source = source
        self.rate = rate
        self.connections: list[Held] = []
        self.attempts = 0
        self.reset = 0  # reset by the server before the connect call returned
        self.timed_out = 0  # could not connect in time: not accepted
        self.failed = 0  # could not connect otherwise
        self.finished = 0  # attempts that connected or failed
        self.most_open = 0
        self._connecting = 0
        self._all_tried = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Flood:
        """Once `count` connections were tried (each connected or failed)."""
        self._task = asyncio.create_task(self._keep())
        await self._all_tried.wait()
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        for held in self.connections:
            held.close()

    def open_now(self) -> int:
        return sum(1 for held in self.connections if held.ended is None)

    def refused(self, within: float = 1.0) -> int:
        """Connections the server ended within `within` seconds of their opening, or reset
        before they were open."""
        ended = sum(1 for h in self.connections if h.ended is not None and h.lasted <= within)
        return ended + self.reset

    async def _open_one(self) -> None:
        try:
            self.connections.append(await hold(self.port, self.request, self.source))
        except ConnectionResetError:
            self.reset += 1
        except TimeoutError:
            self.timed_out += 1
        except OSError:
            self.failed += 1
        finally:
            self._connecting -= 1
            self.finished += 1
            if self.finished >= self.count:
                self._all_tried.set()

    async def _keep(self) -> None:
        opening: set[asyncio.Task[None]] = set()
        try:
            while True:
                open_now = self.open_now()
                self.most_open = max(self.most_open, open_now)
                wanted = self.count - open_now - self._connecting
                for _ in range(min(wanted, max(1, int(self.rate * self.TICK)))):
                    self.attempts += 1
                    self._connecting += 1
                    task = asyncio.create_task(self._open_one())
                    opening.add(task)
                    task.add_done_callback(opening.discard)
                await asyncio.sleep(self.TICK)
        finally:
            for task in opening:
                task.cancel()
