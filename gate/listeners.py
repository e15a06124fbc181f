"""The gate's own listeners, started with the server (under daphne and uvicorn alike) and
stopped by its drain: MQTT over TCP on ``TCP_ADDR`` (mqant's ``TCPAddr``, port 3563) and MQTT
over WebSocket on ``WS_ADDR`` (mqant's ``WSAddr``, port 3653), both over TLS when a
certificate and key are set; and, on ``METRICS_ADDR``, an operator's port for /metrics.

A listener that cannot start (its port taken, its address not this machine's, its certificate
unreadable) stops the whole start with mqant.asgi.CannotStart, which stops the server with the
reason: a gate never serves some of its ports silently.
"""

import asyncio
import functools
import logging
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from gate import admission, conf, tcp, wsserver
from gate.connection import MQTTConnection
from gate.sockets import Socket
from mqant import config as mqant_config
from mqant import health
from mqant.asgi import CannotStart

logger = logging.getLogger(__name__)

Handler = Callable[[Socket], Awaitable[None]]


@dataclass(frozen=True)
class ListenerSettings:
    """Where the listeners listen ("" for none) and their TLS files ("" for none)."""

    tcp_addr: str
    ws_addr: str
    cert: str = ""
    key: str = ""
    # Seconds a WebSocket handshake has to arrive whole.
    handshake_timeout: float = 20.0


def listener_settings() -> ListenerSettings:
    """This process's listeners: its ``Gate`` entry in the deployment file (mqant's
    ``TCPAddr``, ``WSAddr``, ``TLS``/``Tls``, ``CertFile``, ``KeyFile``, ``HTTPTimeout``)
    where it says, else ``TCP_ADDR``, ``WS_ADDR``, ``TLS_CERT``, ``TLS_KEY``,
    ``HTTP_REQUEST_TIMEOUT``."""
    cert, key = conf.get("TLS_CERT"), conf.get("TLS_KEY")
    gate = mqant_config.gate_settings() or {}
    if gate.get("TLS", gate.get("Tls")):
        cert, key = gate.get("CertFile", cert), gate.get("KeyFile", key)
    return ListenerSettings(
        tcp_addr=str(gate.get("TCPAddr", conf.get("TCP_ADDR"))),
        ws_addr=str(gate.get("WSAddr", conf.get("WS_ADDR"))),
        cert=str(cert or ""),
        key=str(key or ""),
        handshake_timeout=float(gate.get("HTTPTimeout", conf.get("HTTP_REQUEST_TIMEOUT"))),
    )


def tls_context(cert: str, key: str) -> ssl.SSLContext | None:
    """A server TLS context from a PEM certificate and key, or None when they are not set."""
    if not cert or not key:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


def parse_addr(addr: str) -> tuple[str, int]:
    """``"host:port"`` (``":3563"`` for every interface) as (host, port)."""
    host, sep, port = addr.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"Expected an address as host:port, got {addr!r}")
    return host.strip("[]") or "0.0.0.0", int(port)  # noqa: S104 - ":port" means every interface


_servers: list[asyncio.Server] = []


async def start() -> None:
    """Start the listeners the settings name. Raises CannotStart, after closing those it
    started, when one cannot listen."""
    settings = listener_settings()
    _check_proxy_protocol(settings)
    try:
        context = tls_context(settings.cert, settings.key)
    except (OSError, ssl.SSLError) as err:
        raise CannotStart(f"cannot read the TLS certificate {settings.cert!r}: {err}") from err
    ws_handler = functools.partial(
        wsserver.serve_client, handshake_timeout=settings.handshake_timeout
    )
    listeners: list[tuple[str, str, Handler]] = [
        ("tcp", settings.tcp_addr, tcp.serve_client),
        ("ws", settings.ws_addr, ws_handler),
    ]
    try:
        for kind, addr, handler in listeners:
            if addr:
                await _listen(kind, addr, handler, context)
        if conf.get("METRICS_ADDR"):
            await _serve_metrics(str(conf.get("METRICS_ADDR")))
    except CannotStart:
        await stop()
        raise


def _check_proxy_protocol(settings: ListenerSettings) -> None:
    """Raise CannotStart for a PROXY_PROTOCOL_FROM that is not a list of addresses, or that
    comes with the listeners' own TLS: the header comes before a TLS handshake, which asyncio
    cannot start on bytes read already. The proxy ends TLS (nginx's stream ``ssl``)."""
    try:
        trusted = admission.trusted_proxies()
    except (TypeError, ValueError) as err:
        raise CannotStart(f"MQANT['PROXY_PROTOCOL_FROM'] must list addresses: {err}") from err
    if trusted and settings.cert and settings.key:
        raise CannotStart(
            "MQANT['PROXY_PROTOCOL_FROM'] needs listeners without TLS_CERT/TLS_KEY: "
            "let the proxy in front end TLS"
        )


_probes: list[health.HealthServer] = []


async def _serve_metrics(addr: str) -> None:
    """/metrics, /healthz and /readyz on ``addr``, for the operator's scraper alone."""
    probes = health.HealthServer(
        lambda: health.not_ready(started=True, stopping=MQTTConnection.stopping)
    )
    try:
        port = await probes.start(*parse_addr(addr))
    except (OSError, ValueError) as err:
        raise CannotStart(
            f"the metrics port cannot listen on {addr}: {err}. Set MQANT['METRICS_ADDR'] to "
            'another address, or to "" for none'
        ) from err
    _probes.append(probes)
    logger.info("metrics on http://%s:%d/metrics", parse_addr(addr)[0], port)


# Per listener: its name, the URL scheme of its clients (without TLS), its setting and its key
# in the Gate entry.
KINDS = {
    "tcp": ("MQTT over TCP", "mqtt", "TCP_ADDR", "TCPAddr"),
    "ws": ("MQTT over WebSocket", "ws", "WS_ADDR", "WSAddr"),
}


async def _listen(kind: str, addr: str, handler: Handler, context: ssl.SSLContext | None) -> None:
    name, scheme, setting, key = KINDS[kind]
    try:
        host, port = parse_addr(addr)
        loop = asyncio.get_running_loop()
        # A TLS handshake comes before anything else; it gets CONNECT's deadline. The socket
        # runs it itself, once it holds its connection slot (gate.sockets).
        tls = None if context is None else (context, float(conf.get("CONNECT_TIMEOUT")))
        server = await loop.create_server(
            lambda: Socket(handler, tls), host, port, reuse_port=bool(conf.get("REUSE_PORT"))
        )
    except (OSError, ValueError) as err:
        raise CannotStart(
            f"{name} cannot listen on {addr}: {err}. Set MQANT['{setting}'] (or the Gate "
            f'entry\'s {key}) to another address, or to "" for no {name} listener'
        ) from err
    _servers.append(server)
    logger.info("%s listening on %s%s://%s:%d", name, scheme, "s" if context else "", host, port)


async def stop() -> None:
    """Close the listeners: no new socket; those open go on. (Not ``wait_closed``: since
    Python 3.12 it waits for every connection, which the drain closes after this.)"""
    while _servers:
        _servers.pop().close()
    while _probes:
        _probes.pop().close()
