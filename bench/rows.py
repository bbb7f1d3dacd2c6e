"""The benchmark's rows. Each runs every tool on fresh folders and prefixes, alternating tools
within each run (A B C A B C ...) so that drift in a shared machine hits all alike, and returns
a `Table` of min / median / max with the ratios of medians against each peer.

Units of work are counted the same way for every tool: files/s and CPU-ms per file (row 1),
MiB/s, CPU-ms per MiB and peak RSS (row 2), seconds to restored and CPU-ms per file (row 3),
close-to-visible latency (row 4), CPU-seconds per minute and RSS when idle (row 5), and
remote-change-to-local-file latency (row 6). Row 7 counts our LIST requests when idle; row 8
times an SQLite snapshot (seconds and CPU) beside a plain read of the same file.
"""

from __future__ import annotations

import os
import random
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import limit
from harness import (
    BUCKET,
    Arrivals,
    Samples,
    Server,
    as_tool,
    boto,
    cpu_seconds,
    memory_kib,
    percentile,
    start_rclone,
    tree_names,
    wait_for,
    write_tree,
)
from tools import (
    COPIERS,
    MOBIUS3,
    OURS,
    OURSELVES,
    Running,
    available,
    copy,
    start_daemon,
    wait_until_watching,
)

LIMIT = "server limit"
T = TypeVar("T")
MIB = 1024 * 1024


@dataclass
class Column:
    title: str
    digits: int = 0
    higher_is_better: bool = True
    ratio: bool = False  # print ours / peer (or peer / ours when lower is better)


@dataclass
class Table:
    """One row's figures: tool -> column -> samples."""

    title: str
    columns: list[Column]
    notes: list[str] = field(default_factory=list)
    samples: dict[str, dict[str, Samples]] = field(default_factory=dict)
    gave_up: set[str] = field(default_factory=set)

    def add(self, tool: str, **values: float) -> None:
        row = self.samples.setdefault(tool, {})
        for name, value in values.items():
            row.setdefault(name, Samples()).add(value)

    def fail(self, tool: str, why: str) -> None:
        self.notes.append(f"{tool}: {why}")
        self.gave_up.add(tool)

    def turns(
        self, runs: int, items: Sequence[T], name: Callable[[T], str] = str
    ) -> Iterator[tuple[int, T]]:
        """Every item in every run, in turn (A B C A B C ...: drift in a shared machine hits all
        alike), but no more of an item once it failed in this row."""
        for run in range(runs):
            for item in items:
                if name(item) not in self.gave_up:
                    yield run, item

    def failed(self, tool: str, run: int, error: Exception, say: Callable[[str], None]) -> None:
        """A tool's run failed: said, noted under the table, and not tried again in this row."""
        self.fail(tool, f"run {run + 1} failed: {error}")
        say(f"  {tool}: failed: {error}")

    def add_delays(self, tool: str, delays: list[float]) -> tuple[float, float]:
        """Latency samples of one run (ms): its p50, p99 and max; returns (p50, p99)."""
        p50, p99 = percentile(delays, 0.5), percentile(delays, 0.99)
        self.add(tool, **{"p50 ms": p50, "p99 ms": p99, "max ms": max(delays)})
        return p50, p99

    def median(self, tool: str, column: str) -> float:
        return self.samples.get(tool, {}).get(column, Samples()).median

    def markdown(self) -> str:
        head = ["tool"] + [f"{column.title} (min / median / max)" for column in self.columns]
        lines = [f"#### {self.title}", "", "| " + " | ".join(head) + " |"]
        lines.append("|" + "---|" * len(head))
        for tool, row in self.samples.items():
            cells = [tool]
            for column in self.columns:
                samples = row.get(column.title)
                cells.append(samples.spread(column.digits) if samples else "-")
            lines.append("| " + " | ".join(cells) + " |")
        ratios = self._ratios()
        if ratios:
            lines += ["", *ratios]
        if self.notes:
            lines += [""] + [f"- {note}" for note in self.notes]
        return "\n".join(lines) + "\n"

    def _ratios(self) -> list[str]:
        out = []
        for column in self.columns:
            if not column.ratio or OURS not in self.samples:
                continue
            ours = self.median(OURS, column.title)
            parts = []
            for tool in self.samples:
                if tool == OURS:
                    continue
                theirs = self.median(tool, column.title)
                if not (theirs == theirs and ours == ours) or not theirs or not ours:
                    continue
                if tool == LIMIT:
                    share = ours / theirs if column.higher_is_better else theirs / ours
                    parts.append(f"{share:.0%} of the server limit")
                else:
                    times = ours / theirs if column.higher_is_better else theirs / ours
                    parts.append(f"{times:.2f}x {tool}")
            if parts:
                out.append(f"- {column.title}, ours against: " + ", ".join(parts))
        return out


