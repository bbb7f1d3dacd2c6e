"""`heap.release`: found on glibc, harmless everywhere, and it does give pages back."""

from __future__ import annotations

import gc
import platform
import weakref

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


class _Node:
    def __init__(self) -> None:
        self.me = self  # a cycle: only the collector frees it


def test_building_pauses_the_collector_and_collects_once_at_the_end() -> None:
    assert gc.isenabled()
    with heap.building():
        assert not gc.isenabled()
        # Ten times the youngest generation's threshold: a running collector would have
        # freed most of them by now.
        nodes = [weakref.ref(_Node()) for _ in range(10 * gc.get_threshold()[0])]
        assert all(node() is not None for node in nodes)
    assert gc.isenabled()
    assert all(node() is None for node in nodes), "the build's cycles are collected at its end"


def test_building_restores_the_collector_when_the_build_fails() -> None:
    with pytest.raises(RuntimeError), heap.building():
        raise RuntimeError("listing failed")
    assert gc.isenabled()


def test_a_collector_turned_off_by_the_program_stays_off_and_is_not_run() -> None:
    gc.disable()
    try:
        with heap.building():
            node = weakref.ref(_Node())
        assert not gc.isenabled()
        assert node() is not None, "not collected behind the program's back"
    finally:
        gc.enable()
