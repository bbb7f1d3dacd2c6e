"""The lean HTTP/1.1 path (s3/wire.py) against a real socket server on 127.0.0.1 that answers
with scripted bytes: framing (Content-Length, chunked, end of connection, HEAD, 1xx, 204), when
a connection is kept and reused, a kept connection the server closed, bounds, and malformed
answers. What the S3 client does on top of it is tested against moto in every other file."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest

from sidecar.s3.errors import ResponseTooLarge
from sidecar.s3.wire import GATHER_AFTER, GATHER_SECONDS, Answer, Wire, WireError, _Connection

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
async def wire(script: Script) -> AsyncIterator[Wire]:
    pool = Wire(scheme="http", hostname="127.0.0.1", port=script.port, ssl_context=None, limit=4)
    yield pool
    pool.close()


def response(body: bytes = b"hello", status: str = "200 OK", extra: bytes = b"") -> bytes:
    return f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\n".encode() + extra + b"\r\n" + body


async def get(
    wire: Wire, method: str = "GET", body: bytes | None = None, limit: int = LIMIT
) -> Answer:
    return await asyncio.wait_for(
        wire.request(method, "/b/k?x=1", {"Host": "h"}, body, ok=OK, limit=limit, error_limit=100),
        10,
    )


async def test_content_length_answers_reuse_one_connection(wire: Wire, script: Script) -> None:
    script.answers = [
        response(b"one", extra=b'ETag: "e1"\r\nX-Two: a\r\nx-two: b\r\n'),
        response(b"two"),
    ]
    first = await get(wire)
    second = await get(wire, "PUT", b"payload")
    assert (first.status, first.body, second.body) == (200, b"one", b"two")
    assert first.headers["etag"] == '"e1"' and first.headers.getall("X-Two") == ["a", "b"]
    assert script.connections == 1
    assert script.requests[0][0].startswith(b"GET /b/k?x=1 HTTP/1.1\r\nHost: h\r\n")
    assert b"Content-Length: 7\r\n" in script.requests[1][0]
    assert script.requests[1][1] == b"payload"


async def test_chunked_answer_with_extensions_and_trailers(wire: Wire, script: Script) -> None:
    chunked = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;name=value\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nTrailer: x\r\n\r\n"
    )
    script.answers = [chunked, response(b"after")]
    assert (await get(wire)).body == b"hello world"
    assert (await get(wire)).body == b"after"
    assert script.connections == 1


async def test_chunked_answer_arriving_a_byte_at_a_time(wire: Wire, script: Script) -> None:
    chunked = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
    )

    async def trickle(writer: asyncio.StreamWriter) -> None:
        for byte in chunked:
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(0)

    script.answers = [trickle]
    assert (await get(wire)).body == b"abcde"


async def test_answer_framed_by_the_end_of_the_connection_is_not_reused(
    wire: Wire, script: Script
) -> None:
    script.answers = [b"HTTP/1.1 200 OK\r\n\r\nuntil the end", response(b"next")]
    script.close_after_answer = True
    assert (await get(wire)).body == b"until the end"
    script.close_after_answer = False
    assert (await get(wire)).body == b"next"
    assert script.connections == 2


async def test_head_has_no_body_whatever_its_length(wire: Wire, script: Script) -> None:
    script.answers = [
        b"HTTP/1.1 200 OK\r\nContent-Length: 10737418240\r\n\r\n",
        b"HTTP/1.1 204 No Content\r\n\r\n",
        response(b"third"),
    ]
    head = await get(wire, "HEAD")
    assert head.body == b"" and head.headers["Content-Length"] == "10737418240"
    assert (await get(wire, "DELETE")).status == 204
    assert (await get(wire)).body == b"third"
    assert script.connections == 1


async def test_informational_answers_are_skipped(wire: Wire, script: Script) -> None:
    script.answers = [b"HTTP/1.1 100 Continue\r\n\r\n" + response(b"real")]
    answer = await get(wire, "PUT", b"x")
    assert (answer.status, answer.body) == (200, b"real")


@pytest.mark.parametrize(
    "closing",
    [b"Connection: close\r\n", b""],
    ids=["connection-close", "http/1.0"],
)
async def test_answers_that_end_the_connection_are_not_reused(
    wire: Wire, script: Script, closing: bytes
) -> None:
    first = response(b"a", extra=closing)
    if not closing:
        first = first.replace(b"HTTP/1.1", b"HTTP/1.0", 1)
    script.answers = [first, response(b"b")]
    assert (await get(wire)).body == b"a"
    assert (await get(wire)).body == b"b"
    assert script.connections == 2


async def test_bytes_past_the_answer_close_the_connection(wire: Wire, script: Script) -> None:
    script.answers = [response(b"a") + b"HTTP/1.1 200 OK\r\n", response(b"b")]
    assert (await get(wire)).body == b"a"
    assert (await get(wire)).body == b"b"
    assert script.connections == 2


async def test_a_kept_connection_the_server_closed_is_replaced_once(
    wire: Wire, script: Script
) -> None:
    script.answers = [response(b"a"), response(b"b"), response(b"c")]
    assert (await get(wire)).body == b"a"
    script.close_after_answer = True  # closes right after its next answer...
    assert (await get(wire)).body == b"b"
    script.close_after_answer = False
    # ... so the idle connection still in the pool is a dead one: this GET goes on a new one.
    assert (await get(wire)).body == b"c"
    assert script.connections == 2
    assert len(script.requests) == 3


@pytest.mark.parametrize(("method", "sent_again"), [("GET", True), ("POST", False)])
async def test_a_kept_connection_closed_without_an_answer(
    wire: Wire, script: Script, method: str, sent_again: bool
) -> None:
    """The server reads the request on the kept connection and closes it without a byte: a
    GET goes once more on a new connection; a POST is not repeated (it may have been done)."""
    script.answers = [response(b"a"), lambda writer: writer.close(), response(b"again")]
    assert (await get(wire)).body == b"a"
    if sent_again:
        assert (await get(wire, method)).body == b"again"
        assert (script.connections, len(script.requests)) == (2, 3)
    else:
        with pytest.raises(WireError, match="kept-alive"):
            await get(wire, method, b"<Complete/>")
        assert (script.connections, len(script.requests)) == (1, 2)


async def test_a_body_over_the_limit_is_not_read(wire: Wire, script: Script) -> None:
    script.answers = [b"HTTP/1.1 200 OK\r\nContent-Length: 999999999999\r\n\r\n", response(b"b")]
    with pytest.raises(ResponseTooLarge) as caught:
        await get(wire)
    assert caught.value.announced == 999999999999
    assert (await get(wire)).body == b"b"
    assert script.connections == 2  # the cut connection was not reused


async def test_an_endless_chunked_body_is_cut_at_the_limit(wire: Wire, script: Script) -> None:
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
        await get(wire, limit=LIMIT)
    assert sent < 32 * LIMIT


async def test_an_error_body_over_its_limit_is_left_unread(wire: Wire, script: Script) -> None:
    script.answers = [response(b"E" * 500, status="500 Internal Server Error"), response(b"b")]
    answer = await get(wire)
    assert (answer.status, answer.body, answer.oversized) == (500, b"", True)
    assert (await get(wire)).body == b"b"
    assert script.connections == 2


async def test_an_answer_cut_in_its_body_is_an_error(wire: Wire, script: Script) -> None:
    script.answers = [b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this"]
    script.close_after_answer = True
    with pytest.raises(WireError, match="middle"):
        await get(wire)


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/2 200 OK\r\n\r\n",
        b"HTTP/1.1 2x0 OK\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX: a\r\n folded\r\nContent-Length: 0\r\n\r\n",
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
        "folded",
        "two-lengths",
        "negative-length",
        "chunk-size",
        "chunk-crlf",
        "gzip",
        "huge-head",
    ],
)
async def test_malformed_answers_fail_and_close(wire: Wire, script: Script, answer: bytes) -> None:
    script.answers = [answer, response(b"fine")]
    with pytest.raises(WireError):
        await get(wire)
    assert (await get(wire)).body == b"fine"
    assert script.connections == 2


async def test_header_injection_and_false_lengths_are_refused_before_sending(
    wire: Wire, script: Script
) -> None:
    with pytest.raises(ValueError, match="line break"):
        await wire.request(
            "GET", "/", {"X": "a\r\nEvil: 1"}, None, ok=OK, limit=LIMIT, error_limit=100
        )
    with pytest.raises(ValueError, match="Content-Length"):
        await wire.request(
            "PUT", "/", {"Content-Length": "3"}, b"four", ok=OK, limit=LIMIT, error_limit=100
        )
    assert script.connections == 0


async def test_at_most_limit_connections_at_once(script: Script) -> None:
    pool = Wire(scheme="http", hostname="127.0.0.1", port=script.port, ssl_context=None, limit=2)
    gate = asyncio.Event()

    async def held(writer: asyncio.StreamWriter) -> None:
        await gate.wait()
        writer.write(response(b"x"))

    script.answers = [held, held, held, held]
    requests = [
        asyncio.create_task(pool.request("GET", "/", {}, None, ok=OK, limit=LIMIT, error_limit=100))
        for _ in range(4)
    ]
    async with asyncio.timeout(10):
        while len(script.requests) < 2:
            await asyncio.sleep(0.01)
    await asyncio.sleep(0.1)
    assert (script.connections, len(script.requests)) == (2, 2)
    gate.set()
    answers = await asyncio.wait_for(asyncio.gather(*requests), 10)
    assert [answer.body for answer in answers] == [b"x"] * 4
    assert script.connections == 2
    pool.close()


class _Sink(asyncio.Transport):
    """Where a connection's requests go when the test feeds it its answer by hand."""

    def __init__(self) -> None:
        super().__init__()
        self.sent = bytearray()
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.sent += data

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    paused = False
    resumes = 0

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False
        self.resumes += 1


