"""Where a Redis server listens and how to connect to it, from channels-redis's ``hosts``
configuration (mqant.redis.layer reads the same settings as channels-redis's layers)."""

import socket
import ssl
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ImproperlyConfigured

# channels-redis's host options that mean nothing here: pub/sub ignores the database; reads
# have no timeout (as mqantsite.settings sets for channels-redis: a dead Redis is noticed by
# TCP keepalive); two connections, never a pool.
_IGNORED_OPTIONS = {"db", "socket_timeout", "max_connections"}


@dataclass(frozen=True)
class Endpoint:
    """Where a Redis server listens and how to connect to it."""

    host: str = "localhost"
    port: int = 6379
    path: str = ""  # a Unix socket, instead of host and port
    username: str = ""
    password: str = ""
    tls: bool = False
    cert_reqs: str = "required"
    ca_certs: str = ""
    connect_timeout: float | None = None
    keepalive: bool = False
    keepalive_options: Mapping[int, int] = field(default_factory=dict)

    @classmethod
    def from_host(cls, host: Mapping[str, Any]) -> "Endpoint":
        """An entry of channels-redis's ``hosts`` (after ``decode_hosts``)."""
        options = dict(host)
        if "address" in options:
            options.update(_url_options(options.pop("address")))
        for name in _IGNORED_OPTIONS:
            options.pop(name, None)
        renamed = {
            "socket_connect_timeout": "connect_timeout",
            "socket_keepalive": "keepalive",
            "socket_keepalive_options": "keepalive_options",
            "ssl_cert_reqs": "cert_reqs",
            "ssl_ca_certs": "ca_certs",
        }
        kwargs = {renamed.get(name, name): value for name, value in options.items()}
        unknown = set(kwargs) - set(cls.__dataclass_fields__)
        if unknown:
            raise ImproperlyConfigured(
                f"mqant.redis.layer supports no Redis host option {sorted(unknown)}: use "
                "channels_redis.pubsub.RedisPubSubChannelLayer for such a host"
            )
        return cls(**kwargs)

    def ssl_context(self) -> ssl.SSLContext | None:
        if not self.tls:
            return None
        context = ssl.create_default_context(cafile=self.ca_certs or None)
        if self.cert_reqs == "none":
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        elif self.cert_reqs != "required":
            raise ImproperlyConfigured(
                f"ssl_cert_reqs must be 'required' or 'none', got {self.cert_reqs!r}"
            )
        return context

    def configure(self, sock: socket.socket | None) -> None:
        """Apply the keepalive options to a TCP connection's socket."""
        if sock is None or self.path or not self.keepalive:
            return
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        for option, value in self.keepalive_options.items():
            sock.setsockopt(socket.IPPROTO_TCP, option, value)

    def __str__(self) -> str:
        return self.path or f"{self.host}:{self.port}"


def _url_options(url: str) -> dict[str, Any]:
    """The options a ``redis://``, ``rediss://`` or ``unix://`` address gives."""
    parts = urllib.parse.urlsplit(url)
    options: dict[str, Any] = dict(urllib.parse.parse_qsl(parts.query))
    if parts.scheme == "unix":
        options["path"] = parts.path
    elif parts.scheme in ("redis", "rediss"):
        options.update(host=parts.hostname or "localhost", port=parts.port or 6379)
        options["tls"] = parts.scheme == "rediss"
    else:
        raise ImproperlyConfigured(f"Expected a redis://, rediss:// or unix:// address, got {url}")
    if parts.username:
        options["username"] = urllib.parse.unquote(parts.username)
    if parts.password:
        options["password"] = urllib.parse.unquote(parts.password)
    return options
