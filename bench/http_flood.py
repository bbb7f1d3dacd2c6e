"""The sync under a connection flood on the HTTP port (issue 24, item 1): the figures the
README's HTTP endpoints section quotes. Not a `make bench` row: run it by hand when the
endpoints' door (sidecar/service/listener.py) changes.

    python bench/http_flood.py                         # the issue's: 1,100 connections, limit 1024
    python bench/http_flood.py --connections 0         # the same rounds without a flood
    python bench/http_flood.py --nofile 512 --seconds 30

The real command runs under `prlimit --nofile=N:N` (hard = soft, so raising the soft limit at
start cannot hide the flood) against moto's server. A separate process (this script again, with
`--flood PORT`) keeps `--connections` connections from 127.0.0.2, each with an unfinished
`GET /metrics`, opening them again as the sidecar resets or closes them, as fast as it can.
Meanwhile, round after round, a file is written in the folder and an object put in S3, and the
time until each is on the other side is taken (polling every 20 ms), then `/readyz` is asked
from 127.0.0.1. Printed: the flood's attempts and resets, upload and download times (min,
median, max), `/readyz`'s answers and slowest time, the sidecar's CPU seconds a second and its
open descriptors at the end, and how often its log says it ran out of descriptors.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from support.bucket import Bucket
from support.environments import sidecar_environment
from support.flood import Flood, limited
from support.local_http import free_port, http_get
from support.s3_server import moto_process
from support.sidecars import Sidecars
from support.waiting import eventually, in_thread


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def spread(values: list[float]) -> str:
    return f"{min(values):.3f} / {statistics.median(values):.3f} / {max(values):.3f} s"


async def flood(port: int, connections: int, seconds: float) -> None:
    """The flooding process: prints what it did as JSON."""
    async with Flood(port, count=connections, rate=1e6) as running:
        await asyncio.sleep(seconds)
        print(
            json.dumps(
                {
                    "attempts": running.attempts,
                    "reset": running.refused(),
                    "timed_out": running.timed_out,
                }
            ),
            flush=True,
        )


async def measure(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="s3sync-flood-") as tmp:
        base = Path(tmp)
        with moto_process(base / "moto.log") as server:
            bucket = Bucket.create(server)
            port = free_port()
            folder = base / "data"
            env = {
                "PATH": os.environ["PATH"],
                **sidecar_environment(
                    bucket, folder, SYNC_POLL_INTERVAL="0.5", SYNC_HTTP_PORT=str(port)
                ),
            }
            sidecars = Sidecars(base)
            process = sidecars.start([], env, prefix=limited(args.nofile, args.nofile))
            try:
                await process.answering(port, "/readyz")
                pid = process.process.pid
                flooder = None
                if args.connections:
                    flooder = subprocess.Popen(
                        [
                            sys.executable,
                            __file__,
                            "--flood",
                            str(port),
                            "--connections",
                            str(args.connections),
                            "--seconds",
                            str(args.seconds + 3),
                        ],
                        stdout=subprocess.PIPE,
                    )
                    await asyncio.sleep(2)  # the flood under way before the first round
                uploads: list[float] = []
                downloads: list[float] = []
                ready: list[tuple[int, float]] = []
                start_cpu, end = cpu_seconds(pid), time.monotonic() + args.seconds
                while time.monotonic() < end:
                    name = f"round-{len(uploads)}"
                    started = time.monotonic()
                    (folder / f"{name}.local").write_bytes(name.encode())
                    await in_thread(bucket.put, f"{name}.remote", name.encode())
                    put = time.monotonic()
                    await eventually(
                        lambda n=name: bucket.exists(f"{n}.local"), timeout=60, interval=0.02
                    )
                    uploads.append(time.monotonic() - started)
                    await eventually(
                        lambda n=name: (folder / f"{n}.remote").exists(), timeout=60, interval=0.02
                    )
                    downloads.append(time.monotonic() - put)
                    asked = time.monotonic()
                    status, _ = await http_get(port, "/readyz")
                    ready.append((status, time.monotonic() - asked))
                used = (cpu_seconds(pid) - start_cpu) / args.seconds
                descriptors = len(os.listdir(f"/proc/{pid}/fd"))
                if flooder is not None:
                    print("flood:", flooder.communicate()[0].decode().strip())
                log = process.text()
                print(
                    f"rounds {len(uploads)}; open-files limit {args.nofile}; "
                    f"{args.connections} connections held"
                )
                print(f"local write in S3 (min / median / max): {spread(uploads)}")
                print(f"S3 put in the folder (poll every 0.5 s): {spread(downloads)}")
                print(
                    f"/readyz: {sorted({s for s, _ in ready})}, slowest "
                    f"{max(t for _, t in ready):.3f} s"
                )
                print(
                    f"sidecar CPU {used:.2f} s/s, {descriptors} descriptors open at the end; log: "
                    f"{log.count('out of system resource')} 'out of system resource', "
                    f"{log.count('Too many open files')} 'Too many open files', "
                    f"{log.count('not accepting')} 'not accepting'"
                )
            finally:
                sidecars.kill_all()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=1100)
    parser.add_argument("--nofile", type=int, default=1024)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--flood", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.flood is not None:
        asyncio.run(flood(args.flood, args.connections, args.seconds))
    else:
        asyncio.run(measure(args))


if __name__ == "__main__":
    main()
