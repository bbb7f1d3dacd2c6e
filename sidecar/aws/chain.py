"""Which credentials to use, from the environment alone, in the order the AWS SDKs try them
(`provider_from_environment`), and what is wrong with them at start-up (`credential_problems`),
named by variable and never quoting a secret:

1. keys: `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` / `AWS_SESSION_TOKEN`;
2. web identity: `AWS_WEB_IDENTITY_TOKEN_FILE` + `AWS_ROLE_ARN` (+ `AWS_ROLE_SESSION_NAME`), STS
   `AssumeRoleWithWebIdentity` (sts.py; IRSA on EKS);
3. the container endpoint: `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI` or `..._FULL_URI`
   (container.py; ECS, Fargate, EKS Pod Identity);
4. EC2 instance metadata, IMDSv2 (imds.py), unless `AWS_EC2_METADATA_DISABLED=true`;
5. the shared credentials/config files' profile (profiles.py): static keys, or `role_arn` +
   `source_profile`.

The first three are named by variables, so the choice among them is made here, once. Whether
instance metadata answers can only be known by asking it, so with a profile in the files as well
the first fetch decides (`FirstAnswering`) and the choice is then kept. `SYNC_ROLE_ARN` (+
`SYNC_ROLE_EXTERNAL_ID`, `SYNC_ROLE_SESSION_NAME`) assumes a role on top of whichever source was
found (`AssumedRoleCredentials`), for a bucket in another account. Every temporary credential
is refreshed before it expires (refreshing.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TypedDict

from .container import (
    ContainerCredentials,
    check_token,
    container_credentials_url,
    full_uri_problem,
    read_token_file,
    relative_uri_problem,
)
from .credentials import (
    ACCESS_KEY_ID,
    AUTHORIZATION_TOKEN,
    AUTHORIZATION_TOKEN_FILE,
    FULL_URI,
    RELATIVE_URI,
    SECRET_ACCESS_KEY,
    SESSION_TOKEN,
    Credentials,
    CredentialsError,
    CredentialsProvider,
    StaticCredentials,
    env_value,
    environment_credentials,
)
from .http import HttpClient
from .imds import DISABLED, InstanceMetadataCredentials, metadata_disabled, metadata_endpoint
from .profiles import PROFILE, SHARED_CREDENTIALS_FILE, load_profile
from .sts import (
    ROLE_ARN,
    ROLE_SESSION_NAME,
    WEB_IDENTITY_TOKEN_FILE,
    AssumedRoleCredentials,
    WebIdentityCredentials,
    read_web_identity_token,
    sts_origin,
)

log = logging.getLogger("sidecar.credentials")

SYNC_ROLE_ARN = "SYNC_ROLE_ARN"
SYNC_ROLE_EXTERNAL_ID = "SYNC_ROLE_EXTERNAL_ID"
SYNC_ROLE_SESSION_NAME = "SYNC_ROLE_SESSION_NAME"
METADATA_ATTEMPTS = "AWS_METADATA_SERVICE_NUM_ATTEMPTS"
METADATA_TIMEOUT = "AWS_METADATA_SERVICE_TIMEOUT"

SOURCES = ("auto", "environment", "ecs")


class _Callbacks(TypedDict, total=False):
    on_refresh: Callable[[Credentials], None] | None
    on_failure: Callable[[BaseException], None] | None


NOTHING_FOUND = (
    f"no credentials found: set {ACCESS_KEY_ID} and {SECRET_ACCESS_KEY}, or "
    f"{WEB_IDENTITY_TOKEN_FILE} and {ROLE_ARN} (EKS IRSA), or run where {RELATIVE_URI} or "
    f"{FULL_URI} is set (ECS, Fargate, EKS Pod Identity), or on EC2 with an instance profile, "
    f"or name a profile of the shared credentials file ({PROFILE}, {SHARED_CREDENTIALS_FILE})"
)


def credential_problems(env: Mapping[str, str], source: str = "auto") -> list[tuple[str, str]]:
    """(variable, what is wrong) for start-up validation; never quotes a secret.

    `source`: "auto" (the chain), "environment" (keys only) or "ecs" (the container endpoint
    only: `--credentials-source ecs-container-endpoint`). Only what the chain would reach is
    checked: the first source the environment names, and the variables of `SYNC_ROLE_ARN` and
    STS's endpoint. Whether instance metadata answers is known only at start (exit 1 then).
    """
    _check_source(source)
    problems = _sts_problems(env)
    if source == "ecs":
        if not env_value(env, RELATIVE_URI) and not env_value(env, FULL_URI):
            problems.append(
                (
                    RELATIVE_URI,
                    "required with the ecs-container-endpoint credentials source: "
                    f"set {RELATIVE_URI} or {FULL_URI}",
                )
            )
            return problems
        return problems + _container_problems(env)
    key = env_value(env, ACCESS_KEY_ID)
    secret = env_value(env, SECRET_ACCESS_KEY)
    if secret and not key:
        return [*problems, (ACCESS_KEY_ID, f"required when {SECRET_ACCESS_KEY} is set")]
    if key and not secret:
        problems.append(
            (SECRET_ACCESS_KEY, f"required when {ACCESS_KEY_ID} is set (its value is never shown)")
        )
        return problems
    if key and secret:
        return problems
    if source == "environment":
        problems.append(
            (
                ACCESS_KEY_ID,
                f"required: set {ACCESS_KEY_ID} and {SECRET_ACCESS_KEY} "
                f"(and {SESSION_TOKEN} for temporary credentials)",
            )
        )
        return problems
    if env_value(env, WEB_IDENTITY_TOKEN_FILE):
        return problems + _web_identity_problems(env)
    if env_value(env, RELATIVE_URI) or env_value(env, FULL_URI):
        return problems + _container_problems(env)
    metadata = not metadata_disabled(env)
    if metadata:
        try:
            metadata_endpoint(env)
        except ValueError as error:
            name, _, reason = str(error).partition(": ")
            problems.append((name, reason))
    try:
        profile = load_profile(env)
    except CredentialsError as error:
        name = PROFILE if env_value(env, PROFILE) else SHARED_CREDENTIALS_FILE
        problems.append((name, str(error)))
        return problems
    if profile is None and not metadata:
        problems.append((ACCESS_KEY_ID, f"{NOTHING_FOUND} ({DISABLED} is true)"))
    return problems


def provider_from_environment(
    env: Mapping[str, str],
    source: str = "auto",
    *,
    http: HttpClient | None = None,
    region: str | None = None,
    on_refresh: Callable[[Credentials], None] | None = None,
    on_failure: Callable[[BaseException], None] | None = None,
) -> CredentialsProvider:
    """The first source that applies, in the SDKs' order (the module docstring), with
    `SYNC_ROLE_ARN` assumed on top. CredentialsError when none applies: validate with
    `credential_problems` first. A source fetched over HTTP uses `http` (the sidecar's one
    client), else a small client of its own, closed with the provider. `region`: STS's, for
    web identity and roles (else `AWS_REGION`, `AWS_DEFAULT_REGION`, then us-east-1)."""
    _check_source(source)
    own = http is None
    client = http if http is not None else HttpClient(connections=2)
    region = region or env_value(env, "AWS_REGION") or env_value(env, "AWS_DEFAULT_REGION")
    region = region or "us-east-1"
    role = env_value(env, SYNC_ROLE_ARN)
    callbacks: _Callbacks = {"on_refresh": on_refresh, "on_failure": on_failure}
    base = _source(
        env,
        source,
        client,
        region,
        container_http=http,  # None: the container provider makes (and closes) its own
        **(callbacks if not role else _Callbacks()),
    )
    provider: CredentialsProvider = base
    if role:
        provider = AssumedRoleCredentials(
            http=client,
            origin=sts_origin(env, region),
            region=region,
            source=base,
            role_arn=role,
            external_id=env_value(env, SYNC_ROLE_EXTERNAL_ID) or None,
            session_name=env_value(env, SYNC_ROLE_SESSION_NAME) or None,
            **callbacks,
        )
    if own and not isinstance(provider, StaticCredentials | ContainerCredentials):
        return ClosingClient(provider, client)
    return provider  # keys use no client; the container provider closes its own


def _source(
    env: Mapping[str, str],
    source: str,
    http: HttpClient,
    region: str,
    *,
    container_http: HttpClient | None,
    on_refresh: Callable[[Credentials], None] | None = None,
    on_failure: Callable[[BaseException], None] | None = None,
) -> CredentialsProvider:
    """The source itself, without `SYNC_ROLE_ARN`'s role."""
    callbacks: _Callbacks = {"on_refresh": on_refresh, "on_failure": on_failure}
    if source != "ecs":
        found = environment_credentials(env)
        if found is not None:
            return StaticCredentials(found)
        if source == "environment":
            raise CredentialsError(
                f"no AWS credentials: set {ACCESS_KEY_ID} and {SECRET_ACCESS_KEY}"
            )
        token_file = env_value(env, WEB_IDENTITY_TOKEN_FILE)
        if token_file:
            role = env_value(env, ROLE_ARN)
            if not role:
                raise CredentialsError(
                    f"{ROLE_ARN}: required when {WEB_IDENTITY_TOKEN_FILE} is set"
                )
            return WebIdentityCredentials(
                http=http,
                origin=sts_origin(env, region),
                role_arn=role,
                token_file=token_file,
                session_name=env_value(env, ROLE_SESSION_NAME) or None,
                **callbacks,
            )
    url = container_credentials_url(env)
    if url is not None:
        return ContainerCredentials(
            url=url,
            token=env.get(AUTHORIZATION_TOKEN) or None,
            token_file=env_value(env, AUTHORIZATION_TOKEN_FILE) or None,
            http=container_http,
            **callbacks,
        )
    if source == "ecs":
        raise CredentialsError(f"no AWS credentials: set {RELATIVE_URI} or {FULL_URI}")
    profile = _profile_provider(env, http, region, **callbacks)
    if metadata_disabled(env):
        if profile is None:
            raise CredentialsError(NOTHING_FOUND)
        return profile
    metadata = InstanceMetadataCredentials(
        http=http,
        endpoint=metadata_endpoint(env),
        timeout=_number(env, METADATA_TIMEOUT, 1.0),
        attempts=int(_number(env, METADATA_ATTEMPTS, 1)),
        **callbacks,
    )
    return FirstAnswering(metadata, profile)


