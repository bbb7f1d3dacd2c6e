"""The shared credentials and config files (`~/.aws/credentials`, `~/.aws/config`; or
`AWS_SHARED_CREDENTIALS_FILE`, `AWS_CONFIG_FILE`) and the profile `AWS_PROFILE` names
(`default` otherwise), read as the AWS SDKs read them: a profile's settings from both files, the
credentials file's winning; `[name]` in the credentials file, `[profile name]` (or `[default]`)
in the config file.

A profile gives static keys (`aws_access_key_id`, `aws_secret_access_key`,
`aws_session_token`), or a role to assume (`role_arn`, with `external_id` and
`role_session_name`) with the credentials of its `source_profile`, which may itself name a role
(a chain, assumed in order; a loop is refused). As in the SDKs, a source profile with static
keys gives those keys even if it also names a role, and a profile naming itself as its source
uses its own keys. `credential_source` and `web_identity_token_file` in a profile are not
supported (the environment's variables are): they are refused with a message saying so.

Pure: what the files say, as `ProfileCredentials` (the keys at the bottom, the roles on top),
and the profile's `region` (the last fallback of `SYNC_REGION`); chain.py builds the
providers. Errors name the profile and the file, never a value.
"""

from __future__ import annotations

import configparser
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from .credentials import Credentials, CredentialsError, env_value

SHARED_CREDENTIALS_FILE = "AWS_SHARED_CREDENTIALS_FILE"
CONFIG_FILE = "AWS_CONFIG_FILE"
PROFILE = "AWS_PROFILE"
MAX_CHAIN = 8  # roles assumed one on another, at most


@dataclass(frozen=True, slots=True)
class ProfileRole:
    profile: str
    role_arn: str
    external_id: str | None = field(default=None, repr=False)
    session_name: str | None = None


@dataclass(frozen=True, slots=True)
class ProfileCredentials:
    profile: str  # the profile asked for
    keys_from: str  # the profile whose static keys sign the first call
    keys: Credentials
    roles: tuple[ProfileRole, ...] = ()  # assumed in order on top of the keys

    @property
    def display(self) -> str:
        return f"profile {self.profile!r} of the shared credentials/config files"


def shared_files(env: Mapping[str, str]) -> tuple[str, str]:
    """(credentials file, config file) the environment names, or the defaults under `~`."""
    credentials = env_value(env, SHARED_CREDENTIALS_FILE) or os.path.join(
        "~", ".aws", "credentials"
    )
    config = env_value(env, CONFIG_FILE) or os.path.join("~", ".aws", "config")
    return os.path.expanduser(credentials), os.path.expanduser(config)


def profile_name(env: Mapping[str, str]) -> str:
    return env_value(env, PROFILE) or env_value(env, "AWS_DEFAULT_PROFILE") or "default"


def load_profile(env: Mapping[str, str]) -> ProfileCredentials | None:
    """What the profile gives; None when no file has it (or it has no credentials) and none
    was asked for by name. CredentialsError naming the profile and the file otherwise."""
    credentials_file, config_file = shared_files(env)
    profiles = _read(credentials_file, config_file)
    name = profile_name(env)
    asked = bool(env_value(env, PROFILE) or env_value(env, "AWS_DEFAULT_PROFILE"))
    where = f"{credentials_file} or {config_file}"
    if name not in profiles:
        if asked:
            raise CredentialsError(f"no profile {name!r} in {where}")
        return None
    profile = profiles[name]
    if not asked and not _has_keys(profile) and "role_arn" not in profile:
        return None  # a default profile with only a region, say: no credentials here
    keys_from, keys, roles = _resolve(profiles, name, where, [], top=True)
    return ProfileCredentials(name, keys_from, keys, tuple(roles))


