"""Rows 9 and 10: renames. Row 9, a local rename (`mv` in the folder) of a synced 256 MiB file,
a 2 GiB file or a tree of 10,000 x 4 KiB files, until S3 holds the new names and not the old
ones: the daemons (s3sync-sidecar copies in S3, mobius3 uploads again) against the by-hand way
without a daemon, a server-side move (`rclone move`, `aws s3 mv`). Row 10, the same rename made
in S3 by another client (`aws s3 mv`, `--recursive` for the tree),
until the daemon's folder holds the new names and not the old ones.

Every tool talks to S3 through a relay that counts the bytes each way, headers included
(relay.py): "MiB sent" is what a tool sent to S3 for the rename, "MiB received" what it got
back. A daemon's "% of its upload" is the rename's time against the time the same daemon took
to upload that content in the same run."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from harness import (
    BUCKET,
    Ledger,
    Server,
    boto,
    find_executable,
    have,
    run_measured,
    tool_env,
    tree_names,
    wait_for,
    write_tree,
)
from relay import Relay
from rows import MIB, Bench, Column, Table
from tools import (
    MOBIUS3,
    OURSELVES,
    Running,
    _rclone_env,
    start_daemon,
    wait_until_watching,
)

RCLONE_MOVE = "rclone move"
AWS_MV = "aws s3 mv"
MOVERS = (RCLONE_MOVE, AWS_MV)


class Variant:
    """What is renamed: one file of `size` bytes, or a tree of `files` files of `size`."""

    def __init__(self, size: int, files: int = 1) -> None:
        self.size, self.files = size, files
        self.tree = files > 1
        self.label = (
            f"a tree of {files:,} x {size // 1024} KiB files"
            if self.tree
            else f"one {size // MIB:,} MiB file"
        )
        # (old, new) relative to the folder and the prefix
        self.old, self.new = (
            ("project", "project-old") if self.tree else ("big.bin", "archive/big.bin")
        )

    @property
    def timeout(self) -> float:
        """Seconds a row waits for one step of this rename."""
        return max(300, self.files / 10, self.size / MIB)

    def names(self, top: str) -> list[str]:
        return [f"{top}/{name}" for name in tree_names(self.files)] if self.tree else [top]

    def write(self, folder: Path) -> None:
        if self.tree:
            write_tree(folder / self.old, self.files, self.size)
            return
        block = os.urandom(MIB)
        with open(folder / self.old, "wb") as file:
            for index in range(self.size // MIB):
                file.write(index.to_bytes(8, "big") + block[8:])

    def in_s3(self, server: Server, prefix: str, top: str, gone: str | None) -> bool:
        """Whether S3 holds every name under `top` at its size, and nothing under `gone`. A
        server that lists is first asked for one key under `gone` (one short request), and
        lists everything only once none is left."""
        if gone is not None and server.data is None:
            page = boto(server, "s3").list_objects_v2(
                Bucket=BUCKET, Prefix=prefix + gone, MaxKeys=1
            )
            if page.get("Contents"):
                return False
        return self.holds(_sizes(server, prefix), top, gone)

    def holds(self, held: dict[str, int], top: str, gone: str | None) -> bool:
        """Whether `held` (name -> size) has every name under `top` at its size, and nothing
        under `gone`."""
        wanted = self.names(top)
        if any(held.get(name) != self.size for name in wanted):
            return False
        return gone is None or not any(name in held for name in self.names(gone))

    def in_folder(self, folder: Path, top: str, gone: str) -> bool:
        """Whether the folder holds every name under `top` at its size, and no file under
        `gone`. Its directories may stay: `aws s3 mv --recursive` leaves the directory markers
        (keys ending in "/") where they are, and a folder that shows S3 keeps them."""
        for name in self.names(top):
            try:
                if (folder / name).stat().st_size != self.size:
                    return False
            except FileNotFoundError:
                return False
        old = folder / gone
        if old.is_dir() and not old.is_symlink():
            return not any(files for _, _, files in os.walk(old))
        return not old.exists()


def _wait_in_s3(
    server: Server,
    ledger: Ledger | None,
    prefix: str,
    variant: Variant,
    top: str,
    gone: str | None,
    what: str,
) -> float:
    """When S3 came to hold every name under `top` and none under `gone`: on moto the time its
    log gives for the last change (no listing: `harness.Ledger`), elsewhere when first seen."""
    if ledger is not None:
        return ledger.wait(lambda held: variant.holds(held, top, gone), variant.timeout, what)
    # (a listing of 20,000 keys is work for the server, and the tool measured must get most of it)
    return wait_for(
        lambda: variant.in_s3(server, prefix, top, gone), variant.timeout, what, 0.1, paced=True
    )


def _sizes(server: Server, prefix: str) -> dict[str, int]:
    """Every object under `prefix`: its name below it, its size."""
    found: dict[str, int] = {}
    if server.data is not None:
        root = server.remote_dir(prefix)
        for parent, _, files in os.walk(root):
            for name in files:
                if name.endswith(".partial") or name.startswith(".rclone_temp"):
                    continue  # rclone's unfinished writes
                path = Path(parent) / name
                try:
                    found[path.relative_to(root).as_posix()] = path.stat().st_size
                except FileNotFoundError:
                    continue  # removed while walked: not held
        return found
    pages = boto(server, "s3").get_paginator("list_objects_v2")
    for page in pages.paginate(Bucket=BUCKET, Prefix=prefix):
        for item in page.get("Contents", []):
            found[item["Key"][len(prefix) :]] = int(item["Size"])
    return found


def _chosen(bench: Bench, mover: str) -> bool:
    """A mover runs where its copier does (`rclone copy`, `aws s3 sync` in `--tools`)."""
    copier = {RCLONE_MOVE: "rclone copy", AWS_MV: "aws s3 sync"}[mover]
    return mover in bench.tools or copier in bench.tools


def _flush(running: object) -> None:
    """Ours: POST /flush (every change before it is in S3). mobius3 has none: a pause."""
    port = getattr(running, "http_port", None)
    if port is None:
        time.sleep(2)
        return
    import urllib.request

    request = urllib.request.Request(f"http://127.0.0.1:{port}/flush?timeout=120", method="POST")
    with urllib.request.urlopen(request, timeout=130) as answer:
        if answer.status != 200:
            raise RuntimeError(f"flush answered {answer.status}")


def local_rename(bench: Bench, variant: Variant) -> Table:
    table = Table(
        f"Row 9: {variant.label} renamed in the folder, until S3 holds only the new names "
        f"({bench.server.name})",
        [
            Column("seconds", 2, higher_is_better=False, ratio=True),
            Column("% of its upload", 1, higher_is_better=False),
            Column("MiB sent", 2, higher_is_better=False, ratio=True),
        ],
        notes=[
            "daemons: from the rename to S3 holding every new name at its size and none of the "
            "old; movers (no daemon: what a user runs by hand): start to exit, on objects put "
            "there first; MiB sent: to S3 for the rename, headers included (relay.py)"
        ],
    )
    movers = [tool for tool in MOVERS if _chosen(bench, tool) and have(tool.split()[0])]
    for run, tool in table.turns(bench.runs, [*bench.daemons(), *movers]):
        prefix, folder = bench.fresh("rename")
        try:
            if tool in (*OURSELVES, MOBIUS3):
                seconds, upload, sent = _rename_daemon(bench, tool, prefix, folder, variant)
                figures = {"seconds": seconds, "% of its upload": 100 * seconds / upload}
            else:
                seconds, sent = _rename_mover(bench, tool, prefix, folder, variant)
                figures = {"seconds": seconds}
        except Exception as error:
            table.failed(tool, run, error, bench.say)
            continue
        finally:
            bench.clean(folder, prefix)
        table.add(tool, **figures, **{"MiB sent": sent / MIB})
        bench.say(f"  run {run + 1} {tool:15s} {seconds:8.2f} s {sent / MIB:10.2f} MiB sent")
    return table


def _rename_daemon(
    bench: Bench, tool: str, prefix: str, folder: Path, variant: Variant
) -> tuple[float, float, int]:
    """(seconds to the rename in S3, seconds of the upload before, bytes sent for the rename)"""
    server = bench.server
    with Relay(server.port) as relay, server.ledger(prefix) as ledger:
        relayed = replace(server, url=relay.url)
        log = bench.log(f"rename-{tool}")
        with start_daemon(tool, relayed, folder, prefix, log) as running:
            wait_until_watching(running, relayed, prefix)
            (folder / "archive").mkdir(exist_ok=True)
            started = time.monotonic()
            variant.write(folder)
            done = _wait_in_s3(server, ledger, prefix, variant, variant.old, None, "the upload")
            upload = done - started
            _flush(running)
            sent = relay.sent
            started = time.monotonic()
            os.rename(folder / variant.old, folder / variant.new)
            done = _wait_in_s3(
                server, ledger, prefix, variant, variant.new, variant.old, f"{tool}'s rename"
            )
            return done - started, upload, relay.sent - sent


def _seed(bench: Bench, prefix: str, variant: Variant) -> None:
    """The content at its old names in S3, put there directly (untimed)."""
    if variant.tree:
        bench.seeded(f"{prefix}{variant.old}/", variant.files, variant.size)
        return
    seeds = bench.work / "seed"
    seeds.mkdir(exist_ok=True)
    variant.write(seeds)
    path = seeds / variant.old
    try:
        boto(bench.server, "s3").upload_file(str(path), BUCKET, prefix + variant.old)
    finally:
        path.unlink()


def _rename_mover(
    bench: Bench, tool: str, prefix: str, folder: Path, variant: Variant
) -> tuple[float, int]:
    _seed(bench, prefix, variant)
    server = bench.server  # (seeding a tree restarts rclone's server)
    with Relay(server.port) as relay:
        old, new = prefix + variant.old, prefix + variant.new
        if tool == RCLONE_MOVE:
            verb = "move" if variant.tree else "moveto"
            command = [
                find_executable("rclone"),
                verb,
                f"bench:{BUCKET}/{old}",
                f"bench:{BUCKET}/{new}",
            ]
            finished = run_measured(command, _rclone_env(replace(server, url=relay.url)), 1800)
        else:
            command = [
                find_executable("aws"),
                "s3",
                "mv",
                f"s3://{BUCKET}/{old}",
                f"s3://{BUCKET}/{new}",
            ]
            command += ["--endpoint-url", relay.url, "--only-show-errors"]
            if variant.tree:
                command.append("--recursive")
            finished = run_measured(command, tool_env(), 1800)
        if not variant.in_s3(server, prefix, variant.new, variant.old):
            raise RuntimeError(f"{tool} left S3 without the rename done")
        return finished.seconds, relay.sent


def remote_rename(bench: Bench, variant: Variant) -> Table:
    table = Table(
        f"Row 10: {variant.label} renamed in S3 by another client, until the folder holds only "
        f"the new names ({bench.server.name})",
        [
            Column("seconds", 2, higher_is_better=False, ratio=True),
            Column("MiB received", 2, higher_is_better=False, ratio=True),
        ],
        notes=[
            "the other client is `aws s3 mv` (`--recursive` for the tree: a copy then a delete "
            "per key, an object over 8 MiB copied in 8 MiB parts), straight to the server; from "
            "its start to the "
            "folder holding every new name at its size and none of the old; both daemons list "
            "every 10 s; MiB received: from S3 by the daemon, headers included (relay.py)"
        ],
    )
    for run, tool in table.turns(bench.runs, bench.daemons()):
        prefix, folder = bench.fresh("remote-rename")
        try:
            seconds, received = _remote_rename_daemon(bench, tool, prefix, folder, variant)
        except Exception as error:
            table.failed(tool, run, error, bench.say)
            continue
        finally:
            bench.clean(folder, prefix)
        table.add(tool, **{"seconds": seconds, "MiB received": received / MIB})
        bench.say(
            f"  run {run + 1} {tool:15s} {seconds:8.2f} s {received / MIB:10.2f} MiB received"
        )
    return table


def _remote_rename_daemon(
    bench: Bench, tool: str, prefix: str, folder: Path, variant: Variant
) -> tuple[float, int]:
    server = bench.server
    with Relay(server.port) as relay, server.ledger(prefix) as ledger:
        relayed = replace(server, url=relay.url)
        with start_daemon(
            tool, relayed, folder, prefix, bench.log(f"remote-rename-{tool}")
        ) as running:
            wait_until_watching(running, relayed, prefix)
            (folder / "archive").mkdir(exist_ok=True)
            variant.write(folder)
            _wait_in_s3(server, ledger, prefix, variant, variant.old, None, "the upload")
            _flush(running)
            received = relay.received
            before = _our_requests(running)  # (before the move: it runs to its end)
            started = time.monotonic()
            _move_in_s3(server, prefix, variant)
            done = wait_for(
                lambda: variant.in_folder(folder, variant.new, variant.old),
                variant.timeout,
                f"{tool} to carry the rename here",
                step=0.1,
            )
            after = _our_requests(running)
            if before is not None and after is not None:
                moved = running.metric("s3sync_renames_total", how="local_move", result="ok")
                bench.say(
                    f"    {tool}: {moved:.0f} of {variant.files} files moved here, "
                    f"{after[0] - before[0]:.0f} GetObject, "
                    f"{after[1] - before[1]:.0f} listing pages"
                )
            return done - started, relay.received - received


def _our_requests(running: Running) -> tuple[float, float] | None:
    """Our GetObject and ListObjectsV2 requests so far; None for a peer (no `/metrics`)."""
    if running.http_port is None:
        return None
    return (
        running.metric("s3sync_s3_requests_total", operation="GetObject"),
        running.list_requests(),
    )


def _move_in_s3(server: Server, prefix: str, variant: Variant) -> None:
    """The other client: `aws s3 mv` itself (with `--recursive` for a tree: every key under
    the old prefix but its directory markers, which it leaves), straight to the server. It
    copies an object over 8 MiB in its own 8 MiB parts (UploadPartCopy), so the new key's ETag
    is not the old one's."""
    old, new = f"s3://{BUCKET}/{prefix}{variant.old}", f"s3://{BUCKET}/{prefix}{variant.new}"
    command = [find_executable("aws"), "s3", "mv", old, new, "--endpoint-url", server.url]
    command += ["--only-show-errors", *(["--recursive"] if variant.tree else [])]
    run_measured(command, tool_env(), 1800)


VARIANTS: dict[str, Callable[[bool], Variant]] = {
    "file": lambda quick: Variant((32 if quick else 256) * MIB),
    "big": lambda quick: Variant(2048 * MIB),
    "tree": lambda quick: Variant(4096, 500 if quick else 10_000),
}
