"""Proxies as the AWS SDKs use them, through a real forwarding proxy (Debian's tinyproxy, its own
process and log: support/tinyproxy.py): every S3 request of the command goes through it (plain
http in absolute form; https in a CONNECT tunnel, with the proxy's credentials from the URL),
none of the credential endpoints' requests do, and NO_PROXY sends a host around it. The choice
of a proxy (proxy.py) row by row beside them."""

from __future__ import annotations

import base64
import signal
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from support.bucket import Bucket
from support.imds import Imds
from support.local_http import free_port
from support.metrics import scrape
from support.s3_server import REGION, S3Server
from support.tinyproxy import Tinyproxy, need_tinyproxy, tinyproxy
from support.waiting import eventually, in_thread

from sidecar.aws.chain import provider_from_environment
from sidecar.aws.http import HttpClient, Origin
from sidecar.aws.proxy import Proxies, proxy_problems

USER, PASSWORD = "proxy-user", "s3cr.t-pass"


@pytest.fixture
def proxy(tmp_path: Path) -> Any:
    need_tinyproxy()
    with tinyproxy(tmp_path / "tinyproxy") as server:
        yield server


@pytest.fixture
def authenticating_proxy(tmp_path: Path) -> Any:
    need_tinyproxy()
    with tinyproxy(tmp_path / "tinyproxy-auth", auth=(USER, PASSWORD)) as server:
        yield server


@pytest.fixture
async def container_endpoint(moto_server: S3Server) -> AsyncIterator[dict[str, Any]]:
    """A container credentials endpoint on 127.0.0.1 handing out moto's keys."""
    served: list[str] = []

    async def credentials(request: web.Request) -> web.Response:
        served.append(request.path)
        keys = moto_server.env()
        expiration = datetime.now(UTC) + timedelta(hours=1)
        return web.json_response(
            {
                "AccessKeyId": keys["AWS_ACCESS_KEY_ID"],
                "SecretAccessKey": keys["AWS_SECRET_ACCESS_KEY"],
                "Expiration": expiration.strftime("%Y-%m-%dT%H:%M:%SZ"),
            }
        )

    app = web.Application()
    app.router.add_get("/creds", credentials)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield {"url": f"http://127.0.0.1:{port}/creds", "port": port, "served": served}
    await runner.cleanup()


def s3_lines(proxy: Tinyproxy, origin: str, bucket: Bucket) -> list[str]:
    return [line for line in proxy.requests() if f" {origin}/{bucket.name}" in line]


