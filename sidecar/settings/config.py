"""Settings from `SYNC_*` environment variables (and mobius3's command line), validated up front.

Every problem is collected and reported at once, naming the variable, showing the value (unless
it is a secret) and the expected form, before anything touches a file or an object. `VARIABLES`
is the environment's view of the table of settings (table.py): one per row with a variable, in
the table's order, which is the order problems are reported in.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..aws.chain import credential_problems
from ..aws.profiles import profile_region
from ..aws.proxy import proxy_problems
from ..aws.sts import endpoint_origin
from ..s3.endpoint import Endpoint
from .parsers import existing_file, parse_size
from .table import QUEUED_POLL_INTERVAL, ROWS, Settings, default_endpoint

__all__ = [
    "VARIABLES",
    "ConfigError",
    "Problem",
    "Settings",
    "Variable",
    "default_endpoint",
    "load_settings",
    "parse_size",
]


@dataclass(frozen=True, slots=True)
class Problem:
    name: str
    value: str | None  # None: not set (or a secret, never shown)
    expected: str

    def __str__(self) -> str:
        if self.value is None:
            return f"{self.name}: {self.expected}"
        return f"{self.name}={self.value!r}: expected {self.expected}"


class ConfigError(Exception):
    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class Variable:
    """A setting as the environment has it."""

    name: str
    field: str
    expected: str  # the form, as shown in errors
    meaning: str
    default: str  # as documented
    example: str
    parse: Callable[[str], Any]
    required: bool = False
    secret: bool = False

    def problem(self, value: str) -> Problem:
        """`value` does not parse: what to report."""
        if self.secret:
            return Problem(self.name, None, f"expected {self.expected} (a secret: not shown)")
        return Problem(self.name, value, self.expected)


VARIABLES: tuple[Variable, ...] = tuple(
    Variable(
        row.env,
        field,
        row.expected,
        row.meaning,
        row.documented,
        row.example,
        row.parse,
        row.required,
        row.secret,
    )
    for field, row in ROWS
    if row.env is not None and row.parse is not None
)

_BY_NAME = {variable.name: variable for variable in VARIABLES}

# The AWS SDKs' variables that choose the default endpoint's form (SYNC_ENDPOINT overrides
# them, as an explicit endpoint does in the SDKs): `true` or `false`.
ENDPOINT_VARIANTS = ("AWS_USE_FIPS_ENDPOINT", "AWS_USE_DUALSTACK_ENDPOINT")


def unknown_variables(env: Mapping[str, str]) -> list[str]:
    """A line for each `SYNC_*` variable in `env` that no setting reads (a misspelling is
    otherwise silently ignored), naming the closest known one where there is one."""
    known = [variable.name.removeprefix("SYNC_") for variable in VARIABLES]
    lines = []
    for name in sorted(env):
        if not name.startswith("SYNC_") or name in _BY_NAME:
            continue
        # Compared without the prefix every candidate shares, which would make all look close.
        close = difflib.get_close_matches(name.removeprefix("SYNC_"), known, n=1, cutoff=0.6)
        hint = f"; did you mean SYNC_{close[0]}?" if close else ""
        lines.append(f"{name} is not a setting of s3sync-sidecar and is ignored{hint}")
    return lines


def load_settings(
    env: Mapping[str, str],
    overrides: Mapping[str, str] | None = None,
    credentials_source: str = "auto",
) -> Settings:
    """Settings from `env`, with `overrides` (command line values, by variable name) on top.

    Raises ConfigError listing every problem found.
    """
    raw: dict[str, str] = {}
    for variable in VARIABLES:
        value = env.get(variable.name)
        if value is not None and value != "":
            raw[variable.name] = value
    for name, value in (overrides or {}).items():
        raw[name] = value
    if "SYNC_REGION" not in raw:
        for fallback in ("AWS_REGION", "AWS_DEFAULT_REGION"):
            if env.get(fallback):
                raw["SYNC_REGION"] = env[fallback]
                break
        else:
            region = profile_region(env)  # the shared config file's, as the SDKs read it
            if region:
                raw["SYNC_REGION"] = region

    problems: list[Problem] = []
    values: dict[str, Any] = {}
    for variable in VARIABLES:
        value = raw.get(variable.name)
        if value is None:
            if variable.required:
                problems.append(
                    Problem(variable.name, None, f"required: set it to {variable.expected}")
                )
            continue
        try:
            values[variable.field] = variable.parse(value)
        except (ValueError, TypeError):
            problems.append(variable.problem(value))

    if "queue_url" in values and "poll_interval" not in values:
        values["poll_interval"] = QUEUED_POLL_INTERVAL  # events first; listings as a backstop
    service_endpoint = _service_endpoint(env, "AWS_ENDPOINT_URL_S3", problems)
    _service_endpoint(env, "AWS_ENDPOINT_URL_SQS", problems)
    variants: dict[str, bool] = {}
    for name in ENDPOINT_VARIANTS:
        text = env.get(name, "").strip().lower()
        if text in ("true", "false"):
            variants[name] = text == "true"
        elif text:
            problems.append(Problem(name, env[name], "true or false"))
    if "endpoint" not in values and "SYNC_ENDPOINT" not in raw:
        if service_endpoint is not None:
            values["endpoint"] = service_endpoint
        elif "region" in values:
            try:
                values["endpoint"] = default_endpoint(
                    values["region"],
                    fips=variants.get("AWS_USE_FIPS_ENDPOINT", False),
                    dualstack=variants.get("AWS_USE_DUALSTACK_ENDPOINT", False),
                )
            except ValueError as error:
                problems.append(
                    Problem(
                        "AWS_USE_FIPS_ENDPOINT",
                        env["AWS_USE_FIPS_ENDPOINT"],
                        f"false in {values['region']}: {error} (or set SYNC_ENDPOINT)",
                    )
                )
    aws_bundle_applies = "SYNC_CA_BUNDLE" not in raw and values.get("tls_verify") is not False
    if aws_bundle_applies and env.get("AWS_CA_BUNDLE", "").strip():
        # The SDKs' variable, for the whole environment: SYNC_CA_BUNDLE (and turning
        # verification off) are this sidecar's own and win.
        aws_bundle = env["AWS_CA_BUNDLE"].strip()
        try:
            values["ca_bundle"] = existing_file(aws_bundle)
        except ValueError:
            problems.append(
                Problem("AWS_CA_BUNDLE", aws_bundle, _BY_NAME["SYNC_CA_BUNDLE"].expected)
            )
    if "endpoint" in values:
        try:
            # Checked even when the bucket is missing or bad, so all problems show at once.
            Endpoint.parse(values["endpoint"], values.get("bucket", "bucket"))
        except ValueError as error:
            problems.append(
                Problem(
                    "SYNC_ENDPOINT",
                    values["endpoint"],
                    f"an endpoint that {error}: " + _BY_NAME["SYNC_ENDPOINT"].expected,
                )
            )
    sse = values.get("sse")
    if "sse_kms_key_id" in values and sse not in ("aws:kms", "aws:kms:dsse"):
        problems.append(
            Problem(
                "SYNC_SSE_KMS_KEY_ID",
                raw["SYNC_SSE_KMS_KEY_ID"],
                "to be unset unless SYNC_SSE is aws:kms or aws:kms:dsse",
            )
        )
    if "sse_bucket_key" in values and sse != "aws:kms":
        problems.append(
            Problem(
                "SYNC_SSE_BUCKET_KEY",
                raw["SYNC_SSE_BUCKET_KEY"],
                "to be unset unless SYNC_SSE is aws:kms (S3 Bucket Keys are for SSE-KMS)",
            )
        )
    if values.get("ca_bundle") and values.get("tls_verify") is False:
        problems.append(
            Problem(
                "SYNC_CA_BUNDLE", raw["SYNC_CA_BUNDLE"], "to be unset when SYNC_TLS_VERIFY=false"
            )
        )

    problems.extend(Problem(name, None, message) for name, message in proxy_problems(env))
    problems.extend(
        Problem(name, None, message)
        for name, message in credential_problems(env, credentials_source)
    )
    if problems:
        raise ConfigError(problems)
    return Settings(**values, credentials_source=credentials_source)


def service_endpoint_url(env: Mapping[str, str], name: str) -> tuple[str, str] | None:
    """(variable, URL) of the SDKs' endpoint for one service: `name` (`AWS_ENDPOINT_URL_S3`,
    `AWS_ENDPOINT_URL_SQS`), then `AWS_ENDPOINT_URL`; None when neither is set."""
    for variable in (name, "AWS_ENDPOINT_URL"):
        value = env.get(variable, "").strip()
        if value:
            return variable, value
    return None


def _service_endpoint(env: Mapping[str, str], name: str, problems: list[Problem]) -> str | None:
    """S3's endpoint pattern from the SDKs' variables (path-style: `<url>/{}/`, which every
    store serves; `SYNC_ENDPOINT` says otherwise), None when neither is set. A malformed one is
    a problem named by its variable."""
    found = service_endpoint_url(env, name)
    if found is None:
        return None
    variable, url = found
    try:
        origin = endpoint_origin(url, variable)
    except ValueError as error:
        problems.append(Problem(variable, url, str(error).partition(": ")[2]))
        return None
    return f"{origin.scheme}://{origin.host}/{{}}/"
