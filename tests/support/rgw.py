"""Ceph's RADOS Gateway as the tests run it: a one-node Ceph cluster of our own, started from a
temporary folder with no systemd and nothing outside that folder, and stopped by pid. One
monitor, one OSD keeping its data in memory (memstore: Pacific has no standalone backend for
radosgw), authentication off, and radosgw's beast frontend on 127.0.0.1 at a free port; a user
with access keys made by radosgw-admin. Then it is an S3 server like moto (`S3Server`), with
SigV4 checked on every request.

Needs Debian's packages (`INSTALL`); `missing()` names the programs that are not there. Costs
about 10-17 s to start cold and some 140 MB while idle, so the tests start it once per session
(tests/conftest.py's `rgw_server`).

The settings that matter: radosgw's built-in defaults `auth_client_required = cephx` and
`ms_mon_client_mode = secure` are overridden with the cluster's (`none`, `crc`), or it retries
EACCES forever; pools hold one copy (`osd_pool_default_size = 1`) with few placement groups, so
one OSD holds every pool radosgw makes; the OSD is put in the CRUSH map by hand before it
starts (left to do it itself at start, it sometimes asks before it knows the cluster's id, is
refused "wrong fsid", and exits); the monitor does not stop for a disk that is nearly full
(`mon_data_avail_crit = 0`). Every daemon runs in the foreground (`-f`): its pid is the
process's, and stopping it is a SIGTERM to that pid."""

from __future__ import annotations

import contextlib
import secrets
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

from support.local_http import free_port
from support.s3_server import S3Server

PACKAGES = ("radosgw", "ceph-mon", "ceph-osd", "ceph-common")
INSTALL = "apt-get install " + " ".join(PACKAGES)
PROGRAMS = ("ceph-mon", "ceph-osd", "radosgw", "monmaptool", "radosgw-admin", "ceph")
START_TIMEOUT = 120.0  # seconds; a cold start takes 10-17 s on an idle machine


def missing() -> list[str]:
    """The programs the cluster needs that are not on PATH."""
    return [program for program in PROGRAMS if shutil.which(program) is None]


def _config(folder: Path, mon_port: int, rgw_port: int) -> str:
    return f"""\
[global]
fsid = {uuid.uuid4()}
mon_host = v1:127.0.0.1:{mon_port}
mon_initial_members = a
auth_cluster_required = none
auth_service_required = none
auth_client_required = none
ms_mon_client_mode = crc
ms_mon_service_mode = crc
ms_mon_cluster_mode = crc
ms_client_mode = crc
ms_service_mode = crc
ms_cluster_mode = crc
ms_bind_ipv4 = true
ms_bind_ipv6 = false
keyring = /dev/null
run_dir = {folder}/run
admin_socket = {folder}/run/$name.asok
pid_file = {folder}/run/$name.pid
log_file = {folder}/log/$name.log
mon_data = {folder}/mon.$id
osd_data = {folder}/osd.$id
osd_objectstore = memstore
memstore_device_bytes = 2147483648
osd_pool_default_size = 1
osd_pool_default_min_size = 1
osd_pool_default_pg_num = 8
osd_pool_default_pgp_num = 8
osd_pool_default_pg_autoscale_mode = off
osd_crush_chooseleaf_type = 0
osd_crush_update_on_start = false
osd_class_update_on_start = false
mon_allow_pool_size_one = true
mon_warn_on_pool_no_redundancy = false
mon_max_pg_per_osd = 1000
mon_data_avail_warn = 1
mon_data_avail_crit = 0

[client.rgw]
rgw_frontends = beast endpoint=127.0.0.1:{rgw_port}
rgw_data = {folder}/rgw
rgw_enable_gc_threads = false
rgw_enable_lc_threads = false
rgw_dynamic_resharding = false
rgw_thread_pool_size = 64
"""


