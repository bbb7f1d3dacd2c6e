"""What every benchmark row stands on: the local S3 servers, processes measured from /proc, waits
on the server's disk, and the statistics printed.

Measures are taken from outside the tools, the same way for every tool:
- time: `time.monotonic()` in this process, from the first write (daemons) or the start (one-shot
  tools) to the moment the last object is visible on the server's disk or the tool exits;
- CPU: user + system time of the tool's process, read from `/proc/<pid>/stat` before and after
  the measured window (daemons), or from `wait4`'s rusage (one-shot tools, children included);
- memory: `VmRSS` (now) and `VmHWM` (peak) from `/proc/<pid>/status`.

`rclone serve s3` backs a bucket with a plain directory, so an object is visible when its file
is on disk under its final name (rclone writes `*.partial` and renames): waits read the
directory, never the S3 API, and cost the tools nothing. moto keeps objects in memory: its
server notes each object as it stores it (bench/moto_logged.py), and waits read that note.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ACCESS_KEY = "BENCHACCESSKEY0001"
SECRET_KEY = "BENCHSECRETKEY000000000001"
BUCKET = "bench"
REGION = "us-east-1"
ROOT = Path(__file__).resolve().parent.parent
OUR_BIN = Path(sys.executable).parent
PEERS_BIN = ROOT / ".bench-venv" / "bin"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def wait_for(
    predicate: Callable[[], bool],
    timeout: float,
    what: str,
    step: float = 0.002,
    *,
    paced: bool = False,
) -> float:
    """Polls `predicate` until true; returns the monotonic time it was first seen true.
    `paced`: rest between looks as long as a look took, `step` at least (a look that is work
    for the server measured leaves it most of its time)."""
    deadline = time.monotonic() + timeout
    while True:
        looked = time.monotonic()
        if predicate():
            return time.monotonic()
        now = time.monotonic()
        if now > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(max(step, now - looked) if paced else step)


def find_executable(name: str) -> str:
    for directory in (PEERS_BIN, OUR_BIN):
        found = shutil.which(name, path=str(directory))
        if found:
            return found
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(name)
    return found


def have(name: str) -> bool:
    try:
        find_executable(name)
    except FileNotFoundError:
        return False
    return True


# -- processes ---------------------------------------------------------------------------------

# `run.py --pin`: every tool on its own core(s), as in a task with one vCPU beside a server that
# runs elsewhere; the app's writes that a daemon syncs (`as_tool`) on that core too, as an app
# shares its task's vCPU with the sidecar; this process's waits and the servers on the others.
_TOOL_CPUS: set[int] | None = None


def pin(tool_cpus: set[int]) -> set[int]:
    """From now on tools run on `tool_cpus` and this process (and every server and thread it
    starts after) on the other cores. Returns those."""
    global _TOOL_CPUS
    allowed = os.sched_getaffinity(0)
    others = allowed - tool_cpus
    if not others or not tool_cpus <= allowed:
        raise ValueError(f"cannot keep cores {sorted(tool_cpus)} for the tools on this machine")
    os.sched_setaffinity(0, others)
    _TOOL_CPUS = set(tool_cpus)
    return others


def _on_tool_cpus() -> None:
    """A tool's process, between fork and exec: on the tools' cores (its threads inherit it;
    a Go tool's GOMAXPROCS follows it)."""
    if _TOOL_CPUS is not None:
        os.sched_setaffinity(0, _TOOL_CPUS)


@contextlib.contextmanager
def as_tool() -> Iterator[None]:
    """The calling thread (and threads it starts meanwhile) on the tools' cores: for the server
    limit's client, which runs in this process, and for the app's writes a daemon syncs."""
    if _TOOL_CPUS is None:
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, _TOOL_CPUS)
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a live process (its threads included; reaped children included)."""
    with open(f"/proc/{pid}/stat", "rb") as file:
        fields = file.read().rsplit(b")", 1)[1].split()
    utime, stime, cutime, cstime = (int(value) for value in fields[11:15])
    return (utime + stime + cutime + cstime) / CLOCK_TICKS


def memory_kib(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of a live process, in KiB."""
    rss = peak = 0
    with open(f"/proc/{pid}/status") as file:
        for line in file:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
            elif line.startswith("VmHWM:"):
                peak = int(line.split()[1])
    return rss, peak


@dataclass
class Finished:
    """A one-shot tool's run: wall time, CPU (children included) and peak RSS."""

    seconds: float
    cpu: float
    peak_kib: int


