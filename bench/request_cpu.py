"""CPU per request of the sidecar's request path against a bare aiohttp `ClientSession`, the
figures aws/http.py's docstring and the README's Speed section quote. Not a `make bench` row:
run it by hand when the request path changes.

    python bench/request_cpu.py                  # rclone serve s3 on a temporary folder
    python bench/request_cpu.py --url http://127.0.0.1:9000 --runs 7

Each run makes `--requests` signed 1 KiB PUTs, then as many HEADs, `--concurrency` at a time,
and (with `--listing`) lists that many keys a page of 1,000 at a time; it counts this process's
CPU time (never wall time) over each phase, after a warm-up that opens the connections. Ways:
`session` is `aiohttp.ClientSession.request` with the sidecar's signer; `ours` is the product's
`S3Client` on its signed-request path (signing, metrics, retries and bounds included). Runs
alternate between the ways; medians and minimums are printed.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
from yarl import URL

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import ACCESS_KEY, BUCKET, REGION, SECRET_KEY, start_rclone

from sidecar import checksums
from sidecar.aws.credentials import Credentials, StaticCredentials
from sidecar.aws.http import HttpClient
from sidecar.aws.sigv4 import (
    EMPTY_SHA256,
    UNSIGNED_PAYLOAD,
    canonical_query_string,
    quote_path,
    sign_request,
)
from sidecar.metrics import Metrics
from sidecar.s3.client import S3Client, s3_requests
from sidecar.s3.endpoint import Endpoint

BODY = b"x" * 1024
BODY_CHECKSUM = checksums.full(BODY)
Phase = Callable[[str], Awaitable[None]]


class Session:
    """A bare aiohttp client, configured as the sidecar's session is, signing as it signs."""

    def __init__(self, url: str) -> None:
        self.host = URL(url).raw_authority
        self.url = url
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=100, ttl_dns_cache=300),
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False,
            skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding"),
        )

    async def send(
        self, method: str, key: str, query: str = "", body: bytes | None = None
    ) -> bytes:
        path = quote_path(f"/{BUCKET}/{key}")
        headers = {
            "Host": self.host,
            **sign_request(
                method=method,
                host=self.host,
                path=path,
                query=query,
                headers={},
                payload_hash=UNSIGNED_PAYLOAD if body is not None else EMPTY_SHA256,
                access_key_id=ACCESS_KEY,
                secret_access_key=SECRET_KEY,
                session_token=None,
                region=REGION,
                now=datetime.now(UTC),
            ),
        }
        target = URL(f"{self.url}{path}" + (f"?{query}" if query else ""), encoded=True)
        async with self.session.request(
            method, target, headers=headers, data=body, allow_redirects=False
        ) as response:
            content = await response.read()
            if response.status != 200:
                raise RuntimeError(f"{method} {key}: HTTP {response.status}")
            return content

    async def put(self, key: str) -> None:
        await self.send("PUT", key, body=BODY)

    async def head(self, key: str) -> None:
        await self.send("HEAD", key)

    async def listing(self, prefix: str) -> None:
        token: str | None = None
        while True:
            pairs = [("list-type", "2"), ("prefix", prefix), ("encoding-type", "url")]
            if token:
                pairs.append(("continuation-token", token))
            content = await self.send("GET", "", canonical_query_string(pairs))
            marker = content.find(b"<NextContinuationToken>")
            if marker < 0:
                return
            end = content.index(b"</NextContinuationToken>", marker)
            token = content[marker + len(b"<NextContinuationToken>") : end].decode()

    async def close(self) -> None:
        await self.session.close()


class Ours:
    """The product's S3 client on its signed-request path and one HTTP client."""

    def __init__(self, url: str) -> None:
        self.http = HttpClient(connections=100)
        endpoint = Endpoint.parse(f"{url}/{{}}/", BUCKET)
        credentials = StaticCredentials(Credentials(ACCESS_KEY, SECRET_KEY))
        requests = s3_requests(
            self.http, endpoint, region=REGION, credentials=credentials, metrics=Metrics()
        )
        self.s3 = S3Client(requests, endpoint, BUCKET)

    async def put(self, key: str) -> None:
        await self.s3.put_object(key, BODY, len(BODY), {}, checksum=BODY_CHECKSUM)

    async def head(self, key: str) -> None:
        if await self.s3.head_object(key) is None:
            raise RuntimeError(f"HEAD {key}: not found")

    async def listing(self, prefix: str) -> None:
        async for _ in self.s3.list_objects(prefix):
            pass

    async def close(self) -> None:
        await self.http.close()


async def measure(way: str, url: str, count: int, concurrency: int, listing: bool) -> list[float]:
    """CPU milliseconds per request for PUT and HEAD (and CPU seconds for the listing)."""
    client = Session(url) if way == "session" else Ours(url)
    keys = [f"request-cpu/{index:06d}" for index in range(count)]

    async def each(phase: Phase) -> float:
        queue = iter(keys)

        async def worker() -> None:
            for key in queue:
                await phase(key)

        started = time.process_time()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return (time.process_time() - started) * 1000 / count

    try:
        await each(client.put)  # warm-up: the objects exist, the connections are open
        figures = [await each(client.put), await each(client.head)]
        if listing:
            started = time.process_time()
            await client.listing("request-cpu/")
            figures.append(time.process_time() - started)
        return figures
    finally:
        await client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="an S3 endpoint holding the bench bucket (else rclone's)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--listing", action="store_true", help="also list the keys put")
    arguments = parser.parse_args()
    server = None
    url = arguments.url
    if url is None:
        server = start_rclone(Path(tempfile.mkdtemp(prefix="request-cpu-")))
        url = server.url
    ways = ("session", "ours")
    figures: dict[str, list[list[float]]] = {way: [] for way in ways}
    try:
        for _ in range(arguments.runs):
            for way in ways:
                run = measure(
                    way, url, arguments.requests, arguments.concurrency, arguments.listing
                )
                figures[way].append(asyncio.run(run))
    finally:
        if server is not None:
            server.stop()
    names = ["PUT CPU-ms", "HEAD CPU-ms", "listing CPU-s"]
    for way in ways:
        columns = list(zip(*figures[way], strict=True))
        shown = [
            f"{name} {statistics.median(column):.3f} (min {min(column):.3f})"
            for name, column in zip(names, columns, strict=False)
        ]
        print(f"{way:8s} " + " | ".join(shown))


if __name__ == "__main__":
    main()
