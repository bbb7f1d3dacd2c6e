"""The credential chain beyond keys and the container endpoint, against real servers on
127.0.0.1: web identity and roles through moto's STS (SigV4 on: only the credentials STS hands
out can touch the bucket), EC2 instance metadata from an IMDSv2-shaped server
(support/imds.py) handing out moto-minted credentials, the shared credentials/config files,
`SYNC_ROLE_ARN` on top of any source, the SDKs' endpoint variables; and, as pure rules, the
order of the chain and what start-up validation says."""

from __future__ import annotations

import re
import signal
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from botocore.exceptions import ClientError
from support.bucket import Bucket
from support.imds import Imds
from support.local_http import free_port
from support.roles import assume_only_user, mint, s3_role
from support.s3_server import REGION, S3Server
from support.waiting import eventually, in_thread

from sidecar.aws.chain import (
    ClosingClient,
    FirstAnswering,
    credential_problems,
    provider_from_environment,
)
from sidecar.aws.container import ContainerCredentials
from sidecar.aws.credentials import Credentials, CredentialsError, StaticCredentials
from sidecar.aws.http import HttpClient, Origin
from sidecar.aws.imds import InstanceMetadataCredentials
from sidecar.aws.profiles import ProfileRole, load_profile
from sidecar.aws.sts import AssumedRoleCredentials, WebIdentityCredentials, sts_origin
from sidecar.settings.config import ConfigError, load_settings

NO_METADATA = {"AWS_EC2_METADATA_DISABLED": "true"}
ROLE = "arn:aws:iam::123456789012:role/r"


def base_env(bucket: Bucket, folder: Path, **extra: str) -> dict[str, str]:
    """The sidecar on the test bucket with no credentials of its own: each test adds a source."""
    return {
        "SYNC_DIR": str(folder),
        "SYNC_BUCKET": bucket.name,
        "SYNC_ENDPOINT": bucket.server.endpoint_pattern,
        "SYNC_REGION": REGION,
        "HOME": str(folder.parent / "home"),  # no ~/.aws of the machine's
        **extra,
    }


async def synced_once(run_sidecar, env: dict[str, str], bucket: Bucket, name: str) -> str:
    """Run the command until it syncs a file written after its start; stop it; its log."""
    folder = Path(env["SYNC_DIR"])
    sidecar = run_sidecar([], env)
    await sidecar.ready()
    (folder / name).write_bytes(name.encode())
    await eventually(lambda: in_thread(lambda: bucket.get(name) == name.encode()), timeout=30)
    sidecar.process.send_signal(signal.SIGTERM)
    assert await sidecar.wait(30) == 0, sidecar.text()
    return sidecar.text()


@pytest.fixture
async def imds(moto_server: S3Server) -> AsyncIterator[Imds]:
    role = await s3_role(moto_server)

    async def issue() -> dict[str, str]:
        return await mint(moto_server, role)

    server = Imds(issue)
    await server.start()
    yield server
    await server.close()


# -- web identity (IRSA) ---------------------------------------------------------------------


async def test_web_identity_through_sts_syncs(
    run_sidecar, bucket: Bucket, moto_server: S3Server, tmp_path: Path
) -> None:
    """What made it exit 2 "no credentials found" (issue 26): AWS_WEB_IDENTITY_TOKEN_FILE +
    AWS_ROLE_ARN, STS at AWS_ENDPOINT_URL_STS. No keys anywhere: only STS's answer can sign."""
    role = await s3_role(moto_server)
    token = tmp_path / "token"
    token.write_text("eyJhbGciOiJSUzI1NiJ9.e30.signature\n")
    env = base_env(
        bucket,
        tmp_path / "folder",
        AWS_WEB_IDENTITY_TOKEN_FILE=str(token),
        AWS_ROLE_ARN=role,
        AWS_ROLE_SESSION_NAME="irsa-test",
        AWS_ENDPOINT_URL_STS=moto_server.url,
        **NO_METADATA,
    )
    log = await synced_once(run_sidecar, env, bucket, "irsa.txt")
    assert f"fetched credentials from web identity ({role} through STS at {moto_server.url})" in log
    assert "eyJhbGciOiJSUzI1NiJ9" not in log


