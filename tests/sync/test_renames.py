"""Renames cost no transfer: a local rename of a synced file or tree is carried to S3 by
CopyObject (no file bytes sent), and whatever races it ends where a re-upload would have: the
new key holding the file's bytes, the old key gone, no conflict copy. Real inotify, moto's
server behind a real proxy that counts every request and body byte (faultproxy.py)."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import stat
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from support.bucket import Bucket
from support.environments import sidecar_environment
from support.local_http import free_port
from support.metrics import metric
from support.moto_server import LAX
from support.syncers import Syncers
from support.waiting import eventually, in_thread

from sidecar.ops import multipart as multipart_module
from sidecar.ops import rename as rename_module
from sidecar.s3.metadata import parse_mode, parse_mtime

HOUR = 3600
MIB = 1024 * 1024


def _files(root: Path) -> dict[str, bytes]:
    """Every file in the folder (not the working folder), by relative path."""
    found: dict[str, bytes] = {}
    for path in root.rglob("*"):
        rel = path.relative_to(root).as_posix()
        if not rel.startswith(".s3sync-sidecar") and path.is_file():
            found[rel] = path.read_bytes()
    return found


def _digests(objects: dict[str, bytes]) -> dict[str, str]:
    return {key: hashlib.sha256(data).hexdigest() for key, data in objects.items()}


def _objects(bucket: Bucket) -> dict[str, bytes]:
    """Every object that is not a directory marker, by key."""
    return {key: bucket.get(key) for key in bucket.list_keys() if not key.endswith("/")}


async def _in_s3(bucket: Bucket, expected: dict[str, bytes], what: str) -> None:
    """Polled: compared by digest, since a failed assert on megabytes of bytes takes pytest
    seconds to render (on the event loop the syncer shares)."""
    wanted = _digests(expected)

    async def check() -> None:
        assert _digests(await in_thread(_objects, bucket)) == wanted

    await eventually(check, timeout=30, what=what)


def _copies(s3_server: Any) -> bool:
    """Whether the server has renames copied: Ceph RGW honours `If-None-Match` on PutObject
    but not on CopyObject, so a rename is uploaded there (`Conditions.copies_as_safe_as_puts`:
    a copy would leave a window in which another client's new object is overwritten)."""
    return bool(s3_server.name != "rgw")


async def _flushed(port: int) -> None:
    """POST /flush to the sidecar command on `port`: every local change before is in S3."""
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"http://127.0.0.1:{port}/flush?timeout=20") as response,
    ):
        assert response.status == 200, await response.text()


@pytest.mark.any_s3
async def test_a_synced_file_renamed_is_copied_in_s3_not_uploaded(
    syncer_factory: Any, bucket: Bucket, proxy: Any, s3_server: Any
) -> None:
    syncer = await syncer_factory(endpoint=proxy.endpoint_pattern)
    body = os.urandom(3 * 1024 * 1024 + 17)
    (syncer.folder / "archive").mkdir()
    draft = syncer.folder / "big.bin"
    draft.write_bytes(body)
    os.chmod(draft, 0o640)
    await _in_s3(bucket, {"big.bin": body}, "the file uploaded")
    assert (await syncer.flush()).flushed
    sent, copies, deletes = proxy.request_bytes["PUT"], proxy.copies, proxy.seen["DELETE"]

    os.rename(draft, syncer.folder / "archive" / "big.bin")

    await _in_s3(bucket, {"archive/big.bin": body}, "the file under its new name only")
    assert (await syncer.flush()).flushed
    assert proxy.seen["DELETE"] == deletes + 1
    head = await in_thread(bucket.head, "archive/big.bin")
    moved = os.stat(syncer.folder / "archive" / "big.bin")
    assert parse_mtime(head["Metadata"]["mtime"]) == moved.st_mtime_ns
    assert parse_mode(head["Metadata"]["mode"]) == stat.S_IFREG | 0o640
    if not _copies(s3_server):
        assert proxy.copies == copies
        assert proxy.request_bytes["PUT"] == sent + len(body)
        assert metric(syncer, "s3sync_renames_total", how="server_copy", result="fallback") == 1
        return
    assert proxy.request_bytes["PUT"] == sent  # not one byte of the file sent again
    assert proxy.copies == copies + 1
    assert metric(syncer, "s3sync_renames_total", how="server_copy", result="ok") == 1
    assert metric(syncer, "s3sync_bytes_saved_total", how="server_copy") == len(body)
    assert metric(syncer, "s3sync_uploaded_bytes_total") == len(body)  # the first upload only