def _profile_provider(
    env: Mapping[str, str],
    http: HttpClient,
    region: str,
    *,
    on_refresh: Callable[[Credentials], None] | None = None,
    on_failure: Callable[[BaseException], None] | None = None,
) -> CredentialsProvider | None:
    """The profile's keys, with its roles assumed in order on top; None without a profile."""
    found = load_profile(env)
    if found is None:
        return None
    provider: CredentialsProvider = StaticCredentials(found.keys)
    for number, role in enumerate(found.roles, 1):
        last = number == len(found.roles)
        provider = AssumedRoleCredentials(
            http=http,
            origin=sts_origin(env, region),
            region=region,
            source=provider,
            role_arn=role.role_arn,
            external_id=role.external_id,
            session_name=role.session_name,
            on_refresh=on_refresh if last else None,
            on_failure=on_failure if last else None,
        )
    return provider


class FirstAnswering:
    """Instance metadata if it answers the first fetch, else the shared files' profile (or,
    without one, the error saying where credentials were looked for); the choice is then kept."""

    def __init__(self, first: CredentialsProvider, then: CredentialsProvider | None) -> None:
        self._first = first
        self._then = then
        self._chosen: CredentialsProvider | None = None
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"FirstAnswering({self._first!r}, {self._then!r}, chosen={self._chosen!r})"

    @property
    def chosen(self) -> CredentialsProvider | None:
        return self._chosen

    async def get(self) -> Credentials:
        if self._chosen is not None:
            return await self._chosen.get()
        async with self._lock:
            if self._chosen is not None:
                return await self._chosen.get()
            try:
                creds = await self._first.get()
            except CredentialsError as error:
                if self._then is None:
                    raise CredentialsError(f"{NOTHING_FOUND}; {error}") from None
                log.info("no credentials from %s; using the shared files' profile", error)
                self._chosen = self._then
                return await self._then.get()
            self._chosen = self._first
            return creds

    def invalidate(self) -> None:
        (self._chosen or self._first).invalidate()

    def valid(self) -> bool:
        return self._chosen is not None and self._chosen.valid()

    @property
    def expiration(self) -> datetime | None:
        return self._chosen.expiration if self._chosen is not None else None

    async def close(self) -> None:
        await self._first.close()
        if self._then is not None:
            await self._then.close()