async def test_web_identity_rereads_the_token_file_and_names_it(
    moto_server: S3Server, tmp_path: Path
) -> None:
    role = await s3_role(moto_server)
    token = tmp_path / "token"
    token.write_text("first-token")
    http = HttpClient()
    origin = Origin("http", moto_server.url.removeprefix("http://"))
    provider = WebIdentityCredentials(
        http=http, origin=origin, role_arn=role, token_file=str(token)
    )
    try:
        first = await provider.get()
        assert first.session_token and first.access_key_id.startswith("ASIA")
        assert first.expiration is not None and provider.refresh_at is not None
        # Refreshed 15 minutes before an hour's credentials expire, never after.
        assert provider.refresh_at == first.expiration - timedelta(minutes=15)
        token.unlink()
        provider.invalidate()
        with pytest.raises(CredentialsError, match=str(token)):
            await provider.get()
        token.write_text("second-token")
        second = await provider.get()
        assert second.access_key_id != first.access_key_id
    finally:
        await http.close()


def test_web_identity_problems_at_start(tmp_path: Path) -> None:
    token = tmp_path / "token"
    [(name, message)] = credential_problems(
        {"AWS_WEB_IDENTITY_TOKEN_FILE": str(token)} | {"AWS_ROLE_ARN": ROLE}
    )
    assert name == "AWS_WEB_IDENTITY_TOKEN_FILE" and str(token) in message
    token.write_text("t")
    [(name, message)] = credential_problems({"AWS_WEB_IDENTITY_TOKEN_FILE": str(token)})
    assert name == "AWS_ROLE_ARN" and "AWS_WEB_IDENTITY_TOKEN_FILE" in message
    assert (
        credential_problems({"AWS_WEB_IDENTITY_TOKEN_FILE": str(token), "AWS_ROLE_ARN": ROLE}) == []
    )
    [(name, _)] = credential_problems(
        {
            "AWS_WEB_IDENTITY_TOKEN_FILE": str(token),
            "AWS_ROLE_ARN": ROLE,
            "AWS_ENDPOINT_URL_STS": "sts.example",
        }
    )
    assert name == "AWS_ENDPOINT_URL_STS"


# -- SYNC_ROLE_ARN on top of any source ----------------------------------------------------------


async def test_sync_role_arn_is_assumed_on_top_of_the_environment_keys(
    run_sidecar, bucket: Bucket, moto_server: S3Server, tmp_path: Path
) -> None:
    """The keys may only assume roles: the sync works only if SYNC_ROLE_ARN's role signs it."""
    keys = await assume_only_user(moto_server)
    alone = moto_server.client(
        "s3", key=keys["AWS_ACCESS_KEY_ID"], secret=keys["AWS_SECRET_ACCESS_KEY"]
    )
    with pytest.raises(ClientError, match="AccessDenied"):
        await in_thread(lambda: alone.list_objects_v2(Bucket=bucket.name))
    role = await s3_role(moto_server)
    env = base_env(
        bucket,
        tmp_path / "folder",
        **keys,
        SYNC_ROLE_ARN=role,
        SYNC_ROLE_EXTERNAL_ID="c0ffee-42",
        SYNC_ROLE_SESSION_NAME="cross-account",
        AWS_ENDPOINT_URL_STS=moto_server.url,
    )
    log = await synced_once(run_sidecar, env, bucket, "assumed.txt")
    assert f"fetched credentials from the role {role}" in log