@pytest.mark.any_s3
async def test_a_synced_tree_renamed_is_copied_in_s3_not_uploaded(
    syncer_factory: Any, bucket: Bucket, proxy: Any, s3_server: Any
) -> None:
    syncer = await syncer_factory(endpoint=proxy.endpoint_pattern)
    tree: dict[str, bytes] = {}
    for number in range(40):
        rel = f"project/{'src' if number % 2 else 'docs'}/deep/{number:03d}.txt"
        tree[rel] = os.urandom(4096 + number)
        path = syncer.folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(tree[rel])
    await _in_s3(bucket, tree, "the tree uploaded")
    assert (await syncer.flush()).flushed
    sent, copies = proxy.request_bytes["PUT"], proxy.copies

    os.rename(syncer.folder / "project", syncer.folder / "project-old")

    renamed = {rel.replace("project/", "project-old/", 1): data for rel, data in tree.items()}
    await _in_s3(bucket, renamed, "the tree under its new name only")
    assert (await syncer.flush()).flushed
    keys = await in_thread(bucket.list_keys)
    assert not [key for key in keys if key.startswith("project/")]  # markers included
    assert await in_thread(_files, syncer.folder) == renamed
    size = sum(len(data) for data in tree.values())
    if not _copies(s3_server):
        assert proxy.request_bytes["PUT"] == sent + size
        assert proxy.copies == copies
        return
    assert proxy.request_bytes["PUT"] == sent  # markers are empty: no file byte sent again
    assert proxy.copies == copies + len(tree)
    assert metric(syncer, "s3sync_bytes_saved_total", how="server_copy") == size