@dataclass
class Bench:
    """What the rows share: the servers, a scratch folder, the runs and where logs go."""

    work: Path
    logs: Path
    runs: int
    say: Callable[[str], None]
    server: Server  # rows 1-5 and 7: rclone serve s3, or moto (`run.py --server`); else None
    moto: Server | None
    tools: Sequence[str]
    counter: int = 0

    def fresh(self, what: str) -> tuple[str, Path]:
        """A new prefix and a new folder for one tool's run."""
        self.counter += 1
        name = f"{what}-{self.counter:04d}"
        return f"{name}/", self.work / "folders" / name

    def log(self, name: str) -> Path:
        self.logs.mkdir(parents=True, exist_ok=True)
        return self.logs / f"{name}.log"

    def daemons(self) -> list[str]:
        return [tool for tool in (*OURSELVES, MOBIUS3) if tool in self.tools and available(tool)]

    def copiers(self) -> list[str]:
        return [tool for tool in COPIERS if tool in self.tools and available(tool)]

    def seeded(self, prefix: str, files: int, size: int) -> list[str]:
        """`files` objects of `size` bytes under `prefix` (d0000/f0000000...); their keys.
        On rclone they are written straight to the server's disk (seconds for 100,000 objects,
        where PUTs would take minutes), then the server restarted on the same port so that its
        listings show them; on moto they are PUT by the server limit's bare client. Then they
        are listed once, untimed (`limit.list_all`: rclone hashes each object the first time it
        lists it)."""
        server = self.server
        keys = [prefix + name for name in tree_names(files)]
        if server.data is not None:
            write_tree(server.remote_dir(prefix), files, size)
            server.stop()
            self.server = server = start_rclone(self.work, server.port)
        else:
            limit.requests("PUT", server.url, keys, os.urandom(size), 32)
        listed = limit.list_all(server.url, prefix)
        if listed != files:
            raise RuntimeError(f"the server lists {listed} of the {files} objects seeded")
        return keys

    def clean(self, folder: Path | None = None, prefix: str | None = None) -> None:
        """A run's folder and, given its prefix, its objects on the server."""
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
        if prefix is not None:
            self.server.clear(prefix)


def _label(variant: tuple[str, object] | tuple[str, object, object]) -> str:
    return variant[0]


def _local_files(folder: Path, size: int | None = None) -> int:
    """Regular files in a folder, our hidden working folder and sentinels not counted."""
    total = 0
    for directory, subdirectories, files in os.walk(folder):
        subdirectories[:] = [name for name in subdirectories if not name.startswith(".")]
        for name in files:
            if name.startswith(("sentinel-", ".")):
                continue
            if size is None or os.path.getsize(os.path.join(directory, name)) == size:
                total += 1
    return total


# -- row 1: a burst of small files ---------------------------------------------------------------


