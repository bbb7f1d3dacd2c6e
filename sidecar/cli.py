"""The `s3sync-sidecar` command: mobius3's command line, or `SYNC_*` variables when no
positional arguments are given. SIGTERM and SIGINT stop it gracefully; a second one exits at
once."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import ssl
import sys
from collections.abc import Sequence

from .config import ConfigError, Problem, Settings, load_settings
from .log import setup_logging
from .syncer import Syncer

log = logging.getLogger("sidecar.cli")

EXIT_CONFIG = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="s3sync-sidecar",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Keep a folder and an S3 bucket prefix continuously in sync, both ways.",
        epilog="With no positional arguments, every setting comes from SYNC_* environment "
        "variables (see the README).",
    )
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
        choices=["environment-variables", "envrionment-variables", "ecs-container-endpoint"],
        help="where AWS credentials come from (mobius3 compatible)",
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


def settings_from(argv: Sequence[str], env: dict[str, str]) -> Settings:
    args = _parser().parse_args(list(argv))
    positional = [args.directory, args.bucket, args.endpoint, args.region]
    given = [value for value in positional if value is not None]
    overrides: dict[str, str] = {}
    if given and len(given) != 4:
        raise ConfigError([_usage_problem()])
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
    return load_settings(env, overrides)


def _usage_problem() -> Problem:
    return Problem(
        "command line",
        None,
        "give all four of DIRECTORY BUCKET ENDPOINT REGION, or none of them "
        "(then SYNC_DIR, SYNC_BUCKET, SYNC_ENDPOINT, SYNC_REGION are used)",
    )


def ssl_context(settings: Settings) -> ssl.SSLContext | bool:
    if not settings.tls_verify:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    if settings.ca_bundle:
        context = ssl.create_default_context()
        context.load_verify_locations(cafile=settings.ca_bundle)
        return context
    return True


def build_syncer(settings: Settings) -> Syncer:
    return Syncer(
        settings.directory,
        settings.bucket,
        settings.endpoint,
        settings.region,
        prefix=settings.prefix,
        concurrent_uploads=settings.upload_concurrency,
        concurrent_downloads=settings.download_concurrency,
        download_interval=settings.poll_interval,
        exclude_remote=settings.exclude_remote,
        exclude_local=settings.exclude_local,
        upload_on_create=settings.upload_on_create,
        ssl_context=ssl_context(settings),
        multipart_threshold=settings.multipart_threshold,
        multipart_chunksize=settings.multipart_chunksize,
        max_delete_percent=settings.max_delete_percent,
        open_file_timeout=settings.open_file_timeout,
    )


async def run(settings: Settings) -> int:
    syncer = build_syncer(settings)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    received: list[int] = []

    def on_signal(signum: int) -> None:
        received.append(signum)
        if len(received) > 1:
            log.error("second %s: exiting now", signal.Signals(signum).name)
            logging.shutdown()
            os._exit(128 + signum)
        log.info(
            "%s received: finishing queued uploads (up to %gs)",
            signal.Signals(signum).name,
            settings.shutdown_timeout,
        )
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)

    starting = asyncio.create_task(syncer.start(), name="start")
    stopping = asyncio.create_task(stop.wait(), name="wait-for-signal")
    await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
    if not starting.done():
        starting.cancel()
        await asyncio.gather(starting, return_exceptions=True)
        log.error("stopped before the initial restore finished")
        return 1
    error = starting.exception()
    if error is not None:
        stopping.cancel()
        log.error("cannot start: %s", error)
        return 1

    while not stop.is_set():
        with_timeout = asyncio.wait_for(asyncio.shield(stopping), timeout=1.0)
        try:
            await with_timeout
        except TimeoutError:
            fatal = syncer.status().fatal
            if fatal:
                log.error("exiting: %s", fatal)
                await syncer.stop(timeout=settings.shutdown_timeout)
                return 1
    left = await syncer.stop(timeout=settings.shutdown_timeout)
    return 1 if left else 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        settings = settings_from(argv, dict(os.environ))
    except ConfigError as error:
        print("s3sync-sidecar: invalid configuration, nothing was changed:", file=sys.stderr)
        for problem in error.problems:
            print(f"  {problem}", file=sys.stderr)
        return EXIT_CONFIG
    setup_logging(settings.log_level, settings.log_format)
    try:
        return asyncio.run(run(settings))
    except KeyboardInterrupt:
        return 130
