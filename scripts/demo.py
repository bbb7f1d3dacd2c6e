"""Try s3sync-sidecar by hand in a minute, with no AWS account: `make demo` runs this.

It starts moto's S3 server on 127.0.0.1 (no authentication), creates the bucket `demo-bucket`,
runs the sidecar on ./demo-folder and prints what to try from another terminal. Ctrl-C stops
the sidecar gracefully (it finishes pending uploads), then the server.

The subcommands look at and change the running demo's bucket, whose port they read from
.demo-state.json (written in the current directory while the demo runs):

    scripts/demo.py ls               list the keys in the bucket, with sizes
    scripts/demo.py put KEY TEXT     put an object (TEXT and a newline, like echo)
    scripts/demo.py rm KEY           delete an object
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType
from typing import IO, Any

import botocore.session  # type: ignore[import-untyped]
from botocore.config import Config  # type: ignore[import-untyped]
from botocore.exceptions import BotoCoreError, ClientError  # type: ignore[import-untyped]

BUCKET = "demo-bucket"
REGION = "us-east-1"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "demo", "AWS_SECRET_ACCESS_KEY": "demo"}
POLL_INTERVAL = 2
STATE_FILE = Path(".demo-state.json")
DEMO_FOLDER = Path("demo-folder")
SERVER_START_TIMEOUT = 30.0
SIDECAR_STOP_TIMEOUT = 40.0  # the sidecar itself gives pending uploads up to 25 s
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def free_ports(count: int) -> list[int]:
    """`count` distinct ports that are free on 127.0.0.1 right now."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def s3_client(port: int) -> Any:
    return botocore.session.get_session().create_client(
        "s3",
        region_name=REGION,
        endpoint_url=f"http://127.0.0.1:{port}",
        aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        config=Config(
            s3={"addressing_style": "path"},
            connect_timeout=5,
            retries={"total_max_attempts": 2},
        ),
    )


LIBC = ctypes.CDLL(None, use_errno=True)  # Linux, like the sidecar itself
PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """In a child, before exec: get SIGTERM if the demo dies without cleaning up (kill -9)."""
    LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class Stops:
    """Records stop signals; the main loop acts on them (nothing is done inside a handler)."""

    def __init__(self) -> None:
        self.received: list[int] = []

    def install(self) -> None:
        for signum in STOP_SIGNALS:
            signal.signal(signum, self._handle)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.received.append(signum)


def start_server(port: int, log: IO[bytes]) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env.pop("INITIAL_NO_AUTH_ACTION_COUNT", None)  # the demo server runs without authentication
    return subprocess.Popen(  # noqa: S603 (a fixed command)
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        process_group=0,  # Ctrl-C reaches the demo only, which stops the children in order
        preexec_fn=die_with_parent,  # noqa: PLW1509 (no threads are running yet)
    )


def wait_for_port(port: int, server: subprocess.Popen[bytes], stops: Stops) -> bool:
    """True once the server accepts connections; False if stopped by a signal."""
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while not stops.received:
        if server.poll() is not None:
            raise RuntimeError(f"the moto server exited with code {server.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"the moto server did not listen on port {port} "
                    f"within {SERVER_START_TIMEOUT:g} s"
                ) from None
            time.sleep(0.05)
    return False


def start_sidecar(s3_port: int, http_port: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        **CREDENTIALS,
        "SYNC_DIR": str(DEMO_FOLDER.absolute()),
        "SYNC_BUCKET": BUCKET,
        "SYNC_ENDPOINT": f"http://127.0.0.1:{s3_port}/{{}}/",
        "SYNC_REGION": REGION,
        "SYNC_POLL_INTERVAL": str(POLL_INTERVAL),
        "SYNC_LOG_FORMAT": "text",
        "SYNC_LOG_LEVEL": "INFO",
        "SYNC_HTTP_PORT": str(http_port),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "sidecar"],
        env=env,
        stdin=subprocess.DEVNULL,  # its output goes straight to this terminal
        process_group=0,
        preexec_fn=die_with_parent,  # noqa: PLW1509 (no threads are running yet)
    )


def stop(process: subprocess.Popen[bytes], timeout: float) -> None:
    """SIGTERM, then SIGKILL if it has not exited within `timeout` seconds."""
    if process.poll() is None:
        process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def shell_path(path: Path) -> str:
    """`path` as typed in a shell in the current directory: relative when inside it."""
    absolute = path.absolute()
    if absolute.is_relative_to(Path.cwd()):
        return shlex.quote(str(absolute.relative_to(Path.cwd())))
    return shlex.quote(str(absolute))


def banner(s3_port: int, http_port: int) -> str:
    script = f"{shell_path(Path(sys.executable))} {shell_path(Path(__file__))}"
    folder = shell_path(DEMO_FOLDER)
    return f"""
s3sync-sidecar demo
  folder   {DEMO_FOLDER.absolute()}
  bucket   {BUCKET} on a local moto S3 server at http://127.0.0.1:{s3_port} (no authentication)
  polls S3 for changes every {POLL_INTERVAL} s

Try, in another terminal:
  cd {shlex.quote(str(Path.cwd()))}

  # a local file goes to the bucket once it is closed
  echo hello > {folder}/hello.txt
  {script} ls

  # an object put in the bucket appears locally within {POLL_INTERVAL} s
  {script} put from-s3.txt 'hello from S3'
  cat {folder}/from-s3.txt

  # deleting an object, or a file, deletes the other side too
  {script} rm from-s3.txt

  # metrics, liveness and readiness (what the container health check asks)
  curl http://127.0.0.1:{http_port}/metrics
  curl http://127.0.0.1:{http_port}/healthz
  curl http://127.0.0.1:{http_port}/readyz

Ctrl-C stops both the sidecar (it finishes pending uploads first, up to ~25 s) and the server.
Sidecar output follows.
"""