async def test_sync_role_arn_over_instance_metadata_refreshes_the_role_alone(
    moto_server: S3Server, imds: Imds, tmp_path: Path
) -> None:
    """A role over a refreshing source: each AssumeRole is signed with the source's credentials
    as they are then; a rejected role credential fetches the role again, not the source."""
    role = await s3_role(moto_server)
    env = {
        **NO_METADATA,
        "AWS_EC2_METADATA_DISABLED": "false",
        "AWS_EC2_METADATA_SERVICE_ENDPOINT": imds.url,
        "SYNC_ROLE_ARN": role,
        "AWS_ENDPOINT_URL": moto_server.url,
    }
    http = HttpClient()
    provider = provider_from_environment(env, http=http, region=REGION)
    try:
        assert isinstance(provider, AssumedRoleCredentials)
        assert isinstance(provider.source, FirstAnswering)
        first = await provider.get()
        assert len(imds.handed) == 1 and first.access_key_id != imds.handed[0]["AccessKeyId"]
        provider.invalidate()
        second = await provider.get()
        assert second.access_key_id != first.access_key_id
        assert len(imds.handed) == 1, "the source's credentials were still good"
    finally:
        await provider.close()
        await http.close()


# -- EC2 instance metadata (IMDSv2) ---------------------------------------------------------------


async def test_instance_metadata_imdsv2_rotating_credentials(
    run_sidecar, bucket: Bucket, imds: Imds, tmp_path: Path
) -> None:
    """No keys, no container endpoint: IMDSv2 (a token first, every GET with it) hands out
    moto-minted credentials that last seconds; they are refreshed before they expire while
    files keep reaching S3, and a revoked session token is replaced."""
    imds.lifetime = 5.0
    env = base_env(
        bucket,
        tmp_path / "folder",
        AWS_EC2_METADATA_SERVICE_ENDPOINT=imds.url,
        AWS_EC2_METADATA_DISABLED="false",
    )
    folder = Path(env["SYNC_DIR"])
    sidecar = run_sidecar([], env)
    try:
        await sidecar.ready()
        for number in range(3):
            before = len(imds.handed)
            await eventually(
                lambda before=before: len(imds.handed) > before, timeout=15, what="a refresh"
            )
            if number == 1:
                imds.revoke_tokens()
            name = f"imds-{number}.txt"
            (folder / name).write_bytes(name.encode())
            await eventually(
                lambda name=name: in_thread(lambda: bucket.get(name) == name.encode()),
                timeout=30,
            )
        sidecar.process.send_signal(signal.SIGTERM)
        assert await sidecar.wait(30) == 0, sidecar.text()
    finally:
        sidecar.kill()
    log = sidecar.text()
    assert f"fetched credentials from EC2 instance metadata at {imds.url}" in log
    assert len(imds.handed) >= 4
    assert imds.puts >= 2, "a new session token after the revocation"
    # Only the GET made with the revoked token was refused; never one without a token.
    assert imds.unauthorized <= 1
    assert "s3sync-instance-role" not in log or "Token" not in log
    for document in imds.handed:
        assert document["SecretAccessKey"] not in log and document["Token"] not in log


async def test_a_hostile_role_name_cannot_bend_the_request(imds: Imds) -> None:
    """The role's name, as the listing gives it, goes into the path quoted; the listing is
    read a line at a time, so a line break cannot add a header."""
    imds.role = "role with spaces?and=query#fragment"
    http = HttpClient()
    try:
        provider = InstanceMetadataCredentials(http=http, endpoint=imds.url)
        creds = await provider.get()
        assert creds.access_key_id == imds.handed[0]["AccessKeyId"]
        imds.role = "evil\r\nX-Injected: 1"
        provider = InstanceMetadataCredentials(http=http, endpoint=imds.url)
        with pytest.raises(CredentialsError, match="HTTP 404 for the role's credentials"):
            await provider.get()
    finally:
        await http.close()
    assert len(imds.headers_seen) >= 2  # the second provider tried as often as it may
    assert all("X-Injected" not in headers for headers in imds.headers_seen)