def burst(bench: Bench, files: int, size: int = 4096) -> Table:
    table = Table(
        f"Row 1: burst of {files:,} x {size // 1024} KiB files to the bucket ({bench.server.name})",
        [
            Column("files/s", ratio=True),
            Column("CPU-ms per file", 2, higher_is_better=False, ratio=True),
        ],
        notes=[
            "daemons: first write to the last object stored on the server; copies: start to exit "
            "(files written before); server limit: bare aiohttp PUTs, 32 at a time "
            "(our upload concurrency), CPU of the client"
        ],
    )
    payload = os.urandom(size)
    for run, tool in table.turns(bench.runs, [*bench.daemons(), *bench.copiers(), LIMIT]):
        prefix, folder = bench.fresh(f"burst{files}")
        try:
            if tool == LIMIT:
                keys = [f"{prefix}f{index:06d}" for index in range(files)]
                seconds, cpu = limit.requests("PUT", bench.server.url, keys, payload, 32)
            elif tool in (*OURSELVES, MOBIUS3):
                seconds, cpu = _burst_daemon(bench, tool, prefix, folder, files, payload)
            else:
                folder.mkdir(parents=True)
                for index in range(files):
                    (folder / f"f{index:06d}").write_bytes(payload)
                finished = copy(tool, bench.server, str(folder), f"s3:{prefix}")
                seconds, cpu = finished.seconds, finished.cpu
                found = bench.server.count_named(prefix, "f")
                if found != files:
                    raise RuntimeError(f"{found} of {files} objects in the bucket")
        except Exception as error:
            table.failed(tool, run, error, bench.say)
            continue
        finally:
            bench.clean(folder, prefix)
        table.add(tool, **{"files/s": files / seconds, "CPU-ms per file": cpu / files * 1000})
        bench.say(
            f"  run {run + 1} {tool:15s} {files / seconds:8.0f} files/s "
            f"{cpu / files * 1000:6.2f} CPU-ms/file"
        )
    return table


def _burst_daemon(
    bench: Bench, tool: str, prefix: str, folder: Path, files: int, payload: bytes
) -> tuple[float, float]:
    with (
        bench.server.arrivals(prefix) as arrivals,
        start_daemon(tool, bench.server, folder, prefix, bench.log(f"burst-{tool}")) as running,
    ):
        wait_until_watching(running, bench.server, prefix)
        cpu = cpu_seconds(running.pid)
        started = time.monotonic()
        with as_tool():  # the app's writes: with --pin, on the task's core, beside the tool
            for index in range(files):
                with open(folder / f"f{index:06d}", "wb") as file:
                    file.write(payload)
        arrivals.wait(
            lambda seen: sum(1 for name in seen if name.startswith("f")) >= files,
            max(120, files / 20),
            f"{tool} to upload {files} files",
        )
        last = max(when for name, when in arrivals.seen.items() if name.startswith("f"))
        time.sleep(0.3)  # what the tool does just after the last upload is its work too
        cpu = cpu_seconds(running.pid) - cpu
    return last - started, cpu


# -- row 2: big files ----------------------------------------------------------------------------


def big_file(bench: Bench, size: int) -> Table:
    mib = size / MIB
    table = Table(
        f"Row 2: one {mib:,.0f} MiB file, close to complete ({bench.server.name})",
        [
            Column("MiB/s", 1, ratio=True),
            Column("CPU-ms per MiB", 2, higher_is_better=False, ratio=True),
            Column("peak RSS MiB", 0, higher_is_better=False),
        ],
        notes=["daemons: close() to the object complete on the server; copies: start to exit"],
    )
    block = os.urandom(16 * MIB)
    for run, tool in table.turns(bench.runs, [*bench.daemons(), *bench.copiers()]):
        prefix, folder = bench.fresh(f"big{mib:.0f}")
        try:
            if tool in (*OURSELVES, MOBIUS3):
                seconds, cpu, peak = _big_daemon(bench, tool, prefix, folder, size, block)
            else:
                folder.mkdir(parents=True)
                _write_big(folder / "big", size, block, run)
                finished = copy(tool, bench.server, str(folder), f"s3:{prefix}")
                seconds, cpu, peak = finished.seconds, finished.cpu, finished.peak_kib
                if bench.server.object_size(f"{prefix}big") != size:
                    raise RuntimeError("the object is not whole")
        except Exception as error:
            table.failed(tool, run, error, bench.say)
            continue
        finally:
            bench.clean(folder, prefix)
        table.add(
            tool,
            **{
                "MiB/s": mib / seconds,
                "CPU-ms per MiB": cpu / mib * 1000,
                "peak RSS MiB": peak / 1024,
            },
        )
        bench.say(
            f"  run {run + 1} {tool:15s} {mib / seconds:8.1f} MiB/s "
            f"{cpu / mib * 1000:6.2f} CPU-ms/MiB, peak RSS {peak / 1024:.0f} MiB"
        )
    return table


