"""`LoopHealth` (sidecar/loophealth.py): one loop's last success and last error, logs on the
transitions only, and the loop's own metrics counted as it is told."""

from __future__ import annotations

import logging
import time

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge

from sidecar.loophealth import LoopHealth

LOG = logging.getLogger("test.loophealth")


class Refused(Exception):
    kind = "denied"


def lines(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    return [(r.levelno, r.getMessage()) for r in caplog.records if r.name == LOG.name]


def test_logs_failing_once_and_recovered_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger=LOG.name)
    health = LoopHealth[Exception](
        LOG, failing="listing failed (%s), next in %gs", recovered="listing works again"
    )
    assert not health.failing and health.last_error is None and health.last_success is None
    assert health.failed(OSError("unreachable"), 10.0) is True
    assert health.failed(OSError("still unreachable"), 10.0) is False
    assert health.failed(OSError("and again"), 10.0) is False
    assert health.failing and health.last_error == "and again"
    assert health.succeeded() is True
    assert health.succeeded() is False
    assert not health.failing and health.last_error is None
    assert lines(caplog) == [
        (logging.WARNING, "listing failed (unreachable), next in 10s"),
        (logging.INFO, "listing works again"),
    ]


def test_nothing_logged_on_recovery_without_a_recovered_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOG.name)
    health = LoopHealth[Exception](LOG, failing="cannot save (%s)", level=logging.ERROR)
    health.failed(OSError("disk full"))
    assert health.succeeded() is True
    assert lines(caplog) == [(logging.ERROR, "cannot save (disk full)")]


def test_last_success_in_both_clocks_and_the_error_as_described() -> None:
    health = LoopHealth[Exception](
        LOG, failing="%s", describe=lambda error: f"{type(error).__name__}: {error}"
    )
    wall, monotonic = time.time(), time.monotonic()
    health.succeeded()
    assert health.last_success is not None and wall <= health.last_success <= time.time()
    assert health.last_success_monotonic is not None
    assert monotonic <= health.last_success_monotonic <= time.monotonic()
    before = health.last_success_monotonic
    health.failed(TimeoutError("no answer"))
    assert health.last_error == "TimeoutError: no answer"
    assert health.last_success_monotonic == before  # a failure keeps the last success


def test_counts_into_the_loops_own_metrics() -> None:
    registry = CollectorRegistry()
    results = Counter("polls", "by result", ["result"], registry=registry)
    errors = Counter("queue_errors", "by kind", ["kind"], registry=registry)
    stamp = Gauge("last_success", "wall time", registry=registry)
    health = LoopHealth[Refused](
        LOG,
        failing="%s",
        results=results,
        errors=errors,
        kind=lambda error: error.kind,
        success_time=stamp,
    )
    health.failed(Refused("no"))
    health.failed(Refused("no"))
    health.succeeded()

    def sample(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)

    assert sample("polls_total", result="error") == 2
    assert sample("polls_total", result="ok") == 1
    assert sample("queue_errors_total", kind="denied") == 2
    assert sample("last_success") == health.last_success