class _Cluster:
    """The daemons started so far, stopped in the reverse order by their pids."""

    def __init__(self, folder: Path, output: Path) -> None:
        self.folder = folder
        self.config = folder / "ceph.conf"
        self._output = output
        self.processes: list[subprocess.Popen[bytes]] = []

    def run(self, *args: str, timeout: float = 60.0) -> str:
        """A command of the cluster's (its output, or RuntimeError with it)."""
        result = subprocess.run(
            [*args, "-c", str(self.config)],
            capture_output=True,
            timeout=timeout,
            check=False,
            cwd=self.folder,
        )
        if result.returncode != 0:
            output = (result.stdout + result.stderr).decode(errors="replace")
            raise RuntimeError(f"{' '.join(args)} exited {result.returncode}: {output}")
        return result.stdout.decode()

    def start(self, *args: str) -> None:
        with open(self._output, "ab") as output:
            self.processes.append(
                subprocess.Popen(
                    [*args, "-f", "-c", str(self.config)],
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    cwd=self.folder,
                )
            )

    def check_alive(self) -> None:
        for process in self.processes:
            if process.poll() is not None:
                raise RuntimeError(
                    f"{process.args[0]} exited {process.returncode}; see {self.folder}/log"
                )

    def stop(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.processes.clear()


def _wait_for_http(url: str, cluster: _Cluster, deadline: float) -> None:
    """Until radosgw answers an anonymous request (its listing of no buckets)."""
    while time.monotonic() < deadline:
        cluster.check_alive()
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"radosgw did not answer at {url} in time; see {cluster.folder}/log")


@contextlib.contextmanager
def rgw_process(folder: Path) -> Iterator[S3Server]:
    """A one-node cluster in `folder` (created; its logs in `folder/log`), and a user allowed
    everything; stopped at the end."""
    for name in ("run", "log", "mon.a", "osd.0", "rgw"):
        (folder / name).mkdir(parents=True, exist_ok=True)
    mon_port, rgw_port = free_port(), free_port()
    cluster = _Cluster(folder, folder / "log" / "daemons.out")
    cluster.config.write_text(_config(folder, mon_port, rgw_port))
    fsid = cluster.config.read_text().split("fsid = ", 1)[1].split("\n", 1)[0]
    try:
        deadline = time.monotonic() + START_TIMEOUT
        monmap = str(folder / "monmap")
        cluster.run("monmaptool", "--create", "--add", "a", f"v1:127.0.0.1:{mon_port}", "--fsid",
                    fsid, monmap)  # fmt: skip
        cluster.run("ceph-mon", "--mkfs", "-i", "a", "--monmap", monmap)
        cluster.start("ceph-mon", "-i", "a")
        # Answers once the monitor is up (the command waits for it): the OSD's id, 0.
        cluster.run("ceph", "--connect-timeout", "60", "osd", "create", timeout=90)
        cluster.run("ceph", "osd", "crush", "add", "osd.0", "1.0", "root=default")
        cluster.run("ceph-osd", "--mkfs", "-i", "0")
        cluster.start("ceph-osd", "-i", "0")
        cluster.start("radosgw", "-n", "client.rgw")
        url = f"http://127.0.0.1:{rgw_port}"
        _wait_for_http(url, cluster, deadline)
        access, secret = "RGW" + secrets.token_hex(8).upper(), secrets.token_hex(20)
        cluster.run("radosgw-admin", "user", "create", "--uid", "sidecar", "--display-name",
                    "sidecar", "--access-key", access, "--secret-key", secret)  # fmt: skip
        yield S3Server("rgw", url, rgw_port, access, secret, folder / "log" / "client.rgw.log")
    finally:
        cluster.stop()


def main() -> None:
    """`python -m support.rgw [FOLDER]` (PYTHONPATH=tests): a cluster to try by hand, until
    Ctrl-C; its keys and endpoint are printed as environment variables."""
    import sys
    import tempfile

    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="rgw-"))
    with rgw_process(folder) as server:
        for key, value in server.env().items():
            print(f"export {key}={value}")
        print(f"export SYNC_ENDPOINT={server.endpoint_pattern}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()
    print(f"stopped; its files are in {folder}", file=sys.stderr)


if __name__ == "__main__":
    main()

__all__ = ["INSTALL", "PACKAGES", "missing", "rgw_process"]