@pytest.mark.parametrize("framing", ["length", "chunked"])
async def test_a_big_answer_arriving_with_its_head_in_one_read(framing: str) -> None:
    """A busy loop may read the head and much of the body at once (asyncio reads up to 256 KiB):
    the head's own bound must not count the body's bytes."""
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
    connection = _Connection()
    sink = _Sink()
    connection.connection_made(sink)
    exchange = asyncio.ensure_future(
        connection.exchange(b"GET / HTTP/1.1\r\n\r\n", None, "GET", (OK, 8 * LIMIT, 100), False)
    )
    await asyncio.sleep(0)  # the request is written; the exchange waits for its answer
    assert sink.sent == b"GET / HTTP/1.1\r\n\r\n"
    for start in range(0, len(answer), 256 * 1024):
        connection.data_received(answer[start : start + 256 * 1024])
    got, keep = await asyncio.wait_for(exchange, 10)
    assert (got.status, got.body, keep, sink.closed) == (200, body, True, False)


async def _waiting_for_a_body(length: int) -> tuple[_Connection, _Sink, asyncio.Future[object]]:
    """A connection whose exchange has read the head of an answer of `length` bytes and now
    waits for its body."""
    connection = _Connection()
    sink = _Sink()
    connection.connection_made(sink)
    exchange = asyncio.ensure_future(
        connection.exchange(b"GET / HTTP/1.1\r\n\r\n", None, "GET", (OK, LIMIT, 100), False)
    )
    await asyncio.sleep(0)
    connection.data_received(f"HTTP/1.1 200 OK\r\nContent-Length: {length}\r\n\r\n".encode())
    await asyncio.sleep(0)  # the head is read; the body is waited for
    return connection, sink, exchange


