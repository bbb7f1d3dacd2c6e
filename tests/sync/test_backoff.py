"""The one back-off policy (sidecar/backoff.py): one row per named starting point, the delays
each user had before they shared it, and the jitter's bounds."""

from __future__ import annotations

import random

import pytest

from sidecar.backoff import (
    CREDENTIALS,
    PATH_FAILED,
    PATH_RACED,
    QUEUE,
    REQUEST,
    Backoff,
)


@pytest.mark.parametrize(
    ("policy", "ceilings"),
    [
        # core/state.py's failed path: min(300, 0.5 * 2**n)
        (PATH_FAILED, [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 300.0, 300.0]),
        # core/state.py's raced path: three at once, then min(5, 0.05 * 2**n)
        (PATH_RACED, [0.0, 0.0, 0.0, 0.8, 1.6, 3.2, 5.0, 5.0]),
        # the S3 request path: a draw below min(20, 0.1 * 2**n)
        (REQUEST, [0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 12.8, 20.0, 20.0]),
        # the container credentials endpoint: below min(2, 0.2 * 2**(n - 1))
        (CREDENTIALS, [0.2, 0.4, 0.8, 1.6, 2.0, 2.0]),
        # the SQS long poll: 1 s doubling to 60 s
        (QUEUE, [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0]),
    ],
    ids=["path-failed", "path-raced", "request", "credentials", "queue"],
)
def test_named_starting_points(policy: Backoff, ceilings: list[float]) -> None:
    assert [policy.ceiling(attempt) for attempt in range(1, len(ceilings) + 1)] == ceilings
    if not policy.jitter:
        assert [policy.delay(n) for n in range(1, len(ceilings) + 1)] == ceilings


def test_no_wait_before_a_failure() -> None:
    assert PATH_FAILED.delay(0) == 0.0 and REQUEST.delay(0) == 0.0


def test_jitter_draws_below_the_ceiling_from_zero() -> None:
    asked: list[tuple[float, float]] = []

    def draw(low: float, high: float) -> float:
        asked.append((low, high))
        return high / 2

    assert REQUEST.delay(3, draw) == 0.4
    assert asked == [(0.0, 0.8)]
    rng = random.Random(7)
    delays = [REQUEST.delay(5, rng.uniform) for _ in range(2000)]
    assert all(0.0 <= delay <= 3.2 for delay in delays)
    assert min(delays) < 0.1 and max(delays) > 3.1  # the whole range, not a fixed fraction


def test_free_attempts_are_not_drawn() -> None:
    policy = Backoff(first=1.0, cap=1.0, free=2, jitter=True)

    def draw(low: float, high: float) -> float:
        raise AssertionError("a free attempt draws nothing")

    assert policy.delay(1, draw) == policy.delay(2, draw) == 0.0


def test_a_very_long_run_of_failures_stays_at_the_cap() -> None:
    assert PATH_FAILED.delay(10_000) == 300.0


@pytest.mark.parametrize(
    ("first", "cap", "free"), [(0.0, 1.0, 0), (2.0, 1.0, 0), (1.0, 1.0, -1), (-1.0, 1.0, 0)]
)
def test_nonsense_is_refused(first: float, cap: float, free: int) -> None:
    with pytest.raises(ValueError, match="back-off"):
        Backoff(first=first, cap=cap, free=free)