async def test_every_s3_request_goes_through_the_proxy_and_no_credentials_request_does(
    run_sidecar,
    bucket: Bucket,
    moto_server: S3Server,
    proxy: Tinyproxy,
    container_endpoint: dict[str, Any],
    tmp_path: Path,
) -> None:
    """Plain http: each request is one line of the proxy's log; their count is the command's
    own count of S3 requests. The loopback container endpoint is asked directly."""
    folder = tmp_path / "folder"
    env = {
        "SYNC_DIR": str(folder),
        "SYNC_BUCKET": bucket.name,
        "SYNC_ENDPOINT": bucket.server.endpoint_pattern,
        "SYNC_REGION": REGION,
        "SYNC_POLL_INTERVAL": "0.5",
        "SYNC_MULTIPART_THRESHOLD": "5MiB",  # a streamed, multipart upload through it too
        "SYNC_MULTIPART_CHUNKSIZE": "5MiB",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI": container_endpoint["url"],
        "http_proxy": proxy.url,  # the lower-case spelling, as curl's
        "SYNC_HTTP_PORT": str(port := free_port()),
    }
    await in_thread(bucket.put, "from-s3.txt", b"remote")
    sidecar = run_sidecar([], env)
    try:
        await sidecar.ready()
        (folder / "through-the-proxy.txt").write_bytes(b"proxied")
        large = bytes(range(256)) * (6 * 4096)  # 6 MiB: two parts
        (folder / "large.bin").write_bytes(large)
        for name, content in (("through-the-proxy.txt", b"proxied"), ("large.bin", large)):
            await eventually(
                lambda name=name, content=content: in_thread(lambda: bucket.get(name) == content),
                timeout=30,
            )
        assert (folder / "from-s3.txt").read_bytes() == b"remote"

        async def counts_agree() -> bool:
            samples = (await scrape(port)).samples
            sent = sum(value for _, value in samples.get("s3sync_s3_requests_total", []))
            lines = s3_lines(proxy, moto_server.url, bucket)
            # the endpoint's probe (s3/probe.py) goes through the proxy too, uncounted; its
            # DeleteObjects name the key in their body (the sidecar deletes nothing here)
            probing = [line for line in lines if "probe-" in line or "?delete" in line]
            return sent > 0 and bool(probing) and len(lines) - len(probing) == sent

        await eventually(counts_agree, timeout=20, what="every S3 request in the proxy's log")
        sidecar.process.send_signal(signal.SIGTERM)
        assert await sidecar.wait(30) == 0, sidecar.text()
    finally:
        sidecar.kill()
    lines = s3_lines(proxy, moto_server.url, bucket)
    methods = {line.split(" ", 1)[0] for line in lines}
    assert {"GET", "PUT", "POST"} <= methods, lines  # POST: the multipart upload's
    assert len([line for line in lines if "large.bin?partNumber=" in line]) == 2
    assert any("through-the-proxy.txt" in line for line in lines if line.startswith("PUT"))
    assert container_endpoint["served"], "credentials were fetched"
    assert not [line for line in proxy.requests() if "/creds" in line or "CONNECT" in line]


async def test_https_through_a_connect_tunnel_with_the_proxys_credentials(
    run_sidecar,
    bucket: Bucket,
    https_endpoint: Any,
    authenticating_proxy: Tinyproxy,
    tmp_path: Path,
) -> None:
    """HTTPS_PROXY with user:password: the command tunnels to the TLS endpoint (trusted through
    AWS_CA_BUNDLE); with a wrong password the proxy refuses and the start says so."""
    wrong = authenticating_proxy.url.replace(PASSWORD, "wrong")
    base = {
        **bucket.server.env(),
        "SYNC_BUCKET": bucket.name,
        "SYNC_ENDPOINT": https_endpoint.endpoint_pattern,
        "SYNC_REGION": REGION,
        "AWS_CA_BUNDLE": str(https_endpoint.ca_file),
    }
    refused = run_sidecar([], {**base, "SYNC_DIR": str(tmp_path / "a"), "HTTPS_PROXY": wrong})
    assert await refused.wait(90) == 1
    # tinyproxy refuses a tunnel with 401 (a plain request with 407): the start names the proxy
    assert "cannot start" in refused.text() and "ClientHttpProxyError: 401" in refused.text()
    assert PASSWORD not in refused.text() and "wrong" not in refused.text()
    assert https_endpoint.seen.total() == 0, "nothing went around the proxy"

    folder = tmp_path / "b"
    env = {
        **base,
        "SYNC_DIR": str(folder),
        "HTTPS_PROXY": authenticating_proxy.url,
        "SYNC_MULTIPART_THRESHOLD": "5MiB",  # parts too, on connections kept in the tunnel
        "SYNC_MULTIPART_CHUNKSIZE": "5MiB",
    }
    sidecar = run_sidecar([], env)
    try:
        await sidecar.ready()
        large = bytes(range(256)) * (6 * 4096)
        (folder / "tunnelled.txt").write_bytes(b"tls")
        (folder / "large.bin").write_bytes(large)
        for name, content in (("tunnelled.txt", b"tls"), ("large.bin", large)):
            await eventually(
                lambda name=name, content=content: in_thread(lambda: bucket.get(name) == content),
                timeout=30,
            )
        sidecar.process.send_signal(signal.SIGTERM)
        assert await sidecar.wait(30) == 0, sidecar.text()
    finally:
        sidecar.kill()
    tunnels = [
        line
        for line in authenticating_proxy.requests()
        if line.startswith(f"CONNECT 127.0.0.1:{https_endpoint.port} ")
    ]
    assert tunnels, authenticating_proxy.requests()
    assert https_endpoint.seen["PUT"] >= 3 and https_endpoint.seen["POST"] >= 2
    assert PASSWORD not in sidecar.text()


