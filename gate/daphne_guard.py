"""Limits on daphne's own sockets, which the ASGI application never sees: the HTTP and
WebSocket sockets one address holds, the time an HTTP request takes to arrive, the bytes read
from each socket, and the WebSocket pings and pongs a client sends (autobahn answers them
inside daphne).

``install()`` (called from ``mqantsite/asgi.py``, which daphne imports before it listens) puts a
``SocketGuard`` between daphne's listening port and its ``HTTPFactory``: a Twisted
``WrappingFactory`` whose ``GuardedSocket`` protocols see every byte of their socket. daphne's
upgrade to WebSocket replaces the ``wrappedProtocol`` of a ``ProtocolWrapper`` transport (it
checks ``isinstance(transport, ProtocolWrapper)``, as for TLS), so the guard goes on seeing the
socket's bytes after the upgrade. Under any other server (uvicorn) none of this applies; the
per-address MQTT limits of ``gate.limits`` apply everywhere.

Settings (gate/conf.py): MAX_SOCKETS_PER_ADDRESS, HTTP_REQUEST_TIMEOUT, READ_RATE and
READ_BURST, WS_PING_RATE and WS_PING_BURST; 0 turns one off. Memory is bounded by the open
sockets; log lines by ``gate.limits.refusals``.
"""

import logging
import sys
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from twisted.internet.interfaces import IProtocol, IProtocolNegotiationFactory
from twisted.internet.protocol import Factory, Protocol
from twisted.protocols.policies import ProtocolWrapper, WrappingFactory
from twisted.python.failure import Failure
from zope.interface import classImplements  # type: ignore[import-untyped]

from gate import conf
from gate.limits import TokenBucket, address_key, refusals

logger = logging.getLogger(__name__)

SOCKET_REFUSED = "socket refused: MAX_SOCKETS_PER_ADDRESS reached"
REQUEST_TIMED_OUT = "socket closed: an HTTP request not whole within HTTP_REQUEST_TIMEOUT"
PING_FLOOD = "WebSocket closed: pings and pongs past WS_PING_RATE"

# A close frame is given this long to reach a client before its socket is aborted.
CLOSE_GRACE_SECONDS = 2.0
# RFC 6455 and IANA's registry: codes a server may send that autobahn's sendClose refuses (it
# takes 1000 and 3000-4999 only). 1008 "policy violation", 1013 "try again later".
POLICY_VIOLATION = 1008
SERVER_CLOSE_CODES = frozenset({1001, 1002, 1003, 1007, 1008, 1009, 1011, 1012, 1013, 1014})


class Timer(typing.Protocol):
    """What Twisted's ``callLater`` returns (zope interfaces do not type-check as classes)."""

    def active(self) -> bool: ...
    def cancel(self) -> None: ...


class Clock(typing.Protocol):
    """The reactor's time: twisted.internet.task.Clock in tests."""

    def seconds(self) -> float: ...
    def callLater(self, delay: float, f: Callable[..., object], /, *args: Any) -> Timer: ...


@dataclass(frozen=True)
class SocketLimits:
    """The guard's settings; 0 turns a limit off."""

    max_per_address: int = 128
    request_timeout: float = 20.0
    read_rate: float = 256 * 1024
    read_burst: int = 1024 * 1024
    ping_rate: float = 2.0
    ping_burst: int = 10

    @classmethod
    def from_settings(cls) -> "SocketLimits":
        return cls(
            max_per_address=int(conf.get("MAX_SOCKETS_PER_ADDRESS")),
            request_timeout=float(conf.get("HTTP_REQUEST_TIMEOUT")),
            read_rate=float(conf.get("READ_RATE")),
            read_burst=int(conf.get("READ_BURST")),
            ping_rate=float(conf.get("WS_PING_RATE")),
            ping_burst=int(conf.get("WS_PING_BURST")),
        )


