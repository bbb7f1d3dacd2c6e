"""One seed end to end, and the command line: `make chaos SEEDS=200 DURATION=8`, or
`make chaos SEED=17` to replay one; on Ceph's RADOS Gateway instead of moto, `make chaos S3=rgw`
(`--s3 rgw`: one cluster for the run, tests/support/rgw.py).

A seed's world lives in a folder of its own (the three synced folders, `outside/`, the
sidecars' logs in `logs/`, the schedule in `schedule.txt`); it is deleted when the seed passes
and kept when it fails. One summary line per run:
`chaos: seeds N, ops M, faults F, crashes K, conflicts C, lost 0, diverged 0, escaped 0`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import shutil
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from support import rgw
from support.faultproxy import FaultProxy
from support.s3_server import S3Server, moto_process

from sidecar.local.conflicts import is_conflict

from .act import App, S3Writer
from .ledger import Ledger
from .plan import FOLDERS, Step, make_plan
from .verify import (
    Tree,
    bucket_tree,
    differences,
    escapes,
    folder_tree,
    leftovers,
    lost_versions,
)
from .world import Sidecar, chaos_faults, sidecar_env

PREFIX = "shared/"
SETTLE_TIMEOUT = 120.0  # after healing: longer than any back-off (60 s) plus a poll
GUARD_FLOOR = 10  # the max-delete guard never holds back this many deletions or fewer
# Removals this close together may be seen by one listing of another folder (its interval, a
# listing's own time, a restart between two).
BULK_WINDOW = 10.0


def most_removed_within(removals: list[tuple[float, int]], window: float) -> int:
    """The most files removals `(when, count)` took from their names within `window` seconds."""
    removals = sorted(removals)
    most = 0
    for i, (start, _) in enumerate(removals):
        most = max(most, sum(n for when, n in removals[i:] if when - start <= window))
    return most


@dataclass
class SeedResult:
    seed: int
    duration: float
    world: Path
    ops: int = 0
    skipped: int = 0
    faults: int = 0
    crashes: int = 0
    conflicts: int = 0
    settled_in: float = 0.0
    seconds: float = 0.0
    lost: list[str] = field(default_factory=list)
    unseen: list[str] = field(default_factory=list)  # deleted blind by the S3 writer (RGW)
    diverged: list[str] = field(default_factory=list)
    escaped: list[str] = field(default_factory=list)
    leftovers: list[str] = field(default_factory=list)
    deaths: list[str] = field(default_factory=list)
    guard: list[str] = field(default_factory=list)
    guard_expected: int = 0  # trips after a step removed more files at once than the floor

    @property
    def ok(self) -> bool:
        return not (
            self.lost
            or self.diverged
            or self.escaped
            or self.leftovers
            or self.deaths
            or self.guard
        )

    def replay(self) -> str:
        return f"make chaos SEED={self.seed} DURATION={self.duration:g}"

    def report(self) -> str:
        lines = [
            f"seed {self.seed}: ops {self.ops} ({self.skipped} did not apply), faults "
            f"{self.faults}, crashes {self.crashes}, conflicts {self.conflicts}, settled in "
            f"{self.settled_in:.1f} s, {self.seconds:.0f} s in all"
            + (
                f", guard tripped after a bulk removal {self.guard_expected}x"
                if self.guard_expected
                else ""
            )
        ]
        for title, items in (
            ("lost", self.lost),
            ("deleted unseen by the S3 writer (If-Match on DELETE ignored)", self.unseen),
            ("diverged", self.diverged),
            ("escaped", self.escaped),
            ("working files left visible", self.leftovers),
            ("died", self.deaths),
            ("max-delete guard tripped", self.guard),
        ):
            if items:
                lines.append(f"  {title}:")
                lines.extend(f"    {item}" for item in items[:30])
        if not self.ok:
            lines.append(f"  replay: {self.replay()}   (world kept in {self.world})")
        return "\n".join(lines)


async def _crash(sidecar: Sidecar, how: str, pause: float, result: SeedResult) -> None:
    """kill -9 or SIGTERM, then a restart `pause` seconds later (the app goes on meanwhile)."""
    if how == "kill":
        sidecar.kill()
    else:
        code = await asyncio.to_thread(sidecar.terminate, 60.0)
        if code not in (None, 0, 1):  # 1: stopped with changes not yet in S3 (faults)
            sidecar.deaths.append(f"{sidecar.name} exited {code} after SIGTERM")
    result.crashes += 1
    await asyncio.sleep(pause)
    sidecar.start()


async def _snapshot(
    client: object, bucket: str, folders: dict[str, Path]
) -> tuple[dict[str, Tree], Tree]:
    trees = {name: await asyncio.to_thread(folder_tree, path) for name, path in folders.items()}
    return trees, await asyncio.to_thread(bucket_tree, client, bucket, PREFIX)


async def run_seed(
    seed: int, duration: float, server: S3Server, base: Path, settle: float = SETTLE_TIMEOUT
) -> SeedResult:
    world = base / f"seed-{seed}"
    shutil.rmtree(world, ignore_errors=True)
    (world / "logs").mkdir(parents=True)
    (world / "outside").mkdir()
    folders = {name: world / name for name in FOLDERS}
    for folder in folders.values():
        folder.mkdir()
    result = SeedResult(seed, duration, world)
    began = time.monotonic()
    client = server.client()
    bucket = f"chaos-{seed}-{uuid.uuid4().hex[:8]}"
    await asyncio.to_thread(lambda: client.create_bucket(Bucket=bucket))
    ledger = Ledger()
    plan = make_plan(seed, duration)
    (world / "schedule.txt").write_text("\n".join(step.describe() for step in plan) + "\n")

    rng = random.Random(f"faults {seed}")
    proxies: dict[str, FaultProxy] = {}
    for name in FOLDERS:
        proxy = FaultProxy(server.url)
        await proxy.start()
        proxy.faults.chaos = chaos_faults(rng)
        proxies[name] = proxy
    sidecars = {
        name: Sidecar(
            name,
            folders[name],
            sidecar_env(server, proxies[name], folders[name], bucket, PREFIX),
            world / "logs" / f"sidecar-{name}.log",
        )
        for name in FOLDERS
    }
    apps = {name: App(name, folders[name], world / "outside", ledger) for name in FOLDERS}
    writer = S3Writer(server.client(), bucket, PREFIX, ledger, bare_etags=server.name == "rgw")
    crashes: list[asyncio.Task[None]] = []
    try:
        for sidecar in sidecars.values():
            sidecar.start()
        await _run_schedule(plan, apps, writer, sidecars, crashes, result, world / "steps.log")
        for app in apps.values():
            app.close_held(everything=True)
        for proxy in proxies.values():
            assert proxy.faults.chaos is not None
            proxy.faults.chaos.healed = True
        await asyncio.gather(*crashes)
        for sidecar in sidecars.values():
            sidecar.check_alive()
            if not sidecar.running:
                sidecar.start()
        await _settle(client, bucket, folders, settle, result)
        trees, remote = await _snapshot(client, bucket, folders)
        result.lost, result.unseen = lost_versions(ledger, [*trees.values(), remote])
        result.leftovers = leftovers(trees[FOLDERS[0]])
        result.conflicts = sum(1 for rel in trees[FOLDERS[0]].files if is_conflict(rel))
        placed = {"outside"} | set().union(*(app.placed for app in apps.values()))
        result.escaped = escapes(world, {*FOLDERS, "logs"}, placed | {"schedule.txt", "steps.log"})
        codes = await asyncio.gather(
            *(asyncio.to_thread(sidecar.terminate, 60.0) for sidecar in sidecars.values())
        )
        for sidecar, code in zip(sidecars.values(), codes, strict=True):
            if code != 0:
                sidecar.deaths.append(f"{sidecar.name} exited {code} at the end, once settled")
    finally:
        for sidecar in sidecars.values():
            sidecar.kill()
        for proxy in proxies.values():
            result.faults += sum(proxy.injected.values())
            await proxy.close()
    result.seconds = time.monotonic() - began
    # Steps that took more files from their names than the guard's floor, within one look of
    # another folder, may rightly trip it there (seed 90074: a tree of 11 of some 20 files
    # deleted; seed 92036: trees of 9 and 4 files moved out of two folders 0.2 s apart, seen
    # by a third's one listing); only a trip no step can explain (a listing gone wrong) fails
    # the seed.
    bulk = most_removed_within([r for app in apps.values() for r in app.removals], BULK_WINDOW)
    for sidecar in sidecars.values():
        result.deaths.extend(sidecar.deaths)
        text = sidecar.log.read_text(errors="replace")
        if "Traceback" in text:
            result.deaths.append(f"{sidecar.name}: a traceback in its log")
        trips = [
            f"{sidecar.name}: {line.strip()}"
            for line in text.splitlines()
            if "max-delete guard" in line
        ]
        if bulk > GUARD_FLOOR:
            result.guard_expected += len(trips)
        else:
            result.guard.extend(trips)
    return result


async def _run_schedule(
    plan: list[Step],
    apps: dict[str, App],
    writer: S3Writer,
    sidecars: dict[str, Sidecar],
    crashes: list[asyncio.Task[None]],
    result: SeedResult,
    steps_log: Path,
) -> None:
    loop = asyncio.get_running_loop()
    start = loop.time()
    for step in plan:
        delay = start + step.at - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        for app in apps.values():
            app.close_held()
        for sidecar in sidecars.values():
            sidecar.check_alive()
        result.ops += 1
        with open(steps_log, "a") as record:
            record.write(f"{time.time():.3f} {step.describe()}\n")
        if step.place == "crash":
            name, pause = step.args
            sidecar = sidecars[name]
            if not sidecar.running or any(
                not task.done() and task.get_name() == name for task in crashes
            ):
                result.skipped += 1
                continue
            crashes.append(
                asyncio.create_task(_crash(sidecar, step.op, float(pause), result), name=name)
            )
        elif step.place == "s3":
            await asyncio.to_thread(writer.do, step)
        elif not apps[step.place].do(step):
            result.skipped += 1


async def _settle(
    client: object, bucket: str, folders: dict[str, Path], timeout: float, result: SeedResult
) -> None:
    """Until the folders and the bucket agree in two snapshots a poll apart, or `timeout`."""
    began = time.monotonic()
    agreed = 0
    problems: list[str] = []
    while time.monotonic() - began < timeout:
        trees, remote = await _snapshot(client, bucket, folders)
        problems = differences(trees, remote)
        agreed = agreed + 1 if not problems else 0
        if agreed >= 2:
            result.settled_in = time.monotonic() - began
            return
        await asyncio.sleep(1.0)
    result.settled_in = time.monotonic() - began
    result.diverged = problems


def _summary(results: list[SeedResult]) -> str:
    def total(attribute: str) -> int:
        return sum(len(v) if isinstance(v := getattr(r, attribute), list) else v for r in results)

    return (
        f"chaos: seeds {len(results)}, ops {total('ops')}, faults {total('faults')}, "
        f"crashes {total('crashes')}, conflicts {total('conflicts')}, lost {total('lost')}, "
        f"diverged {total('diverged')}, escaped {total('escaped')}"
        f" (deleted unseen by the S3 writer {total('unseen')}, died {total('deaths')}, "
        f"guard trips {total('guard')}, "
        f"leftovers {total('leftovers')}; guard trips after a bulk removal "
        f"{total('guard_expected')})"
    )


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make chaos", description=__doc__)
    parser.add_argument("--seeds", type=int, default=20, help="how many seeds (from --first)")
    parser.add_argument("--first", type=int, default=1, help="the first seed")
    parser.add_argument("--seed", type=int, help="replay this one seed (keeps its world)")
    parser.add_argument("--duration", type=float, default=8.0, help="seconds of schedule")
    parser.add_argument(
        "--max-minutes", type=float, default=120.0, help="stop starting seeds after this long"
    )
    parser.add_argument("--dir", type=Path, help="where worlds go (default: a temp folder)")
    parser.add_argument(
        "--s3", choices=("moto", "rgw"), default="moto", help="the S3 server (rgw: Ceph RGW)"
    )
    args = parser.parse_args(argv)
    if args.s3 == "rgw" and rgw.missing():
        print(f"chaos: Ceph RGW is not installed: {rgw.INSTALL}", file=sys.stderr)
        return 2
    seeds = [args.seed] if args.seed is not None else range(args.first, args.first + args.seeds)
    base = args.dir or Path(tempfile.mkdtemp(prefix="s3sync-chaos-"))
    base.mkdir(parents=True, exist_ok=True)
    results: list[SeedResult] = []
    began = time.monotonic()
    server_process: contextlib.AbstractContextManager[S3Server] = (
        rgw.rgw_process(base / "rgw") if args.s3 == "rgw" else moto_process(base / "moto.log")
    )
    with server_process as server:
        print(f"chaos: on {server.name} at {server.url}", flush=True)
        for seed in seeds:
            if time.monotonic() - began > args.max_minutes * 60:
                print(f"chaos: stopping after {args.max_minutes:g} minutes", flush=True)
                break
            result = await run_seed(seed, args.duration, server, base)
            results.append(result)
            print(result.report(), flush=True)
            if result.ok and args.seed is None:
                shutil.rmtree(result.world, ignore_errors=True)
    print(_summary(results), flush=True)
    failed = [r for r in results if not r.ok]
    for result in failed:
        print(f"failed: seed {result.seed}: {result.replay()}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
