"""The HTTP client's whole-answer path (aws/http.py `HttpClient.exchange`) against a real socket
server on 127.0.0.1 that answers with scripted bytes: framing by aiohttp's llhttp parser
(Content-Length, chunked, end of connection, HEAD, 1xx, 204), when a connection is kept and
reused, a kept connection the server closed, bounds, and malformed answers. What the S3 and SQS
clients do on top of it is tested against moto in every other file."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import aiohttp
import pytest
from aiohttp.base_protocol import BaseProtocol

from sidecar.aws.errors import MalformedAnswer, ResponseTooLarge
from sidecar.aws.http import (
    GATHER_AFTER,
    GATHER_SECONDS,
    Answer,
    HttpClient,
    Origin,
    read_bounded,
)

OK = (200,)
LIMIT = 1024 * 1024


@dataclass
class Script:
    """Answers requests in order with `answers` (bytes, or a callable given the writer);
    records each request's head and body and how many connections were made."""

    answers: list[bytes | Callable[[asyncio.StreamWriter], object]] = field(default_factory=list)
    requests: list[tuple[bytes, bytes]] = field(default_factory=list)
    connections: int = 0
    close_after_answer: bool = False
    port: int = 0

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except asyncio.IncompleteReadError:
                    return
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                body = await reader.readexactly(length)
                self.requests.append((head, body))
                answer = self.answers.pop(0)
                if callable(answer):
                    result = answer(writer)
                    if asyncio.iscoroutine(result):
                        await result
                else:
                    writer.write(answer)
                await writer.drain()
                if self.close_after_answer:
                    return
        except (ConnectionError, asyncio.CancelledError):
            return
        finally:
            writer.close()


@pytest.fixture
async def script() -> AsyncIterator[Script]:
    scripted = Script()
    server = await asyncio.start_server(scripted.serve, "127.0.0.1", 0)
    scripted.port = server.sockets[0].getsockname()[1]
    yield scripted
    server.close()
    await server.wait_closed()


@pytest.fixture
async def client(script: Script) -> AsyncIterator[Pool]:
    pool = Pool(HttpClient(connections=4), Origin("http", f"127.0.0.1:{script.port}"))
    yield pool
    await pool.http.close()


@dataclass
class Pool:
    http: HttpClient
    origin: Origin

    async def request(
        self,
        method: str = "GET",
        body: bytes | None = None,
        limit: int = LIMIT,
        headers: dict[str, str] | None = None,
        target: str = "/b/k?x=1",
    ) -> Answer:
        return await self.http.exchange(
            self.origin,
            method,
            target,
            {"Host": "h"} if headers is None else headers,
            body,
            ok=OK,
            limit=limit,
            error_limit=100,
        )


def response(body: bytes = b"hello", status: str = "200 OK", extra: bytes = b"") -> bytes:
    return f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\n".encode() + extra + b"\r\n" + body


async def get(
    client: Pool, method: str = "GET", body: bytes | None = None, limit: int = LIMIT
) -> Answer:
    return await asyncio.wait_for(client.request(method, body, limit), 10)


async def test_content_length_answers_reuse_one_connection(client: Pool, script: Script) -> None:
    script.answers = [
        response(b"one", extra=b'ETag: "e1"\r\nX-Two: a\r\nx-two: b\r\n'),
        response(b"two"),
    ]
    first = await get(client)
    second = await get(client, "PUT", b"payload")
    assert (first.status, first.body, second.body) == (200, b"one", b"two")
    assert first.headers["etag"] == '"e1"' and first.headers.getall("X-Two") == ["a", "b"]
    assert script.connections == 1
    assert script.requests[0][0].startswith(b"GET /b/k?x=1 HTTP/1.1\r\nHost: h\r\n")
    assert b"Content-Length: 7\r\n" in script.requests[1][0]
    assert script.requests[1][1] == b"payload"


async def test_chunked_answer_with_extensions_and_trailers(client: Pool, script: Script) -> None:
    chunked = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;name=value\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nTrailer: x\r\n\r\n"
    )
    script.answers = [chunked, response(b"after")]
    assert (await get(client)).body == b"hello world"
    assert (await get(client)).body == b"after"
    assert script.connections == 1


async def test_chunked_answer_arriving_a_byte_at_a_time(client: Pool, script: Script) -> None:
    chunked = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
    )

    async def trickle(writer: asyncio.StreamWriter) -> None:
        for byte in chunked:
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(0)

    script.answers = [trickle]
    assert (await get(client)).body == b"abcde"


async def test_answer_framed_by_the_end_of_the_connection_is_not_reused(
    client: Pool, script: Script
) -> None:
    script.answers = [b"HTTP/1.1 200 OK\r\n\r\nuntil the end", response(b"next")]
    script.close_after_answer = True
    assert (await get(client)).body == b"until the end"
    script.close_after_answer = False
    assert (await get(client)).body == b"next"
    assert script.connections == 2