def _write_big(path: Path, size: int, block: bytes, salt: int) -> None:
    with open(path, "wb") as file:
        written = 0
        while written < size:
            chunk = block[: min(len(block), size - written)]
            file.write(salt.to_bytes(8, "big") + written.to_bytes(8, "big") + chunk[16:])
            written += len(chunk)


def _big_daemon(
    bench: Bench, tool: str, prefix: str, folder: Path, size: int, block: bytes
) -> tuple[float, float, int]:
    with (
        bench.server.arrivals(prefix) as arrivals,
        start_daemon(tool, bench.server, folder, prefix, bench.log(f"big-{tool}")) as running,
    ):
        wait_until_watching(running, bench.server, prefix)
        scratch = folder.parent / f"{folder.name}.big"
        _write_big(scratch, size, block, 0)  # written beside, then copied in: the copy's
        cpu = cpu_seconds(running.pid)  # close is the start
        with open(scratch, "rb") as source, open(folder / "big", "wb") as target:
            shutil.copyfileobj(source, target, 16 * MIB)
        started = time.monotonic()
        scratch.unlink()
        arrivals.wait(lambda seen: "big" in seen, 1800, f"{tool} to upload the file")
        done = arrivals.seen["big"]
        wait_for(lambda: bench.server.object_size(f"{prefix}big") == size, 30, "the whole object")
        cpu = cpu_seconds(running.pid) - cpu
        _, peak = memory_kib(running.pid)
    return done - started, cpu, peak


# -- row 3: restore at start ---------------------------------------------------------------------


def restore(bench: Bench, files: int, size: int) -> Table:
    table = Table(
        f"Row 3: restore of {files:,} x {_size(size)} objects at start ({bench.server.name})",
        [
            Column("seconds", 1, higher_is_better=False, ratio=True),
            Column("files/s", ratio=True),
            Column("CPU-ms per file", 2, higher_is_better=False, ratio=True),
        ],
        notes=[
            "ours: start to /readyz 200; mobius3: start to every file in the folder; copies: "
            "start to exit; server limit: bare aiohttp GETs, 16 at a time (our download "
            "concurrency), bodies read and dropped"
        ],
    )
    source = f"restore-{files}x{size}/"
    keys = bench.seeded(source, files, size)
    try:
        for run, tool in table.turns(bench.runs, [*bench.daemons(), *bench.copiers(), LIMIT]):
            folder = bench.work / "folders" / f"restore-{tool.replace(' ', '-')}-{run}"
            try:
                if tool == LIMIT:
                    seconds, cpu = limit.requests("GET", bench.server.url, keys, b"", 16)
                elif tool in (*OURSELVES, MOBIUS3):
                    seconds, cpu = _restore_daemon(bench, tool, source, folder, files, size)
                else:
                    folder.mkdir(parents=True)
                    finished = copy(tool, bench.server, f"s3:{source}", str(folder))
                    seconds, cpu = finished.seconds, finished.cpu
                    found = _local_files(folder, size)
                    if found != files:
                        raise RuntimeError(f"{found} of {files} files restored")
            except Exception as error:
                table.failed(tool, run, error, bench.say)
                continue
            finally:
                bench.clean(folder)
            table.add(
                tool,
                **{
                    "seconds": seconds,
                    "files/s": files / seconds,
                    "CPU-ms per file": cpu / files * 1000,
                },
            )
            bench.say(
                f"  run {run + 1} {tool:15s} {seconds:7.2f} s {files / seconds:7.0f} files/s "
                f"{cpu / files * 1000:6.2f} CPU-ms/file"
            )
    finally:
        bench.clean(prefix=source)
    return table