async def test_a_file_over_the_copy_limit_is_copied_in_parts(
    syncer_factory: Any, bucket: Bucket, proxy: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Above CopyObject's 5 GiB, a renamed file's new key is a multipart upload whose parts
    S3 copies from the old object (UploadPartCopy): no file byte sent either. The limits are
    shrunk here (6 MiB, parts of 5 MiB), the requests are the same."""
    monkeypatch.setattr(rename_module, "COPY_MAX", 6 * MIB)
    monkeypatch.setattr(multipart_module, "COPY_PART", 5 * MIB)
    syncer = await syncer_factory(endpoint=proxy.endpoint_pattern, multipart_chunksize=5 * MIB)
    body = os.urandom(13 * MIB + 5)
    path = syncer.folder / "huge.bin"
    path.write_bytes(body)
    await _in_s3(bucket, {"huge.bin": body}, "the file uploaded")
    assert (await syncer.flush()).flushed
    sent, before = proxy.request_bytes["PUT"], len(proxy.requests)

    os.rename(path, syncer.folder / "huge-renamed.bin")

    await _in_s3(bucket, {"huge-renamed.bin": body}, "the file under its new name only")
    assert (await syncer.flush()).flushed
    assert proxy.request_bytes["PUT"] == sent  # not one byte of the file sent again
    parts = [
        r
        for r in proxy.requests[before:]
        if r.method == "PUT" and "partNumber=" in r.path and r.header("x-amz-copy-source")
    ]
    assert {r.header("x-amz-copy-source-range") for r in parts} == {
        f"bytes=0-{5 * MIB - 1}",
        f"bytes={5 * MIB}-{10 * MIB - 1}",
        f"bytes={10 * MIB}-{len(body) - 1}",
    }
    assert metric(syncer, "s3sync_renames_total", how="server_copy", result="ok") == 1
    assert metric(syncer, "s3sync_bytes_saved_total", how="server_copy") == len(body)
    head = await in_thread(bucket.head, "huge-renamed.bin")
    assert head["ETag"].strip('"').endswith("-3")
    await syncer.poll_once()  # its own copy is not downloaded back, nor taken for a change
    assert metric(syncer, "s3sync_downloads_total", result="ok") == 0
    assert (syncer.folder / "huge-renamed.bin").read_bytes() == body


async def test_a_write_right_after_the_rename_is_uploaded(
    syncer_factory: Any, bucket: Bucket, proxy: Any
) -> None:
    """The app renames a synced file and writes to it before the sidecar's pass: the pass
    sees the close after writing and uploads the new bytes; the old key goes."""
    syncer = await syncer_factory(endpoint=proxy.endpoint_pattern)
    path = syncer.folder / "log.txt"
    path.write_bytes(b"first\n" * 100)
    await _in_s3(bucket, {"log.txt": b"first\n" * 100}, "the file uploaded")
    assert (await syncer.flush()).flushed

    moved = syncer.folder / "log.1.txt"
    os.rename(path, moved)
    with open(moved, "r+b") as file:  # same size, its mtime put back: only the close says so
        mtime = os.fstat(file.fileno()).st_mtime_ns
        file.write(b"SECOND")
    os.utime(moved, ns=(mtime, mtime))

    expected = b"SECOND" + (b"first\n" * 100)[6:]
    await _in_s3(bucket, {"log.1.txt": expected}, "the written bytes at the new key only")
    assert (await syncer.flush()).flushed
    assert await in_thread(_files, syncer.folder) == {"log.1.txt": expected}


async def test_a_write_in_a_renamed_tree_before_its_new_watches_is_uploaded(
    syncer_factory: Any, bucket: Bucket, proxy: Any
) -> None:
    """A directory's rename drops the watches below it until its new name is watched: a write
    there in between reports nothing. Written here before the sidecar reads a single event
    (it runs in this event loop), a same-size rewrite with its mtime put back: only the file's
    ctime tells, and the file is uploaded, not copied from its stale object."""
    syncer = await syncer_factory(endpoint=proxy.endpoint_pattern)
    tree = {"dir/a.txt": b"a" * 100, "dir/sub/b.txt": b"b" * 100}
    for rel, data in tree.items():
        (syncer.folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (syncer.folder / rel).write_bytes(data)
    await _in_s3(bucket, tree, "the tree uploaded")
    assert (await syncer.flush()).flushed

    os.rename(syncer.folder / "dir", syncer.folder / "moved")
    written = syncer.folder / "moved" / "sub" / "b.txt"
    before = os.stat(written)
    with open(written, "r+b") as file:
        file.write(b"B" * 100)
    os.utime(written, ns=(before.st_atime_ns, before.st_mtime_ns))

    expected = {"moved/a.txt": b"a" * 100, "moved/sub/b.txt": b"B" * 100}
    await _in_s3(bucket, expected, "the rewritten file uploaded, the other copied")
    assert (await syncer.flush()).flushed
    assert metric(syncer, "s3sync_renames_total", how="server_copy", result="ok") == 1


async def test_a_write_while_the_copy_is_under_way_is_uploaded_after(
    syncer_factory: Any, bucket: Bucket, proxy: Any
) -> None:
    """The copy is held in the proxy while the app writes to the renamed file: the copy lands
    (the old bytes, as the file was when it was renamed), then the write is uploaded over it."""
    syncer = await syncer_factory(endpoint=proxy.endpoint_pattern)
    path = syncer.folder / "data.bin"
    path.write_bytes(b"A" * 5000)
    await _in_s3(bucket, {"data.bin": b"A" * 5000}, "the file uploaded")
    assert (await syncer.flush()).flushed
    copies = proxy.copies

    proxy.faults.methods = {"PUT"}
    proxy.faults.delay = 1.0
    os.rename(path, syncer.folder / "renamed.bin")
    await eventually(lambda: proxy.copies > copies, what="the copy held in the proxy")
    (syncer.folder / "renamed.bin").write_bytes(b"B" * 5000)
    proxy.faults.delay = 0

    await _in_s3(bucket, {"renamed.bin": b"B" * 5000}, "the new bytes at the new key only")
    assert (await syncer.flush()).flushed
    assert await in_thread(_files, syncer.folder) == {"renamed.bin": b"B" * 5000}


@pytest.mark.any_s3
async def test_the_source_changed_in_s3_before_the_copy(
    syncer_factory: Any, bucket: Bucket, proxy: Any
) -> None:
    """Another client rewrites the old key while the copy is on its way: the copy must not
    put that client's bytes under the new name (`x-amz-copy-source-if-match`; where a store
    ignores it, the ETag the copy answers), and the old key's delete must not lose them
    (`If-Match`): as after a re-upload, the new key holds the renamed file's bytes, and the
    other client's version comes back at the old name (a remote change beats a local delete)."""
    syncer = await syncer_factory(endpoint=proxy.endpoint_pattern)
    path = syncer.folder / "doc.txt"
    path.write_bytes(b"ours " * 400)
    await _in_s3(bucket, {"doc.txt": b"ours " * 400}, "the file uploaded")
    assert (await syncer.flush()).flushed
    puts = proxy.seen["PUT"]

    proxy.faults.methods = {"PUT"}
    proxy.faults.delay = 1.0
    os.rename(path, syncer.folder / "doc-renamed.txt")
    # (the copy, a PUT; on RGW the upload: `_copies`)
    await eventually(lambda: proxy.seen["PUT"] > puts, what="the copy held in the proxy")
    await in_thread(bucket.put, "doc.txt", b"theirs")  # straight to moto, before the copy
    proxy.faults.delay = 0

    expected = {"doc-renamed.txt": b"ours " * 400, "doc.txt": b"theirs"}
    await _in_s3(bucket, expected, "ours at the new key, theirs at the old one")
    await eventually(
        lambda: _files(syncer.folder) == expected, timeout=30, what="theirs downloaded"
    )
    assert (await syncer.flush()).flushed
    assert await in_thread(_objects, bucket) == expected  # no conflict copy anywhere
    assert metric(syncer, "s3sync_renames_total", how="server_copy", result="fallback") == 1


