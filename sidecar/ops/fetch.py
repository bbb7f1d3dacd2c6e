"""An object fetched into the working folder (`.s3sync-sidecar/`), whole and checked, with its
mode and mtime, for a download to move into place or a conflict to compare and keep.

What lands there is the object or nothing: its length is checked, and its bytes against the
additional checksum S3 states where we compute it (SHA-256, SHA-1, CRC32; asked for with every GET:
a full-object one, or a composite one whose part size is known, or guessed: a guess that does not
give it cannot tell), else against the ETag's MD5 where it is one, not SSE-KMS or SSE-C (`Content`;
IntegrityError otherwise, and the file is gone). Nothing is written past the size S3 announced, and
a symlink's target is read up to 4 KiB: a broken or hostile endpoint cannot fill the disk or the
memory. Only permission bits are applied from S3, never setuid, setgid or sticky. An object up to
one read's size (1 MiB) is read whole and written through one descriptor; a larger one is streamed,
written with one writev per MiB off the event loop.

An object S3 renamed from a path whose file is synced here (`Move`: a key gone and one with
its ETag come in one listing, remote/fold.py) is first copied from that file within the folder
(`_copy_here`: copy_file_range, a reflink where the filesystem has them) and proven by the same
check as a download (its checksum, else the ETag's MD5 or multipart MD5), with one HEAD for its
mode and mtime: no byte of it crosses the network. Anything else (the file changed, gone or
unreadable, nothing able to prove it, the object changed since) and the object is fetched as any
other.

An object S3 holds archived is not asked for (`Archived`, without a request) when what S3 said
of it says so; a GET S3 refuses for that reason (403 InvalidObjectState: an archive tier the
listing could not show, or a restored copy that expired) is `Archived` too.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import logging
import os
import stat
from collections.abc import Callable

import aiohttp

from .. import checksums
from ..core.model import RemoteEntry, is_plain_md5
from ..core.moves import Move
from ..local.localfs import PERMISSION_BITS, READ_SIZE
from ..local.proof import part_sizes, provable, same_as_object, verifiable
from ..local.safefs import At, Tree
from ..local.workdir import discard, temp_name
from ..s3.client import ObjectHead, S3Error, read_capped
from .job import Archived, IntegrityError
from .workspace import ExecutorSettings, Workspace

log = logging.getLogger("sidecar.fetch")

SYMLINK_MAX = 4096
SMALL_OBJECT = READ_SIZE  # read whole, not streamed (aws/http.py: `exchange`)


class Fetcher:
    """Objects fetched into the working folder (`fetch`)."""

    def __init__(self, workspace: Workspace, progress: Callable[[], None]) -> None:
        self._ws = workspace
        self._progress = progress  # called as bytes arrive: a long download is not a stall

    async def fetch(
        self, rel: str, remote: RemoteEntry, moved: Move | None = None
    ) -> tuple[At, ObjectHead]:
        """GET the object into a temporary file in the working folder, metadata applied (or,
        renamed in S3 from `moved`, copy it from there if that proves to hold it). Returns
        that file (`tree.temp(name)`), which the caller installs or discards."""
        if moved is not None:
            copied = await self._copy_here(rel, remote, moved)
            if copied is not None:
                return copied
        if remote.archived:
            raise Archived(rel, remote.etag)
        try:
            return await self._fetch(rel, remote)
        except S3Error as error:
            if error.archived:
                raise Archived(rel, remote.etag) from error
            raise

    async def _fetch(self, rel: str, remote: RemoteEntry) -> tuple[At, ObjectHead]:
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
                await self._write_body(response, temp, head, key, remote.part_size)
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

    async def _copy_here(
        self, rel: str, remote: RemoteEntry, moved: Move
    ) -> tuple[At, ObjectHead] | None:
        """The object at `rel`, renamed in S3 from `moved.source`, copied from the file there
        into the working folder if that file proves to hold it (by the ETag), with the mode and
        mtime one HEAD says; None (nothing left behind) when it cannot be."""
        ws = self._ws
        metrics = ws.metrics
        synced = moved.synced.remote
        md5_etags = bool(ws.etags.md5)  # (unknown yet: not taken for MD5s)
        if (
            remote.is_dir
            or synced is None
            or not synced.may_be_copied_as(remote)
            or not provable(remote, md5_etags)
        ):
            return None  # (nothing could prove a copy: no checksum, and ETags not MD5s)
        loop = asyncio.get_running_loop()
        temp = ws.tree.temp(temp_name())
        try:
            proven = await loop.run_in_executor(
                None,
                functools.partial(
                    _copy_proven,
                    ws.tree,
                    moved.source,
                    temp,
                    remote,
                    ws.settings,
                    md5_etags=md5_etags,
                ),
            )
            head = await ws.s3.head_object(ws.keys.key_for_rel(rel)) if proven else None
            if (
                head is None
                or head.etag != remote.etag
                or head.size != remote.size
                or (head.mode is not None and not stat.S_ISREG(head.mode))
            ):
                discard(temp)
                metrics.inc(metrics.renames, "local_move", "fallback")
                return None
            if head.mode is not None:
                temp.chmod_file(stat.S_IMODE(head.mode) & PERMISSION_BITS)
            mtime_ns = _mtime(head, remote)
            if mtime_ns is not None:
                temp.utime(mtime_ns)
        except BaseException:
            discard(temp)
            raise
        metrics.inc(metrics.renames, "local_move", "ok")
        metrics.inc(metrics.bytes_saved, "local_move", amount=head.size)
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
                content = Content(head, remote.part_size, ws.settings.multipart_chunksize)
                content.update(body)
                content.check(key, lambda: hashlib.md5(body, usedforsecurity=False).hexdigest())
                _create_file(temp, body, mode, _mtime(head, remote))
        except BaseException:
            discard(temp)
            raise
        ws.metrics.downloaded_bytes.inc(head.size)
        return temp, head

    async def _write_body(
        self,
        response: aiohttp.ClientResponse,
        temp: At,
        head: ObjectHead,
        key: str,
        part_size: int,
    ) -> None:
        content = Content(head, part_size, self._ws.settings.multipart_chunksize)
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
                    await _settled(
                        loop.run_in_executor(None, _write_all, fd, block, content.update)
                    )
                    self._progress()
            if buffer:
                await _settled(loop.run_in_executor(None, _write_all, fd, buffer, content.update))
        finally:
            os.close(fd)
        if received != head.size:
            raise IntegrityError(f"{key!r}: received {received} bytes of {head.size}")
        await loop.run_in_executor(None, content.check, key, functools.partial(_md5_of, temp))


class Content:
    """What a download's bytes are checked against, as they pass (`update`), then `check`: the
    additional checksum S3 states where we compute it (checksums.py), else the ETag's MD5 where it
    is one (not multipart, not SSE-KMS or SSE-C). A composite checksum is computed with the part
    size we know (our own upload), else the first one guessed (ours first: another sidecar's
    upload): a guess that does not give it cannot tell either way, and the MD5 is then checked where
    it can be."""

    def __init__(self, head: ObjectHead, part_size: int, chunksize: int) -> None:
        self._head = head
        self._full: checksums.Full | None = None
        self._composite: checksums.Composite | None = None
        self._guessed = False
        self._md5: hashlib._Hash | None = None
        checksum = head.checksum
        if checksum and not checksums.parts(checksum):
            self._full = checksums.Full(checksums.split(checksum)[0])
            return
        if checksum:
            sizes = [part_size] if part_size else part_sizes(head.size, checksum, chunksize)
            if sizes:
                self._composite = checksums.Composite(sizes[0], checksums.split(checksum)[0])
                self._guessed = not part_size
        if (self._composite is None or self._guessed) and _md5_etag(head):
            self._md5 = hashlib.md5(usedforsecurity=False)

    def update(self, data: bytes) -> None:
        for hasher in (self._full, self._composite, self._md5):
            if hasher is not None:
                hasher.update(data)

    def check(self, key: str, md5_of: Callable[[], str] | None = None) -> None:
        """IntegrityError if the bytes that passed are not the object's, as far as S3 says.
        `md5_of`: the MD5 of those bytes, asked for only when the checksum does not
        match: where the ETag is an MD5 and it matches, the store misstated its checksum (its
        ETag proves the bytes), which is said, not refused forever. Blocking when `md5_of`
        reads a file."""
        head = self._head
        if self._full is not None:
            if self._full.value() != head.checksum:
                if md5_of is not None and _md5_etag(head) and md5_of() == head.etag:
                    log.warning(
                        "%r: the store's checksum does not match bytes its ETag (an "
                        "MD5) proves; taking the ETag's word",
                        key,
                    )
                    return
                raise IntegrityError(f"{key!r}: content does not match its checksum")
            return
        composite = self._composite
        if composite is not None and composite.value() != head.checksum and not self._guessed:
            raise IntegrityError(f"{key!r}: content does not match its checksum")
        if self._md5 is not None and self._md5.hexdigest() != head.etag:
            raise IntegrityError(f"{key!r}: content does not match its ETag")


def _copy_proven(
    tree: Tree,
    source: str,
    temp: At,
    remote: RemoteEntry,
    settings: ExecutorSettings,
    *,
    md5_etags: bool,
) -> bool:
    """Copy the regular file at `source` (no symlink followed) to `temp` (made here), if it has
    the object's size, and prove the copy holds the object (`same_as_object`: its checksum,
    else its MD5 or multipart MD5 against the ETag). False, and `temp` gone, when it is not so
    or cannot be told; an error reading the source is a False too (the object is then
    fetched)."""
    try:
        source_fd = tree.open(source, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return False
    try:
        st = os.fstat(source_fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size != remote.size:
            return False
        fd = temp.open(os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666)
        try:
            copied = 0
            while copied < remote.size:
                done = os.copy_file_range(source_fd, fd, remote.size - copied, copied, copied)
                if not done:
                    break  # shrunk meanwhile: the proof below fails
                copied += done
            same = same_as_object(
                fd,
                remote.size,
                remote.etag,
                settings.multipart_chunksize,
                remote.part_size,
                checksum=remote.checksum,
                md5_etags=md5_etags,
            )
        finally:
            os.close(fd)
    except OSError:
        same = False
    finally:
        os.close(source_fd)
    if not same:
        discard(temp)
    return same is True


def _md5_of(temp: At) -> str:
    """The MD5 of the file `temp` (read whole: only after a checksum did not match)."""
    md5 = hashlib.md5(usedforsecurity=False)
    fd = temp.open(os.O_RDONLY)
    try:
        offset = 0
        while chunk := os.pread(fd, READ_SIZE, offset):
            md5.update(chunk)
            offset += len(chunk)
    finally:
        os.close(fd)
    return md5.hexdigest()


def _md5_etag(head: ObjectHead) -> bool:
    return is_plain_md5(head.etag) and verifiable(head.encryption)


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
