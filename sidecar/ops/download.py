"""S3 to local: objects (`download`), directories (`mkdir`), another client's chmod/touch
(`apply_remote_meta`), and the fetch into the working folder that conflicts use too.

A download never shows a partial file: the object lands in the hidden working folder, is checked
(length, and MD5 when the ETag is a plain MD5 and not SSE-KMS), gets its mode and mtime, and is
then moved into place only if the local path is still exactly what the decision saw. Into an
empty name it is linked (`link()` fails if a file appeared meanwhile, which is never clobbered);
over a file, it is renamed. Every local name is reached through `Tree` (safefs.py): a parent that
is a symlink or a file is refused (UnsafeParentError), even one swapped in while the object was
on its way, and no chmod or utime follows a symlink: a key never writes outside the folder.
Only permission bits are applied from S3, never setuid, setgid or sticky. Nothing is written
past the size S3 announced, and a symlink's target is read up to 4 KiB: a broken or hostile
endpoint cannot fill the disk or the memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import logging
import os
import stat
from collections.abc import Callable

import aiohttp

from ..core.model import Kind, LocalEntry, RemoteEntry
from ..local.localfs import PERMISSION_BITS, changed_by_us, entry_from_stat, in_place
from ..local.proof import is_plain_md5, verifiable
from ..local.safefs import At
from ..s3.client import ObjectHead, read_capped
from .operation import IntegrityError, Job, LocalChanged, RemoteChanged, Workspace, fetched
from .upload import READ_CHUNK

log = logging.getLogger("sidecar.download")

SYMLINK_MAX = 4096
SMALL_OBJECT = READ_CHUNK  # read whole, not streamed (aws/http.py: `exchange`)


class Downloads:
    def __init__(self, workspace: Workspace) -> None:
        self._ws = workspace

    async def fetch(self, rel: str, remote: RemoteEntry) -> tuple[str, ObjectHead]:
        """GET the object into a temporary file in the working folder, metadata applied.
        Returns its name there (`tree.temp(name)`)."""
        ws = self._ws
        key = ws.keys.key_for_rel(rel)
        if remote.size <= SMALL_OBJECT:
            return await self._fetch_small(key, remote)
        response = await ws.s3.get_object(key, if_match=remote.etag)
        temp = ws.tree.temp(ws.temp_name())
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
            _discard(temp)
            raise
        response.release()
        mtime_ns = _mtime(head)
        try:
            if mode is not None and not is_symlink:
                temp.chmod_file(stat.S_IMODE(mode) & PERMISSION_BITS)
            if mtime_ns is not None:
                temp.utime(mtime_ns)
        except OSError:
            _discard(temp)
            raise
        ws.metrics.downloaded_bytes.inc(head.size)
        return temp.name, head

    async def _fetch_small(self, key: str, remote: RemoteEntry) -> tuple[str, ObjectHead]:
        """`fetch` of an object listed at up to `SMALL_OBJECT` bytes: read whole (S3 checks
        the ETag: a bigger version since is a `PreconditionFailed`), then written, its mode and
        mtime set, through one descriptor."""
        ws = self._ws
        reply = await ws.s3.get_small_object(key, if_match=remote.etag)
        head = ObjectHead.from_headers(reply.headers)
        body = reply.body
        if len(body) != head.size:
            raise IntegrityError(f"{key!r}: received {len(body)} bytes of {head.size}")
        temp = ws.tree.temp(ws.temp_name())
        mode = head.mode
        try:
            if mode is not None and stat.S_ISLNK(mode):
                if head.size > SYMLINK_MAX:
                    raise IntegrityError(f"symlink object {key!r} is too large")
                os.symlink(body, temp.name, dir_fd=temp.dir_fd)
                mtime_ns = _mtime(head)
                if mtime_ns is not None:
                    temp.utime(mtime_ns)
            else:
                _check_etag(head, key, lambda: hashlib.md5(body).hexdigest())  # noqa: S324
                _create_file(temp, body, mode, _mtime(head))
        except BaseException:
            _discard(temp)
            raise
        ws.metrics.downloaded_bytes.inc(head.size)
        return temp.name, head

    async def _write_body(
        self, response: aiohttp.ClientResponse, temp: At, head: ObjectHead, key: str
    ) -> None:
        md5 = hashlib.md5()  # noqa: S324
        loop = self._ws.loop
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
                if buffered >= READ_CHUNK:
                    block, buffer, buffered = buffer, [], 0
                    await _settled(loop.run_in_executor(None, _write_all, fd, block, md5.update))
                    self._ws.progress()
            if buffer:
                await _settled(loop.run_in_executor(None, _write_all, fd, buffer, md5.update))
        finally:
            os.close(fd)
        if received != head.size:
            raise IntegrityError(f"{key!r}: received {received} bytes of {head.size}")
        _check_etag(head, key, md5.hexdigest)

    def _record_created(self, created: list[str]) -> None:
        """Directories made above a path exist because of S3: record them."""
        ws = self._ws
        for parent in created:
            entry = ws.local_entry(parent)
            if entry is not None:
                ws.state.record(parent, entry, None)

    def _install(self, temp: At, at: At, rel: str, expected: LocalEntry | None) -> None:
        """Put `temp` at `at` (`rel`): never over a file that appeared since the decision."""
        if expected is None:
            try:
                temp.link_to(at)
            except FileExistsError as error:
                raise LocalChanged(rel) from error
            except OSError as error:
                if error.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EXDEV):
                    raise
                temp.rename_to(at)  # no hard links here: the check just made must do
                return
            temp.unlink()
        else:
            # An app may hold the old version open and write to it later: keep hold of it.
            try:
                old = at.open(os.O_RDONLY | os.O_NONBLOCK)
            except OSError:
                old = -1
            temp.replace(at)
            if old >= 0:
                self._ws.hold_replaced(rel, old)

    async def download(self, job: Job) -> None:
        remote = job.facts.remote
        assert remote is not None  # reconcile downloads only what S3 holds
        ws = self._ws
        rel = job.rel
        name, head = await self.fetch(rel, remote)
        temp = ws.tree.temp(name)
        try:
            on_disk = entry_from_stat(temp.lstat())
            ws.etags.saw(head.encryption)
            await ws.prove_unchanged(job, verifiable(head.encryption))
            created: list[str] = []
            with ws.tree.parent(rel, created) as at:
                self._record_created(created)
                ws.recheck(job, job.facts.local, at)
                self._install(temp, at, rel, job.facts.local)
                on_disk = in_place(at, on_disk)
        except BaseException:
            _discard(temp)
            raise
        ws.state.agree(rel, on_disk, fetched(remote, head))
        ws.metrics.inc(ws.metrics.downloads, "ok")
        log.info(
            "downloaded %s", rel, extra={"path": rel, "bytes": head.size, "operation": "download"}
        )

    async def mkdir(self, job: Job) -> None:
        """A directory for a `dir/` marker, with the marker's mtime (listings do not carry
        it: one HEAD). Files put in it later move that mtime, as on any filesystem."""
        ws = self._ws
        rel = job.rel
        marker = job.facts.remote
        head = None
        if marker is not None and marker.is_dir:
            head = await ws.s3.head_object(ws.keys.key_for_rel(rel, is_dir=True))
        created: list[str] = []
        with ws.tree.parent(rel, created) as at:
            self._record_created(created)
            made = True
            try:
                at.mkdir()
            except FileExistsError:  # made since the decision: fine if a directory
                made = False
            if made and head is not None and head.mtime_ns is not None:
                at.utime(head.mtime_ns)
            try:
                entry: LocalEntry | None = entry_from_stat(at.lstat())
            except FileNotFoundError:
                entry = None
        if entry is None or entry.kind is not Kind.DIR:
            raise LocalChanged(rel)
        ws.state.record(rel, entry, job.facts.remote)

    async def apply_remote_meta(self, job: Job) -> None:
        """Same object, new metadata (another client's chmod or touch): apply it here."""
        local, remote = job.facts.local, job.facts.remote
        assert local is not None and remote is not None  # reconcile: both sides exist
        ws = self._ws
        rel = job.rel
        head = await ws.s3.head_object(ws.keys.key_for_rel(rel))
        if head is None or head.etag != remote.etag:
            raise RemoteChanged(rel)
        with ws.tree.parent(rel) as at:
            before = ws.recheck(job, local, at)
            if (
                local.kind is Kind.FILE
                and head.mode is not None
                and stat.S_IMODE(head.mode) & PERMISSION_BITS != stat.S_IMODE(local.mode)
            ):
                at.chmod_file(stat.S_IMODE(head.mode) & PERMISSION_BITS)
            if head.mtime_ns is not None and head.mtime_ns != local.mtime_ns:
                at.utime(head.mtime_ns)
            try:
                updated = entry_from_stat(at.lstat())
            except FileNotFoundError as error:
                raise LocalChanged(rel) from error
            # A write that landed since the check must not be absorbed into the synced record
            # as if it were our chmod/utime: it is uploaded by the next pass instead.
            ws.recheck(job, updated, at)
        if (updated.size, updated.ino, updated.kind) != (local.size, local.ino, local.kind) or (
            head.mtime_ns is not None and updated.mtime_ns != head.mtime_ns
        ):
            raise LocalChanged(rel)
        assert before is not None  # recheck: it is `local`
        ws.state.agree(rel, changed_by_us(before, updated, job.facts.synced), fetched(remote, head))
        ws.metrics.inc(ws.metrics.metadata_updates, "local", "ok")


def _discard(temp: At) -> None:
    """A temporary file that will not be installed: gone (if it was made at all)."""
    with contextlib.suppress(FileNotFoundError):
        temp.unlink()


def _check_etag(head: ObjectHead, key: str, md5_hex: Callable[[], str]) -> None:
    """The content's MD5 against the ETag, where the ETag is one (not multipart, not SSE-KMS
    or SSE-C): IntegrityError if they differ."""
    if is_plain_md5(head.etag) and verifiable(head.encryption) and md5_hex() != head.etag:
        raise IntegrityError(f"{key!r}: content does not match its ETag")


def _mtime(head: ObjectHead) -> int | None:
    """The mtime a download gets: the one saved with the object, else its Last-Modified."""
    return head.modified_ns if head.mtime_ns is None else head.mtime_ns


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
