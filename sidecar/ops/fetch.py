"""An object fetched into the working folder (`.s3sync-sidecar/`), whole and checked, with its
mode and mtime, for a download to move into place or a conflict to compare and keep.

What lands there is the object or nothing: its length is checked, and its MD5 when the ETag is
a plain MD5 and not SSE-KMS or SSE-C (IntegrityError otherwise, and the file is gone). Nothing
is written past the size S3 announced, and a symlink's target is read up to 4 KiB: a broken or
hostile endpoint cannot fill the disk or the memory. Only permission bits are applied from S3,
never setuid, setgid or sticky. An object up to one read's size (1 MiB) is read whole and
written through one descriptor; a larger one is streamed, written with one writev per MiB off
the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import stat
from collections.abc import Callable

import aiohttp

from ..core.model import RemoteEntry
from ..local.localfs import PERMISSION_BITS, READ_SIZE
from ..local.proof import verifiable
from ..local.safefs import At
from ..local.workdir import discard, temp_name
from ..s3.client import ObjectHead, read_capped
from ..s3.metadata import is_plain_md5
from .job import IntegrityError
from .workspace import Workspace

SYMLINK_MAX = 4096
SMALL_OBJECT = READ_SIZE  # read whole, not streamed (aws/http.py: `exchange`)


class Fetcher:
    """Objects fetched into the working folder (`fetch`)."""

    def __init__(self, workspace: Workspace, progress: Callable[[], None]) -> None:
        self._ws = workspace
        self._progress = progress  # called as bytes arrive: a long download is not a stall

    async def fetch(self, rel: str, remote: RemoteEntry) -> tuple[At, ObjectHead]:
        """GET the object into a temporary file in the working folder, metadata applied.
        Returns that file (`tree.temp(name)`), which the caller installs or discards."""
        ws = self._ws
        key = ws.keys.key_for_rel(rel)
        if remote.size <= SMALL_OBJECT:
            return await self._fetch_small(key, remote)
        response = await ws.s3.get_object(key, if_match=remote.etag)
        temp = ws.tree.temp(temp_name())
        try:
            head = ObjectHead.from_headers(response.headers)
            mode = head.mode
            is_symlink = mode is not None and stat.S_ISLNK(mode)
            if is_symlink:
                if head.size > SYMLINK_MAX:
                    raise IntegrityError(f"symlink object {key!r} is too large")
                target = await read_capped(response, SYMLINK_MAX)
                if len(target) != head.size:
                    raise IntegrityError(f"{key!r}: received {len(target)} of {head.size} bytes")
                os.symlink(target, temp.name, dir_fd=temp.dir_fd)
            else:
                await self._write_body(response, temp, head, key)
        except BaseException:
            response.release()
            discard(temp)
            raise
        response.release()
        mtime_ns = _mtime(head, remote)
        try:
            if mode is not None and not is_symlink:
                temp.chmod_file(stat.S_IMODE(mode) & PERMISSION_BITS)
            if mtime_ns is not None:
                temp.utime(mtime_ns)
        except OSError:
            discard(temp)
            raise
        ws.metrics.downloaded_bytes.inc(head.size)
        return temp, head

    async def _fetch_small(self, key: str, remote: RemoteEntry) -> tuple[At, ObjectHead]:
        """`fetch` of an object listed at up to `SMALL_OBJECT` bytes: read whole (S3 checks
        the ETag: a bigger version since is a `PreconditionFailed`), then written, its mode and
        mtime set, through one descriptor."""
        ws = self._ws
        reply = await ws.s3.get_small_object(key, if_match=remote.etag)
        head = ObjectHead.from_headers(reply.headers)
        body = reply.body
        if len(body) != head.size:
            raise IntegrityError(f"{key!r}: received {len(body)} bytes of {head.size}")
        temp = ws.tree.temp(temp_name())
        mode = head.mode
        try:
            if mode is not None and stat.S_ISLNK(mode):
                if head.size > SYMLINK_MAX:
                    raise IntegrityError(f"symlink object {key!r} is too large")
                os.symlink(body, temp.name, dir_fd=temp.dir_fd)
                mtime_ns = _mtime(head, remote)
                if mtime_ns is not None:
                    temp.utime(mtime_ns)
            else:
                _check_etag(head, key, lambda: hashlib.md5(body).hexdigest())  # noqa: S324
                _create_file(temp, body, mode, _mtime(head, remote))
        except BaseException:
            discard(temp)
            raise
        ws.metrics.downloaded_bytes.inc(head.size)
        return temp, head

    async def _write_body(
        self, response: aiohttp.ClientResponse, temp: At, head: ObjectHead, key: str
    ) -> None:
        md5 = hashlib.md5()  # noqa: S324
        loop = asyncio.get_running_loop()
        received = 0
        # 0o666 less the umask, like any new file, when the object carries no mode.
        fd = temp.open(os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        try:
            buffer: list[bytes] = []
            buffered = 0
            # Chunks as they came (no joins): written with one writev per MiB, off the loop.
            async for chunk, _ in response.content.iter_chunks():
                received += len(chunk)
                if received > head.size:  # more than announced: never written past it
                    response.close()
                    raise IntegrityError(f"{key!r}: more than the {head.size} bytes announced")
                buffer.append(chunk)
                buffered += len(chunk)
                if buffered >= READ_SIZE:
                    block, buffer, buffered = buffer, [], 0
                    await _settled(loop.run_in_executor(None, _write_all, fd, block, md5.update))
                    self._progress()
            if buffer:
                await _settled(loop.run_in_executor(None, _write_all, fd, buffer, md5.update))
        finally:
            os.close(fd)
        if received != head.size:
            raise IntegrityError(f"{key!r}: received {received} bytes of {head.size}")
        _check_etag(head, key, md5.hexdigest)


def _check_etag(head: ObjectHead, key: str, md5_hex: Callable[[], str]) -> None:
    """The content's MD5 against the ETag, where the ETag is one (not multipart, not SSE-KMS
    or SSE-C): IntegrityError if they differ."""
    if is_plain_md5(head.etag) and verifiable(head.encryption) and md5_hex() != head.etag:
        raise IntegrityError(f"{key!r}: content does not match its ETag")


def _mtime(head: ObjectHead, listed: RemoteEntry) -> int | None:
    """The mtime a download gets: the one saved with the object, else its Last-Modified, to the
    millisecond where a listing gave it for this very version (the same ETag, in the same second
    as the GET's Last-Modified: a metadata-only copy since moves that) and to the second
    otherwise (HEAD and GET give no more)."""
    if head.mtime_ns is not None:
        return head.mtime_ns
    listed_ns, whole = listed.modified_ns, head.modified_ns
    if (
        listed_ns is not None
        and whole is not None
        and listed.etag == head.etag
        and listed_ns - listed_ns % 1_000_000_000 == whole
    ):
        return listed_ns
    return whole


def _create_file(temp: At, body: bytes, mode: int | None, mtime_ns: int | None) -> None:
    """A new file `temp` holding `body`, with its permission bits and mtime, all through the
    one descriptor that made it (0o666 less the umask when the object carries no mode)."""
    fd = temp.open(os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        view = memoryview(body)
        while view:
            view = view[os.write(fd, view) :]
        if mode is not None:
            os.fchmod(fd, stat.S_IMODE(mode) & PERMISSION_BITS)
        if mtime_ns is not None:
            os.utime(fd, ns=(mtime_ns, mtime_ns))
    finally:
        os.close(fd)


def _write_all(fd: int, chunks: list[bytes], update: Callable[[bytes], object]) -> None:
    for chunk in chunks:
        update(chunk)
    written = os.writev(fd, chunks)
    if written < sum(map(len, chunks)):  # short (a full disk then says so on the next write)
        view = memoryview(b"".join(chunks))[written:]
        while view:
            view = view[os.write(fd, view) :]


async def _settled(future: asyncio.Future[None]) -> None:
    """Await a write in the executor. Cancelled, it still waits for the write to end before
    passing the cancellation on: its descriptor is closed next, and a number closed under a
    running write could be reused by another file and written into."""
    try:
        await asyncio.shield(future)
    except asyncio.CancelledError:
        with contextlib.suppress(BaseException):
            await asyncio.wait([future])
        raise


__all__ = ["Fetcher"]
