"""The server limit: a bare aiohttp client making the same requests as a tool, with the same
concurrency, in the same run, so that a row can say how much of what the server can serve a
tool gets. It signs with our own SigV4 signer (pure, cached key) and does nothing else: no
state, no retries, no reading of the folder beyond the bytes it sends."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from urllib.parse import quote, urlsplit

import aiohttp
from harness import ACCESS_KEY, BUCKET, REGION, SECRET_KEY, as_tool

from sidecar.aws.sigv4 import EMPTY_SHA256, UNSIGNED_PAYLOAD, quote_path, sign_request
from sidecar.s3.xml import parse_list_objects_v2


def _signed(
    method: str, url: str, key: str, query: str = "", payload_hash: str = UNSIGNED_PAYLOAD
) -> tuple[str, dict[str, str]]:
    """The URL of `key` (the bucket itself for "") with `query`, and its signed headers."""
    host = urlsplit(url).netloc
    path = quote_path(f"/{BUCKET}/{key}")
    headers = sign_request(
        method=method,
        host=host,
        path=path,
        query=query,
        headers={},
        payload_hash=payload_hash,
        access_key_id=ACCESS_KEY,
        secret_access_key=SECRET_KEY,
        session_token=None,
        region=REGION,
        now=datetime.now(UTC),
    )
    return f"{url}{path}" + (f"?{query}" if query else ""), headers


async def _run(method: str, url: str, keys: Sequence[str], body: bytes, concurrency: int) -> None:
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        queue = iter(keys)

        async def worker() -> None:
            for key in queue:
                for attempt in range(4):  # `rclone serve s3` answers an odd 500 under load
                    target, headers = _signed(method, url, key)
                    async with session.request(
                        method, target, headers=headers, data=body if method == "PUT" else None
                    ) as answer:
                        await answer.read()
                        if answer.status == 200:
                            break
                        if answer.status < 500 or attempt == 3:
                            raise RuntimeError(f"{method} {key}: {answer.status}")

        await asyncio.gather(*(worker() for _ in range(concurrency)))


def requests(
    method: str, url: str, keys: Sequence[str], body: bytes = b"", concurrency: int = 32
) -> tuple[float, float]:
    """Makes one request per key; returns (seconds, CPU seconds of this process)."""
    with as_tool():
        started, cpu = time.monotonic(), time.process_time()
        asyncio.run(_run(method, url, keys, body, concurrency))
    return time.monotonic() - started, time.process_time() - cpu


async def _list(url: str, prefix: str) -> int:
    listed = 0
    token: str | None = None
    async with aiohttp.ClientSession() as session:
        while True:
            query = f"list-type=2&prefix={quote(prefix, safe='')}"
            if token:
                query = f"continuation-token={quote(token, safe='')}&{query}"
            target, headers = _signed("GET", url, "", query, EMPTY_SHA256)
            async with session.get(target, headers=headers) as answer:
                body = await answer.read()
                if answer.status != 200:
                    raise RuntimeError(f"listing {prefix}: {answer.status}")
            page = parse_list_objects_v2(body)
            listed += len(page.objects)
            token = page.next_token
            if token is None:
                return listed


def list_all(url: str, prefix: str) -> int:
    """Lists every key under `prefix` (how many). The benchmark lists a seeded prefix once,
    untimed, before any tool: `rclone serve s3` computes an object's MD5 for its ETag the first
    time it lists it (1.7 s for 100 x 8 MiB here), and the first tool would pay for it."""
    return asyncio.run(_list(url, prefix))