class GuardedSocket(ProtocolWrapper):
    """One HTTP (later maybe WebSocket) socket: its bytes are counted against its read budget,
    its HTTP requests timed, its WebSocket pings counted. It is the transport of daphne's HTTP
    channel, and the network producer the channel pauses and resumes; after the upgrade it
    hands the bytes to the WebSocket protocol, which writes to the socket itself."""

    factory: "SocketGuard"

    def __init__(self, factory: "SocketGuard", wrapped: IProtocol, address: str) -> None:
        super().__init__(factory, wrapped)
        self.address = address
        self._limits = factory.limits
        self._clock = factory.clock
        self._http = wrapped  # until daphne hands the socket to a WebSocket protocol
        self._budget = TokenBucket(
            self._limits.read_rate, self._limits.read_burst, clock=self._clock.seconds
        )
        self._pings: TokenBucket | None = None
        self._request_timer: Timer | None = None
        self._resume_timer: Timer | None = None
        self._abort_timer: Timer | None = None
        self._handling = False  # a request arrived whole and has not been answered yet
        self._bytes_while_handling = False
        self._paused_by_protocol = False
        self._paused_by_budget = False

    # Bytes in

    def dataReceived(self, data: bytes) -> None:
        if self.wrappedProtocol is self._http:
            self._time_request()
        wait = self._budget.spend(len(data))
        super().dataReceived(data)  # type: ignore[no-untyped-call]
        if wait and self.wrappedProtocol is not None:  # None: the socket is gone already
            self._hold_reading(wait)

    def connectionLost(self, reason: Failure | None = None) -> None:
        for timer in (self._request_timer, self._resume_timer, self._abort_timer):
            if timer is not None and timer.active():
                timer.cancel()
        self._request_timer = self._resume_timer = self._abort_timer = None
        super().connectionLost(reason)  # type: ignore[no-untyped-call]

    # HTTP requests (called by the request class install() gives daphne)

    def request_arrived(self) -> None:
        """A request has arrived whole: its clock stops."""
        self._cancel_request_timer()
        self._handling = True
        self._bytes_while_handling = False

    def request_done(self) -> None:
        """The request's answer is done; bytes of a next one that came meanwhile are timed."""
        self._handling = False
        if self._bytes_while_handling:
            self._time_request()
        self._bytes_while_handling = False

    def _time_request(self) -> None:
        if self._handling:
            self._bytes_while_handling = True
        elif self._request_timer is None and self._limits.request_timeout:
            self._request_timer = self._clock.callLater(
                self._limits.request_timeout, self._request_timed_out
            )

    def _cancel_request_timer(self) -> None:
        if self._request_timer is not None and self._request_timer.active():
            self._request_timer.cancel()
        self._request_timer = None

    def _request_timed_out(self) -> None:
        self._request_timer = None
        refusals.note(REQUEST_TIMED_OUT, self.address)
        self.abort()

    # WebSocket pings (called by the WebSocket protocol class install() gives daphne)

    def ping_admitted(self) -> bool:
        """Count a ping or pong from the client: False once past WS_PING_RATE/WS_PING_BURST."""
        if not self._limits.ping_rate:
            return True
        if self._pings is None:
            self._pings = TokenBucket(
                self._limits.ping_rate, self._limits.ping_burst, clock=self._clock.seconds
            )
        if self._pings.admit():
            return True
        refusals.note(PING_FLOOD, self.address)
        return False

    # Closing

    @property
    def socket(self) -> Any:
        """The transport under this wrapper: the TCP connection, or TLS over it."""
        return self.transport

    def abort(self) -> None:
        """Close at once, dropping whatever waits to be written."""
        self.socket.abortConnection()

    def abort_later(self, seconds: float = CLOSE_GRACE_SECONDS) -> None:
        """Abort if the socket is still open ``seconds`` from now (a close that must not wait
        on a client that does not read)."""
        if self._abort_timer is None:
            self._abort_timer = self._clock.callLater(seconds, self.abort)

    # Reading, paused by the budget or by the wrapped protocol (daphne's HTTP channel)

    def _hold_reading(self, wait: float) -> None:
        if self._resume_timer is not None:
            return
        self._paused_by_budget = True
        self.socket.pauseProducing()
        self._resume_timer = self._clock.callLater(wait, self._budget_back)

    def _budget_back(self) -> None:
        self._resume_timer = None
        wait = self._budget.spend(0)
        if wait:  # more came in while the protocol had reading resumed
            self._resume_timer = self._clock.callLater(wait, self._budget_back)
            return
        self._paused_by_budget = False
        if not self._paused_by_protocol and not getattr(self.socket, "disconnecting", False):
            self.socket.resumeProducing()

    def pauseProducing(self) -> None:
        self._paused_by_protocol = True
        self.socket.pauseProducing()

    def resumeProducing(self) -> None:
        self._paused_by_protocol = False
        if not self._paused_by_budget:
            self.socket.resumeProducing()