@pytest.fixture
async def https_endpoint(moto_server: S3Server, tmp_path: Path) -> AsyncIterator[Any]:
    from support.faultproxy import FaultProxy
    from test_tls_and_endpoints import make_ca_and_server_cert

    ca_file, context = make_ca_and_server_cert(tmp_path)
    server = FaultProxy(moto_server.url)
    await server.start(ssl_context=context)
    server.ca_file = ca_file
    yield server
    await server.close()


async def test_no_proxy_and_the_credential_endpoints_go_around_it(
    moto_server: S3Server, proxy: Tinyproxy, imds: Imds
) -> None:
    """In process, on the one HTTP client: an S3-shaped request goes through the proxy unless
    NO_PROXY names its host; instance metadata never does, even on 127.0.0.1."""
    origin = Origin("http", moto_server.url.removeprefix("http://"))
    for no_proxy, expected in (("", 1), ("127.0.0.1", 0), ("localhost,127.0.0.0/8", 0)):
        env = {"HTTP_PROXY": proxy.url, "NO_PROXY": no_proxy}
        http = HttpClient(proxies=Proxies.from_environment(env))
        before = len(proxy.requests())
        try:
            answer = await http.exchange(
                origin, "GET", "/moto-api/", {}, limit=1 << 20, error_limit=1 << 16
            )
            assert answer.status in (200, 404)
            provider = provider_from_environment(
                {"AWS_EC2_METADATA_SERVICE_ENDPOINT": imds.url}, http=http
            )
            await provider.get()
        finally:
            await http.close()
        assert len(proxy.requests()) - before == expected, (no_proxy, proxy.requests())
    assert imds.puts >= 3 and imds.handed
    assert not [line for line in proxy.requests() if "latest" in line]


async def test_sts_goes_through_the_proxy(
    moto_server: S3Server, proxy: Tinyproxy, tmp_path: Path
) -> None:
    """STS is an AWS service like S3: web identity's AssumeRoleWithWebIdentity is proxied."""
    token = tmp_path / "token"
    token.write_text("eyJ.token")
    env = {
        "HTTP_PROXY": proxy.url,
        "AWS_WEB_IDENTITY_TOKEN_FILE": str(token),
        "AWS_ROLE_ARN": "arn:aws:iam::123456789012:role/any",
        "AWS_ENDPOINT_URL_STS": moto_server.url,
    }
    http = HttpClient(proxies=Proxies.from_environment(env))
    try:
        provider = provider_from_environment(env, http=http)
        assert (await provider.get()).session_token
    finally:
        await http.close()
    assert proxy.requests() == [f"POST {moto_server.url}/ HTTP/1.1"]


@pytest.fixture
async def imds() -> AsyncIterator[Imds]:
    async def issue() -> dict[str, str]:
        return {"AccessKeyId": "ASIAIMDS", "SecretAccessKey": "s", "Token": "t"}

    server = Imds(issue)
    await server.start()
    yield server
    await server.close()


