"""Snapshots of the folders and the bucket, and the checks made once the world has settled."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sidecar.core.keys import parents_of

from .ledger import Ledger, digest, link_digest

WORK_DIR = ".s3sync-sidecar"


@dataclass(frozen=True)
class Tree:
    """What one side holds: files (content, permission bits or None if S3 does not say),
    symlinks (target) and directories (every directory, or for S3 its markers)."""

    files: dict[str, tuple[str, int | None]]
    links: dict[str, str]
    dirs: frozenset[str]

    def contents(self) -> set[str]:
        return {c for c, _ in self.files.values()} | {link_digest(t) for t in self.links.values()}


def folder_tree(root: Path) -> Tree:
    files: dict[str, tuple[str, int | None]] = {}
    links: dict[str, str] = {}
    dirs: set[str] = set()
    for parent, subdirs, names in os.walk(root):
        rel_parent = os.path.relpath(parent, root)
        if rel_parent == ".":
            rel_parent = ""
            if WORK_DIR in subdirs:
                subdirs.remove(WORK_DIR)
        for name in list(subdirs) + names:
            rel = f"{rel_parent}/{name}" if rel_parent else name
            path = os.path.join(parent, name)
            try:
                st = os.lstat(path)
                if stat.S_ISLNK(st.st_mode):
                    links[rel] = os.readlink(path)
                elif stat.S_ISDIR(st.st_mode):
                    dirs.add(rel)
                elif stat.S_ISREG(st.st_mode):
                    with open(path, "rb") as file:
                        files[rel] = (digest(file.read()), stat.S_IMODE(st.st_mode))
            except FileNotFoundError:
                continue  # gone while we looked: the next snapshot sees it settled
    return Tree(files, links, frozenset(dirs))


def bucket_tree(client: Any, bucket: str, prefix: str) -> Tree:
    files: dict[str, tuple[str, int | None]] = {}
    links: dict[str, str] = {}
    dirs: set[str] = set()
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for listed in page.get("Contents", []):
            rel = listed["Key"][len(prefix) :]
            if rel.startswith(WORK_DIR + "/"):
                continue  # never synced: a sidecar's probe key (s3/probe.py), as a folder's
            if rel.endswith("/"):
                dirs.add(rel.rstrip("/"))
                continue
            try:
                answer = client.get_object(Bucket=bucket, Key=listed["Key"])
            except client.exceptions.NoSuchKey:
                continue
            body = answer["Body"].read()
            mode_text = answer.get("Metadata", {}).get("mode")
            mode = int(mode_text) if mode_text and mode_text.isdigit() else None
            if mode is not None and stat.S_ISLNK(mode):
                links[rel] = body.decode(errors="surrogateescape")
            else:
                files[rel] = (digest(body), None if mode is None else stat.S_IMODE(mode))
    return Tree(files, links, frozenset(dirs))


def differences(folders: dict[str, Tree], bucket: Tree) -> list[str]:
    """Where the folders disagree with each other or with the bucket (empty: they agree)."""
    problems: list[str] = []
    names = sorted(folders)
    first = folders[names[0]]
    for name in names[1:]:
        other = folders[name]
        for kind, mine, theirs in (
            ("files", first.files, other.files),
            ("links", first.links, other.links),
        ):
            for rel in sorted(set(mine) | set(theirs)):
                if mine.get(rel) != theirs.get(rel):
                    problems.append(
                        f"{kind} {rel!r}: {names[0]} {mine.get(rel)} != {name} {theirs.get(rel)}"
                    )
        for rel in sorted(first.dirs ^ other.dirs):
            problems.append(f"directory {rel!r} in only one of {names[0]}, {name}")
    for rel in sorted(set(first.files) | set(bucket.files)):
        here, there = first.files.get(rel), bucket.files.get(rel)
        if here is None or there is None or here[0] != there[0]:
            problems.append(f"file {rel!r}: folder {here} != bucket {there}")
        elif there[1] is not None and there[1] != here[1]:
            problems.append(f"mode of {rel!r}: folder {here[1]:o} != bucket {there[1]:o}")
    for rel in sorted(set(first.links) | set(bucket.links)):
        if first.links.get(rel) != bucket.links.get(rel):
            problems.append(f"link {rel!r}: {first.links.get(rel)} != {bucket.links.get(rel)}")
    # A directory is in the bucket through a key below it: a file, a link, or another
    # directory's marker (`d0/e0/` alone holds `d0`, as S3's listings show it: seed 90041).
    implied = {
        p for rel in (*bucket.files, *bucket.links, *bucket.dirs) for p in parents_of(rel)
    } | bucket.dirs
    for rel in sorted(first.dirs - implied):
        problems.append(f"directory {rel!r} is not in the bucket")
    for rel in sorted(bucket.dirs - first.dirs):
        problems.append(f"marker {rel + '/'!r} has no directory")
    return problems


@dataclass
class Findings:
    lost: list[str] = field(default_factory=list)
    diverged: list[str] = field(default_factory=list)
    escaped: list[str] = field(default_factory=list)
    leftovers: list[str] = field(default_factory=list)
    conflicts: int = 0

    @property
    def ok(self) -> bool:
        return not (self.lost or self.diverged or self.escaped or self.leftovers)


def lost_versions(ledger: Ledger, trees: list[Tree]) -> tuple[list[str], list[str]]:
    """The versions lost, and apart those the S3 writer's blind delete may have taken (a server
    that ignores If-Match on DELETE: `Ledger.deleted_unseen`)."""
    present: set[str] = set()
    for tree in trees:
        present |= tree.contents()
    lost: list[str] = []
    unseen: list[str] = []
    for content, written in sorted(ledger.required().items(), key=lambda i: i[1].step):
        if content not in present:
            line = f"{written.place}:{written.path} written at step #{written.step}"
            line += f" ({content[:12]})"
            (unseen if ledger.deleted_unseen(content, written) else lost).append(line)
    return lost, unseen


def leftovers(tree: Tree) -> list[str]:
    """Working files of the sidecar that an app could see."""
    return sorted(
        rel
        for rel in (*tree.files, *tree.links, *tree.dirs)
        if ".s3sync" in rel or rel.rsplit("/", 1)[-1].startswith(".s3sync")
    )


def escapes(world: Path, ours: set[str], expected: set[str]) -> list[str]:
    """Anything in the world outside the folders (`ours`: the folders and the logs, not
    looked into) that we did not put there (`expected`)."""
    found: list[str] = []
    for parent, dirs, files in os.walk(world):
        rel_parent = os.path.relpath(parent, world)
        if rel_parent == ".":
            dirs[:] = [d for d in dirs if d not in ours]
        for name in dirs + files:
            rel = name if rel_parent == "." else f"{rel_parent}/{name}"
            if rel not in expected:
                found.append(rel)
    return sorted(found)
