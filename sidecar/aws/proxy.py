"""Which proxy a request goes through, chosen as the AWS SDKs (and curl) choose it from the
environment: `HTTPS_PROXY` for https origins (reached through a `CONNECT` tunnel), `HTTP_PROXY`
for plain http ones (sent to the proxy with the absolute URL), none for a host `NO_PROXY` names.
Each variable may be spelt in lower case; the lower-case one wins when both are set (as curl
and Python's urllib). A proxy URL may carry credentials (`http://user:pass@proxy:3128`,
percent-encoded), sent as `Proxy-Authorization: Basic` (on the `CONNECT` for https) and never
shown: `Proxy.display` has none.

`NO_PROXY` is a comma-separated list of `*` (no proxy at all), host names (a name matches
itself and every name below it; a leading `.` or `*.` is allowed), IP addresses, CIDR blocks
(`10.0.0.0/8`), each optionally with `:port`. Loopback is *not* excluded unless listed (some
libraries exclude it silently; the SDKs do not).

Never proxied, whatever the variables say: the link-local credential endpoints (the ECS agent
169.254.170.2, EKS Pod Identity 169.254.170.23 and fd00:ec2::23, instance metadata
169.254.169.254 and fd00:ec2::254) and any request their providers make (`direct`, http.py):
a proxy must never see a credentials request, nor could it reach those addresses. Pure: the
choice is made from a mapping, once per origin.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

import aiohttp
from yarl import URL

HTTPS_PROXY = "HTTPS_PROXY"
HTTP_PROXY = "HTTP_PROXY"
NO_PROXY = "NO_PROXY"

NEVER_PROXIED = frozenset(
    ipaddress.ip_address(address)
    for address in (
        "169.254.170.2",
        "169.254.170.23",
        "fd00:ec2::23",
        "169.254.169.254",
        "fd00:ec2::254",
    )
)


@dataclass(frozen=True, slots=True)
class Proxy:
    url: URL  # scheme, host and port only
    authorization: str | None = field(default=None, repr=False)  # Proxy-Authorization's value

    @property
    def display(self) -> str:
        """For logs: the proxy's URL without its credentials."""
        return str(self.url)


@dataclass(frozen=True, slots=True)
class Proxies:
    https: Proxy | None = None
    http: Proxy | None = None
    no_proxy: tuple[str, ...] = ()

    @classmethod
    def from_environment(cls, env: Mapping[str, str]) -> Proxies:
        """The proxies `env` names; ValueError naming the variable when one is not usable."""
        return cls(
            _proxy(env, HTTPS_PROXY),
            _proxy(env, HTTP_PROXY),
            tuple(
                entry.strip().lower() for entry in _value(env, NO_PROXY).split(",") if entry.strip()
            ),
        )

    def for_origin(self, scheme: str, host: str) -> Proxy | None:
        """The proxy for `scheme://host` (`host` as a Host header: `name[:port]`), or None."""
        proxy = self.https if scheme == "https" else self.http
        if proxy is None:
            return None
        name, port = split_host(host, 443 if scheme == "https" else 80)
        if is_never_proxied(name) or _bypassed(self.no_proxy, name, port):
            return None
        return proxy


def proxy_problems(env: Mapping[str, str]) -> list[tuple[str, str]]:
    """(variable, what is wrong) for the proxy variables, never quoting a password."""
    problems = []
    for name in (HTTPS_PROXY, HTTP_PROXY):
        try:
            _proxy(env, name)
        except ValueError as error:
            problems.append((_spelling(env, name), str(error)))
    return problems


def split_host(host: str, default_port: int) -> tuple[str, int]:
    """`name[:port]` or `[v6][:port]` as (name without brackets, lower case; port)."""
    if host.startswith("["):
        name, _, rest = host[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif host.count(":") == 1:
        name, _, port = host.partition(":")
    else:
        name, port = host, ""
    return name.lower().rstrip("."), int(port) if port.isdigit() else default_port


def is_never_proxied(name: str) -> bool:
    try:
        return ipaddress.ip_address(name) in NEVER_PROXIED
    except ValueError:
        return False


def _bypassed(entries: tuple[str, ...], name: str, port: int) -> bool:
    try:
        address: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.ip_address(name)
    except ValueError:
        address = None
    return any(_matches(entry, name, address, port) for entry in entries)


def _matches(
    entry: str,
    name: str,
    address: ipaddress.IPv4Address | ipaddress.IPv6Address | None,
    port: int,
) -> bool:
    """Whether one `NO_PROXY` entry names this host (and port)."""
    if entry == "*":
        return True
    if "/" in entry:  # a CIDR block
        try:
            return address is not None and address in ipaddress.ip_network(entry, strict=False)
        except ValueError:
            return False
    wanted, wanted_port = split_host(entry, 0)
    if wanted_port and wanted_port != port:
        return False
    try:
        wanted_address = ipaddress.ip_address(wanted)
    except ValueError:
        pass  # a name
    else:
        return address == wanted_address
    domain = wanted.removeprefix("*").lstrip(".")
    return bool(domain) and (name == domain or name.endswith("." + domain))


def _spelling(env: Mapping[str, str], name: str) -> str:
    """Which spelling of `name` is in force: the lower-case one when it is set."""
    return name.lower() if env.get(name.lower(), "").strip() else name


def _value(env: Mapping[str, str], name: str) -> str:
    return env.get(_spelling(env, name), "").strip()


def _proxy(env: Mapping[str, str], name: str) -> Proxy | None:
    text = _value(env, name)
    if not text:
        return None
    if "://" not in text:
        text = "http://" + text  # `proxy:3128`, as curl reads it
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        raise ValueError("not a URL: expected http://[user:password@]host:port") from None
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(
            "expected http://[user:password@]host:port (an http:// proxy; HTTPS is tunnelled "
            "through it with CONNECT)"
        )
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError("expected http://[user:password@]host:port, without a path")
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    url = URL(f"http://{host}:{port or 80}")
    authorization = None
    if parts.username is not None:
        try:
            authorization = aiohttp.encode_basic_auth(
                unquote(parts.username), unquote(parts.password or "")
            )
        except ValueError:
            raise ValueError("a proxy user name may not hold a ':'") from None
    return Proxy(url, authorization)
