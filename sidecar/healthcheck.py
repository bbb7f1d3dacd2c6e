"""`s3sync-sidecar healthcheck`: asks the local `/readyz` and exits 0 (ready) or 1.

For the container's health check (ECS `healthCheck`, Docker `HEALTHCHECK`), so the image needs
no curl. Standard library only, and imported without the rest of the package: ECS runs it
every few seconds.
"""

from __future__ import annotations

import argparse
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="s3sync-sidecar healthcheck",
        description="Exit 0 if the local sidecar is ready (its /readyz answers 200), else 1.",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=None,
        help="HTTP port of the sidecar (default: SYNC_HTTP_PORT, else 9464)",
    )
    parser.add_argument("--timeout", type=float, default=3.0, help="seconds (default 3)")
    args = parser.parse_args(list(argv))
    port = args.port
    if port is None:
        raw = os.environ.get("SYNC_HTTP_PORT", "9464") or "9464"
        try:
            port = int(raw)
        except ValueError:
            print(f"unhealthy: SYNC_HTTP_PORT={raw!r} is not a port number", file=sys.stderr)
            return 1
    url = f"http://127.0.0.1:{port}/readyz"
    try:
        with urllib.request.urlopen(url, timeout=args.timeout) as response:
            status, body = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, body = error.code, error.read()
    except (urllib.error.URLError, OSError) as error:
        print(f"unhealthy: {url}: {error}", file=sys.stderr)
        return 1
    text = body.decode("utf-8", "replace").strip()
    if status == 200:
        print(text)
        return 0
    print(f"unhealthy: {url} answered {status}: {text}", file=sys.stderr)
    return 1
