"""The sidecar as the image runs it, beside an app that writes as another user: both switched to
with `setpriv` (util-linux) from a test run as root. The sidecar is uid 64000, the app uid 64001,
both in group 64100, on a folder shaped like an ECS shared volume (the `volume` fixture of
tests/nonroot/conftest.py: group-writable, setgid).

The sidecar runs as `python -m sidecar` from this checkout (PYTHONPATH), by an interpreter of
this version that uid 64000 may run: this one, unless it lives under a private directory (pyenv
under /root, mode 0700), else the system's (`PYTHON`; None: the lane is skipped)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from . import ROOT
from .bucket import Bucket
from .environments import sidecar_environment
from .local_http import free_port
from .sidecars import SidecarProcess
from .waiting import in_thread

SIDECAR_UID, APP_UID, SHARED_GID = 64000, 64001, 64100
SETPRIV = shutil.which("setpriv")
SITE = next(p for p in map(Path, sys.path) if p.name == "site-packages" and p.is_dir())


def _interpreter() -> str | None:
    """A Python of this version that the sidecar's user can run: this one, unless it lives
    somewhere private (pyenv under /root, mode 0700), else the system's; None if neither."""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    for candidate in (sys.executable, f"/usr/bin/{version}"):
        reachable = subprocess.run(
            [*_as(SIDECAR_UID), candidate, "-c", "pass"], capture_output=True, check=False
        )
        if reachable.returncode == 0:
            return candidate
    return None


def _as(uid: int) -> list[str]:
    """The command prefix that runs what follows as `uid`, in the shared group, umask 002."""
    assert SETPRIV is not None
    return [SETPRIV, f"--reuid={uid}", f"--regid={SHARED_GID}", "--clear-groups", "--"]


_RUN_WITH_UMASK = (
    "import os, runpy; os.umask(0o002); runpy.run_module('sidecar', run_name='__main__')"
)
PYTHON = _interpreter() if os.geteuid() == 0 and SETPRIV is not None else None


def app(script: str) -> None:
    """Run `script` (Python) as the app's user, with umask 002, in the shared folder's parent;
    fails the test if it fails."""
    subprocess.run(
        [*_as(APP_UID), PYTHON or "python3", "-c", f"import os\nos.umask(0o002)\n{script}"],
        check=True,
        timeout=30,
    )


class NonRootSidecar(SidecarProcess):
    """`s3sync-sidecar` run as the sidecar's user on `folder` (umask 002, as the image sets)."""

    def __init__(self, bucket: Bucket, folder: Path, log: Path, **env: str) -> None:
        assert PYTHON is not None
        self.port = free_port()
        full_env = {
            "PATH": os.environ["PATH"],
            # The package from this checkout and its dependencies from this venv, run by an
            # interpreter the sidecar's user may reach (the venv's may be under /root).
            "PYTHONPATH": f"{ROOT}{os.pathsep}{SITE}",
            **sidecar_environment(
                bucket,
                folder,
                SYNC_LOG_FORMAT="text",
                SYNC_HTTP_HOST="127.0.0.1",
                SYNC_HTTP_PORT=str(self.port),
                SYNC_POLL_INTERVAL="1",
                **env,
            ),
        }
        super().__init__(
            [], full_env, log, command=[*_as(SIDECAR_UID), PYTHON, "-c", _RUN_WITH_UMASK]
        )

    async def stop(self, timeout: float = 60) -> tuple[int, float]:
        """SIGTERM; (exit code, seconds it took)."""
        began = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        code = await in_thread(self.process.wait, timeout)
        self._output.close()
        return int(code), time.monotonic() - began

    async def flush(self, timeout: float = 30) -> None:
        """POST /flush: until every local change made before is in S3 (fails otherwise)."""
        async with (
            aiohttp.ClientSession() as session,
            session.post(f"http://127.0.0.1:{self.port}/flush?timeout={timeout}") as answer,
        ):
            assert answer.status == 200, await answer.text()


async def start(
    started: list[NonRootSidecar], bucket: Bucket, folder: Path, tmp_path: Path, **env: str
) -> NonRootSidecar:
    sidecar = NonRootSidecar(bucket, folder, tmp_path / f"sidecar-{len(started)}.log", **env)
    started.append(sidecar)
    await sidecar.ready()
    return sidecar


def why_not_usable() -> str | None:
    """Why the lane cannot run here (for a skip), or None."""
    if os.geteuid() != 0 or SETPRIV is None:
        return "switching users needs root and setpriv (util-linux)"
    if PYTHON is None:
        return (
            f"no Python {sys.version_info.major}.{sys.version_info.minor} that uid "
            f"{SIDECAR_UID} may run (this one is under a private directory)"
        )
    return None


def shared_volume() -> Path:
    """A shared folder both users can reach: its parents are traversable, it is owned by the
    sidecar's user and the shared group, group-writable with the setgid bit. Its parent is
    the caller's to remove."""
    base = Path(tempfile.mkdtemp(prefix="s3sync-nonroot-"))
    os.chmod(base, 0o755)
    shared = base / "shared"
    shared.mkdir()
    os.chown(shared, SIDECAR_UID, SHARED_GID)
    os.chmod(shared, 0o2775)
    return shared
