"""Debian's `tinyproxy`, a real forwarding proxy, as a process on 127.0.0.1 with its own config
and log in a temporary folder (foreground, never a daemon): plain http requests are forwarded in
absolute form, https through `CONNECT` tunnels, and with `auth` only clients that send
`Proxy-Authorization: Basic` for that user and password get through (407 otherwise). Its log
holds one `Request (file descriptor N): <request line>` per request it was given (`requests`).

Missing, the tests that need it skip with the command that installs it (fail under CI=true,
as the other system tools' tests do)."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from support.local_http import free_port

INSTALL = "apt-get install -y tinyproxy"
_REQUEST = re.compile(r"Request \(file descriptor \d+\): (.*)$")


def need_tinyproxy() -> str:
    """Its path; skips (fails under CI=true) when it is not installed."""
    found = shutil.which("tinyproxy") or next(
        (path for path in ("/usr/bin/tinyproxy", "/usr/sbin/tinyproxy") if os.path.exists(path)),
        None,
    )
    if found is None:
        message = f"tinyproxy is not installed: {INSTALL}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return found


@dataclass(frozen=True)
class Tinyproxy:
    port: int
    log: Path
    auth: tuple[str, str] | None

    @property
    def url(self) -> str:
        """The proxy's URL, with its credentials when it asks for some."""
        if self.auth is None:
            return f"http://127.0.0.1:{self.port}"
        user, password = self.auth
        return f"http://{user}:{password}@127.0.0.1:{self.port}"

    def requests(self) -> list[str]:
        """Every request line it was given, in order (`GET http://… HTTP/1.1`, `CONNECT …`)."""
        if not self.log.exists():
            return []
        lines = self.log.read_text(errors="replace").splitlines()
        return [match.group(1) for line in lines if (match := _REQUEST.search(line))]


@contextlib.contextmanager
def tinyproxy(folder: Path, auth: tuple[str, str] | None = None) -> Iterator[Tinyproxy]:
    """A tinyproxy on a free port of 127.0.0.1, stopped at the end."""
    program = need_tinyproxy()
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = folder / "tinyproxy.log"
    lines = [
        f"Port {port}",
        "Listen 127.0.0.1",
        "Timeout 60",
        f'LogFile "{log}"',
        "LogLevel Info",  # one line per request, with its request line
        "MaxClients 100",
        "Allow 127.0.0.1",
        "DisableViaHeader Yes",
    ]
    if auth is not None:
        lines.append(f"BasicAuth {auth[0]} {auth[1]}")
    config = folder / "tinyproxy.conf"
    config.write_text("\n".join(lines) + "\n")
    with open(folder / "tinyproxy.out", "wb") as output:
        process = subprocess.Popen(
            [program, "-d", "-c", str(config)], stdout=output, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 10
        while True:
            if process.poll() is not None:
                output_text = (folder / "tinyproxy.out").read_text(errors="replace")
                raise RuntimeError(f"tinyproxy exited with {process.returncode}: {output_text}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("tinyproxy did not listen in time") from None
                time.sleep(0.05)
        yield Tinyproxy(port, log, auth)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
