"""A start-up restore's progress: of the paths it looks at (and the bytes S3 lists for them), how
many are done, at what rate, and about how long the rest will take.

Pure: the restore feeds it through named transitions (`expect` once the listing is folded in,
`begin` when the passes start, `passed` as each path finishes, `finish`), each given the
monotonic clock's reading; the restore's timer log (`line`), `/readyz` (`figures`) and the
metrics' gauges read it.

- Objects are the paths the restore looks at: what the listing changed or added, and what was
  synced before a restart (most of those settle at a glance). Bytes are the sizes S3 lists for
  them; a path counts as done, with its bytes, once its pass settles it (downloaded, found in
  place, uploaded), finds it being written, or has failed three times (restore.py).
- Rates are averages since the passes began: a restore is one burst of like work, and the
  average does not swing with one large object.
- The time left is the larger of the two estimates, objects left at the object rate and bytes
  left at the byte rate: small objects are bound by requests, large ones by bandwidth, and either
  alone would promise too soon. Unknown (None) until a path is done.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")


def size_text(size: float) -> str:
    """1536 -> '1.5 KiB', as people read sizes."""
    for unit in _UNITS:
        if abs(size) < 1024 or unit == _UNITS[-1]:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def duration_text(seconds: float) -> str:
    """75 -> '1m15s'; 3725 -> '1h02m'."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


@dataclass(slots=True)
class RestoreProgress:
    objects: int = 0  # paths to look at
    bytes: int = 0  # the sizes S3 lists for them
    objects_done: int = 0
    bytes_done: int = 0
    began: float | None = None  # monotonic: the passes started
    ended: float | None = None  # monotonic: the last one finished

    def expect(self, objects: int, size: int) -> None:
        """The restore found `objects` paths to look at, of `size` bytes in S3."""
        self.objects, self.bytes = objects, size

    def begin(self, now: float) -> None:
        self.began = now

    def passed(self, size: int) -> None:
        """A path is done; S3 lists `size` bytes for it (0 for a directory or a local file)."""
        self.objects_done += 1
        self.bytes_done += size

    def finish(self, now: float) -> None:
        self.ended = now
        self.objects_done, self.bytes_done = self.objects, max(self.bytes, self.bytes_done)

    def elapsed(self, now: float) -> float:
        if self.began is None:
            return 0.0
        return (self.ended if self.ended is not None else now) - self.began

    def rates(self, now: float) -> tuple[float, float]:
        """(objects, bytes) per second since the passes began; 0 before a second has passed
        with anything done."""
        elapsed = self.elapsed(now)
        if elapsed <= 0 or not self.objects_done:
            return 0.0, 0.0
        return self.objects_done / elapsed, self.bytes_done / elapsed

    def seconds_left(self, now: float) -> float | None:
        if self.ended is not None:
            return 0.0
        objects_rate, bytes_rate = self.rates(now)
        if not objects_rate:
            return None
        left = max(0, self.objects - self.objects_done) / objects_rate
        bytes_left = max(0, self.bytes - self.bytes_done)
        if bytes_left:
            left = max(left, bytes_left / bytes_rate if bytes_rate else float("inf"))
        return left if left != float("inf") else None

    def figures(self, now: float) -> dict[str, Any]:
        """For `/readyz`'s `restore` check."""
        objects_rate, bytes_rate = self.rates(now)
        left = self.seconds_left(now)
        return {
            "objects": self.objects,
            "objects_done": self.objects_done,
            "bytes": self.bytes,
            "bytes_done": self.bytes_done,
            "objects_per_second": round(objects_rate, 1),
            "bytes_per_second": round(bytes_rate),
            "seconds_left": None if left is None else round(left, 1),
        }

    def line(self, now: float) -> str:
        """The timer's log line: 'restoring: 1,200 of 6,000 objects, 12.0 MiB of 60.0 MiB,
        240 objects/s, 2.4 MiB/s, about 20s left'."""
        objects_rate, bytes_rate = self.rates(now)
        left = self.seconds_left(now)
        return (
            f"restoring: {self.objects_done:,} of {self.objects:,} objects, "
            f"{size_text(self.bytes_done)} of {size_text(self.bytes)}, "
            f"{objects_rate:,.0f} objects/s, {size_text(bytes_rate)}/s, "
            + ("time left unknown yet" if left is None else f"about {duration_text(left)} left")
        )
