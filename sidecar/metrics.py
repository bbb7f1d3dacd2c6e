"""Every Prometheus metric the sidecar exports, defined in one place, in six groups: what was
synced (`Transfers`, transfer_metrics.py), S3 and credentials (`_Requests`), what S3 says
(`_Remote`), the folder (`_Local`), the work in hand (`_Work`) and the HTTP endpoints' door
(`Endpoints`, endpoint_metrics.py). `Metrics` is all of them; a metric is one attribute of it,
wherever it is defined. Each `Syncer` owns its own registry, so several syncers (or test cases)
in one process never share counters. Ready for alerts: every labelled counter whose label
values are known in advance exists at 0 from the start (so `rate()` and `increase()` see the
first error after a start), the registry carries the process metrics (`process_*`, e.g.
`process_start_time_seconds` for restarts) and `s3sync_build_info{version}`, and the command
exports no `*_created` series.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Mapping

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Enum,
    Gauge,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
)
from prometheus_client.metrics import MetricWrapperBase

from .endpoint_metrics import Endpoints
from .skips import SkipReason
from .transfer_metrics import RESULTS, Transfers
from .version import __version__

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)

# Label values known in advance: their series are created at 0 when the metrics are.
LOCAL_ERROR_OPERATIONS = ("watch", "io", "permission")
NOTIFICATION_EVENT_RESULTS = ("received", "applied", "ignored")
NOTIFICATION_MESSAGE_RESULTS = ("handled", "test", "malformed", "failed")
NOTIFICATION_ERROR_KINDS = ("unreachable", "denied", "missing", "throttled", "error")
CONDITION_VERDICTS = ("unknown", "honoured", "ignored", "refused")  # s3/conditions.py: Verdict
IF_MATCH_FORMS = ("quoted", "bare")  # s3/conditions.py: EtagForm


def without_created_series() -> None:
    """No `*_created` series (they double the series and nothing alerts on them). prometheus-client
    has only a process-wide switch, so only the command calls this: a program that embeds the
    `Syncer` keeps its own choice for its own metrics."""
    disable_created_metrics()  # type: ignore[no-untyped-call]


def _statvfs(directory: str, field: str) -> float:
    """Bytes of the filesystem holding `directory` (NaN when it cannot be asked: no folder)."""
    try:
        stat = os.statvfs(directory)
    except OSError:
        return math.nan
    blocks = stat.f_bavail if field == "free" else stat.f_blocks
    return float(blocks * stat.f_frsize)


class _Requests:
    """S3's requests, and the credentials that sign them."""

    def _define_requests(self, r: CollectorRegistry) -> None:
        self.s3_requests = Counter(
            "s3sync_s3_requests",
            "S3 requests by operation and HTTP status ('error' when no response arrived).",
            ["operation", "status"],
            registry=r,
        )
        self.s3_request_duration = Histogram(
            "s3sync_s3_request_duration_seconds",
            "S3 request latency up to the response headers.",
            ["operation"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.s3_retries = Counter(
            "s3sync_s3_retries",
            "S3 requests retried, by operation and reason.",
            ["operation", "reason"],
            registry=r,
        )
        self.s3_condition = Enum(
            "s3sync_s3_condition",
            "Whether the S3 endpoint honours each condition writes carry (else a HEAD first).",
            ["condition"],
            states=list(CONDITION_VERDICTS),
            registry=r,
        )
        self.s3_if_match_form = Enum(
            "s3sync_s3_if_match_form",
            "The form of the ETag in If-Match that the S3 endpoint understands.",
            states=list(IF_MATCH_FORMS),
            registry=r,
        )
        self.s3_checks = Counter(
            "s3sync_s3_checks",
            "HEADs made where the endpoint ignores a condition or an ETag, by check and result.",
            ["check", "result"],
            registry=r,
        )
        self.credentials_expiry = Gauge(
            "s3sync_credentials_expiry_timestamp_seconds",
            "Unix time the current credentials expire (0 when they do not).",
            registry=r,
        )
        self.credentials_refresh_failures = Counter(
            "s3sync_credentials_refresh_failures",
            "Failed attempts to fetch credentials.",
            registry=r,
        )


class _Remote:
    """What S3 says: listings, the max-delete guard, the event queue."""

    def _define_remote(self, r: CollectorRegistry) -> None:
        self.poll_duration = Histogram(
            "s3sync_poll_duration_seconds",
            "Time to list the prefix.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.polls = Counter(
            "s3sync_polls", "Polls of the prefix, by result.", ["result"], registry=r
        )
        self.last_poll_success = Gauge(
            "s3sync_last_successful_poll_timestamp_seconds",
            "Unix time the last successful poll finished.",
            registry=r,
        )
        self.poll_interval = Gauge(
            "s3sync_poll_interval_seconds",
            "Seconds between two listings of the prefix (SYNC_POLL_INTERVAL).",
            registry=r,
        )
        self.delete_guard_trips = Counter(
            "s3sync_delete_guard_trips",
            "Polls whose remote deletions were held back by the max-delete guard.",
            registry=r,
        )
        self.notification_events = Counter(
            "s3sync_notification_events",
            "S3 event notifications from SYNC_QUEUE_URL, by result: 'received', then "
            "'applied' (looked at and handed to the workers) or 'ignored' (another bucket, "
            "outside the prefix or excluded, older than what is known, or our own write's echo).",
            ["result"],
            registry=r,
        )
        self.notification_messages = Counter(
            "s3sync_notification_messages",
            "SQS messages from SYNC_QUEUE_URL, by result: 'handled', 'test' (S3's test "
            "event: a listing follows), 'malformed' (logged and deleted) or 'failed' (its "
            "handling raised: logged and deleted, a listing follows).",
            ["result"],
            registry=r,
        )
        self.notification_lag = Histogram(
            "s3sync_notification_lag_seconds",
            "From an event's time in S3 to its change handed to the workers (events S3 confirmed).",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.notification_errors = Counter(
            "s3sync_notification_queue_errors",
            "Failed calls to SQS, by kind (unreachable, denied, missing, throttled, error).",
            ["kind"],
            registry=r,
        )
        self.notification_queue_failing = Gauge(
            "s3sync_notification_queue_failing",
            "1 while the event queue (SYNC_QUEUE_URL) fails and the prefix is listed at the "
            "fallback interval instead; 0 otherwise, and without a queue.",
            registry=r,
        )
        for result in RESULTS:
            self.polls.labels(result)
        for result in NOTIFICATION_EVENT_RESULTS:
            self.notification_events.labels(result)
        for result in NOTIFICATION_MESSAGE_RESULTS:
            self.notification_messages.labels(result)
        for kind in NOTIFICATION_ERROR_KINDS:
            self.notification_errors.labels(kind)


class _Local:
    """The folder: what is not synced and why, local errors, inotify, the volume."""

    def _define_local(self, r: CollectorRegistry) -> None:
        self.skipped = Counter(
            "s3sync_skipped_paths", "Paths or keys not synced, by reason.", ["reason"], registry=r
        )
        self.local_errors = Counter(
            "s3sync_local_errors",
            "Local filesystem operations that failed, by operation.",
            ["operation"],
            registry=r,
        )
        self.inotify_overflows = Counter(
            "s3sync_inotify_overflows",
            "inotify queue overflows (each triggers a full rescan).",
            registry=r,
        )
        self.watches = Gauge(
            "s3sync_inotify_watches", "Directories watched with inotify.", registry=r
        )
        self.unwatched = Gauge(
            "s3sync_inotify_unwatched_directories",
            "Directories inotify could not watch (max_user_watches reached): scanned "
            "periodically instead.",
            registry=r,
        )
        self.volume_free = Gauge(
            "s3sync_volume_free_bytes",
            "Bytes free to the sidecar on the filesystem of the synced folder.",
            registry=r,
        )
        self.volume_size = Gauge(
            "s3sync_volume_size_bytes",
            "Size in bytes of the filesystem of the synced folder.",
            registry=r,
        )
        for reason in SkipReason:
            self.skipped.labels(reason.value)
        for operation in LOCAL_ERROR_OPERATIONS:
            self.local_errors.labels(operation)


_RESTORE_FIGURES = {
    "objects": "Paths the start-up restore looks at (what the listing changed, what was synced "
    "before a restart).",
    "objects_done": "Of those, the paths done.",
    "bytes": "Bytes S3 lists for the paths the start-up restore looks at.",
    "bytes_done": "Of those, the bytes of the paths done.",
    "objects_per_second": "Paths the start-up restore did per second, on average.",
    "bytes_per_second": "Bytes the start-up restore did per second, on average.",
    "seconds_left": "Estimated seconds until the start-up restore is done (0 once done; NaN "
    "until a path is done).",
}


class _Work:
    """The work in hand: the restore, the queues, what is tracked, the build."""

    def _define_work(self, r: CollectorRegistry) -> None:
        self.restore_duration = Gauge(
            "s3sync_initial_restore_duration_seconds",
            "Time the initial restore took.",
            registry=r,
        )
        self.restore_done = Gauge(
            "s3sync_initial_restore_done",
            "1 once the bucket has been restored into the folder.",
            registry=r,
        )
        # The restore's progress (engine/progress.py), read at scrape time: name -> its key in
        # the figures and its help.
        self.restore_progress = {
            key: Gauge(f"s3sync_restore_{key}", text, registry=r)
            for key, text in _RESTORE_FIGURES.items()
        }
        self.queue_depth = Gauge(
            "s3sync_queue_depth",
            "Paths waiting to be synced, by the side that changed.",
            ["direction"],
            registry=r,
        )
        self.in_flight = Gauge(
            "s3sync_transfers_in_flight",
            "Paths being synced right now, by direction.",
            ["direction"],
            registry=r,
        )
        self.oldest_pending = Gauge(
            "s3sync_oldest_pending_change_age_seconds",
            "Age of the oldest local change not yet in S3 (the sync lag).",
            registry=r,
        )
        self.files_tracked = Gauge(
            "s3sync_files_tracked", "Paths known to be in sync on both sides.", registry=r
        )
        self.build_info = Gauge(
            "s3sync_build_info",
            "Always 1; the label says which version of s3sync-sidecar runs.",
            ["version"],
            registry=r,
        )
        self.build_info.labels(__version__).set(1)


class Metrics(Transfers, _Requests, _Remote, _Local, _Work, Endpoints):
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self._children: dict[tuple[int, tuple[str, ...]], MetricWrapperBase] = {}
        r = self.registry
        self._define_transfers(r)
        self._define_requests(r)
        self._define_remote(r)
        self._define_local(r)
        self._define_work(r)
        self._define_endpoints(r)
        ProcessCollector(registry=r)

    def bind_folder(self, directory: str, poll_interval: float) -> None:
        """The synced folder's volume, read at scrape time, and the poll interval."""
        self.volume_free.set_function(lambda: _statvfs(directory, "free"))
        self.volume_size.set_function(lambda: _statvfs(directory, "size"))
        self.poll_interval.set(poll_interval)

    def inc(self, counter: Counter, *labels: str, amount: float = 1) -> None:
        """`counter.labels(*labels).inc(amount)`, with the labelled child cached: `labels()`
        takes a lock and builds tuples, too slow for a call per request."""
        self._child(counter, labels).inc(amount)  # type: ignore[attr-defined]

    def observe(self, histogram: Histogram, *labels: str, value: float) -> None:
        self._child(histogram, labels).observe(value)  # type: ignore[attr-defined]

    def _child(self, metric: MetricWrapperBase, labels: tuple[str, ...]) -> MetricWrapperBase:
        key = (id(metric), labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels) if labels else metric
        return child

    def bind_gauges(
        self,
        *,
        pools: Iterable[str],
        queue_depth: Callable[[str], float],
        in_flight: Callable[[str], float],
        oldest_pending: Callable[[], float],
        files_tracked: Callable[[], float],
        watches: Callable[[], float],
        unwatched: Callable[[], float],
        restore: Callable[[], Mapping[str, float | None]],
        queue_failing: Callable[[], float],
    ) -> None:
        """Gauges read at scrape time, so they can never go stale. The queue gauges have one
        series per scheduler pool, labelled `direction` (the name users' dashboards know)."""
        for pool in pools:
            self.queue_depth.labels(pool).set_function(
                lambda p=pool: queue_depth(p)  # type: ignore[misc]
            )
            self.in_flight.labels(pool).set_function(
                lambda p=pool: in_flight(p)  # type: ignore[misc]
            )
        self.oldest_pending.set_function(oldest_pending)
        self.files_tracked.set_function(files_tracked)
        self.watches.set_function(watches)
        self.unwatched.set_function(unwatched)
        self.notification_queue_failing.set_function(queue_failing)
        for key, gauge in self.restore_progress.items():
            gauge.set_function(lambda k=key: _number(restore()[k]))  # type: ignore[misc]


def _number(value: float | None) -> float:
    return math.nan if value is None else float(value)
