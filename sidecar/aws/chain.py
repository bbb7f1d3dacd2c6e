"""Which credentials to use, from the environment alone, in the order the AWS SDKs try them in
a container (keys, then the container endpoint), and what is wrong with them at start-up,
named by variable and never quoting a secret."""

from __future__ import annotations

from collections.abc import Callable, Mapping

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

SOURCES = ("auto", "environment", "ecs")


def credential_problems(env: Mapping[str, str], source: str = "auto") -> list[tuple[str, str]]:
    """(variable, what is wrong) for start-up validation; never quotes a secret.

    `source`: "auto" (environment keys, else the container endpoint), "environment" (keys
    only) or "ecs" (the container endpoint only: `--credentials-source ecs-container-endpoint`).
    Only what that source would use is checked.
    """
    _check_source(source)
    problems: list[tuple[str, str]] = []
    if source != "ecs":
        key = env_value(env, ACCESS_KEY_ID)
        secret = env_value(env, SECRET_ACCESS_KEY)
        if secret and not key:
            problems.append((ACCESS_KEY_ID, f"required when {SECRET_ACCESS_KEY} is set"))
        elif key and not secret:
            problems.append(
                (
                    SECRET_ACCESS_KEY,
                    f"required when {ACCESS_KEY_ID} is set (its value is never shown)",
                )
            )
        if key and secret:
            return problems
        if source == "environment":
            if not key and not secret:
                problems.append(
                    (
                        ACCESS_KEY_ID,
                        f"required: set {ACCESS_KEY_ID} and {SECRET_ACCESS_KEY} "
                        f"(and {SESSION_TOKEN} for temporary credentials)",
                    )
                )
            return problems

    relative = env_value(env, RELATIVE_URI)
    full = env_value(env, FULL_URI)
    if not relative and not full:
        if source == "ecs":
            problems.append(
                (
                    RELATIVE_URI,
                    "required with the ecs-container-endpoint credentials source: "
                    f"set {RELATIVE_URI} or {FULL_URI}",
                )
            )
        elif not problems:
            problems.append(
                (
                    ACCESS_KEY_ID,
                    f"no credentials found: set {ACCESS_KEY_ID} and {SECRET_ACCESS_KEY}, "
                    f"or run where {RELATIVE_URI} or {FULL_URI} is set (ECS, Fargate, EKS)",
                )
            )
        return problems

    if relative:
        reason = relative_uri_problem(relative)
        if reason:
            problems.append((RELATIVE_URI, reason))
    else:
        reason = full_uri_problem(full)
        if reason:
            problems.append((FULL_URI, reason))

    token_file = env_value(env, AUTHORIZATION_TOKEN_FILE)
    if token_file:
        try:
            check_token(read_token_file(token_file))
        except CredentialsError as error:
            problems.append((AUTHORIZATION_TOKEN_FILE, str(error)))
    else:
        token = env.get(AUTHORIZATION_TOKEN, "")
        try:
            check_token(token)
        except CredentialsError as error:
            problems.append((AUTHORIZATION_TOKEN, f"{error} (its value is never shown)"))
    return problems


def provider_from_environment(
    env: Mapping[str, str],
    source: str = "auto",
    *,
    http: HttpClient | None = None,
    on_refresh: Callable[[Credentials], None] | None = None,
    on_failure: Callable[[BaseException], None] | None = None,
) -> CredentialsProvider:
    """The first source that applies, in the SDKs' order for containers.

    (1) `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`/`AWS_SESSION_TOKEN` (skipped for "ecs");
    (2) `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI`; (3) `AWS_CONTAINER_CREDENTIALS_FULL_URI`, with
    `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE` (wins) or `AWS_CONTAINER_AUTHORIZATION_TOKEN`.
    CredentialsError when none applies: validate with `credential_problems` first. A source
    fetched over HTTP uses `http` (the sidecar's one client), else a small client of its own.
    """
    _check_source(source)
    if source != "ecs":
        found = environment_credentials(env)
        if found is not None:
            return StaticCredentials(found)
        if source == "environment":
            raise CredentialsError(
                f"no AWS credentials: set {ACCESS_KEY_ID} and {SECRET_ACCESS_KEY}"
            )
    url = container_credentials_url(env)
    if url is None:
        raise CredentialsError(
            f"no AWS credentials: set {ACCESS_KEY_ID} and {SECRET_ACCESS_KEY}, "
            f"or {RELATIVE_URI} or {FULL_URI}"
        )
    return ContainerCredentials(
        url=url,
        token=env.get(AUTHORIZATION_TOKEN) or None,
        token_file=env_value(env, AUTHORIZATION_TOKEN_FILE) or None,
        on_refresh=on_refresh,
        on_failure=on_failure,
        http=http,
    )


def _check_source(source: str) -> None:
    if source not in SOURCES:
        raise ValueError(f"unknown credentials source {source!r}: one of {', '.join(SOURCES)}")
