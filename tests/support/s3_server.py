"""An S3 server process on 127.0.0.1 as the tests meet it (`S3Server`: its address, a user's
keys, a botocore client), and moto's (`moto_process`) with authentication on: the first few
requests (creating an IAM user and its key) are free, every request after that must carry a
valid SigV4 signature. Ceph's RADOS Gateway is the other (rgw.py)."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import botocore.session
from botocore.config import Config

from support.local_http import free_port

REGION = "us-east-1"
MOTO_SERVER = Path(__file__).with_name("moto_server.py")  # moto's, honouring copy If-Match


@dataclass(frozen=True)
class S3Server:
    name: str  # "moto" or "rgw": what tests are told apart by
    url: str
    port: int
    access_key_id: str
    secret_access_key: str
    log: Path

    @property
    def endpoint_pattern(self) -> str:
        return f"{self.url}/{{}}/"

    def env(self) -> dict[str, str]:
        return {
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
        }

    def client(self, service: str = "s3", **credentials: str) -> Any:
        session = botocore.session.get_session()
        return session.create_client(
            service,
            region_name=REGION,
            endpoint_url=self.url,
            aws_access_key_id=credentials.get("key", self.access_key_id),
            aws_secret_access_key=credentials.get("secret", self.secret_access_key),
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 5}),
        )


def _wait_for_port(port: int, process: subprocess.Popen[bytes], deadline: float) -> None:
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"moto server exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("moto server did not start in time")


@contextlib.contextmanager
def moto_process(log: Path) -> Iterator[S3Server]:
    """The server, its output in `log`, and the user `sidecar` allowed everything; stopped at
    the end."""
    port = free_port()
    env = {
        **os.environ,
        "INITIAL_NO_AUTH_ACTION_COUNT": "3",
        "AWS_ACCESS_KEY_ID": "bootstrap",
        "AWS_SECRET_ACCESS_KEY": "bootstrap",
    }
    with open(log, "wb") as output:
        process = subprocess.Popen(
            [sys.executable, str(MOTO_SERVER), "-H", "127.0.0.1", "-p", str(port)],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_for_port(port, process, time.monotonic() + 30)
        url = f"http://127.0.0.1:{port}"
        bootstrap = S3Server("moto", url, port, "bootstrap", "bootstrap", log)
        iam = bootstrap.client("iam")
        iam.create_user(UserName="sidecar")
        iam.put_user_policy(
            UserName="sidecar",
            PolicyName="all",
            PolicyDocument=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
                }
            ),
        )
        key = iam.create_access_key(UserName="sidecar")["AccessKey"]
        yield S3Server("moto", url, port, key["AccessKeyId"], key["SecretAccessKey"], log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