async def test_the_source_changed_on_a_store_that_ignores_the_copy_condition(
    moto_server: Any, bucket: Bucket, proxy: Any, tmp_path: Path
) -> None:
    """The same race on a store that copies whatever its source holds (moto itself, in a `LAX`
    bucket; Ceph RGW): its HEAD first saw our version, the other client's write came after, so
    the copy answers the other client's ETag: the sidecar deletes that copy (`If-Match` on it)
    and uploads the file; the end is the same as where S3 refuses."""
    del bucket  # (its fixture gives moto's keys to the environment; this test needs its own)
    bucket = await in_thread(Bucket.create, moto_server, LAX)
    syncers = Syncers(tmp_path / "folder", bucket)
    try:
        syncer = await syncers.start(endpoint=proxy.endpoint_pattern)
        path = syncer.folder / "doc.txt"
        path.write_bytes(b"ours " * 400)
        await _in_s3(bucket, {"doc.txt": b"ours " * 400}, "the file uploaded")
        assert (await syncer.flush()).flushed
        copies, deletes = proxy.copies, proxy.seen["DELETE"]

        proxy.faults.methods = {"PUT"}
        proxy.faults.delay = 1.0
        os.rename(path, syncer.folder / "doc-renamed.txt")
        await eventually(lambda: proxy.copies > copies, what="the copy held in the proxy")
        await in_thread(bucket.put, "doc.txt", b"theirs")
        proxy.faults.delay = 0

        expected = {"doc-renamed.txt": b"ours " * 400, "doc.txt": b"theirs"}
        await _in_s3(bucket, expected, "ours at the new key, theirs at the old one")
        await eventually(
            lambda: _files(syncer.folder) == expected, timeout=30, what="theirs downloaded"
        )
        assert (await syncer.flush()).flushed
        assert await in_thread(_objects, bucket) == expected
        assert proxy.copies == copies + 1
        # the wrong copy (and the old key's, unless a listing saw theirs first: it downloads)
        assert proxy.seen["DELETE"] >= deletes + 1
        assert metric(syncer, "s3sync_renames_total", how="server_copy", result="fallback") == 1
    finally:
        await syncers.stop_all()


@pytest.mark.any_s3
async def test_another_client_took_the_new_name_before_the_copy(
    syncer_factory: Any, bucket: Bucket, proxy: Any
) -> None:
    """Another client writes the new key while the copy is on its way: the copy is refused
    (`If-None-Match`), and the renamed file meets that object as an upload would have: both
    kept, the local one under the name, theirs as a conflict copy; the old key goes."""
    syncer = await syncer_factory(endpoint=proxy.endpoint_pattern)
    path = syncer.folder / "a.txt"
    path.write_bytes(b"ours")
    await _in_s3(bucket, {"a.txt": b"ours"}, "the file uploaded")
    assert (await syncer.flush()).flushed
    puts = proxy.seen["PUT"]

    proxy.faults.methods = {"PUT"}
    proxy.faults.delay = 1.0
    os.rename(path, syncer.folder / "b.txt")
    # (the copy, a PUT; on RGW the upload: `_copies`)
    await eventually(lambda: proxy.seen["PUT"] > puts, what="the copy held in the proxy")
    await in_thread(bucket.put, "b.txt", b"theirs")
    proxy.faults.delay = 0

    def settled() -> None:
        objects = _objects(bucket)
        assert "a.txt" not in objects
        assert objects.pop("b.txt") == b"ours"
        assert list(objects.values()) == [b"theirs"]  # the conflict copy, and nothing else
        (copy,) = objects
        assert copy.startswith("b.sync-conflict-")
        assert _files(syncer.folder) == {"b.txt": b"ours", copy: b"theirs"}

    await eventually(lambda: in_thread(settled), timeout=30, what="both kept, the old key gone")


