"""The HTTP endpoints under attack (issue 24, item 1): a peer that can reach the port but holds
no credentials must never stop the sync. A connection flood, requests that never complete
(slowloris), more connections than the process may open files: the sync goes on, `/readyz`
stays truthful, and the endpoints answer again once the flood ends.

Real processes: the `s3sync-sidecar` command against moto, its endpoints reached from the test
over 127.0.0.1 (support/flood.py; a held connection's source is 127.0.0.2, a peer outside the
task)."""

from __future__ import annotations

import asyncio

from support.flood import hold
from support.local_http import http_get as get
from support.waiting import eventually


async def test_requests_that_never_complete_are_closed_at_the_deadline(
    run_sidecar, sidecar_env
) -> None:
    """SYNC_HTTP_REQUEST_TIMEOUT=2: a connection that sends nothing, one whose headers trickle in
    and never end (slowloris), one whose body never ends, and one idle after its answer are each
    closed by the sidecar about 2 s after their last request began; a prompt one is answered."""
    deadline = 2.0
    port = int(sidecar_env["SYNC_HTTP_PORT"])
    env = {**sidecar_env, "SYNC_HTTP_REQUEST_TIMEOUT": f"{deadline:g}"}
    process = run_sidecar([], env)
    await process.answering(port, "/startupz")

    silent = await hold(port, b"")
    trickle = await hold(port, b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    body = await hold(
        port,
        b"POST /flush?timeout=1 HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100000\r\n\r\n"
        + b"x" * 10,
    )
    idle = await hold(port, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    held = (silent, trickle, body, idle)

    async def trickling() -> None:
        while trickle.ended is None:
            trickle.send(b"X-Slow: 1\r\n")
            await asyncio.sleep(0.25)

    sender = asyncio.create_task(trickling())
    await eventually(
        lambda: all(h.ended is not None for h in held), timeout=deadline + 8, what="all closed"
    )
    await sender
    for name, connection in zip(("silent", "trickle", "body", "idle"), held, strict=True):
        assert deadline - 0.3 <= connection.lasted <= deadline + 3, (name, connection.lasted)
    assert silent.received == trickle.received == b""
    assert body.received.startswith(b"HTTP/1.1 200 "), body.received[:100]
    assert idle.received.startswith(b"HTTP/1.1 200 "), idle.received[:100]
    status, _ = await get(port, "/healthz")
    assert status == 200