def _size(size: int) -> str:
    return f"{size // MIB} MiB" if size >= MIB else f"{size // 1024} KiB"


def _restore_daemon(
    bench: Bench, tool: str, prefix: str, folder: Path, files: int, size: int
) -> tuple[float, float]:
    started = time.monotonic()
    with start_daemon(tool, bench.server, folder, prefix, bench.log(f"restore-{tool}")) as running:
        if tool in OURSELVES:
            done = wait_for(running.ready, 1800, "readiness", step=0.01)
        else:
            done = wait_for(
                lambda: _local_files(folder, size) >= files, 1800, "the restore", step=0.25
            )
        cpu = cpu_seconds(running.pid)
        found = _local_files(folder, size)
        if found != files:
            raise RuntimeError(f"{found} of {files} files restored when ready")
    return done - started, cpu


# -- row 4: latency of single writes -------------------------------------------------------------


def latency(bench: Bench, rate: float = 20, seconds: float = 30, size: int = 4096) -> Table:
    table = Table(
        f"Row 4: single {_size(size)} writes at {rate:.0f}/s for {seconds:.0f} s, "
        f"close to visible ({bench.server.name})",
        [
            Column("p50 ms", 1, higher_is_better=False, ratio=True),
            Column("p99 ms", 1, higher_is_better=False, ratio=True),
            Column("max ms", 1, higher_is_better=False),
        ],
    )
    payload = os.urandom(size)
    for run, tool in table.turns(bench.runs, bench.daemons()):
        prefix, folder = bench.fresh("latency")
        try:
            closed: dict[str, float] = {}
            with (
                bench.server.arrivals(prefix) as arrivals,
                start_daemon(
                    tool, bench.server, folder, prefix, bench.log(f"latency-{tool}")
                ) as running,
            ):
                wait_until_watching(running, bench.server, prefix)
                step = 1 / rate
                due = time.monotonic()
                with as_tool():  # the app's writes: with --pin, on the task's core
                    for index in range(int(rate * seconds)):
                        due += step
                        time.sleep(max(0.0, due - time.monotonic()))
                        name = f"w{index:05d}"
                        with open(folder / name, "wb") as file:
                            file.write(payload)
                        closed[name] = time.monotonic()
                delays = arrivals.delays(closed, 60, "the last write")
        except Exception as error:
            table.failed(tool, run, error, bench.say)
            continue
        finally:
            bench.clean(folder, prefix)
        p50, p99 = table.add_delays(tool, delays)
        bench.say(f"  run {run + 1} {tool:15s} p50 {p50:6.1f} ms  p99 {p99:6.1f} ms")
    return table


# -- row 5 (and 7): idle cost --------------------------------------------------------------------


