"""Whether a service answers, as its signed-request path sees it (aws/signed.py), said on
transitions only: once when requests begin to fail (what is retried, and why, and for how long
at most), once when it answers again (after how long, how many retries); never a line per retry
(those are at DEBUG, and counted in `s3sync_s3_retries_total`).

An outage begins with the first failure that will be retried (no connection, a timeout, a 5xx,
throttling) while no request is failing, and ends when a request gets its answer while no other
is still retrying: requests that give up (after their last try) or are cancelled leave it
going, since nothing answered them. So overlapping failures of many requests are one outage, and
a PUT refused with 500s while listings succeed is one outage that ends with the PUT.

A store that fails now and then (throttling under load) would still say two lines per fault:
at most `per_window` outages are said per `window` seconds (three a minute); the others, and
their ends, are at DEBUG. One that is still going on when the window allows is said then, with
how long it has lasted. Costs a set operation per request.
"""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Callable

from ..backoff import Backoff

_WINDOW = 60.0
_PER_WINDOW = 3


class Outage:
    """One service's outages (see the module docstring). A request's attempts share a
    `token` (any object), given to `failed` at each retried failure and to `ended` once."""

    def __init__(
        self,
        service: str,
        logger: logging.Logger,
        *,
        window: float = _WINDOW,
        per_window: int = _PER_WINDOW,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._service = service
        self._clock = clock
        self._log = logger
        self._window = window
        self._said: collections.deque[float] = collections.deque(maxlen=per_window)
        self._failing: set[object] = set()  # requests retrying after a failure
        self._since: float | None = None  # monotonic start of the outage under way
        self._announced = False  # said at WARNING (its end is then said at INFO)
        self._retries = 0  # retried failures during the outage

    @property
    def under_way(self) -> bool:
        return self._since is not None

    def failed(
        self,
        token: object,
        operation: str,
        why: str,
        *,
        attempt: int,
        attempts: int,
        retry: Backoff,
    ) -> None:
        """Try `attempt` of `attempts` of `operation` failed (`why`: the error, or the
        refusal's status and code) and is retried after `retry`'s waits."""
        tries_left = attempts - attempt
        waits = sum(retry.ceiling(n) for n in range(attempt, attempts))  # at most
        self._failing.add(token)
        now = self._clock()
        if self._since is None:
            self._since, self._announced, self._retries = now, False, 0
        self._retries += 1
        if not self._announced and self._may_say(now):
            self._announced = True
            self._said.append(now)
            lasted = now - self._since
            self._log.warning(
                "%s %s%s: retrying %s with back-off (up to %d more tries, with at most %.0fs "
                "of waits)",
                self._service,
                why,
                f", for {lasted:.0f}s now" if lasted >= 1 else "",
                operation,
                tries_left,
                waits,
            )
        else:
            self._log.debug("%s %s: retrying %s", self._service, why, operation)

    def ended(self, token: object, answered: bool) -> None:
        """A request's tries ended: with an answer (a success, or a refusal that is not
        retried), or not (it gave up, or was cancelled)."""
        self._failing.discard(token)
        if self._since is None or not answered or self._failing:
            return
        lasted = self._clock() - self._since
        self._log.log(
            logging.INFO if self._announced else logging.DEBUG,
            "%s answers again, after %.1fs (%d failed %s retried)",
            self._service,
            lasted,
            self._retries,
            "try" if self._retries == 1 else "tries",
        )
        self._since = None
        self._announced = False

    def _may_say(self, now: float) -> bool:
        said = self._said
        return len(said) < (said.maxlen or 0) or now - said[0] >= self._window
