"""The HTTP endpoints under attack (issue 24, item 1): a peer that can reach the port but holds
no credentials must never stop the sync. A connection flood, requests that never complete
(slowloris), more connections than the process may open files: the sync goes on, `/readyz`
stays truthful, and the endpoints answer again once the flood ends.

Real processes: the `s3sync-sidecar` command under `prlimit` (an open-files limit of its own)
against moto, flooded from the test over 127.0.0.1 (support/flood.py; the flood's source is
127.0.0.2, a peer outside the task)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import time
from pathlib import Path

import pytest
from support.bucket import Bucket, content_of
from support.flood import OUTSIDE, Flood, hold, limited
from support.local_http import http_get as get
from support.metrics import scrape, series
from support.waiting import eventually, in_thread

from sidecar.service.descriptors import COUNT_EVERY, Budget, reserve
from sidecar.service.listener import Peer, admit, outside_share

# The sidecar's open-files limit in these tests, soft and hard alike (so that raising the soft
# one at start cannot hide a flood larger than it).
NOFILE = 512
SYNCED_WITHIN = 10.0  # seconds: "within a few seconds", with room for a loaded machine


def _read(path: Path, expected: bytes) -> None:
    assert path.read_bytes() == expected


async def synced_both_ways(bucket: Bucket, folder: Path, name: str) -> tuple[float, float]:
    """Writes `name` locally and puts `name` in S3 under another key: seconds until each is on
    the other side."""
    local, remote = f"{name}.local", f"{name}.remote"
    started = time.monotonic()
    (folder / local).write_bytes(b"written: " + name.encode())
    await in_thread(bucket.put, remote, b"put: " + name.encode())
    await eventually(
        lambda: content_of(bucket, local, b"written: " + name.encode()),
        timeout=SYNCED_WITHIN,
        what=f"{local} in S3",
    )
    uploaded = time.monotonic() - started
    await eventually(
        lambda: _read(folder / remote, b"put: " + name.encode()),
        timeout=SYNCED_WITHIN,
        what=f"{remote} in the folder",
    )
    return uploaded, time.monotonic() - started


async def test_a_connection_flood_never_stops_the_sync(
    run_sidecar, sidecar_env, bucket: Bucket
) -> None:
    """The field's report, scaled to the limit: more connections than the sidecar may open
    files, each with an unfinished `GET /metrics`, held open and opened again as they end, for
    longer than a request may take (2 s here). Meanwhile local writes reach S3 and remote puts
    reach the folder in seconds, before and after the sidecar closed the first connections it
    let in; `/readyz` says ready (and it is); once the flood ends every endpoint answers."""
    deadline = 2.0
    port = int(sidecar_env["SYNC_HTTP_PORT"])
    folder = Path(sidecar_env["SYNC_DIR"])
    env = {**sidecar_env, "SYNC_HTTP_REQUEST_TIMEOUT": f"{deadline:g}"}
    process = run_sidecar([], env, prefix=limited(NOFILE, NOFILE))
    await process.answering(port, "/readyz")

    async with Flood(port, count=NOFILE + 100) as flood:
        first = await synced_both_ways(bucket, folder, "first")
        await eventually(
            lambda: any(h.ended and h.lasted >= deadline - 0.3 for h in flood.connections),
            timeout=deadline + 5,
            what="the first connections let in closed at the deadline (and opened again)",
        )
        second = await synced_both_ways(bucket, folder, "second")
        # Truthful: asked from inside the task during the flood, it answers, and says ready
        # because the sync does go on (shown just above).
        status, body = await get(port, "/readyz")
        assert status == 200, body
        assert json.loads(body)["status"] == "ready"
        print(
            f"\nflood: {flood.attempts} connections tried, at most {flood.most_open} open at "
            f"once, {flood.refused()} reset by the sidecar within 1 s, {flood.timed_out} not "
            f"accepted within 2 s; in S3 after {first[0]:.2f} s and {second[0]:.2f} s, in the "
            f"folder after {first[1]:.2f} s and {second[1]:.2f} s"
        )
    assert process.process.poll() is None, process.text()

    async def answering() -> None:
        for path in ("/healthz", "/readyz", "/startupz"):
            status, _ = await get(port, path)
            assert status == 200, path

    await eventually(answering, timeout=10, what="every endpoint answering after the flood")
    scraped = await scrape(port)
    assert series(scraped.samples, "s3sync_http_connections_refused_total", peer="outside") > 0
    assert "out of system resource" not in process.text()
    assert "Too many open files" not in process.text()


async def reset_at_once(port: int, source: str) -> None:
    """A connection from `source` that the sidecar resets within a second."""
    try:
        held = await hold(port, source=source)
    except ConnectionResetError:
        return
    await eventually(lambda: held.ended is not None, timeout=1.0, what="reset at once")


async def test_excess_connections_are_reset_at_once_and_a_quarter_is_kept_for_the_task(
    run_sidecar, sidecar_env
) -> None:
    """With SYNC_HTTP_MAX_CONNECTIONS=8, peers outside the task hold at most 6: the next ones
    are reset at once and counted; the task may fill the last 2, and one more of its own is
    reset too; with the outside share still full, the health check (from inside the task)
    answers."""
    port = int(sidecar_env["SYNC_HTTP_PORT"])
    env = {**sidecar_env, "SYNC_HTTP_MAX_CONNECTIONS": "8", "SYNC_HTTP_REQUEST_TIMEOUT": "60"}
    process = run_sidecar([], env)
    await process.answering(port, "/startupz")
    assert outside_share(8) == 6

    outside = [await hold(port) for _ in range(6)]
    for _ in range(3):
        await reset_at_once(port, OUTSIDE)
    task = [await hold(port, source="127.0.0.1") for _ in range(2)]
    await reset_at_once(port, "127.0.0.1")
    assert all(held.ended is None for held in outside + task), "those let in stay open"
    for held in task:
        held.hang_up()
    await eventually(lambda: all(held.ended is not None for held in task), what="hung up")

    status, _ = await get(port, "/healthz")
    assert status == 200, "the task's share is never taken from outside"
    scraped = await scrape(port)
    assert series(scraped.samples, "s3sync_http_connections_refused_total", peer="outside") == 3
    assert series(scraped.samples, "s3sync_http_connections_refused_total", peer="task") == 1
    assert series(scraped.samples, "s3sync_http_connections", peer="outside") == 6
    assert all(held.ended is None for held in outside)
    assert "Traceback" not in process.text()


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


async def test_an_answer_never_read_is_aborted(run_sidecar, sidecar_env) -> None:
    """A peer that asks for /metrics 2,000 times on one connection and never reads: the answers
    fill every buffer, the handler waits to write, and no deadline of aiohttp's applies. The
    sidecar aborts the connection once its answer has not moved for SYNC_HTTP_REQUEST_TIMEOUT."""
    deadline = 2.0
    port = int(sidecar_env["SYNC_HTTP_PORT"])
    process = run_sidecar([], {**sidecar_env, "SYNC_HTTP_REQUEST_TIMEOUT": f"{deadline:g}"})
    await process.answering(port, "/startupz")
    reader = socket.socket()
    reader.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    reader.bind((OUTSIDE, 0))
    reader.connect(("127.0.0.1", port))
    reader.sendall(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" * 2000)
    try:

        async def outside_connections() -> float:
            scraped = await scrape(port)
            return series(scraped.samples, "s3sync_http_connections", peer="outside")

        async def aborted() -> None:
            assert await outside_connections() == 0

        started = time.monotonic()
        assert await outside_connections() == 1, "held while its answers wait"
        await eventually(aborted, timeout=deadline + 5, what="the connection aborted")
        assert time.monotonic() - started >= deadline - 1.5
    finally:
        reader.close()
    assert process.process.poll() is None


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


async def test_descriptors_are_kept_for_the_sync_whatever_the_connection_limit(
    run_sidecar, sidecar_env, bucket: Bucket
) -> None:
    """With the connection limit set past the open-files limit, a flood larger than that limit
    still leaves the sync its reserve: the sidecar's descriptors never pass the ceiling, the
    endpoints stop accepting there (logged; /metrics cannot be asked then), the sync goes on,
    and they accept again once the flood's connections close (the gauge back at 1)."""
    port = int(sidecar_env["SYNC_HTTP_PORT"])
    folder = Path(sidecar_env["SYNC_DIR"])
    env = {**sidecar_env, "SYNC_HTTP_MAX_CONNECTIONS": "65536"}
    process = run_sidecar([], env, prefix=limited(NOFILE, NOFILE))
    await process.answering(port, "/readyz")
    ceiling = NOFILE - reserve(32 + 16 + 4, NOFILE)
    most = 0

    def sample() -> None:
        nonlocal most
        most = max(most, len(os.listdir(f"/proc/{process.process.pid}/fd")))

    async with Flood(port, count=NOFILE + 200) as flood:
        sample()
        await synced_both_ways(bucket, folder, "waiting")
        sample()

        def waiting() -> bool:
            sample()
            return "not accepting connections" in process.text()

        await eventually(waiting, timeout=10, what="the endpoints waiting for descriptors")
        print(
            f"\nflood past the descriptors: {flood.attempts} tried, at most {flood.most_open} "
            f"open at once, at most {most} descriptors open in the sidecar (ceiling {ceiling}, "
            f"limit {NOFILE})"
        )
    assert most <= ceiling + 8, (most, ceiling)
    await eventually(
        lambda: "accepting connections again" in process.text(), timeout=20, what="resumed"
    )
    scraped = await scrape(port)
    assert series(scraped.samples, "s3sync_http_accepting") == 1
    assert "out of system resource" not in process.text()
    assert "Too many open files" not in process.text()


# -- the rules, row by row ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("peer", "task", "outside", "limit", "admitted"),
    [
        (Peer.OUTSIDE, 0, 0, 64, True),
        (Peer.OUTSIDE, 0, 47, 64, True),
        (Peer.OUTSIDE, 0, 48, 64, False),  # the outside share is taken
        (Peer.TASK, 0, 48, 64, True),  # the task's quarter is still free
        (Peer.TASK, 15, 48, 64, True),
        (Peer.TASK, 16, 48, 64, False),  # every connection is taken
        (Peer.OUTSIDE, 40, 0, 64, True),  # the task may use the outside share too
        (Peer.OUTSIDE, 60, 4, 64, False),
        (Peer.OUTSIDE, 0, 5, 8, True),
        (Peer.OUTSIDE, 0, 6, 8, False),
        (Peer.TASK, 1, 6, 8, True),
        (Peer.TASK, 2, 6, 8, False),
    ],
)
def test_admit(peer: Peer, task: int, outside: int, limit: int, admitted: bool) -> None:
    assert admit(peer, task, outside, limit) is admitted


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
