"""`sidecar.proof`: content proven by an ETag, and what the bucket's ETags can prove."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from sidecar.proof import EtagKnowledge, same_as_object

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
        (lambda data: _multipart_etag(data[:-1] + b"?", 8 * MiB), None),  # other bytes: cannot say
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
