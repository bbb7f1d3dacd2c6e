"""Reading the sidecar's metrics, two ways that mean different things:

- `metric(syncer, name, **labels)`, in process: the *sum* of the syncer's samples called `name`
  whose labels include these (`metric(syncer, "s3sync_downloads_total")` counts ok and error);
  `requests` is the S3 requests of one operation, that way.
- `series(samples, name, **labels)`, from a /metrics text (`scrape`, `Scrape.of`): the value of
  the *one* series with exactly these labels; a series that is not there fails, as an alert on
  it would never fire."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from support.local_http import http_get

Samples = dict[str, list[tuple[dict[str, str], float]]]  # by sample name: (labels, value)
_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}


def metric(syncer: Any, name: str, **labels: str) -> float:
    """The sum of the samples called `name` (e.g. `s3sync_uploads_total`) with these labels."""
    total = 0.0
    for family in syncer.metrics.registry.collect():
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


def requests(syncer: Any, operation: str) -> int:
    """How many S3 requests of this operation (PutObject, GetObject...) the syncer made."""
    return int(metric(syncer, "s3sync_s3_requests_total", operation=operation))


@dataclass(frozen=True)
class Scrape:
    """One /metrics text: every sample by name, and the sample names every family declares
    (a counter or histogram with no sample yet is declared all the same)."""

    samples: Samples
    declared: frozenset[str]

    @classmethod
    def of(cls, text: str) -> Scrape:
        samples: Samples = {}
        declared: set[str] = set()
        for family in text_string_to_metric_families(text):
            declared.update(family.name + suffix for suffix in _SUFFIXES.get(family.type, ("",)))
            for sample in family.samples:
                samples.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
        return cls(samples, frozenset(declared))


async def scrape(port: int) -> Scrape:
    """GET /metrics of the sidecar listening on `port`."""
    status, text = await http_get(port, "/metrics")
    assert status == 200
    return Scrape.of(text)


def series(samples: Samples, name: str, **labels: str) -> float:
    """The value of the one series `name` with exactly these labels."""
    (found,) = [value for got, value in samples.get(name, []) if got == labels]
    return float(found)
