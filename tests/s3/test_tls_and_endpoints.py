"""Endpoints: mobius3-style patterns, and TLS against a real HTTPS server on 127.0.0.1 with a
private CA (trusted through SYNC_CA_BUNDLE, or verification turned off, or refused)."""

from __future__ import annotations

import datetime
import ipaddress
import signal
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from support.bucket import Bucket
from support.s3_server import REGION, S3Server
from support.waiting import eventually, in_thread

from sidecar.s3.endpoint import Endpoint


@pytest.mark.parametrize(
    ("pattern", "scheme", "host", "base"),
    [
        (
            "https://{}.s3.eu-west-2.amazonaws.com/",
            "https",
            "my-bucket.s3.eu-west-2.amazonaws.com",
            "/",
        ),
        (
            "https://s3.eu-west-2.amazonaws.com/{}/",
            "https",
            "s3.eu-west-2.amazonaws.com",
            "/my-bucket/",
        ),
        ("http://127.0.0.1:9000/{}/", "http", "127.0.0.1:9000", "/my-bucket/"),
        ("http://127.0.0.1:80/{}", "http", "127.0.0.1", "/my-bucket/"),  # default port dropped
        ("https://[::1]:8443/{}/", "https", "[::1]:8443", "/my-bucket/"),
        ("https://{}.minio.internal", "https", "my-bucket.minio.internal", "/"),
    ],
)
def test_endpoint_patterns(pattern: str, scheme: str, host: str, base: str) -> None:
    endpoint = Endpoint.parse(pattern, "my-bucket")
    assert (endpoint.scheme, endpoint.host, endpoint.base_path) == (scheme, host, base)
    assert endpoint.path_for("dir/a b+c%.txt") == base + "dir/a%20b%2Bc%25.txt"
    url = endpoint.url(endpoint.path_for("k"), "list-type=2")
    assert str(url) == f"{scheme}://{host}{base}k?list-type=2"


@pytest.mark.parametrize(
    "pattern",
    [
        "https://s3.amazonaws.com/bucket/",
        "ftp://{}.example/",
        "{}",
        "https://{}/{}/",
        "https://{}.example/?x=1",
        "https://{}.example:99999/",
    ],
)
def test_bad_endpoint_patterns(pattern: str) -> None:
    with pytest.raises(ValueError):
        Endpoint.parse(pattern, "b")


def make_ca_and_server_cert(directory: Path) -> tuple[Path, ssl.SSLContext]:
    """A private CA, and a certificate for 127.0.0.1 it signed."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "s3sync test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_file = directory / "ca.pem"
    ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    cert_file = directory / "server.pem"
    cert_file.write_bytes(
        cert.public_bytes(serialization.Encoding.PEM)
        + key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file)
    return ca_file, context


@pytest.fixture
async def https_proxy(moto_server: S3Server, tmp_path: Path) -> AsyncIterator[Any]:
    from support.faultproxy import FaultProxy

    ca_file, context = make_ca_and_server_cert(tmp_path)
    server = FaultProxy(moto_server.url)
    await server.start(ssl_context=context)
    server.ca_file = ca_file
    yield server
    await server.close()


async def run_until_synced(
    run_sidecar: Any, env: dict[str, str], bucket: Bucket, folder: Path
) -> tuple[int, str]:
    """Start the command; if it gets as far as syncing, write a file, see it in S3, stop it."""
    sidecar = run_sidecar([], env)
    await eventually(
        lambda: "syncing" in sidecar.text() or sidecar.process.poll() is not None, timeout=30
    )
    if sidecar.process.poll() is None:
        (folder / "over-tls.txt").write_bytes(b"tls")
        await eventually(lambda: in_thread(lambda: bucket.get("over-tls.txt") == b"tls"))
        sidecar.process.send_signal(signal.SIGTERM)
    return await sidecar.wait(30), sidecar.text()


def tls_env(bucket: Bucket, https_proxy: Any, folder: Path, **extra: str) -> dict[str, str]:
    return {
        **bucket.server.env(),
        "SYNC_DIR": str(folder),
        "SYNC_BUCKET": bucket.name,
        "SYNC_ENDPOINT": https_proxy.endpoint_pattern,
        "SYNC_REGION": REGION,
        **extra,
    }


async def test_private_ca_is_refused_by_default(
    run_sidecar, bucket: Bucket, https_proxy, tmp_path: Path
) -> None:
    code, log = await run_until_synced(
        run_sidecar, tls_env(bucket, https_proxy, tmp_path / "a"), bucket, tmp_path / "a"
    )
    assert code == 1
    assert "cannot start" in log and "certificate verify failed" in log.lower()


async def test_private_ca_trusted_through_a_bundle(
    run_sidecar, bucket: Bucket, https_proxy, tmp_path: Path
) -> None:
    env = tls_env(bucket, https_proxy, tmp_path / "b", SYNC_CA_BUNDLE=str(https_proxy.ca_file))
    code, log = await run_until_synced(run_sidecar, env, bucket, tmp_path / "b")
    assert code == 0, log
    assert https_proxy.seen["PUT"] >= 1


async def test_verification_turned_off(
    run_sidecar, bucket: Bucket, https_proxy, tmp_path: Path
) -> None:
    env = tls_env(bucket, https_proxy, tmp_path / "c", SYNC_TLS_VERIFY="false")
    code, log = await run_until_synced(run_sidecar, env, bucket, tmp_path / "c")
    assert code == 0, log
