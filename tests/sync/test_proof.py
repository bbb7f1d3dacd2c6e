"""Proofs: content proven by an ETag and what the bucket's ETags can prove (local/proof.py), a
local file's fingerprint, and the ctime a metadata change of ours records with it, which says
whether the bytes must be proven again (local/localfs.py)."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import stat
import zlib
from base64 import b64encode
from pathlib import Path
from typing import Any

import pytest
from support.folders import tree_at

from sidecar import checksums
from sidecar.core.model import Kind, LocalEntry, RemoteEntry, Synced
from sidecar.local.localfs import changed_by_us, entry_from_stat, local_entry
from sidecar.local.proof import EtagKnowledge, same_as_object, unproven

MiB = 1024 * 1024


def _fd(tmp_path: Path, data: bytes) -> int:
    path = tmp_path / "file"
    path.write_bytes(data)
    return os.open(path, os.O_RDONLY)


def _multipart_etag(data: bytes, part: int) -> str:
    parts = [data[i : i + part] for i in range(0, len(data), part)]
    joined = b"".join(hashlib.md5(p).digest() for p in parts)
    return f"{hashlib.md5(joined).hexdigest()}-{len(parts)}"


@pytest.mark.parametrize(
    ("etag_of", "answer"),
    [
        (lambda data: hashlib.md5(data).hexdigest(), True),
        (lambda data: hashlib.md5(data + b"!").hexdigest(), False),
        (lambda data: _multipart_etag(data, 8 * MiB), True),
        (
            lambda data: _multipart_etag(data[:-1] + bytes([data[-1] ^ 1]), 8 * MiB),
            None,
        ),  # other bytes: cannot say
        (lambda data: "not-an-md5", None),
    ],
)
def test_same_as_object(tmp_path: Path, etag_of: object, answer: bool | None) -> None:
    data = os.urandom(9 * MiB)
    fd = _fd(tmp_path, data)
    try:
        assert callable(etag_of)
        assert same_as_object(fd, len(data), etag_of(data), 8 * MiB) is answer
    finally:
        os.close(fd)


@pytest.mark.parametrize(
    ("bytes_of", "part", "answer"),
    [
        (lambda data: data, 5 * MiB, True),
        # other bytes, the part size known (we uploaded it): a clear no, never "cannot tell"
        (lambda data: data[:-1] + bytes([data[-1] ^ 1]), 5 * MiB, False),
        (lambda data: data[:-1] + bytes([data[-1] ^ 1]), 0, None),  # unknown part size: cannot tell
    ],
    ids=["same", "other-bytes-known-part-size", "other-bytes-unknown-part-size"],
)
def test_a_known_part_size_proves_a_multipart_etag_either_way(
    tmp_path: Path, bytes_of: object, part: int, answer: bool | None
) -> None:
    data = os.urandom(12 * MiB)
    etag = _multipart_etag(data, 5 * MiB)  # uploaded in 5 MiB parts: not among the guesses
    fd = _fd(tmp_path, bytes_of(data))  # type: ignore[operator]
    try:
        assert same_as_object(fd, len(data), etag, 16 * MiB, part) is answer
    finally:
        os.close(fd)


def _sha256(data: bytes) -> str:
    return b64encode(hashlib.sha256(data).digest()).decode()


def _composite(data: bytes, part: int) -> str:
    digests = [hashlib.sha256(data[i : i + part]).digest() for i in range(0, len(data), part)]
    return f"{_sha256(b''.join(digests))}-{len(digests)}"


def _crc32(data: bytes) -> str:
    return b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()


def _sha1(data: bytes) -> str:
    return b64encode(hashlib.sha1(data).digest()).decode()


def _flipped(data: bytes) -> bytes:
    return data[:-1] + bytes([data[-1] ^ 1])


KMS_ETAG = "0" * 32  # looks like an MD5; under SSE-KMS it is not one


@pytest.mark.parametrize(
    ("bytes_of", "checksum_of", "part", "md5_etags", "answer"),
    [
        # a full-object checksum tells either way, whatever the ETag is
        (lambda d: d, _sha256, 0, False, True),
        (_flipped, _sha256, 0, False, False),
        # a composite one: with the part size we uploaded it with, either way
        (lambda d: d, lambda d: _composite(d, 5 * MiB), 5 * MiB, False, True),
        (_flipped, lambda d: _composite(d, 5 * MiB), 5 * MiB, False, False),
        # guessed (ours first, then the common sizes): a yes, or "cannot tell"
        (lambda d: d, lambda d: _composite(d, 8 * MiB), 0, False, True),
        (_flipped, lambda d: _composite(d, 8 * MiB), 0, False, None),
        (lambda d: d, lambda d: _composite(d, 7 * MiB), 0, False, None),
        # another tool's CRC32 or SHA-1 (the standard library computes both)
        (lambda d: d, lambda d: "crc32:" + _crc32(d), 0, False, True),
        (_flipped, lambda d: "crc32:" + _crc32(d), 0, False, False),
        (_flipped, lambda d: "sha1:" + _sha1(d), 0, False, False),
        # no checksum, ETags known not to be MD5s: nothing can tell (the MD5 is never asked)
        (lambda d: d, lambda d: "", 0, False, None),
        (_flipped, lambda d: "", 0, False, None),
    ],
    ids=[
        "full-same",
        "full-other",
        "composite-known-same",
        "composite-known-other",
        "composite-guessed-same",
        "composite-guessed-other",
        "composite-not-guessed",
        "crc32-same",
        "crc32-other",
        "sha1-other",
        "none-kms-same",
        "none-kms-other",
    ],
)
def test_a_checksum_proves_what_an_sse_kms_etag_cannot(
    tmp_path: Path,
    bytes_of: Any,
    checksum_of: Any,
    part: int,
    md5_etags: bool,
    answer: bool | None,
) -> None:
    data = os.urandom(12 * MiB)
    fd = _fd(tmp_path, bytes_of(data))
    try:
        said = same_as_object(
            fd, len(data), KMS_ETAG, 16 * MiB, part, checksum=checksum_of(data), md5_etags=md5_etags
        )
        assert said is answer
    finally:
        os.close(fd)


@pytest.mark.parametrize(
    ("value", "kind", "etag", "stated"),
    [
        ("abc=", "", "d41d8cd98f00b204e9800998ecf8427e", "abc="),  # a single PUT's
        ("abc=-3", "COMPOSITE", "x-3", "abc=-3"),  # as AWS states a composite one
        ("abc=", "COMPOSITE", "x-3", "abc=-3"),  # moto's HEAD: the count from the ETag
        ("abc=", "", "x-3", "abc=-3"),  # no type: a multipart ETag says composite
        ("abc=", "COMPOSITE", "d41d8cd98f00b204e9800998ecf8427e", ""),  # count unknown
        ("abc=", "FULL_OBJECT", "x-3", "abc="),
        ("", "", "x-3", ""),
        ("abc=-10001", "COMPOSITE", "x-10001", ""),  # more parts than S3 allows: hostile
        ("abc=", "", "x-99999999", ""),
    ],
)
def test_a_checksum_is_stated_in_one_form(value: str, kind: str, etag: str, stated: str) -> None:
    assert checksums.stated(value, kind, etag) == stated


def test_etag_knowledge_learns_once_and_kms_is_for_good() -> None:
    learned: list[bool] = []
    etags = EtagKnowledge(on_learned=learned.append)
    etags.restore(None)
    assert etags.md5 is None
    etags.saw(None)
    etags.saw("AES256")
    assert etags.md5 is True
    etags.saw("aws:kms")
    etags.saw(None)
    assert etags.md5 is False
    assert learned == [True, False]


def test_etag_knowledge_restored_from_the_saved_state() -> None:
    etags = EtagKnowledge()
    etags.restore(False)
    etags.saw(None)
    assert etags.md5 is False


_SYNCED_FILE = LocalEntry(Kind.FILE, 10, 5_000, 0o100644, 42, ctime_ns=7_000)
_OBJECT = RemoteEntry("0" * 32, 10)


@pytest.mark.parametrize(
    ("now", "synced", "unproven_"),
    [
        (dataclasses.replace(_SYNCED_FILE, ctime_ns=9_000), Synced(_SYNCED_FILE, _OBJECT), True),
        # a chmod with the write: the mode alone would be a metadata copy onto the old bytes
        (
            dataclasses.replace(_SYNCED_FILE, ctime_ns=9_000, mode=0o100600),
            Synced(_SYNCED_FILE, _OBJECT),
            True,
        ),
        (_SYNCED_FILE, Synced(_SYNCED_FILE, _OBJECT), False),  # the ctime it was proven at
        # what a pass compares already shows the change: no read needed
        (
            dataclasses.replace(_SYNCED_FILE, ctime_ns=9_000, size=11),
            Synced(_SYNCED_FILE, _OBJECT),
            False,
        ),
        (
            dataclasses.replace(_SYNCED_FILE, ctime_ns=9_000, mtime_ns=6_000),
            Synced(_SYNCED_FILE, _OBJECT),
            False,
        ),
        (
            dataclasses.replace(_SYNCED_FILE, ctime_ns=9_000, ino=43),
            Synced(_SYNCED_FILE, _OBJECT),
            False,
        ),
        # a record saved before ctimes were: nothing to compare with
        (
            dataclasses.replace(_SYNCED_FILE, ctime_ns=9_000),
            Synced(dataclasses.replace(_SYNCED_FILE, ctime_ns=0), _OBJECT),
            False,
        ),
        # no synced object to prove against; nothing synced; not a file
        (dataclasses.replace(_SYNCED_FILE, ctime_ns=9_000), Synced(_SYNCED_FILE, None), False),
        (dataclasses.replace(_SYNCED_FILE, ctime_ns=9_000), None, False),
        (
            dataclasses.replace(_SYNCED_FILE, ctime_ns=9_000, kind=Kind.SYMLINK),
            Synced(dataclasses.replace(_SYNCED_FILE, kind=Kind.SYMLINK), _OBJECT),
            False,
        ),
    ],
)
def test_unproven(now: LocalEntry, synced: Synced | None, unproven_: bool) -> None:
    assert unproven(now, synced) is unproven_


# -- a local file's fingerprint ----------------------------------------------------------------


def test_a_local_entry_is_the_lstat_never_through_a_symlink(tmp_path: Path) -> None:
    tree = tree_at(tmp_path)
    path = tmp_path / "f"
    path.write_bytes(b"hello")
    os.chmod(path, 0o640)
    entry = local_entry(tree, "f")
    st_ = os.lstat(path)
    assert entry is not None
    assert entry == entry_from_stat(st_)
    assert (entry.kind, entry.size, entry.mode, entry.ino) == (
        Kind.FILE,
        5,
        st_.st_mode,
        st_.st_ino,
    )
    assert stat.S_IMODE(entry.mode) == 0o640
    assert entry.mtime_ns == st_.st_mtime_ns
    (tmp_path / "link").symlink_to(path)
    link = local_entry(tree, "link")
    assert link is not None and link.kind is Kind.SYMLINK
    (tmp_path / "d").mkdir()
    d = local_entry(tree, "d")
    assert d is not None and d.kind is Kind.DIR
    (tmp_path / "d" / "inner").write_bytes(b"inner")
    assert local_entry(tree, "missing") is None
    assert local_entry(tree, "f/under-a-file") is None  # ENOTDIR
    (tmp_path / "dirlink").symlink_to(tmp_path / "d")
    assert local_entry(tree, "d/inner") is not None
    assert local_entry(tree, "dirlink/inner") is None, "never reached through a symlink"
    tree.close()


# -- what a metadata change of ours records ----------------------------------------------------

NS = 1_000_000_000
_BEFORE = LocalEntry(Kind.FILE, 5, 10 * NS, 0o100644, 7, ctime_ns=100)
_AFTER = LocalEntry(Kind.FILE, 5, 20 * NS, 0o100600, 7, ctime_ns=300)
_REMOTE = RemoteEntry("0" * 32, 5)


@pytest.mark.parametrize(
    ("proven_at", "before_ctime", "recorded_ctime"),
    [
        (100, 100, 300),  # nothing touched the file since its record: the new ctime
        (50, 100, 50),  # touched since (a write nothing saw): the record's, so a restart reads
        (0, 100, 0),  # a record from before ctimes were saved stays without one
    ],
)
def test_changed_by_us_keeps_the_proven_ctime(
    proven_at: int, before_ctime: int, recorded_ctime: int
) -> None:
    synced = Synced(dataclasses.replace(_BEFORE, ctime_ns=proven_at), _REMOTE)
    before = dataclasses.replace(_BEFORE, ctime_ns=before_ctime)
    recorded = changed_by_us(before, _AFTER, synced)
    assert recorded == _AFTER
    assert recorded.ctime_ns == recorded_ctime


@pytest.mark.parametrize(
    ("size", "etag", "sizes"),
    [
        (12 * MiB, "x-3", [5 * MiB]),
        (20_000, "x-20000", []),  # one byte a part: never hashed so
        (100 * MiB, "x-20", [5 * MiB]),
        (3, "x-1", [5 * MiB]),  # one part: the whole file, whatever the size guessed
        (10**12, "x-10001", []),
    ],
)
def test_part_size_guesses_are_parts_s3_takes(size: int, etag: str, sizes: list[int]) -> None:
    from sidecar.local.proof import part_sizes

    assert part_sizes(size, etag, 5 * MiB)[: len(sizes) or None] == sizes
