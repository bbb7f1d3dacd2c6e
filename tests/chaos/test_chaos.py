"""The short chaos run inside `make test`: two seeds of a few seconds each (the long run is
`make chaos`). A failure prints the seed's report and the command that replays it."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.s3_server import S3Server

from .run import most_removed_within, run_seed
from .verify import Tree, differences


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2])
async def test_chaos_seed(seed: int, moto_server: S3Server, tmp_path: Path) -> None:
    result = await run_seed(seed, 6.0, moto_server, tmp_path)
    assert result.ok, result.report()
    assert result.ops > 0 and result.crashes > 0


def test_a_directory_marker_holds_its_parents_in_the_bucket() -> None:
    """`d0/e0/` alone in the bucket holds `d0` too, as S3's listings show it (seed 90041 was
    reported diverged for exactly this); a folder directory with nothing below it in the
    bucket is still a difference."""
    folder = Tree(files={}, links={}, dirs=frozenset({"d0", "d0/e0"}))
    bucket = Tree(files={}, links={}, dirs=frozenset({"d0/e0"}))
    assert differences({"a": folder, "b": folder}, bucket) == []
    alone = Tree(files={}, links={}, dirs=frozenset({"d0", "d0/e0", "d1"}))
    assert differences({"a": alone, "b": alone}, bucket) == ["directory 'd1' is not in the bucket"]


@pytest.mark.parametrize(
    ("removals", "most"),
    [
        ([], 0),
        ([(0.0, 11)], 11),
        ([(0.0, 9), (0.2, 4)], 13),  # seed 92036: two folders' trees, one look of a third
        ([(0.0, 9), (30.0, 4)], 9),  # far apart: two looks
        ([(5.0, 4), (0.0, 3), (9.0, 5), (16.0, 2)], 12),
    ],
)
def test_removals_that_one_look_may_see_add_up(
    removals: list[tuple[float, int]], most: int
) -> None:
    assert most_removed_within(removals, 10.0) == most
