"""`heap.release`: found on glibc, harmless everywhere, and it does give pages back."""

from __future__ import annotations

import platform

import pytest

from sidecar import heap


def _rss_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")
def test_freed_heap_goes_back_to_the_system() -> None:
    assert heap._TRIM is not None
    # Many blocks under the mmap threshold, then all but every 64th freed: the survivors pin
    # the heap's top, so only malloc_trim(0) can give the pages between them back.
    blocks = [bytearray(32 * 1024) for _ in range(4000)]  # 125 MiB, touched
    kept = blocks[::64]
    del blocks
    before = _rss_kib()
    heap.release()
    after = _rss_kib()
    assert before - after > 50 * 1024, (before, after)
    assert len(kept) == 63


def test_release_can_be_called_again_and_again() -> None:
    for _ in range(3):
        heap.release()