def run_measured(command: Sequence[str], env: dict[str, str], timeout: float) -> Finished:
    started = time.monotonic()
    process = subprocess.Popen(
        command,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        preexec_fn=_on_tool_cpus,  # one syscall in the child: safe beside our threads
    )
    deadline = started + timeout
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() > deadline:
            process.kill()
            pid, status, usage = os.wait4(process.pid, 0)
            break
        time.sleep(0.002)
    seconds = time.monotonic() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    error = process.stderr.read().decode(errors="replace") if process.stderr else ""
    if process.returncode != 0:
        raise RuntimeError(f"{command[0]} exited {process.returncode}: {error[-2000:]}")
    return Finished(seconds=seconds, cpu=usage.ru_utime + usage.ru_stime, peak_kib=usage.ru_maxrss)


@contextlib.contextmanager
def daemon(
    command: Sequence[str], env: dict[str, str], log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """A long-running tool, stopped with SIGTERM (then SIGKILL) however the block ends."""
    with open(log, "ab") as output:
        process = subprocess.Popen(
            command,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            preexec_fn=_on_tool_cpus,  # one syscall in the child: safe beside our threads
        )
    try:
        yield process
    finally:
        stop(process, 30)


def stop(process: subprocess.Popen[bytes], timeout: float) -> None:
    """SIGTERM, and SIGKILL if it has not exited within `timeout` seconds."""
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


# -- servers -----------------------------------------------------------------------------------


@dataclass
class Server:
    """A local S3 server. `data` is the bucket's directory when the server keeps objects as
    files (rclone); None for moto, which notes each stored object in `arrivals_log` instead
    (bench/moto_logged.py). The rows ask a server what it holds through the methods below, the
    same way for both."""

    name: str
    url: str
    port: int
    data: Path | None
    process: subprocess.Popen[bytes]
    arrivals_log: Path | None = None

    def arrivals(self, prefix: str, size: int | None = None) -> Seen:
        """Objects arriving directly under `prefix`, each with when it became visible."""
        if self.data is not None:
            return Arrivals(self.remote_dir(prefix), size)
        if self.arrivals_log is None:
            raise RuntimeError(f"{self.name} does not say when objects arrive")
        return LoggedArrivals(self.arrivals_log, prefix)

    def ledger(self, prefix: str) -> contextlib.AbstractContextManager[Ledger | None]:
        """What the server holds under `prefix` from now on, read from its log (moto), closed
        at the end; None where objects are files to look at (rclone)."""
        if self.arrivals_log is None:
            return contextlib.nullcontext()
        return Ledger(self.arrivals_log, prefix)

    def names(self, prefix: str) -> list[str]:
        """The names directly under `prefix` (rclone's unfinished `*.partial` left out)."""
        if self.data is not None:
            try:
                found = os.listdir(self.remote_dir(prefix))
            except FileNotFoundError:
                return []
            return [name for name in found if not name.endswith(".partial")]
        pages = boto(self, "s3").get_paginator("list_objects_v2")
        names: list[str] = []
        for page in pages.paginate(Bucket=BUCKET, Prefix=prefix, Delimiter="/"):
            names += [item["Key"][len(prefix) :] for item in page.get("Contents", [])]
            names += [
                item["Prefix"][len(prefix) :].rstrip("/") for item in page.get("CommonPrefixes", [])
            ]
        return names

    def count_named(self, prefix: str, start: str) -> int:
        """How many names directly under `prefix` begin with `start`."""
        return sum(1 for name in self.names(prefix) if name.startswith(start))

    def object_size(self, key: str) -> int | None:
        if self.data is not None:
            try:
                return (self.data / BUCKET / key).stat().st_size
            except FileNotFoundError:
                return None
        try:
            return int(boto(self, "s3").head_object(Bucket=BUCKET, Key=key)["ContentLength"])
        except Exception:  # a 404, as botocore raises it
            return None

    def clear(self, prefix: str) -> None:
        """Every object under `prefix` gone (a run's objects: moto holds them in memory)."""
        if self.data is not None:
            shutil.rmtree(self.remote_dir(prefix), ignore_errors=True)
            return
        s3 = boto(self, "s3")
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
            keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
            if keys:
                s3.delete_objects(Bucket=BUCKET, Delete={"Objects": keys, "Quiet": True})

    def endpoint_template(self) -> str:
        """mobius3's endpoint form: the bucket goes where {} is."""
        return f"{self.url}/{{}}/"

    def remote_dir(self, prefix: str) -> Path:
        if self.data is None:
            raise RuntimeError(f"{self.name} does not keep objects as files")
        return self.data / BUCKET / prefix.strip("/")

    def stop(self) -> None:
        stop(self.process, 10)


def start_rclone(work: Path, port: int | None = None) -> Server:
    """`rclone serve s3` on `work`/rclone-data. Its VFS caches directory listings for five
    minutes: objects written straight to its disk (seeding a restore) are listed only by a
    server started after they were written (see `Bench.seeded`)."""
    data = work / "rclone-data"
    (data / BUCKET).mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    process = subprocess.Popen(
        [
            find_executable("rclone"),
            "serve",
            "s3",
            "--addr",
            f"127.0.0.1:{port}",
            "--auth-key",
            f"{ACCESS_KEY},{SECRET_KEY}",
            "--force-path-style=true",
            str(data),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for(lambda: listening(port), 15, "rclone serve s3 to listen", step=0.05)
    return Server("rclone serve s3", f"http://127.0.0.1:{port}", port, data, process)


def start_moto(work: Path) -> Server:
    """moto's server as the tests run it (no authentication here: the row measures speed),
    noting when each object is stored (bench/moto_logged.py)."""
    port = free_port()
    log = work / "moto.log"
    arrivals = work / "moto-arrivals.log"
    arrivals.touch()
    with open(log, "wb") as output:
        process = subprocess.Popen(
            [
                sys.executable,
                str(ROOT / "bench" / "moto_logged.py"),
                str(arrivals),
                "-H",
                "127.0.0.1",
                "-p",
                str(port),
            ],
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    wait_for(lambda: listening(port), 30, "moto's server to listen", step=0.05)
    server = Server("moto", f"http://127.0.0.1:{port}", port, None, process, arrivals)
    boto(server, "s3").create_bucket(Bucket=BUCKET)
    return server


def boto(server: Server, service: str, attempts: int | None = None):  # type: ignore[no-untyped-def]
    """A boto3 client for `server` (`attempts`: botocore's standard retries, that many tries)."""
    import boto3  # the test extras have it; only the bench's own writes use it
    from botocore.config import Config

    retries = (
        None if attempts is None else Config(retries={"mode": "standard", "max_attempts": attempts})
    )
    return boto3.client(
        service,
        endpoint_url=server.url,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        config=retries,
    )


def tool_env(**extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        **extra,
    }


# -- the server's disk -------------------------------------------------------------------------


def tree_names(count: int, per_dir: int = 1000) -> list[str]:
    """The relative names of `write_tree`'s files, in order (d0000/f0000000...)."""
    return [f"d{index // per_dir:04d}/f{index:07d}" for index in range(count)]


def write_tree(directory: Path, count: int, size: int, per_dir: int = 1000) -> None:
    """`count` files of `size` random-ish bytes, `per_dir` to a directory (`tree_names`)."""
    payload = os.urandom(size)
    for index, name in enumerate(tree_names(count, per_dir)):
        if index % per_dir == 0:
            (directory / name).parent.mkdir(parents=True, exist_ok=True)
        with open(directory / name, "wb") as file:
            file.write(payload[:8] + index.to_bytes(8, "big") + payload[16:])


# -- statistics --------------------------------------------------------------------------------


@dataclass
class Samples:
    """Every run's figures for one tool in one row."""

    values: list[float] = field(default_factory=list)

    def add(self, value: float) -> None:
        self.values.append(value)

    @property
    def median(self) -> float:
        return statistics.median(self.values) if self.values else float("nan")

    def spread(self, digits: int = 0) -> str:
        if not self.values:
            return "-"
        form = f"{{:,.{digits}f}}"
        low, middle, high = min(self.values), self.median, max(self.values)
        return " / ".join(form.format(value) for value in (low, middle, high))


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (p99 of 600 samples is the 594th smallest)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, min(len(ordered), round(fraction * len(ordered) + 0.5 - 1e-9)))
    return ordered[rank - 1]


class Seen:
    """Names and the monotonic time each was first seen, filled by a reader thread; waits on
    them cost the measured tools nothing."""

    def __init__(self) -> None:
        self.seen: dict[str, float] = {}
        self._condition = threading.Condition()
        self._stopped = False

    def _saw(self, name: str, when: float) -> None:
        with self._condition:
            self.seen.setdefault(name, when)
            self._condition.notify_all()

    def wait(
        self, predicate: Callable[[dict[str, float]], bool], timeout: float, what: str
    ) -> None:
        deadline = time.monotonic() + timeout
        with self._condition:
            while not predicate(self.seen):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
                self._condition.wait(min(left, 0.5))

    def delays(self, started: dict[str, float], timeout: float, what: str) -> list[float]:
        """Waits until every name in `started` (name -> monotonic start) has arrived; returns
        each one's delay in milliseconds."""
        self.wait(lambda seen: started.keys() <= seen.keys(), timeout, what)
        return [(self.seen[name] - when) * 1000 for name, when in started.items()]

    def close(self) -> None:
        self._stopped = True

    def __enter__(self) -> Seen:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


Record = tuple[float, str, str, int | None]  # (when, bucket, key, size; None: deleted)


class _MotoLog:
    """moto's log of stores and deletes (bench/moto_logged.py) from now on, read by a thread
    that hands each read's records to `take`."""

    def __init__(self, log: Path, take: Callable[[list[Record]], None]) -> None:
        from asyncinotify import Inotify, Mask

        self._take = take
        self._stopped = False
        self._file = open(log, encoding="utf-8")  # noqa: SIM115 - closed by close()
        self._file.seek(0, os.SEEK_END)
        self._inotify = Inotify()
        self._inotify.sync_timeout = 0.1
        self._inotify.add_watch(log, Mask.MODIFY)
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        partial = ""
        while not self._stopped:
            self._inotify.sync_get()
            partial += self._file.read()
            *lines, partial = partial.split("\n")
            records: list[Record] = []
            for line in lines:
                when, bucket, key, size = line.split("\t")
                records.append((float(when), bucket, key, None if size == "-" else int(size)))
            if records:
                self._take(records)

    def close(self) -> None:
        self._stopped = True
        self._thread.join(timeout=2)
        self._inotify.close()
        self._file.close()


class LoggedArrivals(Seen):
    """Objects arriving directly under `prefix` on moto, read from the log its server writes as
    it stores each one (bench/moto_logged.py), with the time it wrote: CLOCK_MONOTONIC, the
    same clock as this process's `time.monotonic()`. Only what is logged after the start
    counts."""

    def __init__(self, log: Path, prefix: str) -> None:
        super().__init__()
        self._prefix = prefix
        self._log = _MotoLog(log, self._take)

    def _take(self, records: list[Record]) -> None:
        for when, bucket, key, size in records:
            name = key[len(self._prefix) :]
            if size is None:
                continue  # a delete
            if bucket == BUCKET and key.startswith(self._prefix) and "/" not in name:
                self._saw(name, when)

    def close(self) -> None:
        super().close()
        self._log.close()


class Ledger:
    """What moto holds under `prefix`, key (below the prefix) -> size, replayed from the log its
    server writes as it stores and deletes each object (bench/moto_logged.py) from now on; and
    the time of the last change. A row waits on it instead of listing the bucket: a listing of
    20,000 keys ten times a second took more of moto's one interpreter than the tool measured,
    and a wait on the log is as exact as the log's times."""

    def __init__(self, log: Path, prefix: str) -> None:
        self._prefix = prefix
        self.held: dict[str, int] = {}
        self.changed = time.monotonic()
        self._condition = threading.Condition()
        self._log = _MotoLog(log, self._take)

    def _take(self, records: list[Record]) -> None:
        with self._condition:
            for when, bucket, key, size in records:
                if bucket != BUCKET or not key.startswith(self._prefix):
                    continue
                name = key[len(self._prefix) :]
                if size is None:
                    self.held.pop(name, None)
                else:
                    self.held[name] = size
                self.changed = when
            self._condition.notify_all()

    def wait(self, predicate: Callable[[dict[str, int]], bool], timeout: float, what: str) -> float:
        """Waits until `predicate` holds of what is held; returns when the server made the
        last change (CLOCK_MONOTONIC, as `time.monotonic()`)."""
        deadline = time.monotonic() + timeout
        with self._condition:
            while not predicate(self.held):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
                self._condition.wait(min(left, 0.5))
            return self.changed

    def close(self) -> None:
        self._log.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Arrivals(Seen):
    """Files arriving under their final name in one directory, seen through inotify (a closed
    write or a rename into it), with the monotonic time each was first seen. A thread reads the
    events, so the waits cost the measured tools no directory scans."""

    def __init__(self, directory: Path, size: int | None = None) -> None:
        """With `size`, a file created (IN_CREATE) already that size also counts: a new name
        linked to a finished file (how our downloads arrive) gives no other event."""
        from asyncinotify import Inotify, Mask

        super().__init__()
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self._size = size
        self._inotify = Inotify()
        self._inotify.sync_timeout = 0.1
        mask = Mask.CLOSE_WRITE | Mask.MOVED_TO
        if size is not None:
            mask |= Mask.CREATE
        self._inotify.add_watch(directory, mask)
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        from asyncinotify import Mask

        while not self._stopped:
            event = self._inotify.sync_get()
            if event is None or event.name is None:
                continue
            name = str(event.name)
            if name.endswith(".partial"):
                continue
            if event.mask & Mask.CREATE and not self._complete(name):
                continue
            self._saw(name, time.monotonic())

    def _complete(self, name: str) -> bool:
        try:
            return (self.directory / name).stat().st_size == self._size
        except OSError:
            return False

    def close(self) -> None:
        super().close()
        self._thread.join(timeout=2)
        self._inotify.close()
