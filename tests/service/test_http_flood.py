"""The HTTP endpoints under attack (issue 24, item 1): a peer that can reach the port but holds
no credentials must never stop the sync. A connection flood, requests that never complete
(slowloris), more connections than the process may open files: the sync goes on, `/readyz`
stays truthful, and the endpoints answer again once the flood ends.

Real processes: the `s3sync-sidecar` command against moto, its endpoints reached from the test
over 127.0.0.1 (support/flood.py; a held connection's source is 127.0.0.2, a peer outside the
task)."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
from support.flood import hold, limited
from support.local_http import http_get as get
from support.waiting import eventually

from sidecar.service.descriptors import COUNT_EVERY, Budget, reserve


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


def _limits_of(pid: int) -> tuple[int, int]:
    text = Path(f"/proc/{pid}/limits").read_text()
    found = re.search(r"^Max open files\s+(\d+)\s+(\d+)", text, re.MULTILINE)
    assert found is not None, text
    return int(found[1]), int(found[2])


async def test_the_soft_open_files_limit_is_raised_to_the_hard_one_at_start(
    run_sidecar, sidecar_env
) -> None:
    port = int(sidecar_env["SYNC_HTTP_PORT"])
    process = run_sidecar([], sidecar_env, prefix=limited(256, 4096))
    await process.answering(port, "/startupz")
    assert _limits_of(process.process.pid) == (4096, 4096)
    assert "open files limit raised from 256 to 4096 (the hard limit)" in process.text()
    kept = reserve(32 + 16 + 4, 4096)
    assert f"{kept} kept for the sync" in process.text()


# -- the rules, row by row ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("transfers", "soft", "kept"),
    [
        (52, 1024, 168),  # the defaults: 32 uploads + 16 downloads + 4 parts, twice, plus 64
        (52, 256, 128),  # at most half the limit
        (1028, 1 << 20, 2120),
        (0, 100, 50),
    ],
)
def test_reserve(transfers: int, soft: int, kept: int) -> None:
    assert reserve(transfers, soft) == kept


def test_the_budget_counts_at_most_every_tenth_of_a_second_and_adds_what_it_let_in() -> None:
    now = [0.0]
    counts = [100]
    budget = Budget(32, count=lambda: counts[0], limit=lambda: 256, clock=lambda: now[0])
    assert budget.ceiling() == 128
    assert budget.room() and budget.counted == 100
    counts[0] = 127
    for _ in range(27):
        budget.took()
    assert budget.counted == 127 and budget.room()  # not counted again yet
    budget.took()
    assert not budget.room()  # 128 open: at the ceiling
    counts[0] = 90
    assert not budget.room()
    now[0] += COUNT_EVERY
    assert budget.room() and budget.counted == 90
    counts[0] = 200
    assert not budget.room(fresh=True)
