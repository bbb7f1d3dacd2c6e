"""What a running `Syncer` talks to AWS with: the one HTTP client (one pool of
`settings.connections` to S3, one TLS set-up, aws/http.py), the credentials, the S3 client and,
with `SYNC_QUEUE_URL`, the queue client; built together on that one HTTP client and closed
together. Credentials come as a provider, which belongs to the caller and is not closed here, or
as a factory, whose provider is built on the one HTTP client (so credential fetches share its
pool and TLS set-up) and closed here."""

from __future__ import annotations

import ssl
from collections.abc import Callable
from dataclasses import dataclass

from ..aws.credentials import CredentialsFactory, CredentialsProvider
from ..aws.http import HttpClient
from ..aws.sqs import QueueClient, QueueUrl, sqs_requests
from ..core.keys import probe_prefix
from ..core.model import SyncMode
from ..metrics import Metrics
from ..s3.client import S3Client, s3_requests
from ..s3.conditions import Conditions, Findings
from ..s3.endpoint import Endpoint
from ..s3.probe import probe
from ..settings.table import Settings


@dataclass(slots=True)
class Clients:
    http: HttpClient
    credentials: CredentialsProvider
    s3: S3Client
    queue: QueueClient | None  # only with a queue URL, and never in upload-only mode
    owns_credentials: bool

    @classmethod
    def build(
        cls,
        settings: Settings,
        metrics: Metrics,
        credentials: CredentialsProvider | CredentialsFactory,
        *,
        tls: ssl.SSLContext | bool | None,
        on_reachable: Callable[[bool], None],
    ) -> Clients:
        http = HttpClient(tls=tls, connections=settings.connections)
        endpoint = Endpoint.parse(settings.endpoint, settings.bucket)
        owns_credentials = not isinstance(credentials, CredentialsProvider)
        if not isinstance(credentials, CredentialsProvider):
            credentials = credentials(http)
        requests = s3_requests(
            http,
            endpoint,
            region=settings.region,
            credentials=credentials,
            metrics=metrics,
            on_reachable=on_reachable,
        )
        # What the endpoint honours, probed before the first conditional write by a client of
        # its own that sends exactly what it is told (s3/probe.py), uncounted.
        probing = S3Client(
            s3_requests(
                http, endpoint, region=settings.region, credentials=credentials, metrics=None
            ),
            endpoint,
            settings.bucket,
        )
        keys = probe_prefix(settings.prefix, settings.work_name)

        async def probed() -> Findings:
            return await probe(probing, keys)

        queue = None
        if settings.queue_url is not None and SyncMode(settings.mode) is not SyncMode.UPLOAD_ONLY:
            url = QueueUrl.parse(settings.queue_url)
            queue = QueueClient(
                sqs_requests(http, url, region=settings.region, credentials=credentials), url
            )
        return cls(
            http=http,
            credentials=credentials,
            s3=S3Client(
                requests, endpoint, settings.bucket, conditions=Conditions(probed, metrics)
            ),
            queue=queue,
            owns_credentials=owns_credentials,
        )

    async def close(self) -> None:
        """End a probe still under way (it uses the connections), close the credentials (if
        they are ours), then every connection."""
        await self.s3.conditions.close()
        if self.owns_credentials:
            await self.credentials.close()
        await self.http.close()