async def test_a_large_answer_on_its_way_is_gathered_into_fewer_reads() -> None:
    body = bytes(range(256)) * 400  # 100 KiB
    connection, sink, exchange = await _waiting_for_a_body(len(body))
    under, over = GATHER_AFTER - 1024, GATHER_AFTER + 1024  # the head is in the buffer too
    connection.data_received(body[:under])
    assert not sink.paused, "not held while under GATHER_AFTER"
    connection.data_received(body[under:over])
    assert sink.paused, "held once past GATHER_AFTER and not complete"
    deadline = asyncio.get_running_loop().time() + 5
    while sink.paused and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(GATHER_SECONDS)
    assert not sink.paused and sink.resumes == 1, "reading resumes after GATHER_SECONDS"
    connection.data_received(body[over:])
    got, keep = await asyncio.wait_for(exchange, 10)  # type: ignore[misc]
    assert (got.body, keep, sink.paused, sink.resumes) == (body, True, False, 1)


async def test_a_connection_closed_while_gathering_is_not_resumed() -> None:
    connection, sink, exchange = await _waiting_for_a_body(100 * 1024)
    connection.data_received(bytes(GATHER_AFTER + 1))
    assert sink.paused
    exchange.cancel()
    with pytest.raises(asyncio.CancelledError):
        await exchange
    connection.close()
    await asyncio.sleep(GATHER_SECONDS * 20)  # past when the resume was due: it must not come
    assert sink.closed and sink.resumes == 0


async def test_a_large_chunked_answer_in_small_pieces_is_read_whole_and_kept(
    wire: Wire, script: Script
) -> None:
    """Gathering (pausing reads) must not lose, reorder or hold back bytes, nor spoil the
    connection for the next request."""
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
    assert (await get(wire)).body == b"".join(pieces)
    assert (await get(wire)).body == big
    assert (await get(wire)).body == b"after"
    assert script.connections == 1