async def test_head_has_no_body_whatever_its_length(client: Pool, script: Script) -> None:
    script.answers = [
        b"HTTP/1.1 200 OK\r\nContent-Length: 10737418240\r\n\r\n",
        b"HTTP/1.1 204 No Content\r\n\r\n",
        response(b"third"),
    ]
    head = await get(client, "HEAD")
    assert head.body == b"" and head.headers["Content-Length"] == "10737418240"
    assert (await get(client, "DELETE")).status == 204
    assert (await get(client)).body == b"third"
    assert script.connections == 1


async def test_informational_answers_are_skipped(client: Pool, script: Script) -> None:
    script.answers = [b"HTTP/1.1 100 Continue\r\n\r\n" + response(b"real")]
    answer = await get(client, "PUT", b"x")
    assert (answer.status, answer.body) == (200, b"real")


@pytest.mark.parametrize(
    "closing",
    [b"Connection: close\r\n", b""],
    ids=["connection-close", "http/1.0"],
)
async def test_answers_that_end_the_connection_are_not_reused(
    client: Pool, script: Script, closing: bytes
) -> None:
    first = response(b"a", extra=closing)
    if not closing:
        first = first.replace(b"HTTP/1.1", b"HTTP/1.0", 1)
    script.answers = [first, response(b"b")]
    assert (await get(client)).body == b"a"
    assert (await get(client)).body == b"b"
    assert script.connections == 2


async def test_an_answer_nobody_asked_for_closes_the_connection(
    client: Pool, script: Script
) -> None:
    script.answers = [response(b"a") + response(b"unasked"), response(b"b")]
    assert (await get(client)).body == b"a"
    assert (await get(client)).body == b"b"
    assert script.connections == 2


async def test_an_answer_sent_to_an_idle_connection_is_never_taken_for_the_next(
    client: Pool, script: Script
) -> None:
    """Some servers answer 408 on a connection they are about to close for being idle: the
    connection is not used again, and the next request gets its own answer."""
    unasked = asyncio.Event()

    async def then_a_408(writer: asyncio.StreamWriter) -> None:
        writer.write(response(b"a"))
        await writer.drain()
        await unasked.wait()
        writer.write(response(b"", status="408 Request Timeout"))

    script.answers = [then_a_408, response(b"b")]
    assert (await get(client)).body == b"a"
    (protocol,) = list(client.http._kept)
    unasked.set()
    async with asyncio.timeout(10):
        while not protocol.should_close:  # the 408 has reached the idle connection
            await asyncio.sleep(0.01)
    answer = await get(client)
    assert (answer.status, answer.body) == (200, b"b")
    assert script.connections == 2


async def test_bytes_past_the_answer_never_become_the_next_answer(
    client: Pool, script: Script
) -> None:
    """The start of an answer nobody asked for: the parser made for the next request starts
    clean, so the next answer is read as itself (or, had the stray bytes gone on, refused as
    malformed and the connection closed), never taken from the stray bytes."""
    script.answers = [response(b"a") + b"HTTP/1.1 200 OK\r\nContent-Le", response(b"b")]
    assert (await get(client)).body == b"a"
    assert (await get(client)).body == b"b"


async def test_a_kept_connection_the_server_closed_is_replaced_once(
    client: Pool, script: Script
) -> None:
    script.answers = [response(b"a"), response(b"b"), response(b"c")]
    assert (await get(client)).body == b"a"
    script.close_after_answer = True  # closes right after its next answer...
    assert (await get(client)).body == b"b"
    script.close_after_answer = False
    # ... so the idle connection still in the pool is a dead one: this GET goes on a new one.
    assert (await get(client)).body == b"c"
    assert script.connections == 2
    assert len(script.requests) == 3


@pytest.mark.parametrize(("method", "sent_again"), [("GET", True), ("POST", False)])
async def test_a_kept_connection_closed_without_an_answer(
    client: Pool, script: Script, method: str, sent_again: bool
) -> None:
    """The server reads the request on the kept connection and closes it without a byte: a
    GET goes once more on a new connection; a POST is not repeated (it may have been done)."""
    script.answers = [response(b"a"), lambda writer: writer.close(), response(b"again")]
    assert (await get(client)).body == b"a"
    if sent_again:
        assert (await get(client, method)).body == b"again"
        assert (script.connections, len(script.requests)) == (2, 3)
    else:
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await get(client, method, b"<Complete/>")
        assert (script.connections, len(script.requests)) == (1, 2)