# -- the choice, row by row -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "scheme", "host", "expected"),
    [
        ({"HTTPS_PROXY": "http://p:3128"}, "https", "s3.eu-west-2.amazonaws.com", "http://p:3128"),
        ({"HTTPS_PROXY": "http://p:3128"}, "http", "127.0.0.1:9000", None),  # http: HTTP_PROXY
        ({"HTTP_PROXY": "p:8080"}, "http", "127.0.0.1:9000", "http://p:8080"),  # no scheme
        ({"HTTP_PROXY": "http://p"}, "http", "minio", "http://p"),
        (
            {"HTTPS_PROXY": "http://upper:1", "https_proxy": "http://lower:2"},
            "https",
            "s3",
            "http://lower:2",
        ),
        ({"HTTPS_PROXY": "http://p:1", "NO_PROXY": "*"}, "https", "s3", None),
        (
            {"HTTPS_PROXY": "http://p:1", "NO_PROXY": ".amazonaws.com"},
            "https",
            "b.s3.amazonaws.com",
            None,
        ),
        (
            {"HTTPS_PROXY": "http://p:1", "NO_PROXY": "amazonaws.com"},
            "https",
            "amazonaws.com",
            None,
        ),
        (
            {"HTTPS_PROXY": "http://p:1", "NO_PROXY": "*.internal"},
            "https",
            "s3.internal:9000",
            None,
        ),
        (
            {"HTTPS_PROXY": "http://p:1", "NO_PROXY": "zonaws.com"},
            "https",
            "s3.amazonaws.com",
            "http://p:1",
        ),
        ({"HTTPS_PROXY": "http://p:1", "no_proxy": "10.0.0.0/8"}, "https", "10.1.2.3:443", None),
        (
            {"HTTPS_PROXY": "http://p:1", "NO_PROXY": "10.0.0.0/8"},
            "https",
            "11.1.2.3",
            "http://p:1",
        ),
        ({"HTTPS_PROXY": "http://p:1", "NO_PROXY": "minio:9000"}, "https", "minio:9000", None),
        (
            {"HTTPS_PROXY": "http://p:1", "NO_PROXY": "minio:9000"},
            "https",
            "minio:9001",
            "http://p:1",
        ),
        ({"HTTPS_PROXY": "http://p:1", "NO_PROXY": "::1"}, "https", "[::1]:8443", None),
        ({"HTTP_PROXY": "http://p:1"}, "http", "169.254.169.254", None),  # never
        ({"HTTP_PROXY": "http://p:1"}, "http", "169.254.170.2", None),
        ({"HTTP_PROXY": "http://p:1"}, "http", "169.254.170.23", None),
        ({"HTTP_PROXY": "http://p:1"}, "http", "[fd00:ec2::254]", None),
        ({"HTTP_PROXY": "http://p:1"}, "http", "[fd00:ec2::23]:80", None),
        ({"HTTP_PROXY": "http://p:1"}, "http", "127.0.0.1:9000", "http://p:1"),  # loopback: yes
    ],
)
def test_which_proxy(env: dict[str, str], scheme: str, host: str, expected: str | None) -> None:
    chosen = Proxies.from_environment(env).for_origin(scheme, host)
    assert (chosen.display if chosen is not None else None) == expected


def test_proxy_credentials_are_decoded_and_never_shown() -> None:
    proxies = Proxies.from_environment({"HTTPS_PROXY": "http://us%40er:p%3Ass%40@proxy:3128"})
    chosen = proxies.for_origin("https", "s3.amazonaws.com")
    assert chosen is not None and chosen.authorization is not None
    assert chosen.authorization == "Basic " + base64.b64encode(b"us@er:p:ss@").decode()
    assert "p%3Ass" not in chosen.display and "ss@" not in repr(chosen)
    assert chosen.authorization not in repr(proxies)


@pytest.mark.parametrize(
    ("env", "name"),
    [
        ({"HTTPS_PROXY": "https://proxy:3128"}, "HTTPS_PROXY"),
        ({"https_proxy": "socks5://proxy:1080"}, "https_proxy"),
        ({"HTTP_PROXY": "http://proxy:99999"}, "HTTP_PROXY"),
        ({"HTTP_PROXY": "http://proxy:3128/path"}, "HTTP_PROXY"),
    ],
)
def test_unusable_proxies_are_named_at_start(env: dict[str, str], name: str) -> None:
    [(reported, message)] = proxy_problems(env)
    assert reported == name and "http://" in message
    with pytest.raises(ValueError):
        Proxies.from_environment(env)
