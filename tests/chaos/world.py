"""The processes of one seed's world: a fault proxy per sidecar in front of the shared moto
server, and the sidecar processes, which the schedule kills and restarts."""

from __future__ import annotations

import os
import random
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from support.faultproxy import CHAOS_KINDS, ChaosFaults, FaultProxy
from support.local_http import free_port
from support.s3_server import REGION, S3Server
from support.sidecars import SCRIPT


def chaos_faults(rng: random.Random) -> ChaosFaults:
    """Seeded rates (each kind up to 8 % of requests) and on/off periods."""
    rates = {kind: rng.uniform(0.0, 0.08) for kind in CHAOS_KINDS}
    return ChaosFaults(
        rng=random.Random(rng.random()), rates=rates, on=rng.uniform(1, 4), off=rng.uniform(1, 4)
    )


@dataclass
class Sidecar:
    """One sidecar command on one folder. `expected_exit` is set when we stop it, so any other
    exit is a death."""

    name: str
    folder: Path
    env: dict[str, str]
    log: Path
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0
    deaths: list[str] = field(default_factory=list)
    exits: list[int] = field(default_factory=list)

    def start(self) -> None:
        self.starts += 1
        assert SCRIPT is not None, "the console script is installed"
        with open(self.log, "ab") as output:
            output.write(f"--- start {self.starts}\n".encode())
            output.flush()
            self.process = subprocess.Popen(
                [SCRIPT], env=self.env, stdout=output, stderr=subprocess.STDOUT
            )

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def check_alive(self) -> None:
        """Record a death: a process that exited without our signal."""
        if self.process is not None and self.process.poll() is not None:
            self.deaths.append(f"{self.name} exited with {self.process.returncode} by itself")
            self.process = None

    def kill(self) -> None:
        self.check_alive()
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def terminate(self, timeout: float) -> int | None:
        """SIGTERM and wait (blocking: call it in a thread); its exit code."""
        self.check_alive()
        process, self.process = self.process, None  # ours from now: not a death when it exits
        if process is None:
            return None
        process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.deaths.append(f"{self.name} did not stop within {timeout:g} s of SIGTERM")
            process.kill()
            code = process.wait()
        self.exits.append(code)
        if code == -signal.SIGTERM and not self.started_syncing():
            code = 0  # SIGTERM's default action, before the sidecar took over the signal
        return code

    def started_syncing(self) -> bool:
        """Whether the last start got as far as installing its signal handlers (it logs
        "starting:" after that): a SIGTERM before kills the process by default, harmlessly,
        as it has not touched anything yet."""
        text = self.log.read_text(errors="replace")
        return "starting:" in text.rsplit("--- start", 1)[-1]


def sidecar_env(
    server: S3Server, proxy: FaultProxy, folder: Path, bucket: str, prefix: str
) -> dict[str, str]:
    return {
        "PATH": os.environ["PATH"],
        **server.env(),
        "SYNC_DIR": str(folder),
        "SYNC_BUCKET": bucket,
        "SYNC_PREFIX": prefix,
        "SYNC_ENDPOINT": proxy.endpoint_pattern,
        "AWS_REGION": REGION,
        "SYNC_POLL_INTERVAL": "1",
        "SYNC_OPEN_FILE_TIMEOUT": "1",
        "SYNC_SHUTDOWN_TIMEOUT": "20",
        "SYNC_LOG_FORMAT": "text",
        "SYNC_LOG_LEVEL": "debug",
        "SYNC_HTTP_HOST": "127.0.0.1",
        "SYNC_HTTP_PORT": str(free_port()),
    }