def supervise(
    sidecar: subprocess.Popen[bytes], server: subprocess.Popen[bytes], stops: Stops
) -> int:
    """Stream until the sidecar exits; forward stop signals to it as SIGTERM. Exit status."""
    forwarded = 0
    deadline: float | None = None
    server_died = False
    while True:
        try:
            code = sidecar.wait(timeout=0.2)
        except subprocess.TimeoutExpired:
            pass
        else:
            print(f"\ndemo: the sidecar exited with code {code}", flush=True)
            if stops.received:
                return 1 if server_died else 0
            return code if code >= 0 else 128 - code
        if len(stops.received) > forwarded:
            if forwarded == 0:
                print(
                    f"\ndemo: {signal.Signals(stops.received[0]).name}: stopping the sidecar "
                    "(it finishes pending uploads first); Ctrl-C again to stop it at once",
                    flush=True,
                )
                deadline = time.monotonic() + SIDECAR_STOP_TIMEOUT
            else:
                print("\ndemo: stopping the sidecar at once", flush=True)
            sidecar.send_signal(signal.SIGTERM)  # a second SIGTERM makes it exit at once
            forwarded = len(stops.received)
        if deadline is not None and time.monotonic() > deadline:
            print("\ndemo: the sidecar did not stop in time: killing it", flush=True)
            sidecar.kill()
        if server.poll() is not None and not stops.received:
            print(f"\ndemo: the moto server exited (code {server.returncode})", flush=True)
            server_died = True
            stops.received.append(signal.SIGTERM)


def run_demo() -> int:
    stops = Stops()
    stops.install()
    if STATE_FILE.exists():
        pid = json.loads(STATE_FILE.read_text()).get("pid", 0)
        if pid_alive(pid):
            print(f"demo: a demo is already running here (pid {pid})", file=sys.stderr)
            return 1
    DEMO_FOLDER.mkdir(exist_ok=True)
    s3_port, http_port = free_ports(2)
    server: subprocess.Popen[bytes] | None = None
    sidecar: subprocess.Popen[bytes] | None = None
    with tempfile.TemporaryFile() as server_log:
        try:
            print(f"demo: starting the moto S3 server on 127.0.0.1:{s3_port}...", flush=True)
            server = start_server(s3_port, server_log)
            if not wait_for_port(s3_port, server, stops):
                return 0
            s3_client(s3_port).create_bucket(Bucket=BUCKET)
            STATE_FILE.write_text(
                json.dumps({"pid": os.getpid(), "s3_port": s3_port, "http_port": http_port})
            )
            if stops.received:
                return 0
            print(banner(s3_port, http_port), flush=True)
            sidecar = start_sidecar(s3_port, http_port)
            return supervise(sidecar, server, stops)
        except (RuntimeError, BotoCoreError, ClientError) as error:
            server_log.seek(0)
            sys.stderr.write(server_log.read().decode(errors="replace")[-2000:])
            print(f"demo: {error}", file=sys.stderr)
            return 1
        finally:
            if sidecar is not None:
                stop(sidecar, SIDECAR_STOP_TIMEOUT)
            if server is not None:
                stop(server, 5)
            if STATE_FILE.exists() and json.loads(STATE_FILE.read_text()).get("pid") == os.getpid():
                STATE_FILE.unlink()


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def running_demo_client() -> Any:
    try:
        state = json.loads(STATE_FILE.read_text())
    except FileNotFoundError:
        sys.exit(f"demo: no demo is running in {Path.cwd()} (no {STATE_FILE}): start `make demo`")
    if not pid_alive(state.get("pid", 0)):
        sys.exit(f"demo: {STATE_FILE} is left from a demo that is no longer running")
    return s3_client(int(state["s3_port"]))


def list_keys() -> None:
    client = running_demo_client()
    count = 0
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
        for item in page.get("Contents", []):
            print(f"{item['Size']:>10}  {item['Key']}")
            count += 1
    print(f"{count} object{'' if count == 1 else 's'} in {BUCKET}")


def put(key: str, text: str) -> None:
    running_demo_client().put_object(Bucket=BUCKET, Key=key, Body=(text + "\n").encode())
    print(f"put s3://{BUCKET}/{key}")


def remove(key: str) -> None:
    running_demo_client().delete_object(Bucket=BUCKET, Key=key)
    print(f"deleted s3://{BUCKET}/{key}")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        epilog="With no command: run the demo.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser("ls", help="list the keys in the running demo's bucket")
    put_parser = commands.add_parser("put", help="put an object in the running demo's bucket")
    put_parser.add_argument("key")
    put_parser.add_argument("text")
    rm_parser = commands.add_parser("rm", help="delete an object from the running demo's bucket")
    rm_parser.add_argument("key")
    args = parser.parse_args()

    if args.command is None:
        return run_demo()
    try:
        if args.command == "ls":
            list_keys()
        elif args.command == "put":
            put(args.key, args.text)
        else:
            remove(args.key)
    except (BotoCoreError, ClientError) as error:
        print(f"demo: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