async def test_nothing_answers_exits_1_naming_the_sources(
    run_sidecar, bucket: Bucket, tmp_path: Path
) -> None:
    closed = free_port()
    env = base_env(
        bucket,
        tmp_path / "folder",
        AWS_EC2_METADATA_SERVICE_ENDPOINT=f"http://127.0.0.1:{closed}",
        AWS_EC2_METADATA_DISABLED="false",
    )
    sidecar = run_sidecar([], env)
    assert await sidecar.wait(90) == 1
    text = sidecar.text()
    assert "cannot start" in text and "no credentials found" in text
    assert f"EC2 instance metadata at http://127.0.0.1:{closed} unreachable" in text
    assert "AWS_WEB_IDENTITY_TOKEN_FILE" in text


async def test_metadata_disabled_and_nothing_else_exits_2(
    run_sidecar, bucket: Bucket, tmp_path: Path
) -> None:
    sidecar = run_sidecar([], base_env(bucket, tmp_path / "folder", **NO_METADATA))
    assert await sidecar.wait(30) == 2
    assert "no credentials found" in sidecar.text()
    assert not (tmp_path / "folder").exists()


# -- the shared credentials and config files ------------------------------------------------------


async def test_shared_credentials_file_profile(
    run_sidecar, bucket: Bucket, moto_server: S3Server, tmp_path: Path
) -> None:
    keys = moto_server.env()
    credentials = tmp_path / "credentials"
    credentials.write_text(
        "[default]\naws_access_key_id = AKIAWRONGWRONGWRONG0\naws_secret_access_key = x\n\n"
        f"[sync]\naws_access_key_id = {keys['AWS_ACCESS_KEY_ID']}\n"
        f"aws_secret_access_key = {keys['AWS_SECRET_ACCESS_KEY']}\n"
    )
    env = base_env(
        bucket,
        tmp_path / "folder",
        AWS_SHARED_CREDENTIALS_FILE=str(credentials),
        AWS_PROFILE="sync",
        **NO_METADATA,
    )
    log = await synced_once(run_sidecar, env, bucket, "profile.txt")
    assert keys["AWS_SECRET_ACCESS_KEY"] not in log


async def test_profile_role_over_source_profile_with_aws_endpoint_url(
    run_sidecar, bucket: Bucket, moto_server: S3Server, tmp_path: Path
) -> None:
    """`role_arn` + `source_profile` in the config file, the source's keys (allowed only to
    assume roles) in the credentials file; S3 and STS both at AWS_ENDPOINT_URL (path-style)."""
    keys = await assume_only_user(moto_server)
    role = await s3_role(moto_server)
    (tmp_path / "credentials").write_text(
        f"[base]\naws_access_key_id = {keys['AWS_ACCESS_KEY_ID']}\n"
        f"aws_secret_access_key = {keys['AWS_SECRET_ACCESS_KEY']}\n"
    )
    (tmp_path / "config").write_text(
        f"[profile app]\nrole_arn = {role}\nsource_profile = base\nregion = {REGION}\n"
    )
    env = base_env(
        bucket,
        tmp_path / "folder",
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "credentials"),
        AWS_CONFIG_FILE=str(tmp_path / "config"),
        AWS_PROFILE="app",
        AWS_ENDPOINT_URL=moto_server.url,
        **NO_METADATA,
    )
    del env["SYNC_ENDPOINT"]
    log = await synced_once(run_sidecar, env, bucket, "profile-role.txt")
    assert f"fetched credentials from the role {role}" in log