def idle(bench: Bench, files: int, window: float = 60, settle: float = 300) -> Table:
    table = Table(
        f"Row 5: {files:,} files in sync, nothing changing, 10 s poll ({bench.server.name})",
        [
            Column("CPU-s per minute", 2, higher_is_better=False, ratio=True),
            Column("RSS MiB", 0, higher_is_better=False, ratio=True),
            Column("restore s", 1, higher_is_better=False, ratio=True),
            Column("restart s", 2, higher_is_better=False),
            Column("LIST per hour", 0, higher_is_better=False),
        ],
        notes=[
            f"the prefix is restored into an empty folder, then CPU is measured over {window:.0f}"
            " s; 'restart': ours stopped and started again on the synced folder, to /readyz 200 "
            "(mobius3 keeps no state: every start is a restore); LIST per hour: our "
            "ListObjectsV2 requests counted in the window, times 3600 / window"
        ],
    )
    source = f"idle-{files}/"
    bench.seeded(source, files, 1024)
    try:
        for run, tool in table.turns(bench.runs, bench.daemons()):
            folder = bench.work / "folders" / f"idle-{tool}-{run}"
            try:
                figures = _idle_daemon(bench, tool, source, folder, files, window, settle)
            except Exception as error:
                table.failed(tool, run, error, bench.say)
                continue
            finally:
                bench.clean(folder)
            table.add(tool, **figures)
            bench.say(f"  run {run + 1} {tool:15s} " + _brief(figures))
    finally:
        bench.clean(prefix=source)
    return table


def _brief(figures: dict[str, float]) -> str:
    return ", ".join(f"{name} {value:,.2f}" for name, value in figures.items())


def _idle_daemon(
    bench: Bench,
    tool: str,
    prefix: str,
    folder: Path,
    files: int,
    window: float,
    settle: float,
    queue_url: str | None = None,
) -> dict[str, float]:
    started = time.monotonic()
    log = bench.log(f"idle-{tool}")
    with start_daemon(tool, bench.server, folder, prefix, log, queue_url=queue_url) as running:
        restored = _wait_restored(running, folder, files, settle) - started
        cpu, lists = _quiet(running, window)
        rss, _ = memory_kib(running.pid)
        figures = {
            "CPU-s per minute": cpu / window * 60,
            "RSS MiB": rss / 1024,
            "restore s": restored,
        }
        if tool in OURSELVES:
            figures["LIST per hour"] = lists * 3600 / window
    if tool in OURSELVES:
        started = time.monotonic()
        with start_daemon(tool, bench.server, folder, prefix, log, queue_url=queue_url) as again:
            figures["restart s"] = wait_for(again.ready, settle, "readiness", step=0.01) - started
    return figures


def _quiet(running: Running, window: float) -> tuple[float, float]:
    """CPU-seconds and (ours only) LIST requests over `window` seconds of nothing changing."""
    ours = running.tool in OURSELVES
    lists = running.list_requests() if ours else 0.0
    cpu = cpu_seconds(running.pid)
    time.sleep(window)
    cpu = cpu_seconds(running.pid) - cpu
    return cpu, running.list_requests() - lists if ours else 0.0


def _polling(running: Running, window: float) -> tuple[float, float, float]:
    """LIST requests per listing and per hour, and CPU-seconds per minute, of a polling daemon:
    from the end of one listing to the end of the first listing `window` seconds later, timed by
    the daemon's own last-success timestamp (scraping /metrics often enough to time it from
    outside would cost the daemon more CPU than it spends listing: about 8 ms a scrape)."""

    def ended(after: float) -> tuple[float, float, float, float, float]:
        wait_for(lambda: running.listings() > after, 120, "a listing", step=1.0)
        return (
            running.metric("s3sync_last_successful_poll_timestamp_seconds"),
            running.listings(),
            running.list_requests(),
            time.monotonic(),
            cpu_seconds(running.pid),
        )

    start = ended(running.listings())
    time.sleep(window)  # not scraped meanwhile: a scrape costs the daemon milliseconds
    end = ended(running.listings())
    finished, listings, requests, seconds, cpu = (b - a for a, b in zip(start, end, strict=True))
    return requests / listings, requests / finished * 3600, cpu / seconds * 60


def _wait_restored(running: Running, folder: Path, files: int, settle: float) -> float:
    if running.tool in OURSELVES:
        return wait_for(running.ready, settle, "readiness", step=0.01)
    return wait_for(lambda: _local_files(folder) >= files, settle, "the restore", step=1.0)