async def test_a_new_connection_closed_without_an_answer_is_not_repeated(
    client: Pool, script: Script
) -> None:
    """Only a kept connection can have been closed while idle: on a new one, the failure is
    the caller's to count and retry."""
    script.answers = [lambda writer: writer.close(), response(b"later")]
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await get(client)
    assert (script.connections, len(script.requests)) == (1, 1)
    assert (await get(client)).body == b"later"


async def test_a_body_over_the_limit_is_not_read(client: Pool, script: Script) -> None:
    script.answers = [b"HTTP/1.1 200 OK\r\nContent-Length: 999999999999\r\n\r\n", response(b"b")]
    with pytest.raises(ResponseTooLarge) as caught:
        await get(client)
    assert caught.value.announced == 999999999999
    assert "GET /b/k" in str(caught.value)
    assert (await get(client)).body == b"b"
    assert script.connections == 2  # the cut connection was not reused


async def test_an_endless_chunked_body_is_cut_at_the_limit(client: Pool, script: Script) -> None:
    sent = 0

    async def endless(writer: asyncio.StreamWriter) -> None:
        nonlocal sent
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        chunk = b"x" * 4096
        while sent < 64 * LIMIT:
            writer.write(b"1000\r\n" + chunk + b"\r\n")
            sent += len(chunk)
            await writer.drain()

    script.answers = [endless]
    with pytest.raises(ResponseTooLarge):
        await get(client, limit=LIMIT)
    assert sent < 32 * LIMIT


async def test_an_error_body_over_its_limit_is_left_unread(client: Pool, script: Script) -> None:
    script.answers = [response(b"E" * 500, status="500 Internal Server Error"), response(b"b")]
    answer = await get(client)
    assert (answer.status, answer.body, answer.oversized) == (500, b"", True)
    assert (await get(client)).body == b"b"
    assert script.connections == 2


async def test_an_error_body_within_its_limit_is_read_and_kept(
    client: Pool, script: Script
) -> None:
    script.answers = [response(b"<Error/>", status="503 Slow Down"), response(b"b")]
    answer = await get(client)
    assert (answer.status, answer.body, answer.oversized) == (503, b"<Error/>", False)
    assert (await get(client)).body == b"b"
    assert script.connections == 1


async def test_an_answer_cut_in_its_body_is_an_error(client: Pool, script: Script) -> None:
    script.answers = [b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this"]
    script.close_after_answer = True
    with pytest.raises(aiohttp.ClientPayloadError, match="not completed"):
        await get(client)


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/2 200 OK\r\n\r\n",
        b"HTTP/1.1 2x0 OK\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
        b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcXY0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX: " + b"a" * (70 * 1024) + b"\r\n\r\n",
    ],
    ids=[
        "http2",
        "status",
        "no-colon",
        "two-lengths",
        "negative-length",
        "chunk-size",
        "chunk-crlf",
        "gzip",
        "huge-head",
    ],
)
async def test_malformed_answers_fail_and_close(
    client: Pool, script: Script, answer: bytes
) -> None:
    script.answers = [answer, response(b"fine")]
    with pytest.raises((MalformedAnswer, aiohttp.ClientPayloadError)):
        await get(client)
    assert (await get(client)).body == b"fine"
    assert script.connections == 2


async def test_a_folded_header_is_unfolded(client: Pool, script: Script) -> None:
    """RFC 9112 5.2: a client replaces an obs-fold in a response with a space (llhttp does)."""
    script.answers = [b"HTTP/1.1 200 OK\r\nX: a\r\n folded\r\nContent-Length: 0\r\n\r\n"]
    answer = await get(client)
    assert answer.status == 200 and " ".join(answer.headers["X"].split()) == "a folded"


async def test_header_injection_and_false_lengths_are_refused_before_sending(
    client: Pool, script: Script
) -> None:
    with pytest.raises(ValueError, match="control character"):
        await client.request(headers={"X": "a\r\nEvil: 1"})
    with pytest.raises(ValueError, match="Content-Length"):
        await client.request("PUT", b"four", headers={"Content-Length": "3"})
    await asyncio.sleep(0.1)
    assert script.requests == []  # not a byte sent (aiohttp refuses it as it writes the head)


async def test_at_most_connections_at_once(script: Script) -> None:
    pool = Pool(HttpClient(connections=2), Origin("http", f"127.0.0.1:{script.port}"))
    gate = asyncio.Event()

    async def held(writer: asyncio.StreamWriter) -> None:
        await gate.wait()
        writer.write(response(b"x"))

    script.answers = [held, held, held, held]
    requests = [asyncio.create_task(pool.request()) for _ in range(4)]
    async with asyncio.timeout(10):
        while len(script.requests) < 2:
            await asyncio.sleep(0.01)
    await asyncio.sleep(0.1)
    assert (script.connections, len(script.requests)) == (2, 2)
    gate.set()
    answers = await asyncio.wait_for(asyncio.gather(*requests), 10)
    assert [answer.body for answer in answers] == [b"x"] * 4
    assert script.connections == 2
    await pool.http.close()