class ClosingClient:
    """A provider and the HTTP client made for it (none was given), closed together."""

    def __init__(self, provider: CredentialsProvider, http: HttpClient) -> None:
        self.provider = provider
        self._http = http

    def __repr__(self) -> str:
        return repr(self.provider)

    async def get(self) -> Credentials:
        return await self.provider.get()

    def invalidate(self) -> None:
        self.provider.invalidate()

    def valid(self) -> bool:
        return self.provider.valid()

    @property
    def expiration(self) -> datetime | None:
        return self.provider.expiration

    async def close(self) -> None:
        await self.provider.close()
        await self._http.close()


def _sts_problems(env: Mapping[str, str]) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    try:
        sts_origin(env, "us-east-1")
    except ValueError as error:
        name, _, reason = str(error).partition(": ")
        problems.append((name, reason))
    return problems


def _web_identity_problems(env: Mapping[str, str]) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    if not env_value(env, ROLE_ARN):
        problems.append((ROLE_ARN, f"required when {WEB_IDENTITY_TOKEN_FILE} is set"))
    try:
        read_web_identity_token(env_value(env, WEB_IDENTITY_TOKEN_FILE))
    except CredentialsError as error:
        problems.append((WEB_IDENTITY_TOKEN_FILE, str(error)))
    return problems


def _container_problems(env: Mapping[str, str]) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    relative = env_value(env, RELATIVE_URI)
    if relative:
        reason = relative_uri_problem(relative)
        if reason:
            problems.append((RELATIVE_URI, reason))
    else:
        reason = full_uri_problem(env_value(env, FULL_URI))
        if reason:
            problems.append((FULL_URI, reason))
    token_file = env_value(env, AUTHORIZATION_TOKEN_FILE)
    if token_file:
        try:
            check_token(read_token_file(token_file))
        except CredentialsError as error:
            problems.append((AUTHORIZATION_TOKEN_FILE, str(error)))
    else:
        try:
            check_token(env.get(AUTHORIZATION_TOKEN, ""))
        except CredentialsError as error:
            problems.append((AUTHORIZATION_TOKEN, f"{error} (its value is never shown)"))
    return problems


def _number(env: Mapping[str, str], name: str, default: float) -> float:
    try:
        value = float(env_value(env, name) or default)
    except ValueError:
        return default
    return value if value > 0 else default


def _check_source(source: str) -> None:
    if source not in SOURCES:
        raise ValueError(f"unknown credentials source {source!r}: one of {', '.join(SOURCES)}")
