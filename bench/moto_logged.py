"""moto's server as the tests run it (tests/support/moto_server.py), noting when each object becomes
visible: `python bench/moto_logged.py LOG -H 127.0.0.1 -p PORT`.

moto keeps objects in memory, so the benchmark cannot watch its disk as it watches `rclone serve
s3`'s. Instead every stored object (a PUT, a completed multipart upload, a copy: all go through
`S3Backend.put_object`) appends `<CLOCK_MONOTONIC seconds>\t<bucket>\t<key>\t<size>` to LOG once
it is stored, and every deleted one (DeleteObject, and each key of a DeleteObjects: both go
through `S3Backend.delete_object`) `<seconds>\t<bucket>\t<key>\t-` once it is gone.
CLOCK_MONOTONIC is one clock for every process on the machine, so the benchmark compares these
times with its own `time.monotonic()` (harness.LoggedArrivals, harness.Ledger). Reading the log
costs the server nothing, where listing a bucket of 20,000 keys ten times a second would take
more of moto's one interpreter than the tool measured."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from moto.s3.models import S3Backend
from support import moto_server  # the tests' moto, with their one S3 behaviour added

_put_object = S3Backend.put_object
_delete_object = S3Backend.delete_object


def main(log_path: str, arguments: list[str]) -> None:
    log = open(log_path, "a", buffering=1, encoding="utf-8")  # noqa: SIM115 - the process's life
    lock = threading.Lock()

    def put_object(self: Any, bucket_name: str, key_name: str, *args: Any, **kwargs: Any) -> Any:
        stored = _put_object(self, bucket_name, key_name, *args, **kwargs)
        with lock:
            log.write(f"{time.monotonic():.6f}\t{bucket_name}\t{key_name}\t{stored.size}\n")
        return stored

    def delete_object(self: Any, bucket_name: str, key_name: str, *args: Any, **kwargs: Any) -> Any:
        deleted = _delete_object(self, bucket_name, key_name, *args, **kwargs)
        with lock:
            log.write(f"{time.monotonic():.6f}\t{bucket_name}\t{key_name}\t-\n")
        return deleted

    S3Backend.put_object = put_object  # type: ignore[method-assign]
    S3Backend.delete_object = delete_object  # type: ignore[method-assign]
    moto_server.main(arguments)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
