"""daphne's WebSocket side, guarded: its protocol counts the client's pings and pongs (autobahn
answers them inside daphne) and sends the close codes servers may send; its factory builds
that protocol and takes paho's unmasked pongs. Built from daphne's classes when install()
runs, so that this module imports without daphne."""

from typing import Any

from gate.daphne_guard.wrapper import GuardedSocket

# RFC 6455 and IANA's registry: codes a server may send that autobahn's sendClose refuses (it
# takes 1000 and 3000-4999 only). 1008 "policy violation", 1013 "try again later".
POLICY_VIOLATION = 1008
SERVER_CLOSE_CODES = frozenset({1001, 1002, 1003, 1007, 1008, 1009, 1011, 1012, 1013, 1014})


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
            if _pings_admitted(self):
                super().onPing(payload)

        def onPong(self, payload: bytes) -> None:
            if _pings_admitted(self):
                super().onPong(payload)

        def serverClose(self, code: int | None = None) -> None:
            if code in SERVER_CLOSE_CODES:
                self.sendCloseFrame(code=code, isReply=False)
            else:
                super().serverClose(code=code)

    return GuardedWebSocketProtocol


def _pings_admitted(protocol: Any) -> bool:
    """Count a ping or pong against the protocol's socket; past the limit, close with 1008
    and return False."""
    socket: GuardedSocket | None = protocol.guard
    if socket is None or socket.ping_admitted():
        return True
    if protocol.state == protocol.STATE_OPEN:
        protocol.sendCloseFrame(code=POLICY_VIOLATION, isReply=False)
    # CLOSED: autobahn parses no more of what the client sent; the close frame is flushed,
    # then the socket closed, or aborted if the client does not read.
    protocol.dropConnection(abort=False)
    socket.abort_later()
    return False


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
