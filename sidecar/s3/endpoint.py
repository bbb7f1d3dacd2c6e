"""Where a bucket lives: the endpoint pattern (mobius3's, with `{}` for the bucket name) made
into an origin (scheme and Host header) and a base path, and each key's path under it."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from yarl import URL

from ..aws.http import Origin
from ..aws.sigv4 import quote_path


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where a bucket lives: from a mobius3-style pattern with `{}` for the bucket name."""

    scheme: str
    host: str  # the Host header: hostname, and the port when it is not the default
    base_path: str  # "/" (virtual-hosted) or "/bucket/" (path-style)

    @classmethod
    def parse(cls, pattern: str, bucket: str) -> Endpoint:
        if pattern.count("{}") != 1:
            raise ValueError("must contain `{}` exactly once, where the bucket name goes")
        url = pattern.replace("{}", bucket)
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL")
        if parts.query or parts.fragment:
            raise ValueError("must not have a query string or fragment")
        host = parts.hostname
        if ":" in host:
            host = f"[{host}]"
        default_port = 443 if parts.scheme == "https" else 80
        try:
            port = parts.port
        except ValueError as error:
            raise ValueError("has an invalid port") from error
        if port is not None and port != default_port:
            host = f"{host}:{port}"
        base_path = parts.path or "/"
        if not base_path.endswith("/"):
            base_path += "/"
        return cls(parts.scheme, host, base_path)

    @property
    def origin(self) -> Origin:
        return Origin(self.scheme, self.host)

    def path_for(self, key: str) -> str:
        return self.base_path + quote_path(key)

    def url(self, path: str, query: str) -> URL:
        return self.origin.url(path + (f"?{query}" if query else ""))