@pytest.mark.parametrize("framing", ["length", "chunked"])
async def test_a_big_answer_arriving_with_its_head_in_one_write(
    client: Pool, script: Script, framing: str
) -> None:
    """A busy loop may read the head and much of the body at once (asyncio reads up to 256 KiB):
    the head's bounds must not count the body's bytes."""
    body = bytes(range(256)) * 4096  # 1 MiB
    if framing == "length":
        answer = response(body)
    else:
        answer = (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            + f"{len(body):x}\r\n".encode()
            + body
            + b"\r\n0\r\n\r\n"
        )
    script.answers = [answer, response(b"after")]
    got = await asyncio.wait_for(client.request(limit=8 * LIMIT), 10)
    assert (got.status, got.body) == (200, body)
    assert (await get(client)).body == b"after"
    assert script.connections == 1


async def test_a_large_chunked_answer_in_small_pieces_is_read_whole_and_kept(
    client: Pool, script: Script
) -> None:
    """Many small chunks (as `rclone serve s3` sends a listing) must not lose, reorder or hold
    back bytes, nor spoil the connection for the next request."""
    pieces = [bytes([index % 251]) * 1024 for index in range(300)]

    async def in_pieces(writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for piece in pieces:
            writer.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            await writer.drain()
            await asyncio.sleep(0)
        writer.write(b"0\r\n\r\n")

    big = bytes(range(256)) * 1024  # 256 KiB, framed by its length, sent in one write
    script.answers = [in_pieces, response(big), response(b"after")]
    assert (await get(client)).body == b"".join(pieces)
    assert (await get(client)).body == big
    assert (await get(client)).body == b"after"
    assert script.connections == 1


async def test_a_closed_client_refuses_requests(client: Pool) -> None:
    await client.http.close()
    with pytest.raises(RuntimeError, match="closed"):
        await get(client)


# -- gathered reads ---------------------------------------------------------------------------


class Socket:
    """What reads from the socket, for `read_bounded`: records when it is held and let go."""

    def __init__(self) -> None:
        self.paused = False
        self.pauses = 0
        self.resumes = 0

    def pause_reading(self) -> None:
        self.paused = True
        self.pauses += 1

    def resume_reading(self) -> None:
        self.paused = False
        self.resumes += 1


def stream_of(socket: Socket) -> aiohttp.StreamReader:
    """aiohttp's own body stream, fed by the test as the parser would feed it."""
    protocol = BaseProtocol(asyncio.get_running_loop())
    protocol.transport = asyncio.Transport()  # connected: a read waits for more
    return aiohttp.StreamReader(protocol, 2**16, loop=asyncio.get_running_loop())


async def test_a_large_answer_on_its_way_is_gathered_into_fewer_reads() -> None:
    socket = Socket()
    stream = stream_of(socket)
    body = bytes(range(256)) * 400  # 100 KiB
    reading = asyncio.ensure_future(read_bounded(stream, LIMIT, gather=socket))
    under, over = GATHER_AFTER - 1024, GATHER_AFTER + 1024
    stream.feed_data(body[:under])
    await asyncio.sleep(0)
    assert not socket.paused, "not held while under GATHER_AFTER"
    stream.feed_data(body[under:over])
    await asyncio.sleep(0)
    assert socket.paused, "held once past GATHER_AFTER and not complete"
    deadline = asyncio.get_running_loop().time() + 5
    while socket.paused and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(GATHER_SECONDS)
    assert not socket.paused and socket.resumes == 1, "reading resumes after GATHER_SECONDS"
    stream.feed_data(body[over:])
    stream.feed_eof()
    assert await asyncio.wait_for(reading, 10) == body
    assert (socket.paused, socket.pauses, socket.resumes) == (False, 1, 1)


async def test_a_small_answer_is_never_held() -> None:
    socket = Socket()
    stream = stream_of(socket)
    reading = asyncio.ensure_future(read_bounded(stream, LIMIT, gather=socket))
    stream.feed_data(b"x" * GATHER_AFTER)
    stream.feed_eof()
    assert await asyncio.wait_for(reading, 10) == b"x" * GATHER_AFTER
    assert socket.pauses == 0


async def test_a_read_cancelled_while_gathering_is_not_resumed() -> None:
    socket = Socket()
    stream = stream_of(socket)
    reading = asyncio.ensure_future(read_bounded(stream, LIMIT, gather=socket))
    stream.feed_data(bytes(GATHER_AFTER + 1))
    await asyncio.sleep(0)
    assert socket.paused
    reading.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reading
    await asyncio.sleep(GATHER_SECONDS * 20)  # past when the resume was due: it must not come
    assert socket.resumes == 0  # the exchange closes the connection instead