async def test_instance_metadata_first_then_the_profile(imds: Imds, tmp_path: Path) -> None:
    """In the chain's order: metadata that answers wins over a profile; metadata that does not
    answer gives way to the profile, and the choice is kept."""
    (tmp_path / "credentials").write_text(
        "[default]\naws_access_key_id = AKIAPROFILEPROFILE00\naws_secret_access_key = s\n"
    )
    files = {"AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "credentials")}
    http = HttpClient()
    try:
        answering = provider_from_environment(
            {**files, "AWS_EC2_METADATA_SERVICE_ENDPOINT": imds.url}, http=http
        )
        assert isinstance(answering, FirstAnswering)
        creds = await answering.get()
        assert creds.access_key_id == imds.handed[0]["AccessKeyId"]
        assert isinstance(answering.chosen, InstanceMetadataCredentials)
        silent = provider_from_environment(
            {**files, "AWS_EC2_METADATA_SERVICE_ENDPOINT": f"http://127.0.0.1:{free_port()}"},
            http=http,
        )
        assert (await silent.get()).access_key_id == "AKIAPROFILEPROFILE00"
        assert isinstance(silent, FirstAnswering)
        assert isinstance(silent.chosen, StaticCredentials)
    finally:
        await http.close()


PROFILE_FILES = {
    "credentials": (
        "[default]\naws_access_key_id = AKIADEFAULT\naws_secret_access_key = s0\n"
        "[keys]\naws_access_key_id = AKIAKEYS\naws_secret_access_key = s1\n"
        "aws_session_token = t1\n"
        "[both]\naws_access_key_id = AKIABOTH\naws_secret_access_key = s2\n"
    ),
    "config": (
        "[default]\nregion = eu-west-2\n"
        "[profile keys]\naws_access_key_id = AKIACONFIGLOSES\n"
        "[profile both]\nrole_arn = arn:aws:iam::123456789012:role/both\n"
        "source_profile = both\n"
        "[profile one]\nrole_arn = arn:aws:iam::123456789012:role/one\n"
        "source_profile = keys\nexternal_id = ext-1\nrole_session_name = s-one\n"
        "[profile two]\nrole_arn = arn:aws:iam::123456789012:role/two\nsource_profile = one\n"
        "[profile via-both]\nrole_arn = arn:aws:iam::123456789012:role/v\n"
        "source_profile = both\n"
        "[profile loop-a]\nrole_arn = arn:aws:iam::123456789012:role/a\n"
        "source_profile = loop-b\n"
        "[profile loop-b]\nrole_arn = arn:aws:iam::123456789012:role/b\n"
        "source_profile = loop-a\n"
        "[profile orphan]\nrole_arn = arn:aws:iam::123456789012:role/o\n"
        "[profile lost]\nrole_arn = arn:aws:iam::123456789012:role/l\nsource_profile = gone\n"
        "[profile half]\naws_access_key_id = AKIAHALF\n"
        "[profile sourced]\nrole_arn = arn:aws:iam::123456789012:role/s\n"
        "credential_source = Ec2InstanceMetadata\n"
        "[sso-session corp]\nsso_region = eu-west-1\n"
    ),
}


@pytest.fixture
def profile_env(tmp_path: Path) -> dict[str, str]:
    for name, text in PROFILE_FILES.items():
        (tmp_path / name).write_text(text)
    return {
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "credentials"),
        "AWS_CONFIG_FILE": str(tmp_path / "config"),
    }


@pytest.mark.parametrize(
    ("profile", "keys_from", "key", "roles"),
    [
        (None, "default", "AKIADEFAULT", []),
        ("keys", "keys", "AKIAKEYS", []),  # the credentials file wins over the config file
        ("both", "both", "AKIABOTH", ["both"]),  # its own source: its keys, its role
        ("one", "keys", "AKIAKEYS", ["one"]),
        ("two", "keys", "AKIAKEYS", ["one", "two"]),  # roles chained in order
        ("via-both", "both", "AKIABOTH", ["v"]),  # a source with keys gives its keys
    ],
)
def test_profiles_resolve_as_the_sdks_do(
    profile_env: dict[str, str], profile: str | None, keys_from: str, key: str, roles: list[str]
) -> None:
    env = profile_env | ({"AWS_PROFILE": profile} if profile else {})
    found = load_profile(env)
    assert found is not None
    assert (found.keys_from, found.keys.access_key_id) == (keys_from, key)
    assert [role.role_arn.rsplit("/", 1)[1] for role in found.roles] == roles
    if profile == "keys":
        assert found.keys.session_token == "t1"
    if profile == "one":
        assert found.roles == (
            ProfileRole("one", "arn:aws:iam::123456789012:role/one", "ext-1", "s-one"),
        )


