"""The `s3sync-sidecar` command: mobius3's command line, or `SYNC_*` variables when no
positional arguments are given; `s3sync-sidecar healthcheck` for container health checks;
`s3sync-sidecar flush` for the durability barrier; `s3sync-sidecar --version`.

Heavy imports happen inside `main`, after the health-check shortcut.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from ..version import __version__

if TYPE_CHECKING:
    from ..settings.config import Problem, Settings

EXIT_CONFIG = 2
CREDENTIAL_SOURCES = {
    "environment-variables": "environment",
    "envrionment-variables": "environment",  # mobius3's own default, spelling included
    "ecs-container-endpoint": "ecs",
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="s3sync-sidecar",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Keep a folder and an S3 bucket prefix continuously in sync, both ways.",
        epilog="With no positional arguments, every setting comes from SYNC_* environment "
        "variables (see the README). `s3sync-sidecar healthcheck` exits 0 once the running "
        "sidecar has restored the bucket and while it is alive, else 1. `s3sync-sidecar flush "
        "[--timeout N]` exits 0 once every change made in the folder before it is in S3.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("directory", nargs="?", help="local folder to sync, e.g. /data")
    parser.add_argument("bucket", nargs="?", help="bucket name")
    parser.add_argument(
        "endpoint",
        nargs="?",
        help="endpoint pattern with {} for the bucket, e.g. "
        "'https://{}.s3.eu-west-2.amazonaws.com/'",
    )
    parser.add_argument("region", nargs="?", help="bucket region, e.g. eu-west-2")
    parser.add_argument(
        "--prefix",
        nargs="?",
        default=None,
        const="",
        help="key prefix, often with a trailing slash, e.g. folder/",
    )
    parser.add_argument(
        "--exclude-remote",
        nargs="?",
        default=None,
        help="regex of keys (relative to the prefix) not to download",
    )
    parser.add_argument(
        "--exclude-local", nargs="?", default=None, help="regex of full local paths not to upload"
    )
    parser.add_argument(
        "--upload-on-create",
        nargs="?",
        default=None,
        help="regex of full local paths to upload as soon as created",
    )
    parser.add_argument(
        "--log-level",
        nargs="?",
        default=None,
        type=str.upper,
        help="DEBUG, INFO, WARNING, ERROR (default INFO)",
    )
    parser.add_argument(
        "--disable-ssl-verification",
        nargs="?",
        const=True,
        default=False,
        help="do not verify the endpoint's TLS certificate",
    )
    parser.add_argument(
        "--credentials-source",
        nargs="?",
        default=None,
        choices=sorted(CREDENTIAL_SOURCES),
        help="where AWS credentials come from (default: the environment's "
        "keys, else the ECS container credentials endpoint)",
    )
    parser.add_argument(
        "--force-ipv4",
        nargs="?",
        const=True,
        default=False,
        help="accepted for mobius3 compatibility",
    )
    for legacy in (
        "--cloudwatch-monitoring-endpoint",
        "--cloudwatch-monitoring-region",
        "--cloudwatch-monitoring-namespace",
    ):
        parser.add_argument(legacy, nargs="?", default=None, help=argparse.SUPPRESS)
    return parser


def settings_from(argv: Sequence[str], env: Mapping[str, str]) -> Settings:
    from ..settings.config import ConfigError, load_settings

    args = _parser().parse_args(list(argv))
    positional = [args.directory, args.bucket, args.endpoint, args.region]
    given = [value for value in positional if value is not None]
    if given and len(given) != 4:
        raise ConfigError([_usage_problem()])
    overrides: dict[str, str] = {}
    if given:
        overrides.update(
            SYNC_DIR=args.directory,
            SYNC_BUCKET=args.bucket,
            SYNC_ENDPOINT=args.endpoint,
            SYNC_REGION=args.region,
        )
    for name, value in (
        ("SYNC_PREFIX", args.prefix),
        ("SYNC_EXCLUDE_REMOTE", args.exclude_remote),
        ("SYNC_EXCLUDE_LOCAL", args.exclude_local),
        ("SYNC_UPLOAD_ON_CREATE", args.upload_on_create),
        ("SYNC_LOG_LEVEL", args.log_level),
    ):
        if value is not None:
            overrides[name] = value
    if args.disable_ssl_verification:
        overrides["SYNC_TLS_VERIFY"] = "false"
    source = CREDENTIAL_SOURCES.get(args.credentials_source or "", "auto")
    return load_settings(env, overrides, credentials_source=source)


def _usage_problem() -> Problem:
    from ..settings.config import Problem

    return Problem(
        "command line",
        None,
        "give all four of DIRECTORY BUCKET ENDPOINT REGION, or none of them "
        "(then SYNC_DIR, SYNC_BUCKET, SYNC_ENDPOINT, SYNC_REGION are used)",
    )


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["healthcheck"]:
        from .healthcheck import main as healthcheck

        return healthcheck(argv[1:])
    if argv[:1] == ["flush"]:
        from .flush_command import main as flush

        return flush(argv[1:])

    from ..settings.config import ConfigError

    env = dict(os.environ)
    try:
        settings = settings_from(argv, env)
    except ConfigError as error:
        print("s3sync-sidecar: invalid configuration, nothing was changed:", file=sys.stderr)
        for problem in error.problems:
            print(f"  {problem}", file=sys.stderr)
        return EXIT_CONFIG

    from ..log import setup_logging
    from .service import Service

    setup_logging(settings.log_level, settings.log_format)

    async def serve() -> int:
        return await Service(settings, env).run()

    try:
        return asyncio.run(serve())
    except KeyboardInterrupt:
        return 130