def list_requests(bench: Bench, files: int, queue_url: str, window: float = 60) -> Table:
    """Row 7: our LIST requests per hour when nothing changes, a queue against a 10 s poll."""
    window = max(window, 30)  # three listings of the 10 s poll at least
    table = Table(
        f"Row 7: LIST requests per hour, {files:,} keys, nothing changing ({bench.server.name})",
        [
            Column("LIST per listing", 0, higher_is_better=False),
            Column("LIST per hour", 0, higher_is_better=False),
            Column("CPU-s per minute", 2, higher_is_better=False),
        ],
        notes=[
            "10 s poll: ListObjectsV2 requests from the end of one listing to the end of a "
            "listing at least the window later (listings counted by s3sync_polls_total), per "
            "hour of that time. With a queue (an empty SQS queue on moto's server) the backstop "
            "lists every 300 s, start to start: per hour = requests per listing x 12, and the "
            "window must see none"
        ],
    )
    source = f"lists-{files}/"
    bench.seeded(source, files, 1024)
    try:
        variants = [("10 s poll", None), ("SQS queue", queue_url)]
        for run, (label, queue) in table.turns(bench.runs, variants, name=_label):
            folder = bench.work / "folders" / "lists"  # restored once, then restarts
            try:
                with start_daemon(
                    OURS,
                    bench.server,
                    folder,
                    source,
                    bench.log("lists"),
                    poll_interval=10 if queue is None else 300,
                    queue_url=queue,
                ) as running:
                    wait_for(running.ready, 600, "readiness", step=0.01)
                    if queue is None:
                        per_listing, per_hour, cpu = _polling(running, window)
                    else:
                        per_listing = running.list_requests() / running.listings()
                        cpu, seen = _quiet(running, window)
                        cpu = cpu / window * 60
                        if seen:
                            raise RuntimeError(f"{seen:.0f} LIST requests in the window")
                        per_hour = per_listing * 3600 / 300
            except Exception as error:
                table.failed(label, run, error, bench.say)
                continue
            figures = {
                "LIST per listing": per_listing,
                "LIST per hour": per_hour,
                "CPU-s per minute": cpu,
            }
            table.add(label, **figures)
            bench.say(f"  run {run + 1} {label:15s} " + _brief(figures))
    finally:
        bench.clean(bench.work / "folders" / "lists", source)
    poll, queued = (
        table.median("10 s poll", "LIST per hour"),
        table.median("SQS queue", "LIST per hour"),
    )
    if poll == poll and queued == queued and queued:
        table.notes.append(f"with a queue: {poll / queued:.0f}x fewer LIST requests per hour")
    return table


# -- row 6: a remote change reaching the folder --------------------------------------------------


def make_queue(moto: Server, prefix: str) -> str:
    """A queue on moto's server fed by the bucket's notifications for `prefix`."""
    sqs = boto(moto, "sqs")
    name = "bench-" + prefix.strip("/").replace("/", "-")
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    boto(moto, "s3").put_bucket_notification_configuration(
        Bucket=BUCKET,
        NotificationConfiguration={
            "QueueConfigurations": [
                {
                    "QueueArn": arn,
                    "Events": ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"],
                    "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": prefix}]}},
                }
            ]
        },
    )
    return str(url)


