"""The tools compared, each as a user runs it with its defaults.

Daemons (keep a folder in sync; timed from the first write to the last object visible):
- `s3sync-sidecar`: this project, configured by environment variables as in a task; ready when
  `/readyz` answers 200.
- `mobius3` 0.0.44 (PyPI), the tool our users migrate from: ready when a sentinel file written
  after its start reaches the bucket (it ignores files that exist before its watch is set);
  restored when every expected file is in the folder (it has no readiness endpoint).

One-shot copies (timed from start to exit; the files exist before they start):
- `rclone copy` (defaults: 4 transfers, 8 checkers), `aws s3 sync` (defaults: 10 requests at a
  time), `s5cmd cp` (defaults: 256 workers).
"""

from __future__ import annotations

import contextlib
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from harness import (
    ACCESS_KEY,
    BUCKET,
    REGION,
    SECRET_KEY,
    Finished,
    Server,
    daemon,
    find_executable,
    free_port,
    have,
    run_measured,
    tool_env,
    wait_for,
)

OURS = "s3sync-sidecar"
# The same daemon from another checkout (`run.py --baseline`), measured beside this one in the
# same run: a change's cost or gain, on the same machine at the same hour.
BASELINE = "s3sync-sidecar@base"
OURSELVES = (OURS, BASELINE)
MOBIUS3 = "mobius3"
DAEMONS = (OURS, MOBIUS3)
_baseline: list[str] = []  # the baseline's executable, once `use_baseline` names it


def use_baseline(executable: str) -> None:
    """Run `executable` (another checkout's `s3sync-sidecar`) as the tool `BASELINE`."""
    _baseline[:] = [executable]


COPIERS = ("rclone copy", "aws s3 sync", "s5cmd cp")


def available(tool: str) -> bool:
    if tool == BASELINE:
        return bool(_baseline) and Path(_baseline[0]).exists()
    executable = {
        OURS: "s3sync-sidecar",
        MOBIUS3: "mobius3",
        "rclone copy": "rclone",
        "aws s3 sync": "aws",
        "s5cmd cp": "s5cmd",
    }[tool]
    return have(executable)


@dataclass
class Running:
    """A daemon started on a folder and a prefix."""

    tool: str
    process: subprocess.Popen[bytes]
    folder: Path
    http_port: int | None

    @property
    def pid(self) -> int:
        return self.process.pid

    def ready(self) -> bool:
        """Our `/readyz`: restored and watching. (Not defined for mobius3.)"""
        if self.process.poll() is not None:
            raise RuntimeError(f"{self.tool} exited {self.process.returncode}")
        if self.http_port is None:
            raise RuntimeError(f"{self.tool} has no readiness endpoint")
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.http_port}/readyz", timeout=1
            ) as answer:
                return bool(answer.status == 200)
        except OSError:
            return False

    def list_requests(self) -> float:
        """Our ListObjectsV2 requests so far."""
        return self.metric("s3sync_s3_requests_total", operation="ListObjectsV2")

    def listings(self) -> float:
        """Our listings of the prefix so far (the restore's included)."""
        return self.metric("s3sync_polls_total", result="ok")

    def metric(self, name: str, **labels: str) -> float:
        """The sum of a metric's samples that carry `labels`, from our `/metrics`."""
        with urllib.request.urlopen(
            f"http://127.0.0.1:{self.http_port}/metrics", timeout=5
        ) as answer:
            text = answer.read().decode()
        total = 0.0
        for line in text.splitlines():
            if not line.startswith(name) or line.startswith("#"):
                continue
            head, _, value = line.rpartition(" ")
            if head.split("{", 1)[0] != name:
                continue
            if all(f'{key}="{wanted}"' in head for key, wanted in labels.items()):
                total += float(value)
        return total


