"""The real `s3sync-sidecar` command, run as a subprocess with its output in a file."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import aiohttp

from support.local_http import free_port, http_get
from support.waiting import eventually, in_thread

SCRIPT = shutil.which("s3sync-sidecar", path=str(Path(sys.executable).parent))


class SidecarProcess:
    """A running `s3sync-sidecar` command (after `prefix`, e.g. `unshare ...`, which execs it),
    or `command` instead of the console script (the non-root lane's `python -m sidecar`)."""

    def __init__(
        self,
        args: list[str],
        env: dict[str, str],
        log: Path,
        prefix: Sequence[str] = (),
        command: Sequence[str] | None = None,
    ) -> None:
        self.log = log
        self._output = open(log, "wb")  # noqa: SIM115 - closed in wait() or kill()
        if command is None:
            assert SCRIPT is not None, "the console script is installed"
            command = [SCRIPT]
        self.process = subprocess.Popen(
            [*prefix, *command, *args], env=env, stdout=self._output, stderr=subprocess.STDOUT
        )

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    async def ready(self) -> None:
        """Until the initial restore is done (its log line, "restored N objects …; syncing";
        not a skip's "not syncing …"), failing if the process exits."""
        await eventually(
            lambda: "; syncing" in self.text() or self.process.poll() is not None,
            timeout=30,
            what="the initial restore",
        )
        assert self.process.poll() is None, self.text()

    async def answering(self, port: int, path: str) -> None:
        """Until GET `path` on `port` answers 200 (/readyz, /startupz), failing at once if the
        process exits."""

        async def check() -> bool:
            assert self.process.poll() is None, self.text()
            try:
                status, _ = await http_get(port, path)
            except aiohttp.ClientError:
                return False
            return status == 200

        await eventually(check, timeout=30, interval=0.1, what=f"{path} 200")

    async def wait(self, timeout: float = 60) -> int:
        code = await in_thread(self.process.wait, timeout)
        self._output.close()
        return int(code)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._output.close()


class Sidecars:
    """Starts commands (args, env, and a `prefix` that execs them, e.g. `prlimit ...`) logging
    into `logs`; `kill_all` kills those still running.
    The environment starts from PATH, text logs, a free HTTP port and no instance metadata;
    `env` overrides."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.running: list[SidecarProcess] = []

    def start(
        self, args: list[str], env: dict[str, str], prefix: Sequence[str] = ()
    ) -> SidecarProcess:
        full_env = {
            "PATH": os.environ["PATH"],
            "SYNC_LOG_FORMAT": "text",
            "SYNC_HTTP_PORT": str(free_port()),
            # Tests reach 127.0.0.1 only: never 169.254.169.254 (a test of instance metadata
            # turns it on, with its own endpoint).
            "AWS_EC2_METADATA_DISABLED": "true",
            **env,
        }
        log = self.logs / f"sidecar-{len(self.running)}.log"
        sidecar = SidecarProcess(args, full_env, log, prefix)
        self.running.append(sidecar)
        return sidecar

    def kill_all(self) -> None:
        for sidecar in self.running:
            sidecar.kill()
