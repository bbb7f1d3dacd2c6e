"""The short chaos run inside `make test`: two seeds of a few seconds each (the long run is
`make chaos`). A failure prints the seed's report and the command that replays it."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import MotoServer

from .run import run_seed


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2])
async def test_chaos_seed(seed: int, moto_server: MotoServer, tmp_path: Path) -> None:
    result = await run_seed(seed, 6.0, moto_server, tmp_path)
    assert result.ok, result.report()
    assert result.ops > 0 and result.crashes > 0