@contextlib.contextmanager
def start_daemon(
    tool: str,
    server: Server,
    folder: Path,
    prefix: str,
    log: Path,
    *,
    poll_interval: float = 10,
    queue_url: str | None = None,
) -> Iterator[Running]:
    folder.mkdir(parents=True, exist_ok=True)
    if tool in OURSELVES:
        port = free_port()
        env = tool_env(
            SYNC_DIR=str(folder),
            SYNC_BUCKET=BUCKET,
            SYNC_ENDPOINT=server.endpoint_template(),
            SYNC_REGION=REGION,
            SYNC_PREFIX=prefix,
            SYNC_POLL_INTERVAL=str(poll_interval),
            SYNC_HTTP_HOST="127.0.0.1",
            SYNC_HTTP_PORT=str(port),
            SYNC_LOG_LEVEL="WARNING",
        )
        if queue_url:
            env["SYNC_QUEUE_URL"] = queue_url
        command = _baseline[:1] if tool == BASELINE else [find_executable("s3sync-sidecar")]
        with daemon(command, env, log) as process:
            yield Running(tool, process, folder, port)
    elif tool == MOBIUS3:
        if poll_interval != 10 or queue_url:
            raise ValueError("mobius3 lists every 10 s and has no queue")
        command = [
            find_executable("mobius3"),
            str(folder),
            BUCKET,
            server.endpoint_template(),
            REGION,
            "--prefix",
            prefix,
        ]
        with daemon(command, tool_env(), log) as process:
            yield Running(tool, process, folder, None)
    else:
        raise ValueError(tool)


def wait_until_watching(
    running: Running, server: Server, prefix: str, timeout: float = 120
) -> None:
    """Ours: `/readyz`. mobius3: write sentinels until one reaches the bucket."""
    if running.tool in OURSELVES:
        wait_for(running.ready, timeout, f"{running.tool} to be ready", step=0.02)
        return
    deadline = time.monotonic() + timeout
    number = 0
    while time.monotonic() < deadline:
        if running.process.poll() is not None:
            raise RuntimeError(f"{running.tool} exited {running.process.returncode}")
        (running.folder / f"sentinel-{number}").write_bytes(b"ready?")
        number += 1
        try:
            wait_for(lambda: server.count_named(prefix, "sentinel-") > 0, 0.5, "", step=0.01)
            return
        except TimeoutError:
            continue
    raise TimeoutError(f"{running.tool} did not start watching in {timeout:.0f} s")


def _rclone_env(server: Server) -> dict[str, str]:
    return tool_env(
        RCLONE_CONFIG_BENCH_TYPE="s3",
        RCLONE_CONFIG_BENCH_PROVIDER="Other",
        RCLONE_CONFIG_BENCH_ENDPOINT=server.url,
        RCLONE_CONFIG_BENCH_ACCESS_KEY_ID=ACCESS_KEY,
        RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY=SECRET_KEY,
        RCLONE_CONFIG_BENCH_REGION=REGION,
        RCLONE_CONFIG_BENCH_FORCE_PATH_STYLE="true",
        RCLONE_S3_NO_CHECK_BUCKET="true",
    )


def copy(tool: str, server: Server, source: str, target: str, timeout: float = 1800) -> Finished:
    """One-shot copy; a side given as `s3:<prefix>` is the bucket's prefix, else a folder."""

    def remote(side: str) -> str | None:
        return side[3:] if side.startswith("s3:") else None

    if tool == "rclone copy":

        def name(side: str) -> str:
            key = remote(side)
            return side if key is None else f"bench:{BUCKET}/{key}"

        command = [find_executable("rclone"), "copy", name(source), name(target)]
        return run_measured(command, _rclone_env(server), timeout)
    if tool == "aws s3 sync":

        def name(side: str) -> str:
            key = remote(side)
            return side if key is None else f"s3://{BUCKET}/{key}"

        command = [
            find_executable("aws"),
            "s3",
            "sync",
            name(source),
            name(target),
            "--endpoint-url",
            server.url,
            "--only-show-errors",
        ]
        return run_measured(command, tool_env(), timeout)
    if tool == "s5cmd cp":
        key = remote(source)
        if key is None:
            command_source, command_target = f"{source}/", f"s3://{BUCKET}/{remote(target)}"
        else:
            command_source, command_target = f"s3://{BUCKET}/{key}*", f"{target}/"
        command = [
            find_executable("s5cmd"),
            "--endpoint-url",
            server.url,
            "cp",
            command_source,
            command_target,
        ]
        return run_measured(command, tool_env(), timeout)
    raise ValueError(tool)