@pytest.mark.parametrize(
    ("profile", "says"),
    [
        ("missing", "no profile 'missing'"),
        ("loop-a", "source_profile loops (loop-a -> loop-b -> loop-a)"),
        ("orphan", "has role_arn but no source_profile"),
        ("lost", "names source_profile 'gone'"),
        ("half", "has no aws_secret_access_key"),
        ("sourced", "credential_source is not supported"),
        ("corp", "no profile 'corp'"),  # an sso-session section is not a profile
    ],
)
def test_broken_profiles_are_named_at_start(
    profile_env: dict[str, str], profile: str, says: str
) -> None:
    env = profile_env | {"AWS_PROFILE": profile}
    with pytest.raises(CredentialsError, match=re.escape(says)):
        load_profile(env)
    [(name, message)] = credential_problems(env)
    assert name == "AWS_PROFILE" and says in message
    assert "s0" not in message and "s1" not in message


def test_no_profile_without_files_or_with_only_a_region(tmp_path: Path) -> None:
    env = {
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
        "AWS_CONFIG_FILE": str(tmp_path / "config"),
    }
    assert load_profile(env) is None
    (tmp_path / "config").write_text("[default]\nregion = eu-west-2\n")
    assert load_profile(env) is None
    assert credential_problems(env | NO_METADATA)[0][1].startswith("no credentials found")


# -- the order of the chain, and the SDKs' endpoint variables --------------------------------------


async def test_the_chain_in_the_sdks_order(tmp_path: Path, profile_env: dict[str, str]) -> None:
    token = tmp_path / "token"
    token.write_text("t")
    keys = {"AWS_ACCESS_KEY_ID": "AKIAENV", "AWS_SECRET_ACCESS_KEY": "s"}
    web = {"AWS_WEB_IDENTITY_TOKEN_FILE": str(token), "AWS_ROLE_ARN": ROLE}
    container = {"AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://127.0.0.1:9/creds"}
    metadata = {"AWS_EC2_METADATA_SERVICE_ENDPOINT": "http://127.0.0.1:9"}
    everything = {**keys, **web, **container, **metadata, **profile_env}
    http = HttpClient()
    try:
        kinds = []
        for dropped in (keys, web, container):
            provider = provider_from_environment(everything, http=http)
            kinds.append(type(provider))
            everything = {k: v for k, v in everything.items() if k not in dropped}
        kinds.append(type(provider_from_environment(everything, http=http)))
        kinds.append(type(provider_from_environment(everything | NO_METADATA, http=http)))
        assert kinds == [
            StaticCredentials,
            WebIdentityCredentials,
            ContainerCredentials,
            FirstAnswering,  # instance metadata, else the profile
            StaticCredentials,  # the profile's keys
        ]
        on_top = provider_from_environment({**keys, "SYNC_ROLE_ARN": ROLE}, http=http)
        assert isinstance(on_top, AssumedRoleCredentials)
        assert isinstance(on_top.source, StaticCredentials)
        own = provider_from_environment({**web, "SYNC_ROLE_ARN": ROLE})
        assert isinstance(own, ClosingClient)  # no client given: its own, closed with it
        await own.close()
    finally:
        await http.close()


def test_sts_endpoint_variables() -> None:
    assert sts_origin({}, "eu-west-2") == Origin("https", "sts.eu-west-2.amazonaws.com")
    assert sts_origin({}, "cn-north-1") == Origin("https", "sts.cn-north-1.amazonaws.com.cn")
    assert sts_origin({}, "us-gov-west-1") == Origin("https", "sts.us-gov-west-1.amazonaws.com")
    generic = {"AWS_ENDPOINT_URL": "http://127.0.0.1:4566"}
    assert sts_origin(generic, "eu-west-2") == Origin("http", "127.0.0.1:4566")
    specific = generic | {"AWS_ENDPOINT_URL_STS": "https://sts.internal:443/"}
    assert sts_origin(specific, "eu-west-2") == Origin("https", "sts.internal")