async def test_a_hard_linked_file_renamed_is_uploaded(
    syncer_factory: Any, bucket: Bucket, proxy: Any
) -> None:
    """A file another name also reaches: a write through that name is reported under it only,
    so nothing here can prove the bytes untouched. Uploaded, not copied."""
    syncer = await syncer_factory(endpoint=proxy.endpoint_pattern)
    path = syncer.folder / "shared.txt"
    path.write_bytes(b"shared")
    os.link(path, syncer.folder / "alias.txt")
    both = {"shared.txt": b"shared", "alias.txt": b"shared"}
    await _in_s3(bucket, both, "both names uploaded")
    assert (await syncer.flush()).flushed
    copies = proxy.copies

    os.rename(path, syncer.folder / "renamed.txt")

    renamed = {"renamed.txt": b"shared", "alias.txt": b"shared"}
    await _in_s3(bucket, renamed, "the new name uploaded, the old one gone")
    assert (await syncer.flush()).flushed
    assert proxy.copies == copies
    assert metric(syncer, "s3sync_renames_total", how="server_copy", result="fallback") == 1


async def test_a_rename_of_a_file_not_yet_synced_is_uploaded(
    syncer_factory: Any, bucket: Bucket, proxy: Any
) -> None:
    """Written and renamed at once (a save through a temporary name): nothing to copy from."""
    syncer = await syncer_factory(endpoint=proxy.endpoint_pattern)
    temporary = syncer.folder / ".report.txt.tmp"
    temporary.write_bytes(b"report")
    os.rename(temporary, syncer.folder / "report.txt")
    await _in_s3(bucket, {"report.txt": b"report"}, "the file under its final name")
    assert (await syncer.flush()).flushed
    assert metric(syncer, "s3sync_renames_total", how="server_copy") == 0


def _saved(folder: Path) -> set[str]:
    """The paths the sidecar's saved state has a record of."""
    with sqlite3.connect(folder / ".s3sync-sidecar" / "state.sqlite3") as connection:
        return {row[0] for row in connection.execute("SELECT rel FROM synced")}


@pytest.mark.parametrize("new_record", ["saved", "not_waited_for"])
async def test_killed_between_the_copy_and_the_delete(
    run_sidecar: Any, bucket: Bucket, proxy: Any, tmp_path: Path, new_record: str
) -> None:
    """kill -9 once the copy has landed and while the old key's delete is held in the proxy
    (the old path's record saved, the new one's saved too, or killed at once: most often
    before the state's next write): the restart deletes the old key and agrees with the new
    one, sending no file byte and making no conflict copy."""
    folder = tmp_path / "folder"
    folder.mkdir()
    port = free_port()
    env = sidecar_environment(
        bucket,
        folder,
        SYNC_ENDPOINT=proxy.endpoint_pattern,
        SYNC_POLL_INTERVAL="0.5",
        SYNC_HTTP_PORT=str(port),
    )
    body = os.urandom(2 * 1024 * 1024)
    first = run_sidecar([], env)
    await first.ready()
    (folder / "a.bin").write_bytes(body)
    await _in_s3(bucket, {"a.bin": body}, "the file uploaded")
    await _flushed(port)
    await eventually(lambda: "a.bin" in _saved(folder), what="its record saved")
    sent = proxy.request_bytes["PUT"]
    deletes = proxy.seen["DELETE"]

    proxy.faults.methods = {"DELETE"}
    proxy.faults.hang = True  # the old key's delete never reaches S3
    os.rename(folder / "a.bin", folder / "b.bin")
    await eventually(lambda: proxy.seen["DELETE"] > deletes, what="the delete held")
    assert await in_thread(bucket.exists, "b.bin")  # the copy landed before the delete
    if new_record == "saved":
        await eventually(lambda: "b.bin" in _saved(folder), what="the new record saved")
    first.kill()
    proxy.faults.hang = False

    second = run_sidecar([], env)
    await second.ready()
    await _in_s3(bucket, {"b.bin": body}, "the old key deleted after the restart")
    await _flushed(port)
    assert proxy.request_bytes["PUT"] == sent  # neither run sent the file again
    assert await in_thread(_files, folder) == {"b.bin": body}
    assert await in_thread(_objects, bucket) == {"b.bin": body}
    second.kill()