def profile_region(env: Mapping[str, str]) -> str | None:
    """The profile's `region` (config file), as the SDKs fall back on it; None when there is
    none or the files cannot be read (their problems are reported as credentials' problems)."""
    try:
        profiles = _read(*shared_files(env))
    except CredentialsError:
        return None
    region = profiles.get(profile_name(env), {}).get("region", "").strip()
    return region or None


def _resolve(
    profiles: Mapping[str, Mapping[str, str]],
    name: str,
    where: str,
    seen: list[str],
    *,
    top: bool,
) -> tuple[str, Credentials, list[ProfileRole]]:
    if name in seen:
        raise CredentialsError(
            f"profile {seen[0]!r}: source_profile loops ({' -> '.join([*seen, name])})"
        )
    if len(seen) > MAX_CHAIN:
        raise CredentialsError(f"profile {seen[0]!r}: more than {MAX_CHAIN} roles chained")
    if name not in profiles:
        raise CredentialsError(
            f"profile {seen[-1]!r} names source_profile {name!r}, which is not in {where}"
        )
    profile = profiles[name]
    if not top and _has_keys(profile):
        return name, _keys(profile, name, where), []
    role_arn = profile.get("role_arn", "").strip()
    if not role_arn:
        return name, _keys(profile, name, where), []
    for unsupported in ("credential_source", "web_identity_token_file"):
        if profile.get(unsupported, "").strip():
            raise CredentialsError(
                f"profile {name!r}: {unsupported} is not supported; use source_profile (or "
                "the environment's AWS_WEB_IDENTITY_TOKEN_FILE and AWS_ROLE_ARN)"
            )
    source = profile.get("source_profile", "").strip()
    if not source:
        raise CredentialsError(f"profile {name!r} has role_arn but no source_profile in {where}")
    role = ProfileRole(
        name,
        role_arn,
        profile.get("external_id", "").strip() or None,
        profile.get("role_session_name", "").strip() or None,
    )
    if source == name:
        return name, _keys(profile, name, where), [role]
    keys_from, keys, roles = _resolve(profiles, source, where, [*seen, name], top=False)
    return keys_from, keys, [*roles, role]


def _has_keys(profile: Mapping[str, str]) -> bool:
    return bool(profile.get("aws_access_key_id", "").strip())


def _keys(profile: Mapping[str, str], name: str, where: str) -> Credentials:
    key = profile.get("aws_access_key_id", "").strip()
    secret = profile.get("aws_secret_access_key", "").strip()
    if not key and not secret:
        raise CredentialsError(
            f"profile {name!r} in {where} has neither aws_access_key_id and "
            "aws_secret_access_key nor role_arn"
        )
    if not key or not secret:
        missing = "aws_secret_access_key" if key else "aws_access_key_id"
        raise CredentialsError(f"profile {name!r} in {where} has no {missing}")
    token = profile.get("aws_session_token", "").strip() or None
    return Credentials(key, secret, token)


def _read(credentials_file: str, config_file: str) -> dict[str, dict[str, str]]:
    """Every profile of both files, by name, the credentials file's values winning."""
    profiles: dict[str, dict[str, str]] = {}
    for path, is_config in ((config_file, True), (credentials_file, False)):
        parser = configparser.RawConfigParser(default_section="__no_defaults__")
        try:
            with open(path, encoding="utf-8") as file:
                parser.read_file(file, source=path)
        except FileNotFoundError:
            continue
        except OSError as error:
            raise CredentialsError(f"cannot read {path}: {error.strerror or error}") from None
        except (configparser.Error, UnicodeDecodeError) as error:
            raise CredentialsError(f"{path} is not an INI file ({type(error).__name__})") from None
        for section in parser.sections():
            name = section.strip()
            if is_config:
                if name.startswith("profile "):
                    name = name.removeprefix("profile ").strip()
                elif name != "default":
                    continue  # sso-session, services, ...: not profiles
            values = {key.lower(): value for key, value in parser.items(section)}
            profiles.setdefault(name, {}).update(values)
    return profiles
