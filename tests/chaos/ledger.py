"""Every write that completed, by content, and which contents a later operation saw and
replaced. Contents are unique per write (each carries its step number), so "present" can be
checked by content alone: a version survives as the file, or as a conflict copy, anywhere.

A version may be gone only if an operation that causally followed it replaced it: an app that
saw it (read it, in its folder) and then overwrote, truncated, appended to, deleted or moved it
out; or the S3 writer, which writes only if the object is still what it saw (If-Match). A
version replaced by anything else (a concurrent write elsewhere, a sidecar) must survive.

On a server that ignores If-Match on DELETE (Ceph RGW), the S3 writer's delete is blind for the
round trip between its HEAD and the DELETE: a version a sidecar uploaded in it is deleted
unseen, as no client can avoid there. Those deletes are recorded (`blind_deletes`), and a
version lost at that path after being written, and not the one the writer saw, is told apart
(`deleted_unseen`), not counted lost.
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass, field


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def link_digest(target: str) -> str:
    return "link:" + target


def observe(path: str) -> str | None:
    """What an app sees at `path` (never following a symlink): a content digest, or None."""
    try:
        st = os.lstat(path)
        if stat.S_ISLNK(st.st_mode):
            return link_digest(os.readlink(path))
        if stat.S_ISREG(st.st_mode):
            with open(path, "rb") as file:
                return digest(file.read())
    except OSError:
        return None
    return None


def observe_tree(path: str) -> list[str]:
    """Every content under `path` (a file, a link, or a directory walked without following)."""
    seen = observe(path)
    if seen is not None:
        return [seen]
    found: list[str] = []
    for parent, dirs, files in os.walk(path):
        for name in files + [d for d in dirs if os.path.islink(os.path.join(parent, d))]:
            content = observe(os.path.join(parent, name))
            if content is not None:
                found.append(content)
    return found


@dataclass
class Written:
    place: str
    path: str
    step: int


@dataclass
class Ledger:
    written: dict[str, Written] = field(default_factory=dict)
    replaced: dict[str, int] = field(default_factory=dict)  # content -> the step that did it
    blind_deletes: list[tuple[str, str | None, int]] = field(default_factory=list)  # path, seen

    def deleted_blind(self, path: str, seen: str | None, step: int) -> None:
        self.blind_deletes.append((path, seen, step))

    def deleted_unseen(self, content: str, written: Written) -> bool:
        """Whether a blind delete of the path came after the version, having seen another."""
        return any(
            path == written.path and step > written.step and seen != content
            for path, seen, step in self.blind_deletes
        )

    def wrote(self, content: str, place: str, path: str, step: int) -> None:
        self.written.setdefault(content, Written(place, path, step))

    def replace(self, content: str | None, step: int) -> None:
        if content is not None and content in self.written:
            self.replaced.setdefault(content, step)

    def required(self) -> dict[str, Written]:
        """The versions that must still exist somewhere."""
        return {c: w for c, w in self.written.items() if c not in self.replaced}
