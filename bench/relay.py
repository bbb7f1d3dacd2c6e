"""A TCP relay in front of a local S3 server that counts the bytes each way, headers included:
what a tool sent to S3 and what it got back, the same way for every tool (the rename row's
"bytes transferred"). One thread, `selectors`; every connection is piped both ways until either
side closes.

    with Relay(server.port) as relay:
        ...  # point the tool at relay.url
        relay.sent, relay.received
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading
from types import TracebackType


class Relay:
    def __init__(self, target_port: int, host: str = "127.0.0.1") -> None:
        self._target = (host, target_port)
        self._listener = socket.create_server((host, 0))
        self._listener.setblocking(False)
        self.port = self._listener.getsockname()[1]
        self.url = f"http://{host}:{self.port}"
        self.sent = 0  # tool -> server
        self.received = 0  # server -> tool
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._listener, selectors.EVENT_READ, None)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="relay", daemon=True)

    def __enter__(self) -> Relay:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join(5)
        for key in list(self._selector.get_map().values()):
            key.fileobj.close()  # type: ignore[union-attr]
        self._selector.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            for key, _ in self._selector.select(timeout=0.1):
                if key.data is None:
                    self._accept()
                else:
                    self._pipe(key.fileobj, *key.data)  # type: ignore[arg-type]

    def _accept(self) -> None:
        try:
            client, _ = self._listener.accept()
        except BlockingIOError:
            return
        upstream = socket.create_connection(self._target)
        for sock in (client, upstream):
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._selector.register(client, selectors.EVENT_READ, (upstream, True))
        self._selector.register(upstream, selectors.EVENT_READ, (client, False))

    def _pipe(self, source: socket.socket, target: socket.socket, outbound: bool) -> None:
        try:
            data = source.recv(1 << 20)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._close(source, target)
            return
        if outbound:
            self.sent += len(data)
        else:
            self.received += len(data)
        try:
            target.setblocking(True)  # the other side's pace: a slow reader slows the writer
            target.sendall(data)
            target.setblocking(False)
        except OSError:
            self._close(source, target)

    def _close(self, *socks: socket.socket) -> None:
        for sock in socks:
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(sock)
            sock.close()
