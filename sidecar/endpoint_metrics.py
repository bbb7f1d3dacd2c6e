"""The HTTP endpoints' door, a group of `metrics.Metrics` (defined there with the others, apart
only for the module's size): connections open and refused by peer, and whether it accepts."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

HTTP_PEERS = ("task", "outside")


class Endpoints:
    """The HTTP endpoints' door: connections open and refused, by peer, and whether it accepts."""

    def _define_endpoints(self, r: CollectorRegistry) -> None:
        self.http_connections = Gauge(
            "s3sync_http_connections",
            "Connections open to the HTTP endpoints, by peer: 'task' (from inside the task: the "
            "health check, the app) or 'outside'.",
            ["peer"],
            registry=r,
        )
        self.http_refused = Counter(
            "s3sync_http_connections_refused",
            "Connections to the HTTP endpoints reset at once because the peer's share of "
            "SYNC_HTTP_MAX_CONNECTIONS was taken, by peer ('task' or 'outside').",
            ["peer"],
            registry=r,
        )
        self.http_accepting = Gauge(
            "s3sync_http_accepting",
            "1 while the HTTP endpoints accept connections; 0 while they wait because open "
            "files are short (the descriptors kept for the sync are never taken).",
            registry=r,
        )
        for peer in HTTP_PEERS:
            self.http_refused.labels(peer)
        self.http_accepting.set(1)
