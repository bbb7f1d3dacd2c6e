"""One background loop's health, kept as Home Assistant's DataUpdateCoordinator keeps it: when
the loop last succeeded (wall clock for metrics and people, monotonic for readiness's age
checks), the last error while it fails, and a log line on each transition only: `failing` once
when it starts failing, `recovered` once when it succeeds again, never a line per failure (a
loop that fails every second for an hour logs twice).

Written once, used by every loop whose health someone reads or whose failures repeat: the poller
(its listings; readiness and `Syncer.status` read it), the change feed (its calls to SQS;
readiness reads it, and the poller lists at the fallback interval while it fails) and the state
store (its writes). The metrics a loop already had are counted here as it is told, under their
own names and labels: `results` by result ("ok", "error"), `errors` by kind, `success_time` set
to each success's wall time. A record costs two clock reads per success.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Generic, TypeVar

from prometheus_client import Counter, Gauge

E = TypeVar("E", bound=BaseException)


class LoopHealth(Generic[E]):
    """The health of one loop whose work fails with errors of type `E`.

    `failing` is a %-format logged with the error (and whatever `failed` is given beside it) at
    `level`; `recovered` is logged at INFO (None: nothing is logged on recovery). `describe`
    makes `last_error` from the error."""

    def __init__(
        self,
        logger: logging.Logger,
        *,
        failing: str,
        recovered: str | None = None,
        level: int = logging.WARNING,
        describe: Callable[[E], str] = str,
        results: Counter | None = None,
        errors: Counter | None = None,
        kind: Callable[[E], str] = lambda error: "error",
        success_time: Gauge | None = None,
    ) -> None:
        self._logger = logger
        self._failing = failing
        self._recovered = recovered
        self._level = level
        self._describe = describe
        self._results = results  # "ok" for each success, "error" for each failure
        self._errors = errors  # `kind(error)` for each failure
        self._kind = kind
        self._success_time = success_time
        self.last_success: float | None = None  # wall clock
        self.last_success_monotonic: float | None = None
        self.last_error: str | None = None  # while failing: what the last failure said

    @property
    def failing(self) -> bool:
        return self.last_error is not None

    def succeeded(self) -> bool:
        """The loop did its work. True when it was failing until now (`recovered` logged)."""
        self.last_success = time.time()
        self.last_success_monotonic = time.monotonic()
        recovered = self.last_error is not None
        self.last_error = None
        if recovered and self._recovered is not None:
            self._logger.info(self._recovered)
        if self._success_time is not None:
            self._success_time.set(self.last_success)
        if self._results is not None:
            self._results.labels("ok").inc()
        return recovered

    def failed(self, error: E, *args: object) -> bool:
        """The loop's work failed with `error`: counted, and logged only when the loop was not
        failing already (`failing % (error, *args)`). True on that transition."""
        if self._errors is not None:
            self._errors.labels(self._kind(error)).inc()
        if self._results is not None:
            self._results.labels("error").inc()
        starting = self.last_error is None
        if starting:
            self._logger.log(self._level, self._failing, error, *args)
        self.last_error = self._describe(error)
        return starting
