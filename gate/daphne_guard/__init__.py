"""Limits on daphne's own sockets, which the ASGI application never sees: the HTTP and
WebSocket sockets one address holds, the time an HTTP request takes to arrive, the bytes read
from each socket, and the WebSocket pings and pongs a client sends (autobahn answers them
inside daphne).

``install()`` (called from ``mqantsite/asgi.py``, which daphne imports before it listens) puts a
``SocketGuard`` (:mod:`.factory`) between daphne's listening port and its ``HTTPFactory``: a
Twisted ``WrappingFactory`` whose ``GuardedSocket`` protocols (:mod:`.wrapper`) see every byte
of their socket, before and after the upgrade to WebSocket. It gives daphne request, WebSocket
and access-log classes that report to them (:mod:`.web`, :mod:`.websocket`,
:mod:`.access_log`). Under any other server (uvicorn) none of this applies; the per-address
MQTT limits of ``gate.limits`` apply everywhere.

Settings (gate/conf.py, read by :mod:`.limits`): MAX_SOCKETS_PER_ADDRESS, HTTP_REQUEST_TIMEOUT,
READ_RATE and READ_BURST, WS_PING_RATE and WS_PING_BURST; 0 turns one off. Memory is bounded by
the open sockets; log lines by ``gate.limits.refusals``.
"""

import logging
import sys
import typing
from typing import Any

from twisted.protocols.policies import ProtocolWrapper

from gate.daphne_guard.access_log import bounded_access_log
from gate.daphne_guard.web import guarded_http_factory, guarded_request_class
from gate.daphne_guard.websocket import guarded_websocket_class, guarded_websocket_factory

logger = logging.getLogger(__name__)

_installed = False


def stop_listening() -> int:
    """Close daphne's listening ports, so that a stopping server takes no new socket (the
    reactor closes them only once daphne has cancelled every application); the open sockets
    go on. Returns how many were listening; 0 under any other server."""
    if "daphne.server" not in sys.modules:
        return 0
    from twisted.internet import reactor, tcp

    readers = typing.cast(Any, reactor).getReaders()  # twisted types reactor as a module
    ports = [r for r in readers if isinstance(r, tcp.Port)]
    for port in ports:
        port.stopListening()  # type: ignore[no-untyped-call]
    return len(ports)


def install() -> bool:
    """Guard daphne's sockets, once; True when the guard is in place.

    Does nothing unless ``daphne.server`` is imported: daphne imports it before the
    application, and so does Django's setup with "daphne" in INSTALLED_APPS (under uvicorn
    too, where the guarded classes are then never used). When daphne's classes are not what
    this module was written against (daphne 4.2), logs a WARNING and leaves daphne as it is.
    """
    global _installed
    if _installed:
        return True
    if "daphne.server" not in sys.modules:
        return False
    daphne = _known_daphne()
    if daphne is None:
        return False
    _guard(*daphne)
    _installed = True
    return True


def _known_daphne() -> tuple[Any, Any, Any] | None:
    """daphne's ``server``, ``http_protocol`` and ``ws_protocol`` modules, or None (with a
    WARNING) when they cannot be imported or are not what this guard knows."""
    try:
        from daphne import http_protocol, server, ws_protocol
    except ImportError as err:
        logger.warning("daphne's sockets are not guarded: cannot import daphne (%s)", err)
        return None
    problem = _unexpected(server, http_protocol, ws_protocol)
    if problem:
        logger.warning(
            "daphne's sockets are not guarded (no MAX_SOCKETS_PER_ADDRESS, "
            "HTTP_REQUEST_TIMEOUT, READ_RATE or WS_PING_RATE): %s",
            problem,
        )
        return None
    return server, http_protocol, ws_protocol


def _guard(server: Any, http_protocol: Any, ws_protocol: Any) -> None:
    """Put the guarded classes where daphne's server and command line look for its own."""
    request_class = guarded_request_class(http_protocol.WebRequest)
    protocol_class = guarded_websocket_class(ws_protocol.WebSocketProtocol)
    server.HTTPFactory = guarded_http_factory(http_protocol.HTTPFactory, request_class)
    server.WebSocketFactory = guarded_websocket_factory(
        ws_protocol.WebSocketFactory, protocol_class
    )
    _bound_access_log()


def _bound_access_log() -> None:
    """daphne's command line builds its access log after it imports the application: give it
    the bounded one (nothing to do when daphne was started otherwise)."""
    cli = sys.modules.get("daphne.cli")
    generator = getattr(cli, "AccessLogGenerator", None)
    if cli is not None and isinstance(generator, type) and hasattr(generator, "write_entry"):
        setattr(cli, "AccessLogGenerator", bounded_access_log(generator))  # noqa: B010


def _unexpected(server: Any, http_protocol: Any, ws_protocol: Any) -> str:
    """What differs from the daphne this guard knows, or "" when nothing does."""
    expected = {
        "daphne.server.HTTPFactory is daphne's HTTPFactory": (
            getattr(server, "HTTPFactory", None) is getattr(http_protocol, "HTTPFactory", 0)
        ),
        "daphne.server.WebSocketFactory is daphne's WebSocketFactory": (
            getattr(server, "WebSocketFactory", None) is getattr(ws_protocol, "WebSocketFactory", 0)
        ),
        "daphne hands sockets over through ProtocolWrapper": (
            getattr(http_protocol, "ProtocolWrapper", None) is ProtocolWrapper
        ),
        "WebRequest has process() and finish()": all(
            callable(getattr(getattr(http_protocol, "WebRequest", None), name, None))
            for name in ("process", "finish")
        ),
        "WebSocketProtocol has autobahn's ping, pong and close methods": all(
            callable(getattr(getattr(ws_protocol, "WebSocketProtocol", None), name, None))
            for name in ("onPing", "onPong", "serverClose", "sendCloseFrame", "dropConnection")
        ),
    }
    missing = [what for what, holds in expected.items() if not holds]
    return "expected " + "; ".join(missing) if missing else ""
