"""`s3sync-sidecar healthcheck`: asks the local `/startupz` and exits 0 (healthy) or 1.

For the container's health check (ECS `healthCheck`, Docker `HEALTHCHECK`), so the image needs
no curl. "Ready once, then alive": it fails until the initial restore has finished (an app that
`dependsOn … HEALTHY` waits for a complete folder), then only if the process stopped syncing,
never because S3 or the credentials endpoint is away; `--ready` asks `/readyz` instead, which
does fail during such an outage. Standard library only, and imported without the rest of the
package: ECS runs it every few seconds.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence

# SYNC_HTTP_PORT's default, written here too so that this module imports nothing of the package
# (tests/service/test_settings_table.py keeps it equal to the table's).
DEFAULT_PORT = 9464


def target_host(bound: str) -> str:
    """Where to reach a server bound to `bound` (SYNC_HTTP_HOST) from inside its container:
    loopback when it listens on every interface (IPv6's `::` does not take IPv4 here: asyncio
    binds it v6-only) or on loopback, else the address or name it is bound to."""
    bound = bound.strip()
    if not bound:
        return "127.0.0.1"
    try:
        address = ipaddress.ip_address(bound)
    except ValueError:
        return bound  # a host name: it resolves to what was bound
    if address.is_unspecified:
        return "::1" if address.version == 6 else "127.0.0.1"
    return str(address)


def url_for(host: str, port: int, path: str) -> str:
    return f"http://[{host}]:{port}{path}" if ":" in host else f"http://{host}:{port}{path}"


def sidecar_url(path: str, port: int | None, host: str | None) -> str:
    """The URL of `path` on the local sidecar: `port` and `host` as given, else from
    SYNC_HTTP_PORT (9464) and SYNC_HTTP_HOST. ValueError if SYNC_HTTP_PORT is not a number."""
    if port is None:
        raw = os.environ.get("SYNC_HTTP_PORT") or str(DEFAULT_PORT)
        try:
            port = int(raw)
        except ValueError:
            raise ValueError(f"SYNC_HTTP_PORT={raw!r} is not a port number") from None
    bound = host if host is not None else os.environ.get("SYNC_HTTP_HOST", "")
    return url_for(target_host(bound), port, path)


def add_target_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--port",
        type=int,
        default=None,
        help=f"HTTP port of the sidecar (default: SYNC_HTTP_PORT, else {DEFAULT_PORT})",
    )
    parser.add_argument(
        "--host",
        default=None,
        help="address the sidecar listens on (default: SYNC_HTTP_HOST; all interfaces and "
        "unset mean 127.0.0.1)",
    )


def request(url: str, timeout: float, method: str = "GET") -> tuple[int, str]:
    """(status, body) of one request straight to the sidecar (never through an HTTP(S)_PROXY
    from the environment). OSError if it cannot be reached."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        prepared = urllib.request.Request(url, method=method)  # noqa: S310 - http:// built here
        with opener.open(prepared, timeout=timeout) as answer:
            status, body = answer.status, answer.read()
    except urllib.error.HTTPError as error:
        status, body = error.code, error.read()
    except urllib.error.URLError as error:
        raise OSError(str(error.reason)) from error
    return int(status), body.decode("utf-8", "replace").strip()


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="s3sync-sidecar healthcheck",
        description="Exit 0 if the local sidecar has restored the bucket and is alive (its "
        "/startupz answers 200), else 1.",
    )
    parser.add_argument(
        "--ready",
        action="store_true",
        help="ask /readyz instead: also fail while S3 or the credentials cannot be reached",
    )
    add_target_arguments(parser)
    parser.add_argument("--timeout", type=float, default=3.0, help="seconds (default 3)")
    args = parser.parse_args(list(argv))
    try:
        url = sidecar_url("/readyz" if args.ready else "/startupz", args.port, args.host)
    except ValueError as error:
        print(f"unhealthy: {error}", file=sys.stderr)
        return 1
    try:
        status, text = request(url, args.timeout)
    except OSError as error:
        print(f"unhealthy: {url}: {error}", file=sys.stderr)
        return 1
    if status == 200:
        print(text)
        return 0
    print(f"unhealthy: {url} answered {status}: {text}", file=sys.stderr)
    return 1