def test_s3_endpoint_variables(tmp_path: Path) -> None:
    env = {
        "SYNC_DIR": str(tmp_path),
        "SYNC_BUCKET": "my-bucket",
        "SYNC_REGION": "eu-west-2",
        "AWS_ACCESS_KEY_ID": "AKIA",
        "AWS_SECRET_ACCESS_KEY": "s",
    }
    assert load_settings(env).endpoint == "https://{}.s3.eu-west-2.amazonaws.com/"
    env["AWS_ENDPOINT_URL"] = "http://127.0.0.1:4566"
    assert load_settings(env).endpoint == "http://127.0.0.1:4566/{}/"
    env["AWS_ENDPOINT_URL_S3"] = "https://s3.internal:9000"
    assert load_settings(env).endpoint == "https://s3.internal:9000/{}/"
    env["SYNC_ENDPOINT"] = "http://minio:9000/{}/"
    assert load_settings(env).endpoint == "http://minio:9000/{}/"
    env["AWS_ENDPOINT_URL_SQS"] = "not a url"
    with pytest.raises(ConfigError) as caught:
        load_settings(env)
    assert [problem.name for problem in caught.value.problems] == ["AWS_ENDPOINT_URL_SQS"]


def test_region_from_the_profile_last(tmp_path: Path) -> None:
    (tmp_path / "config").write_text(
        "[default]\nregion = eu-west-1\n[profile dev]\nregion = ap-south-1\n"
    )
    env = {
        "SYNC_DIR": str(tmp_path / "folder"),
        "SYNC_BUCKET": "my-bucket",
        "AWS_ACCESS_KEY_ID": "AKIA",
        "AWS_SECRET_ACCESS_KEY": "s",
        "AWS_CONFIG_FILE": str(tmp_path / "config"),
    }
    assert load_settings(env).region == "eu-west-1"
    assert load_settings(env | {"AWS_PROFILE": "dev"}).region == "ap-south-1"
    assert load_settings(env | {"AWS_DEFAULT_REGION": "us-west-2"}).region == "us-west-2"
    assert load_settings(env | {"SYNC_REGION": "eu-north-1"}).region == "eu-north-1"
    (tmp_path / "config").write_text("not an ini file")
    with pytest.raises(ConfigError) as caught:
        load_settings(env)  # an unreadable file gives no region (the keys need no profile)
    assert [p.name for p in caught.value.problems] == ["SYNC_REGION"]


def test_aws_ca_bundle(tmp_path: Path) -> None:
    env = {
        "SYNC_DIR": str(tmp_path),
        "SYNC_BUCKET": "my-bucket",
        "SYNC_REGION": "eu-west-2",
        "AWS_ACCESS_KEY_ID": "AKIA",
        "AWS_SECRET_ACCESS_KEY": "s",
    }
    aws, ours = tmp_path / "aws.pem", tmp_path / "ours.pem"
    aws.write_text("")
    ours.write_text("")
    env["AWS_CA_BUNDLE"] = str(aws)
    assert load_settings(env).ca_bundle == str(aws)
    env["SYNC_CA_BUNDLE"] = str(ours)
    assert load_settings(env).ca_bundle == str(ours)  # ours keeps precedence
    del env["SYNC_CA_BUNDLE"]
    env["AWS_CA_BUNDLE"] = str(tmp_path / "missing.pem")
    with pytest.raises(ConfigError) as caught:
        load_settings(env)
    assert [problem.name for problem in caught.value.problems] == ["AWS_CA_BUNDLE"]
    env["SYNC_TLS_VERIFY"] = "false"
    assert load_settings(env).ca_bundle is None  # verification off: no bundle is read


def test_credentials_repr_never_shows_secrets() -> None:
    creds = Credentials("AKIA", "very-secret", "very-token")
    assert "very-secret" not in repr(StaticCredentials(creds))
