"""The `s3sync-sidecar` command: mobius3's command line, or `SYNC_*` variables when no
positional arguments are given; `s3sync-sidecar healthcheck` for container health checks;
`s3sync-sidecar flush` for the durability barrier; `s3sync-sidecar --version`.

Heavy imports happen inside `main`, after the health-check shortcut.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..version import __version__

if TYPE_CHECKING:
    from ..settings.config import Problem, Settings
    from ..settings.setting import Setting

EXIT_CONFIG = 2
CREDENTIAL_SOURCES = {
    "environment-variables": "environment",
    "envrionment-variables": "environment",  # mobius3's own default, spelling included
    "ecs-container-endpoint": "ecs",
}


POSITIONAL = ("directory", "bucket", "endpoint", "region")  # mobius3's, in its order
# How a mobius3 flag differs from "takes the setting's text": `--prefix` alone means no prefix.
_FLAG_OPTIONS: dict[str, dict[str, Any]] = {
    "--prefix": {"const": ""},
    "--log-level": {"type": str.upper},
}


def _help(row: Setting[Any]) -> str:
    from ..settings.setting import plain

    return f"{plain(row.meaning)} ({row.env})".replace("%", "%%")


def _parser() -> argparse.ArgumentParser:
    from ..settings.table import ROWS

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
    rows = dict(ROWS)
    for name in POSITIONAL:
        parser.add_argument(name, nargs="?", help=_help(rows[name]))
    for name, row in ROWS:
        if row.flag is not None:
            parser.add_argument(
                row.flag,
                nargs="?",
                default=None,
                dest=name,
                help=_help(row),
                **_FLAG_OPTIONS.get(row.flag, {}),
            )
    parser.add_argument(
        "--disable-ssl-verification",
        nargs="?",
        const=True,
        default=False,
        help="do not verify the endpoint's TLS certificate (SYNC_TLS_VERIFY=false)",
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


def flag_overrides(args: argparse.Namespace) -> dict[str, str]:
    """The variables that mobius3's positional arguments and flags (the rows' `flag`) set:
    each is parsed into `args` under its setting's name."""
    from ..settings.table import ROWS

    overrides: dict[str, str] = {}
    for name, row in ROWS:
        if (name in POSITIONAL or row.flag is not None) and row.env is not None:
            value = getattr(args, name)
            if value is not None:
                overrides[row.env] = value
    if args.disable_ssl_verification:
        overrides["SYNC_TLS_VERIFY"] = "false"
    return overrides


def settings_from(argv: Sequence[str], env: Mapping[str, str]) -> Settings:
    from ..settings.config import ConfigError, load_settings

    args = _parser().parse_args(list(argv))
    given = [value for name in POSITIONAL if (value := getattr(args, name)) is not None]
    if given and len(given) != len(POSITIONAL):
        raise ConfigError([_usage_problem()])
    source = CREDENTIAL_SOURCES.get(args.credentials_source or "", "auto")
    return load_settings(env, flag_overrides(args), credentials_source=source)


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

    from ..settings.config import ConfigError, unknown_variables

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
    for line in unknown_variables(env):
        logging.getLogger("sidecar").warning("%s", line)

    async def serve() -> int:
        return await Service(settings, env).run()

    try:
        return asyncio.run(serve())
    except KeyboardInterrupt:
        return 130
