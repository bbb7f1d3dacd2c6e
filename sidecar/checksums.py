"""S3's additional checksums: the proof of an object's bytes on every bucket, where an ETag is
not an MD5 (SSE-KMS, SSE-C) or is a multipart one.

Every upload of ours sends a SHA-256 one (`x-amz-checksum-sha256`, checked by S3 on arrival);
S3 gives an object's back on a GET or HEAD that asks (`x-amz-checksum-mode: ENABLED`). A single
PUT's value is the base64 digest of the bytes (`full`); a COMPOSITE one (a multipart upload's)
is the base64 digest of the parts' raw digests joined, then `-<parts>` (`composite`), so proving
a file against it needs the part size (recorded for our own uploads; guessed otherwise,
proof.py). Other tools' objects carry other algorithms; those the standard library computes are
read too (SHA-1, CRC32: the AWS SDKs' default since 2025, full-object for their multipart
uploads), and kept as `<algorithm>:<value>` (a SHA-256 one bare). CRC32C and CRC64NVME (S3's own
default) are not: the standard library has neither.

Standard library only (hashlib, zlib, base64), not for security (a FIPS-mode OpenSSL has
SHA-256). CPU per MiB on this machine: SHA-256 0.66 ms (SHA extensions), SHA-1 0.6, CRC32 0.3,
MD5 1.6.
"""

from __future__ import annotations

import hashlib
import os
import zlib
from base64 import b64encode
from collections.abc import Callable, Iterable, Mapping
from typing import Protocol

ALGORITHM = "SHA256"  # x-amz-sdk-checksum-algorithm, x-amz-checksum-algorithm
HEADER = "x-amz-checksum-sha256"
MODE = {"x-amz-checksum-mode": "ENABLED"}  # asked for on every GET and HEAD
READ = 1024 * 1024
MAX_PARTS = 10_000  # S3's most parts in one upload


class Hasher(Protocol):
    def update(self, data: bytes | memoryview, /) -> None: ...
    def digest(self) -> bytes: ...


class _Crc32:
    """zlib's CRC32 as a hasher: S3 states it as the 4 bytes, big-endian."""

    def __init__(self) -> None:
        self._value = 0

    def update(self, data: bytes | memoryview, /) -> None:
        self._value = zlib.crc32(data, self._value)

    def digest(self) -> bytes:
        return self._value.to_bytes(4, "big")


# The algorithms read back, in the order preferred when an answer states several.
HASHERS: dict[str, Callable[[], Hasher]] = {
    "sha256": hashlib.sha256,
    "sha1": lambda: hashlib.sha1(usedforsecurity=False),
    "crc32": _Crc32,
}


def encoded(digest: bytes) -> str:
    return b64encode(digest).decode("ascii")


def full(data: bytes) -> str:
    """The SHA-256 checksum of a single PUT of `data`."""
    return encoded(hashlib.sha256(data).digest())


def split(checksum: str) -> tuple[str, str]:
    """(algorithm, value) of a kept checksum."""
    name, colon, value = checksum.partition(":")
    if colon and name in HASHERS:
        return name, value
    return "sha256", checksum


def joined(algorithm: str, value: str) -> str:
    return value if algorithm == "sha256" else f"{algorithm}:{value}"


def composite(part_digests: Iterable[bytes], algorithm: str = "sha256") -> str:
    """A COMPOSITE checksum from its parts' raw digests, in part order."""
    digests = list(part_digests)
    whole = HASHERS[algorithm]()
    whole.update(b"".join(digests))
    return joined(algorithm, f"{encoded(whole.digest())}-{len(digests)}")


def parts(checksum: str) -> int:
    """How many parts a composite checksum was made of; 0 for a full-object one."""
    head, dash, count = split(checksum)[1].rpartition("-")
    return int(count) if dash and head and count.isdigit() else 0