class RefusedSocket(Protocol):
    """A socket past MAX_SOCKETS_PER_ADDRESS: aborted as soon as it is connected, and not
    counted. (Rather than no protocol at all, which a TLS port cannot take.)"""

    def makeConnection(self, transport: Any) -> None:
        transport.abortConnection()


class SocketGuard(WrappingFactory[GuardedSocket]):
    """Wraps daphne's HTTPFactory: counts the open sockets of each address (an entry per
    address that holds one, no more), refuses those past MAX_SOCKETS_PER_ADDRESS, and wraps
    the others in a GuardedSocket.

    Behind a proxy that daphne trusts for the client's address (``--proxy-headers``), every
    socket comes from the proxy: the per-address count does not apply then, the rest does.
    """

    protocol = GuardedSocket

    def __init__(
        self,
        wrapped: Factory[Any],
        *,
        limits: SocketLimits | None = None,
        clock: Clock | None = None,
        request_factory: Any = None,
    ) -> None:
        super().__init__(wrapped)  # type: ignore[no-untyped-call]
        self.limits = limits or SocketLimits.from_settings()
        self.clock: Clock = clock or _reactor_of(wrapped)
        self.request_factory = request_factory
        self.sockets: dict[str, int] = {}

    def buildProtocol(self, addr: object) -> Protocol:  # type: ignore[override]
        address = address_key(str(getattr(addr, "host", "")))
        limit = self.limits.max_per_address if self._counts_addresses() else 0
        if limit and address and self.sockets.get(address, 0) >= limit:
            refusals.note(SOCKET_REFUSED, address)
            return RefusedSocket()
        inner = self.wrappedFactory.buildProtocol(addr)
        if self.request_factory is not None:
            inner.requestFactory = self.request_factory
        return GuardedSocket(self, inner, address)

    def registerProtocol(self, p: Any) -> None:
        address = p.address
        self.sockets[address] = self.sockets.get(address, 0) + 1

    def unregisterProtocol(self, p: Any) -> None:
        address = p.address
        left = self.sockets.get(address, 0) - 1
        if left > 0:
            self.sockets[address] = left
        else:
            self.sockets.pop(address, None)

    def acceptableProtocols(self) -> list[bytes]:
        """ALPN, for a TLS port: what daphne's factory speaks."""
        protocols: list[bytes] = self.wrappedFactory.acceptableProtocols()
        return protocols

    def _counts_addresses(self) -> bool:
        server = getattr(self.wrappedFactory, "server", None)
        return not getattr(server, "proxy_forwarded_address_header", None)


classImplements(SocketGuard, IProtocolNegotiationFactory)  # ALPN on a TLS port, as daphne's


def _reactor_of(factory: Factory[Any]) -> Clock:
    """The reactor a factory's protocols time themselves with (daphne's HTTPFactory keeps it)."""
    reactor = getattr(factory, "reactor", None)
    if reactor is None:
        from twisted.internet import reactor
    return typing.cast(Clock, reactor)


# daphne's classes, extended; built by install(), so that this module imports without daphne.


def guarded_request_class(web_request: type) -> type:
    """daphne's WebRequest, telling its socket when the request has arrived whole (daphne's
    ``process``) and when it is done (``finish``)."""

    class GuardedWebRequest(web_request):  # type: ignore[misc]
        def process(self) -> Any:
            socket = getattr(self.channel, "transport", None)
            if isinstance(socket, GuardedSocket):
                socket.request_arrived()
            return super().process()

        def finish(self) -> Any:
            socket = getattr(self.channel, "transport", None)
            if isinstance(socket, GuardedSocket):  # first: finishing may start the next request
                socket.request_done()
            return super().finish()

    return GuardedWebRequest


