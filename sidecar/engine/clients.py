"""What a running `Syncer` talks to AWS with: the one HTTP client (one pool of
`settings.connections` to S3, one TLS set-up, aws/http.py), the credentials, the S3 client (and
the record of S3's outages, aws/outage.py, which the passes ask) and, with `SYNC_QUEUE_URL`, the
queue client; built together on that one HTTP client and closed together. Credentials come as a
provider, which belongs to the caller and is not closed here, or as a factory, whose provider is
built on the one HTTP client (so credential fetches share its pool and TLS set-up) and closed
here. The HTTP client's proxies (`HTTPS_PROXY`, `HTTP_PROXY`, `NO_PROXY`) and SQS's endpoint
(`AWS_ENDPOINT_URL_SQS`, then `AWS_ENDPOINT_URL`) come from the process's environment, as for
any AWS SDK."""

from __future__ import annotations

import logging
import os
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from ..aws.credentials import CredentialsFactory, CredentialsProvider
from ..aws.http import HttpClient, Origin
from ..aws.outage import Outage
from ..aws.proxy import Proxies
from ..aws.sqs import QueueClient, QueueUrl, sqs_requests
from ..aws.sts import endpoint_origin
from ..core.keys import probe_prefix
from ..core.model import SyncMode
from ..metrics import Metrics
from ..s3.client import S3Client, s3_requests
from ..s3.conditions import Conditions, Findings
from ..s3.deletes import DeleteBatches
from ..s3.endpoint import Endpoint
from ..s3.headers import request_headers, write_headers
from ..s3.probe import probe
from ..settings.config import service_endpoint_url
from ..settings.table import Settings


@dataclass(slots=True)
class Clients:
    http: HttpClient
    credentials: CredentialsProvider
    s3: S3Client
    queue: QueueClient | None  # only with a queue URL, and never in upload-only mode
    owns_credentials: bool
    s3_outage: Outage  # S3 not answering, or answering with errors, said on transitions
    deletes: DeleteBatches  # the passes' deletes, sent together (s3/deletes.py)

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
        # Proxies and the SDKs' endpoint variables are the process's, as for any AWS SDK.
        env = os.environ
        http = HttpClient(
            tls=tls, connections=settings.connections, proxies=Proxies.from_environment(env)
        )
        endpoint = Endpoint.parse(settings.endpoint, settings.bucket)
        owns_credentials = not isinstance(credentials, CredentialsProvider)
        if not isinstance(credentials, CredentialsProvider):
            credentials = credentials(http)
        s3_outage = Outage("S3", logging.getLogger("sidecar.s3"))
        requests = s3_requests(
            http,
            endpoint,
            region=settings.region,
            credentials=credentials,
            metrics=metrics,
            on_reachable=on_reachable,
            outage=s3_outage,
        )
        # What the endpoint honours, probed before the first conditional write by a client of
        # its own that sends exactly what it is told (s3/probe.py), uncounted.
        writes = write_headers(
            sse=settings.sse,
            kms_key_id=settings.sse_kms_key_id,
            bucket_key=settings.sse_bucket_key,
            storage_class=settings.storage_class,
            acl=settings.acl,
        )
        every = request_headers(request_payer=settings.request_payer)
        probing = S3Client(
            s3_requests(
                http,
                endpoint,
                region=settings.region,
                credentials=credentials,
                metrics=None,
                outage=s3_outage,  # one outage, said once, whoever meets it
            ),
            endpoint,
            settings.bucket,
            write_headers=writes,  # a bucket policy asking for encryption refuses it too
            request_headers=every,
        )
        keys = probe_prefix(settings.prefix, settings.work_name)

        async def probed() -> Findings:
            return await probe(probing, keys)

        queue = None
        if settings.queue_url is not None and SyncMode(settings.mode) is not SyncMode.UPLOAD_ONLY:
            url = QueueUrl.parse(settings.queue_url)
            queue = QueueClient(
                sqs_requests(
                    http,
                    url,
                    region=settings.region,
                    credentials=credentials,
                    origin=_sqs_origin(env),
                ),
                url,
            )
        s3 = S3Client(
            requests,
            endpoint,
            settings.bucket,
            write_headers=writes,
            request_headers=every,
            conditions=Conditions(probed, metrics),
        )
        return cls(
            http=http,
            credentials=credentials,
            s3=s3,
            queue=queue,
            owns_credentials=owns_credentials,
            s3_outage=s3_outage,
            deletes=DeleteBatches(s3.delete_objects, s3.conditions),
        )

    async def close(self) -> None:
        """End a probe still under way (it uses the connections), close the credentials (if
        they are ours), then every connection."""
        await self.deletes.close()
        await self.s3.conditions.close()
        if self.owns_credentials:
            await self.credentials.close()
        await self.http.close()


def _sqs_origin(env: Mapping[str, str]) -> Origin | None:
    """SQS's endpoint from the SDKs' variables (checked at start), None: the queue URL's host."""
    found = service_endpoint_url(env, "AWS_ENDPOINT_URL_SQS")
    return endpoint_origin(found[1], found[0]) if found is not None else None
