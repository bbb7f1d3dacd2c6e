"""`s3sync-sidecar flush [--timeout N]`: the durability barrier from the app's side.

Asks the local sidecar's `POST /flush` and exits 0 once every change made in the folder before
the call is in S3; 1 when the timeout passed first (what is pending is printed) or the sidecar
is not syncing; 2 when it cannot be reached. For an app that must know its checkpoint is safe
before it acknowledges work: close (and fsync) the file, then run this. Standard library only,
like `healthcheck`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .healthcheck import add_target_arguments, request, sidecar_url

EXIT_FLUSHED, EXIT_NOT_FLUSHED, EXIT_UNREACHABLE = 0, 1, 2


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="s3sync-sidecar flush",
        description="Wait until every change made in the synced folder before this call is in "
        "S3. Exit 0 when it is, 1 on timeout (printing what is pending), 2 if the sidecar "
        "cannot be reached.",
    )
    add_target_arguments(parser)
    parser.add_argument(
        "--timeout", type=float, default=30.0, help="seconds to wait (default 30, at most 3600)"
    )
    args = parser.parse_args(list(argv))
    if not 0 < args.timeout <= 3600:
        parser.error("--timeout: expected seconds, more than 0 and at most 3600")
    try:
        url = sidecar_url(f"/flush?timeout={args.timeout:g}", args.port, args.host)
    except ValueError as error:
        print(f"flush: {error}", file=sys.stderr)
        return EXIT_UNREACHABLE
    try:
        status, text = request(url, args.timeout + 10, method="POST")
    except OSError as error:
        print(f"flush: {url}: {error}", file=sys.stderr)
        return EXIT_UNREACHABLE
    if status == 200:
        print(text)
        return EXIT_FLUSHED
    print(f"flush: not flushed ({status}): {text}", file=sys.stderr)
    return EXIT_NOT_FLUSHED