def guarded_websocket_class(websocket_protocol: type) -> type:
    """daphne's WebSocketProtocol, counting the client's pings and pongs, and sending the
    close codes servers may send (1013 included) that autobahn's own check refuses."""

    class GuardedWebSocketProtocol(websocket_protocol):  # type: ignore[misc]
        guard: GuardedSocket | None = None

        def makeConnection(self, transport: Any) -> None:
            # daphne hands over the guard (the ProtocolWrapper it found); autobahn gets the
            # socket's own transport, as without the guard (over TLS it must be Twisted's TLS
            # protocol). The client's bytes still come through the guard.
            if isinstance(transport, GuardedSocket):
                self.guard, transport = transport, transport.socket
            super().makeConnection(transport)

        def onPing(self, payload: bytes) -> None:
            if self._pings_admitted():
                super().onPing(payload)

        def onPong(self, payload: bytes) -> None:
            if self._pings_admitted():
                super().onPong(payload)

        def serverClose(self, code: int | None = None) -> None:
            if code in SERVER_CLOSE_CODES:
                self.sendCloseFrame(code=code, isReply=False)
            else:
                super().serverClose(code=code)

        def _pings_admitted(self) -> bool:
            socket = self.guard
            if socket is None or socket.ping_admitted():
                return True
            if self.state == self.STATE_OPEN:
                self.sendCloseFrame(code=POLICY_VIOLATION, isReply=False)
            # CLOSED: autobahn parses no more of what the client sent; the close frame is
            # flushed, then the socket closed, or aborted if the client does not read.
            self.dropConnection(abort=False)
            socket.abort_later()
            return False

    return GuardedWebSocketProtocol


# Characters of a request (method and path, which the client chose) an access line keeps.
ACCESS_LINE_REQUEST_CHARS = 1000


def bounded_access_log(generator: type) -> type:
    """daphne's access log (one line per HTTP request and WebSocket event, written straight
    to its stream, past Python's logging), bounded: ACCESS_LOG_RATE lines a second after an
    ACCESS_LOG_BURST, for the whole process; the lines held back are counted and the count
    written with the next line; a request is cut at ACCESS_LINE_REQUEST_CHARS characters."""

    class BoundedAccessLog(generator):  # type: ignore[misc]
        def __init__(self, stream: Any) -> None:
            super().__init__(stream)
            rate, burst = float(conf.get("ACCESS_LOG_RATE")), int(conf.get("ACCESS_LOG_BURST"))
            self._lines = TokenBucket(rate, burst)
            self._held = 0

        def write_entry(self, host: Any, date: Any, request: str, *args: Any, **kw: Any) -> None:
            if not self._lines.admit():
                self._held += 1
                return
            if len(request) > ACCESS_LINE_REQUEST_CHARS:
                request = request[:ACCESS_LINE_REQUEST_CHARS] + "..."
            if self._held:
                request = f"{request} [{self._held} access lines held back]"
                self._held = 0
            super().write_entry(host, date, request, *args, **kw)

    return BoundedAccessLog


def guarded_http_factory(http_factory: type, request_class: type) -> Any:
    """A stand-in for daphne's HTTPFactory class in daphne.server: called as
    ``HTTPFactory(server)``, it returns daphne's factory wrapped in a SocketGuard."""

    def build(server: Any) -> SocketGuard:
        return SocketGuard(http_factory(server), request_factory=request_class)

    return build


def guarded_websocket_factory(websocket_factory: type, protocol_class: type) -> type:
    """daphne's WebSocketFactory, building GuardedWebSocketProtocols."""

    class GuardedWebSocketFactory(websocket_factory):  # type: ignore[misc]
        protocol = protocol_class

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            # paho-mqtt (2.x, mqant's Python client among its users) answers the server's
            # pings with an unmasked pong, a protocol error by RFC 6455's letter: autobahn
            # then cut every idle paho client at daphne's first ping (20 s). Masking guards
            # proxies against scripts in browsers, which always mask; the server loses
            # nothing by taking an unmasked frame.
            self.setProtocolOptions(requireMaskedClientFrames=False)

    return GuardedWebSocketFactory


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
    try:
        from daphne import http_protocol, server, ws_protocol
    except ImportError as err:
        logger.warning("daphne's sockets are not guarded: cannot import daphne (%s)", err)
        return False
    problem = _unexpected(server, http_protocol, ws_protocol)
    if problem:
        logger.warning(
            "daphne's sockets are not guarded (no MAX_SOCKETS_PER_ADDRESS, "
            "HTTP_REQUEST_TIMEOUT, READ_RATE or WS_PING_RATE): %s",
            problem,
        )
        return False
    request_class = guarded_request_class(http_protocol.WebRequest)
    protocol_class = guarded_websocket_class(ws_protocol.WebSocketProtocol)
    server.HTTPFactory = guarded_http_factory(http_protocol.HTTPFactory, request_class)
    server.WebSocketFactory = guarded_websocket_factory(
        ws_protocol.WebSocketFactory, protocol_class
    )
    _bound_access_log()
    _installed = True
    return True


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