def stated(value: str, kind: str, etag: str) -> str:
    """A checksum value as an answer states it, in one form: a composite one always with its
    `-<parts>`. Some stores (moto's HEAD) give a composite value without the count: it is then
    known from `x-amz-checksum-type: COMPOSITE`, or from a multipart ETag (`<md5>-<parts>`: the
    same count) unless the type says FULL_OBJECT; "" when the count cannot be known, or is more
    than S3 allows (a hostile answer)."""
    if not value:
        return value
    if parts(value):
        return value if parts(value) <= MAX_PARTS else ""
    count = parts(etag)
    if count > MAX_PARTS:  # no S3 upload has more parts: nothing to prove by
        return ""
    if kind.upper() == "COMPOSITE" or (count and kind.upper() != "FULL_OBJECT"):
        return f"{value}-{count}" if count else ""
    return value


def from_headers(headers: Mapping[str, str], etag: str) -> str:
    """The checksum an answer states, of the first algorithm (`HASHERS`) it states; ""."""
    kind = headers.get("x-amz-checksum-type", "")
    for algorithm in HASHERS:
        value = headers.get(f"x-amz-checksum-{algorithm}")
        if value:
            value = stated(value, kind, etag)
            return joined(algorithm, value) if value else ""
    return ""


def part_digest(fd: int, offset: int, length: int) -> bytes:
    """The raw SHA-256 of `length` bytes at `offset` (a part, before it is sent). Blocking.
    Short (the file shrank): the digest of what is there, which S3 will refuse."""
    sha = hashlib.sha256()
    end = offset + length
    while offset < end:
        chunk = os.pread(fd, min(READ, end - offset), offset)
        if not chunk:
            break
        sha.update(chunk)
        offset += len(chunk)
    return sha.digest()


def of_file(fd: int, part_size: int = 0, algorithm: str = "sha256") -> str:
    """The checksum (in the kept form) S3 would hold for the open file `fd` uploaded whole
    (`part_size` 0) or in parts of `part_size`. Blocking: run it in an executor."""
    stream: Full | Composite = (
        Full(algorithm) if part_size <= 0 else Composite(part_size, algorithm)
    )
    offset = 0
    while chunk := os.pread(fd, READ, offset):
        stream.update(chunk)
        offset += len(chunk)
    return stream.value()


class Full:
    """A full-object checksum computed as bytes pass."""

    def __init__(self, algorithm: str = "sha256") -> None:
        self._algorithm = algorithm
        self._hasher = HASHERS[algorithm]()

    def update(self, data: bytes | memoryview) -> None:
        self._hasher.update(data)

    def value(self) -> str:
        return joined(self._algorithm, encoded(self._hasher.digest()))


class Composite:
    """A composite checksum computed as bytes pass, cut into parts of `part_size`."""

    def __init__(self, part_size: int, algorithm: str = "sha256") -> None:
        self._algorithm = algorithm
        self._part_size = part_size
        self._part = HASHERS[algorithm]()
        self._left = part_size  # bytes until the current part is whole
        self._digests: list[bytes] = []

    def update(self, data: bytes | memoryview) -> None:
        view = memoryview(data)
        while view:
            take = view[: self._left]
            self._part.update(take)
            self._left -= len(take)
            view = view[len(take) :]
            if self._left == 0:
                self._digests.append(self._part.digest())
                self._part = HASHERS[self._algorithm]()
                self._left = self._part_size

    def value(self) -> str:
        digests = list(self._digests)
        if self._left != self._part_size or not digests:  # a last, shorter part
            digests.append(self._part.digest())
        return composite(digests, self._algorithm)


__all__ = [
    "ALGORITHM",
    "HASHERS",
    "HEADER",
    "MODE",
    "Composite",
    "Full",
    "composite",
    "encoded",
    "from_headers",
    "full",
    "joined",
    "of_file",
    "part_digest",
    "parts",
    "split",
    "stated",
]
