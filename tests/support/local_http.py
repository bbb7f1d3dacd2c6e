"""HTTP on 127.0.0.1: a free port to listen on, and a GET."""

from __future__ import annotations

import random
import socket
from pathlib import Path

import aiohttp


def free_port() -> int:
    """A port free now on every interface, below the kernel's ephemeral range: a port the
    kernel handed out (bind to 0) is handed out again as the source port of the next outgoing
    connection, so a sidecar started a moment later found it taken ("Address already in use",
    2 runs in a full suite beside other tests)."""
    ranges = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
    low = int(ranges[0])
    ports = random.sample(range(10000, max(low, 10001)), min(200, max(low - 10000, 1)))
    for port in ports:
        with socket.socket() as sock:
            try:
                sock.bind(("0.0.0.0", port))
            except OSError:
                continue
            return port
    with socket.socket() as sock:  # the whole range taken: the kernel's choice, as before
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def http_get(port: int, path: str) -> tuple[int, str]:
    """GET http://127.0.0.1:port/path: (status, body)."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            f"http://127.0.0.1:{port}{path}", timeout=aiohttp.ClientTimeout(total=5)
        ) as response,
    ):
        return response.status, await response.text()
