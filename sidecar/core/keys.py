"""Mapping between S3 keys and paths relative to the synced folder, and its safety rules (a
name that breaks one raises `UnsyncableName`, with its reason from the skip vocabulary:
skips.py).

Everything the sidecar learns from S3 is untrusted input: a key can name `../x`, an absolute
path, a name longer than the filesystem allows, or bytes that are not UTF-8. Every key goes
through `KeyMapper.rel_for_key` before it can touch the disk, and every local path goes through
`KeyMapper.key_for_rel` before it becomes a key, so the rules live in exactly one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final
from urllib.parse import unquote_to_bytes

from ..skips import SkipReason

NAME_MAX: Final = 255
PATH_MAX: Final = 4095
KEY_MAX: Final = 1024


@dataclass(frozen=True, slots=True)
class RemoteName:
    """A key translated to a relative path; `is_dir` is true for `dir/` marker keys."""

    rel: str
    is_dir: bool


class UnsyncableName(ValueError):
    """A key or path that cannot be synced, with the reason as a metric label."""

    def __init__(self, reason: SkipReason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


def probe_prefix(prefix: str, reserved_name: str) -> str:
    """Where the sidecar's own probe keys go (s3/probe.py): under the reserved name, which is
    never synced."""
    return f"{prefix}{reserved_name.strip('/')}/probe-"


class KeyMapper:
    """Translates between keys under `prefix` and relative POSIX paths under the folder."""

    def __init__(self, prefix: str, root_bytes_len: int, reserved_name: str) -> None:
        self.prefix = prefix
        self._root_len = root_bytes_len
        self._reserved = reserved_name
        self._probes = probe_prefix(prefix, reserved_name)

    def is_probe(self, key: str) -> bool:
        """A probe key of a sidecar on this prefix: never synced, and not worth a warning."""
        return key.startswith(self._probes)

    def decode_listed_key(self, raw: str, url_encoded: bool) -> str:
        """Keys are listed with `encoding-type=url` so that any byte survives XML; decode here."""
        if not url_encoded or ("%" not in raw and "+" not in raw):
            return raw  # nothing encoded in it: decoding would give it back
        # Form encoding, as S3 and botocore use it: `+` is a space, a real `+` is `%2B`.
        data = unquote_to_bytes(raw.replace("+", " "))
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as error:
            raise UnsyncableName(
                SkipReason.INVALID_UTF8, f"key is not valid UTF-8: {data!r}"
            ) from error

    def rel_for_key(self, key: str) -> RemoteName:
        """The relative path for a key; `UnsyncableName` says why it must not touch the disk."""
        if not key.startswith(self.prefix):
            raise UnsyncableName(SkipReason.OUTSIDE_PREFIX, f"key outside prefix: {key!r}")
        rel = key[len(self.prefix) :]
        is_dir = rel.endswith("/")
        if is_dir:
            rel = rel[:-1]
        self.check_rel(rel)
        return RemoteName(rel, is_dir)

    def check_rel(self, rel: str) -> None:
        """Raise `UnsyncableName` unless `rel` is a safe, normal relative path under the folder."""
        if not rel:
            raise UnsyncableName(SkipReason.UNSAFE_KEY, "empty path")
        if rel.startswith("/"):
            raise UnsyncableName(SkipReason.UNSAFE_KEY, f"absolute path: {rel!r}")
        if "\x00" in rel:
            raise UnsyncableName(SkipReason.UNSAFE_KEY, f"NUL in path: {rel!r}")
        try:
            encoded = rel.encode("utf-8")
        except UnicodeEncodeError as error:
            raise UnsyncableName(SkipReason.INVALID_UTF8, f"not valid UTF-8: {rel!r}") from error
        parts = rel.split("/")
        for part in parts:
            if part in ("", ".", ".."):
                raise UnsyncableName(SkipReason.UNSAFE_KEY, f"unsafe path segment in {rel!r}")
            # A character is at most 4 bytes in UTF-8: short names need no encoding to know.
            if len(part) * 4 > NAME_MAX and len(part.encode("utf-8")) > NAME_MAX:
                raise UnsyncableName(
                    SkipReason.NAME_TOO_LONG, f"name over {NAME_MAX} bytes: {rel!r}"
                )
        if parts[0] == self._reserved:
            raise UnsyncableName(SkipReason.RESERVED, f"reserved name: {rel!r}")
        if self._root_len + 1 + len(encoded) > PATH_MAX:
            raise UnsyncableName(SkipReason.NAME_TOO_LONG, f"path over {PATH_MAX} bytes: {rel!r}")

    def key_for_rel(self, rel: str, is_dir: bool = False) -> str:
        """The key for a relative path; raises `UnsyncableName` for names S3 cannot hold."""
        try:
            encoded = rel.encode("utf-8")
        except UnicodeEncodeError as error:
            # Linux names are bytes; Python keeps undecodable ones as lone surrogates.
            raise UnsyncableName(SkipReason.INVALID_UTF8, f"name is not UTF-8: {rel!r}") from error
        key = self.prefix + rel + ("/" if is_dir else "")
        if len(self.prefix.encode("utf-8")) + len(encoded) + is_dir > KEY_MAX:
            raise UnsyncableName(SkipReason.KEY_TOO_LONG, f"key over {KEY_MAX} bytes: {key!r}")
        return key


def parents_of(rel: str) -> list[str]:
    """Every ancestor of `rel`, nearest last: `a/b/c` gives `['a', 'a/b']`."""
    parts = rel.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts))]


def is_under(rel: str, top: str) -> bool:
    """True when `rel` is `top` itself or inside it."""
    return rel == top or rel.startswith(top + "/")