def remote_change(bench: Bench, changes: int = 20, spacing: float = 0.7) -> Table:
    """Row 6 on moto's server: another client's PUT until the file is in the folder."""
    if bench.moto is None:
        raise RuntimeError("row 6 needs moto's server")
    moto = bench.moto
    table = Table(
        f"Row 6: remote change to local file ({moto.name}; {changes} PUTs per run by another "
        "client)",
        [
            Column("p50 ms", 0, higher_is_better=False, ratio=True),
            Column("p99 ms", 0, higher_is_better=False, ratio=True),
            Column("max ms", 0, higher_is_better=False),
        ],
        notes=[
            "from the other client's PUT answered to the file renamed into the folder; "
            "PUTs spaced by a random 0.5-1.5 x the spacing, so they fall anywhere in a poll"
        ],
    )
    s3 = boto(moto, "s3")
    variants = [(f"{OURS} + SQS queue", OURS, True)]
    variants += [(f"{tool} (10 s poll)", tool, False) for tool in bench.daemons()]
    for run, (label, tool, queued) in table.turns(bench.runs, variants, name=_label):
        prefix, folder = bench.fresh("remote")
        try:
            queue_url = make_queue(moto, prefix) if queued else None
            with start_daemon(
                tool,
                moto,
                folder,
                prefix,
                bench.log(f"remote-{tool}"),
                poll_interval=300 if queued else 10,
                queue_url=queue_url,
            ) as running:
                if tool in OURSELVES:
                    wait_for(running.ready, 60, "readiness", step=0.01)
                else:
                    time.sleep(2)  # mobius3 has no readiness: let its first listing pass
                with Arrivals(folder, size=4096) as arrivals:
                    put: dict[str, float] = {}
                    randomness = random.Random(run)
                    for index in range(changes):
                        time.sleep(spacing * randomness.uniform(0.5, 1.5))
                        name = f"r{index:04d}"
                        s3.put_object(Bucket=BUCKET, Key=f"{prefix}{name}", Body=b"x" * 4096)
                        put[name] = time.monotonic()
                    delays = arrivals.delays(put, 60, "the downloads")
        except Exception as error:
            table.failed(label, run, error, bench.say)
            continue
        finally:
            bench.clean(folder)
        p50, p99 = table.add_delays(label, delays)
        bench.say(f"  run {run + 1} {label:30s} p50 {p50:7.0f} ms  p99 {p99:7.0f} ms")
    return table


def queue_for_lists(moto: Server) -> str:
    """An SQS queue that nothing feeds (row 7 counts listings while nothing changes)."""
    sqs = boto(moto, "sqs")
    return str(sqs.create_queue(QueueName="bench-idle")["QueueUrl"])


def sqlite_snapshots(bench: Bench, mib: int, every: float = 0.01) -> Table:
    """Row 8: what one snapshot of an SQLite database costs (SYNC_SQLITE=snapshot) while an app
    process commits a small transaction every `every` seconds, in WAL and rollback-journal
    mode; beside it, one plain read of the same file with its MD5 (what a tool that uploads the
    file as it is reads, torn or not). No peer snapshots a database: there is no ratio."""
    import sqlite_snapshot

    table = Table(
        f"SQLite snapshot of a {mib} MiB database under a steady write load",
        [
            Column("seconds", 3, higher_is_better=False),
            Column("CPU s", 3, higher_is_better=False),
            Column("app's slowest commit ms", 1, higher_is_better=False),
            Column("slowest commit without ms", 1, higher_is_better=False),
        ],
    )
    for mode, name in (("wal", "WAL"), ("delete", "rollback journal")):
        bench.say(f"  {name} ...")
        figures = sqlite_snapshot.measure(mode, mib, bench.runs, every)
        tool = f"{OURS}, {name}"
        for wall, cpu in zip(figures.walls, figures.cpus, strict=True):
            table.add(tool, **{"seconds": wall, "CPU s": cpu})
        table.add(
            tool,
            **{
                "app's slowest commit ms": figures.slowest * 1000,
                "slowest commit without ms": figures.baseline * 1000,
            },
        )
        for wall, cpu in zip(figures.read_walls, figures.read_cpus, strict=True):
            table.add(f"a plain read + MD5, {name}", **{"seconds": wall, "CPU s": cpu})
    table.notes.append(
        f"one snapshot every 0.5 s, {bench.runs} per mode, while the app commits a 200-byte row "
        f"every {every * 1000:.0f} ms; CPU is the snapshotting thread's (SQLite's backup copy "
        "and the MD5 run on it, off the event loop); the slowest commit shows how long the "
        "snapshot's read lock held the app up (a rollback-mode commit waits for it)"
    )
    return table
