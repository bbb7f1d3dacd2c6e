"""Carrying out one step: what an app does to its folder, or another tool to S3, recorded in the
ledger when it completes (a file's close() returned, a rename returned, S3 answered 200)."""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .ledger import Ledger, digest, link_digest, observe, observe_tree
from .plan import Step


def content(step: Step, size: int, salt: str = "") -> bytes:
    """Unique bytes of about `size`: the step number makes every write's content different."""
    head = f"step {step.number}{salt}\n".encode()
    rng = random.Random(f"{step.number}{salt}")
    return head + rng.randbytes(max(0, size - len(head)))


@dataclass
class Held:
    """A file an app holds open for appending (a log): closed at `until`."""

    file: Any
    path: str
    until: float
    step: Step


@dataclass
class App:
    """An app writing into one folder. Every method is what a program does with plain system
    calls; an operation whose target is not there does nothing (or creates it)."""

    place: str
    root: Path
    outside: Path
    ledger: Ledger
    held: list[Held] = field(default_factory=list)
    placed: set[str] = field(default_factory=set)  # what we put outside the folder
    # The files each step took from their names at once (a tree deleted, moved out or
    # renamed), with when (monotonic): more than the max-delete guard's floor within one look
    # of another folder's (removals in two folders add up) may rightly trip it there.
    removals: list[tuple[float, int]] = field(default_factory=list)

    def _path(self, rel: str) -> str:
        return str(self.root / rel)

    def _parent_ready(self, rel: str) -> bool:
        """Make the parent directories like an app would; False if a file or link is in the
        way (the step is then skipped)."""
        parent = os.path.dirname(self._path(rel))
        try:
            os.makedirs(parent, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            return False
        return os.path.isdir(parent) and not os.path.islink(parent)

    def _clear_for_file(self, path: str, step: Step) -> bool:
        """A name about to hold a file: a directory there stays (the step is skipped), a link
        is removed first (as `rm` then a write would)."""
        if os.path.isdir(path) and not os.path.islink(path):
            return False
        if os.path.islink(path):
            self.ledger.replace(observe(path), step.number)
            os.unlink(path)
        return True

    def do(self, step: Step) -> bool:
        """Carry out `step`; False if the folder changed under the app (its sidecar moved
        something meanwhile) and the step failed halfway, as a real app's would."""
        try:
            getattr(self, "_" + step.op)(step, *step.args)
        except OSError:
            return False
        return True

    def _write(self, step: Step, rel: str, size: str) -> None:
        path = self._path(rel)
        if not self._parent_ready(rel) or not self._clear_for_file(path, step):
            return
        self.ledger.replace(observe(path), step.number)
        data = content(step, int(size))
        with open(path, "wb") as file:
            file.write(data)
        self.ledger.wrote(digest(data), self.place, rel, step.number)

    def _rewrite_same_size(self, step: Step, rel: str) -> None:
        """Same size, new bytes, the old mtime put back (as `rsync -t` or `tar` leave it)."""
        path = self._path(rel)
        try:
            st = os.lstat(path)
        except OSError:
            return
        if not stat.S_ISREG(st.st_mode):
            return
        self.ledger.replace(observe(path), step.number)
        data = content(step, st.st_size)[: st.st_size]
        if len(data) < st.st_size:
            data += b"\0" * (st.st_size - len(data))
        with open(path, "r+b") as file:
            file.write(data)
            file.truncate(len(data))
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)
        self.ledger.wrote(digest(data), self.place, rel, step.number)

    def _append_open(self, step: Step, rel: str, hold: str) -> None:
        path = self._path(rel)
        if not self._parent_ready(rel) or not self._clear_for_file(path, step):
            return
        file = open(path, "ab")  # noqa: SIM115 - closed by close_held
        self.ledger.replace(_read_fd(file.fileno()), step.number)
        file.write(content(step, 50, " first half"))
        file.flush()
        self.held.append(Held(file, rel, time.monotonic() + float(hold), step))

    def close_held(self, everything: bool = False) -> None:
        """Finish appends whose time has come: the second half, then close. What the app wrote
        is what its descriptor holds (even if a sidecar replaced the name meanwhile)."""
        now = time.monotonic()
        for held in [h for h in self.held if everything or h.until <= now]:
            self.held.remove(held)
            held.file.write(content(held.step, 50, " second half"))
            held.file.flush()
            written = _read_fd(held.file.fileno())
            held.file.close()
            if written is not None:
                self.ledger.wrote(written, self.place, held.path, held.step.number)

    def _truncate(self, step: Step, rel: str) -> None:
        """truncate(2) without an open: no close event, only IN_MODIFY."""
        path = self._path(rel)
        if not os.path.isfile(path) or os.path.islink(path):
            return
        before = observe(path)
        os.truncate(path, os.lstat(path).st_size // 2)
        after = observe(path)
        if after != before:
            self.ledger.replace(before, step.number)
        if after is not None:
            self.ledger.wrote(after, self.place, rel, step.number)

    def _editor_save(self, step: Step, rel: str, size: str) -> None:
        """Write a temporary file beside it, then rename it over (vim, most editors)."""
        path = self._path(rel)
        if not self._parent_ready(rel) or (os.path.isdir(path) and not os.path.islink(path)):
            return
        temp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.swp{step.number}")
        data = content(step, int(size))
        with open(temp, "wb") as file:
            file.write(data)
        self.ledger.replace(observe(path), step.number)
        os.rename(temp, path)
        self.ledger.wrote(digest(data), self.place, rel, step.number)

    def _rename(self, step: Step, source: str, target: str) -> None:
        src, dst = self._path(source), self._path(target)
        if source == target or not os.path.lexists(src) or os.path.isdir(src):
            return
        if not self._parent_ready(target) or (os.path.isdir(dst) and not os.path.islink(dst)):
            return
        self.ledger.replace(observe(dst), step.number)
        os.rename(src, dst)

    def _rename_tree(self, step: Step, source: str, target: str) -> None:
        src, dst = self._path(source), self._path(target)
        if (
            not os.path.isdir(src)
            or os.path.islink(src)
            or os.path.lexists(dst)
            or (target + "/").startswith(source + "/")
            or (source + "/").startswith(target + "/")
            or not self._parent_ready(target)
        ):
            return
        self._removing(src)
        os.rename(src, dst)

    def _move_out(self, step: Step, rel: str) -> None:
        path = self._path(rel)
        if not os.path.lexists(path):
            return
        for seen in observe_tree(path):
            self.ledger.replace(seen, step.number)
        self._removing(path)
        moved = self.outside / f"{self.place}-{step.number}"
        os.rename(path, moved)
        world = self.outside.parent
        self.placed.add(os.path.relpath(moved, world))
        for parent, dirs, files in os.walk(moved):
            for name in dirs + files:
                self.placed.add(os.path.relpath(os.path.join(parent, name), world))

    def _move_in(self, step: Step, rel: str, size: str) -> None:
        path = self._path(rel)
        if not self._parent_ready(rel) or not self._clear_for_file(path, step):
            return
        staged = self.outside / f"incoming-{self.place}-{step.number}"
        data = content(step, int(size))
        self.placed.add(os.path.relpath(staged, self.outside.parent))  # if the rename fails
        staged.write_bytes(data)
        self.ledger.replace(observe(path), step.number)
        os.rename(staged, path)
        self.ledger.wrote(digest(data), self.place, rel, step.number)

    def _delete(self, step: Step, rel: str) -> None:
        path = self._path(rel)
        if not os.path.lexists(path) or (os.path.isdir(path) and not os.path.islink(path)):
            return
        self.ledger.replace(observe(path), step.number)
        os.unlink(path)

    def _delete_tree(self, step: Step, rel: str) -> None:
        path = self._path(rel)
        if not os.path.isdir(path) or os.path.islink(path):
            return
        for seen in observe_tree(path):
            self.ledger.replace(seen, step.number)
        self._removing(path)
        shutil.rmtree(path, ignore_errors=True)

    def _removing(self, path: str) -> None:
        """`path` is about to leave its name: count the files and links it takes along."""
        if not os.path.isdir(path) or os.path.islink(path):
            return
        count = sum(len(files) for _, _, files in os.walk(path))
        if count:
            self.removals.append((time.monotonic(), count))

    def _chmod(self, step: Step, rel: str, mode: str) -> None:
        path = self._path(rel)
        if os.path.isfile(path) and not os.path.islink(path):
            os.chmod(path, int(mode, 8))

    def _touch(self, step: Step, rel: str) -> None:
        path = self._path(rel)
        if os.path.isfile(path) and not os.path.islink(path):
            os.utime(path)

    def _mkdir(self, step: Step, rel: str) -> None:
        if not os.path.lexists(self._path(rel)) and self._parent_ready(rel):
            os.mkdir(self._path(rel))

    def _rmdir(self, step: Step, rel: str) -> None:
        with contextlib.suppress(OSError):  # not empty, not there, or not a directory
            os.rmdir(self._path(rel))

    def _symlink(self, step: Step, rel: str, target: str) -> None:
        path = self._path(rel)
        if not self._parent_ready(rel) or (os.path.isdir(path) and not os.path.islink(path)):
            return
        self.ledger.replace(observe(path), step.number)
        if os.path.lexists(path):
            os.unlink(path)
        os.symlink(target, path)
        self.ledger.wrote(link_digest(target), self.place, rel, step.number)


def _read_fd(fd: int) -> str | None:
    """The digest of what an open file holds (through its descriptor, whatever its name is now)."""
    chunks: list[bytes] = []
    offset = 0
    while True:
        chunk = os.pread(fd, 1 << 20, offset)
        if not chunk:
            break
        chunks.append(chunk)
        offset += len(chunk)
    return digest(b"".join(chunks))


class S3Writer:
    """Another tool writing to the same prefix, directly to S3 (no proxy). It writes only over
    what it saw (If-Match, If-None-Match), as a careful tool does; a 412 means someone wrote
    first, and the step does nothing. `bare_etags`: If-Match names the ETag without its quotes,
    the only form Ceph RGW matches on PUT (quoted, every overwrite would be refused)."""

    def __init__(
        self, client: Any, bucket: str, prefix: str, ledger: Ledger, *, bare_etags: bool = False
    ) -> None:
        self._client = client
        self._bucket = bucket
        self._prefix = prefix
        self._ledger = ledger
        self._bare = bare_etags

    def _if_match(self, etag: str) -> str:
        return etag.strip('"') if self._bare else etag

    def _current(self, key: str) -> tuple[str | None, str | None]:
        """(ETag, content digest) of the object now, or (None, None)."""
        try:
            answer = self._client.get_object(Bucket=self._bucket, Key=key)
        except self._client.exceptions.NoSuchKey:
            return None, None
        body = answer["Body"].read()
        mode = answer.get("Metadata", {}).get("mode")
        if mode is not None and mode.isdigit() and stat.S_ISLNK(int(mode)):
            return answer["ETag"], link_digest(body.decode(errors="surrogateescape"))
        return answer["ETag"], digest(body)

    def do(self, step: Step) -> None:
        from botocore.exceptions import ClientError

        try:
            getattr(self, "_" + step.op)(step, *step.args)
        except ClientError as error:
            # Someone wrote first (412), or deleted the key meanwhile: the step did nothing.
            if error.response["Error"]["Code"] not in (
                "PreconditionFailed",
                "412",
                "NoSuchKey",
                "404",
            ):
                raise

    def _put(self, step: Step, rel: str, size: str, meta: str) -> None:
        key = self._prefix + rel
        etag, seen = self._current(key)
        data = content(step, int(size), " s3")
        metadata = {}
        if meta == "meta":
            metadata = {"mode": str(stat.S_IFREG | 0o644), "mtime": f"{time.time():.3f}"}
        condition = {"IfMatch": self._if_match(etag)} if etag is not None else {"IfNoneMatch": "*"}
        self._client.put_object(
            Bucket=self._bucket, Key=key, Body=data, Metadata=metadata, **condition
        )
        self._ledger.replace(seen, step.number)
        self._ledger.wrote(digest(data), "s3", rel, step.number)

    def _delete(self, step: Step, rel: str) -> None:
        key = self._prefix + rel
        etag, seen = self._current(key)
        if etag is None:
            return
        if self._delete_seen(step, rel, etag, seen):
            self._ledger.replace(seen, step.number)

    def _delete_seen(self, step: Step, rel: str, etag: str, seen: str | None) -> bool:
        """Delete the key at `rel` only if it is still the version `etag` (holding `seen`).
        Ceph RGW ignores If-Match on DELETE: as the sidecar does there, a HEAD right before,
        which narrows the window to one round trip (a version written in it is deleted
        unseen: README, Tested S3 servers)."""
        key = self._prefix + rel
        if self._bare and self._client.head_object(Bucket=self._bucket, Key=key)["ETag"] != etag:
            return False
        self._client.delete_object(Bucket=self._bucket, Key=key, IfMatch=self._if_match(etag))
        if self._bare:
            self._ledger.deleted_blind(rel, seen, step.number)
        return True

    def _move(self, step: Step, source: str, target: str) -> None:
        """`aws s3 mv` of one key, as a careful tool does it: a copy to the new key only if
        the old one is still what it saw and the new one holds nothing, then the old key
        deleted only if it is still that version."""
        if source != target:
            self._move_key(step, source, target)

    def _move_prefix(self, step: Step, source: str, target: str) -> None:
        """`aws s3 mv --recursive` of a directory's keys (its marker included), one by one."""
        if target == source or target.startswith(source + "/"):
            return
        old = self._prefix + source + "/"
        listing = self._client.list_objects_v2(Bucket=self._bucket, Prefix=old)
        for found in listing.get("Contents", []):
            rest = found["Key"][len(old) :]
            self._move_key(step, f"{source}/{rest}", f"{target}/{rest}")

    def _move_key(self, step: Step, source: str, target: str) -> None:
        from botocore.exceptions import ClientError

        old, new = self._prefix + source, self._prefix + target
        etag, seen = self._current(old)
        if etag is None:
            return
        # Ceph RGW ignores both conditions of a copy: a HEAD of each right before.
        if self._bare and (self._exists(new) or self._etag(old) != etag):
            return
        try:
            self._client.copy_object(
                Bucket=self._bucket,
                Key=new,
                CopySource={"Bucket": self._bucket, "Key": old},
                CopySourceIfMatch=self._if_match(etag),
                IfNoneMatch="*",
                MetadataDirective="COPY",
            )
        except ClientError as error:
            if error.response["Error"]["Code"] in ("PreconditionFailed", "412"):
                return  # changed, or the new key taken: nothing moved
            raise
        self._delete_seen(step, source, etag, seen)  # (its bytes live on at the new key)

    def _exists(self, key: str) -> bool:
        return self._etag(key) is not None

    def _etag(self, key: str) -> str | None:
        from botocore.exceptions import ClientError

        try:
            return str(self._client.head_object(Bucket=self._bucket, Key=key)["ETag"])
        except ClientError:
            return None

    def _copy_metadata(self, step: Step, rel: str, mode: str) -> None:
        """A chmod in S3: the same bytes copied onto themselves with new metadata. Listings
        give Last-Modified to the second, so a careful tool copies in a later second than the
        version it changes (or no one listing the bucket can see it: README, Limits)."""
        key = self._prefix + rel
        etag, seen = self._current(key)
        if etag is None or (seen or "").startswith("link:"):
            return
        written = self._client.head_object(Bucket=self._bucket, Key=key)["LastModified"]
        # A sidecar may write between that HEAD and the copy (moto ignores
        # CopySourceIfMatch): copying once more after the copy's own second has turned puts
        # the change in a later second than anything written before the first copy.
        for _ in range(2):
            while time.time() < written.timestamp() + 1:
                time.sleep(0.05)
            copied = self._client.copy_object(
                Bucket=self._bucket,
                Key=key,
                CopySource={"Bucket": self._bucket, "Key": key},
                MetadataDirective="REPLACE",
                Metadata={
                    "mode": str(stat.S_IFREG | int(mode, 8)),
                    "mtime": f"{time.time():.3f}",
                },
            )
            written = copied["CopyObjectResult"]["LastModified"]
