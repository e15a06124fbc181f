"""gate.daphne_guard: the socket wrapper driven through Twisted's StringTransport and a Clock
the tests move; daphne's classes, extended, over stand-ins with daphne's method names; and
install() in a process of its own (daphne installs its reactor when imported)."""

import os
import subprocess
import sys
import textwrap
from typing import Any

import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure

from gate.daphne_guard.factory import RefusedSocket, SocketGuard
from gate.daphne_guard.limits import SocketLimits
from gate.daphne_guard.web import guarded_request_class
from gate.daphne_guard.websocket import guarded_websocket_class
from gate.daphne_guard.wrapper import GuardedSocket
from tests.e2e.server import ROOT


class Recorder(Protocol):
    """What daphne's HTTP channel would be: takes bytes, pauses its transport when told."""

    def __init__(self) -> None:
        self.data = b""
        self.lost = False

    def dataReceived(self, data: bytes) -> None:
        self.data += data

    def connectionLost(self, reason: Failure | None = None) -> None:
        self.lost = True


def make_guard(wrapped: Factory[Any] | None = None, **limits: Any) -> SocketGuard:
    return SocketGuard(
        wrapped or Factory.forProtocol(Recorder), limits=SocketLimits(**limits), clock=Clock()
    )


def connect(guard: SocketGuard, host: str = "192.0.2.1") -> tuple[Any, StringTransport]:
    address = IPv4Address("TCP", host, 40000)
    protocol = guard.buildProtocol(address)
    transport = StringTransport(peerAddress=address, lenient=True)
    protocol.makeConnection(transport)
    return protocol, transport


def lose(protocol: Any) -> None:
    protocol.connectionLost(Failure(ConnectionDone()))


def clock_of(guard: SocketGuard) -> Clock:
    assert isinstance(guard.clock, Clock)
    return guard.clock


# Sockets per address


def test_sockets_per_address_are_capped_and_counted_back():
    guard = make_guard(max_per_address=3)
    held = [connect(guard) for _ in range(3)]
    assert all(isinstance(p, GuardedSocket) and not t.disconnecting for p, t in held)
    refused, transport = connect(guard)
    assert isinstance(refused, RefusedSocket)
    assert transport.disconnected, "aborted at once"
    assert isinstance(connect(guard, "192.0.2.2")[0], GuardedSocket), "another address"
    lose(held[0][0])
    assert isinstance(connect(guard)[0], GuardedSocket), "a place came free"
    assert guard.sockets == {"192.0.2.1": 3, "192.0.2.2": 1}


def test_the_counts_hold_only_addresses_with_open_sockets():
    guard = make_guard(max_per_address=2)
    sockets = [connect(guard, f"198.51.100.{n}")[0] for n in range(200)]
    assert len(guard.sockets) == 200
    for protocol in sockets:
        lose(protocol)
    assert guard.sockets == {}


def test_behind_a_trusted_proxy_the_per_address_count_is_off():
    wrapped = Factory.forProtocol(Recorder)
    wrapped.server = type("Server", (), {"proxy_forwarded_address_header": "X-Forwarded-For"})  # type: ignore[attr-defined]
    guard = make_guard(wrapped, max_per_address=1)
    assert all(isinstance(connect(guard)[0], GuardedSocket) for _ in range(3))


# HTTP requests


def test_a_request_must_arrive_whole_within_the_timeout_of_its_first_byte():
    guard = make_guard(request_timeout=5)
    protocol, transport = connect(guard)
    clock_of(guard).advance(60)
    assert not transport.disconnecting, "a silent socket is left to Twisted's idle timeout"
    protocol.dataReceived(b"GET /mqtt HTTP/1.1\r\n")
    clock_of(guard).advance(4.9)
    protocol.dataReceived(b"Host: x\r\n")  # more bytes do not restart the clock
    assert not transport.disconnecting
    clock_of(guard).advance(0.2)
    assert transport.disconnected


def test_a_request_that_arrived_stops_its_clock_and_the_next_starts_one():
    guard = make_guard(request_timeout=5)
    protocol, transport = connect(guard)
    clock = clock_of(guard)
    protocol.dataReceived(b"GET / HTTP/1.1\r\n\r\n")
    protocol.request_arrived()
    clock.advance(60)  # the application takes its time: not the client's
    protocol.dataReceived(b"GET /next")  # pipelined, waits while the first is handled
    clock.advance(60)
    protocol.request_done()
    assert not transport.disconnecting
    clock.advance(5.1)
    assert transport.disconnected, "the pipelined request was timed from its answer's end"


def test_a_keep_alive_socket_between_requests_is_not_timed():
    guard = make_guard(request_timeout=5)
    protocol, transport = connect(guard)
    protocol.dataReceived(b"GET / HTTP/1.1\r\n\r\n")
    protocol.request_arrived()
    protocol.request_done()
    clock_of(guard).advance(600)
    assert not transport.disconnecting


def test_after_the_upgrade_to_websocket_no_request_is_timed():
    guard = make_guard(request_timeout=5)
    protocol, transport = connect(guard)
    protocol.dataReceived(b"GET /mqtt HTTP/1.1\r\nUpgrade: websocket\r\n\r\n")
    protocol.request_arrived()
    websocket = Recorder()
    protocol.wrappedProtocol = websocket  # what daphne does to a ProtocolWrapper transport
    protocol.dataReceived(b"\x82\x80frame")
    clock_of(guard).advance(600)
    assert not transport.disconnecting
    assert websocket.data == b"\x82\x80frame"


# The read budget


def test_past_its_read_budget_a_socket_is_paused_then_resumed():
    guard = make_guard(read_rate=1000, read_burst=1000)
    protocol, transport = connect(guard)
    protocol.dataReceived(b"x" * 1500)
    assert protocol.wrappedProtocol.data == b"x" * 1500, "what was read is delivered"
    assert transport.producerState == "paused"
    clock_of(guard).advance(0.49)
    assert transport.producerState == "paused"
    clock_of(guard).advance(0.02)
    assert transport.producerState == "producing"
    assert not transport.disconnecting, "slowed, not closed"


def test_the_wrapped_protocol_and_the_budget_pause_reading_together():
    guard = make_guard(read_rate=1000, read_burst=1000)
    protocol, transport = connect(guard)
    protocol.dataReceived(b"x" * 2000)
    protocol.resumeProducing()  # daphne's HTTP channel resumes: the budget still holds
    assert transport.producerState == "paused"
    protocol.pauseProducing()  # the channel pauses: the budget's end does not resume
    clock_of(guard).advance(2)
    assert transport.producerState == "paused"
    protocol.resumeProducing()
    assert transport.producerState == "producing"


def test_a_closed_socket_leaves_no_timer():
    guard = make_guard(read_rate=1000, read_burst=1000, request_timeout=5)
    protocol, _ = connect(guard)
    protocol.dataReceived(b"x" * 5000)
    protocol.abort_later()
    lose(protocol)
    assert clock_of(guard).getDelayedCalls() == []


# WebSocket pings and close codes


def test_pings_past_the_budget_are_refused():
    guard = make_guard(ping_rate=1, ping_burst=2)
    protocol, _ = connect(guard)
    assert [protocol.ping_admitted() for _ in range(3)] == [True, True, False]
    clock_of(guard).advance(1)
    assert protocol.ping_admitted()
    off, _ = connect(make_guard(ping_rate=0))
    assert all(off.ping_admitted() for _ in range(1000))


class FakeWebSocketProtocol:
    """daphne's WebSocketProtocol as the guard uses it (autobahn's names and states)."""

    STATE_CLOSED, STATE_OPEN = 0, 1

    def __init__(self) -> None:
        self.transport: Any = None
        self.state = self.STATE_OPEN
        self.pongs = 0
        self.sent: list[tuple[str, int | None]] = []

    def makeConnection(self, transport: Any) -> None:
        self.transport = transport

    def onPing(self, payload: bytes) -> None:
        self.pongs += 1

    def onPong(self, payload: bytes) -> None:
        pass

    def serverClose(self, code: int | None = None) -> None:
        if code is not None and code != 1000 and not 3000 <= code <= 4999:
            raise ValueError(f"invalid close code {code}")  # autobahn's sendClose check
        self.sent.append(("sendClose", code))

    def sendCloseFrame(self, code: int | None = None, isReply: bool = False) -> None:
        self.sent.append(("frame", code))

    def dropConnection(self, abort: bool = False) -> None:
        self.state = self.STATE_CLOSED
        self.transport.loseConnection()


def test_a_ping_flood_is_closed_with_1008_and_aborted_if_it_does_not_read():
    guard = make_guard(ping_rate=2, ping_burst=10)
    socket, transport = connect(guard)
    websocket = guarded_websocket_class(FakeWebSocketProtocol)()
    socket.wrappedProtocol = websocket  # daphne's hand-over
    websocket.makeConnection(socket)
    assert websocket.transport is transport, "autobahn writes to the socket's own transport"
    for _ in range(10):
        websocket.onPing(b"")
    assert websocket.pongs == 10
    websocket.onPong(b"")  # pongs count too
    websocket.onPing(b"")
    assert websocket.pongs == 10
    assert websocket.sent == [("frame", 1008)]
    assert websocket.state == websocket.STATE_CLOSED, "autobahn parses no more"
    assert transport.disconnecting
    assert not transport.disconnected
    clock_of(guard).advance(2)
    assert transport.disconnected, "aborted: the close frame could not be flushed"


def test_close_codes_autobahn_refuses_are_sent_as_frames():
    websocket = guarded_websocket_class(FakeWebSocketProtocol)()
    websocket.makeConnection(StringTransport())
    websocket.serverClose(code=1013)
    websocket.serverClose(code=4003)
    websocket.serverClose(code=None)
    assert websocket.sent == [("frame", 1013), ("sendClose", 4003), ("sendClose", None)]


def test_requests_tell_their_socket_when_they_arrive_and_are_done():
    class FakeWebRequest:
        def __init__(self, channel: Any) -> None:
            self.channel = channel

        def process(self) -> str:
            return "processed"

        def finish(self) -> str:
            return "finished"

    guard = make_guard(request_timeout=5)
    socket, transport = connect(guard)
    channel = socket.wrappedProtocol
    request = guarded_request_class(FakeWebRequest)(channel)
    socket.dataReceived(b"GET / HTTP/1.1\r\n\r\n")
    assert request.process() == "processed"
    clock_of(guard).advance(60)
    assert not transport.disconnecting
    socket.dataReceived(b"GET /again")
    assert request.finish() == "finished"
    clock_of(guard).advance(5.1)
    assert transport.disconnected


# install(), in a process of its own


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "mqantsite.settings"}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_install_does_nothing_outside_daphne():
    result = run_python(
        """
        import sys
        from gate import daphne_guard
        print(daphne_guard.install(), "daphne.server" in sys.modules)
        """
    )
    assert result.stdout.split() == ["False", "False"], result.stderr


def test_install_guards_daphne_once():
    result = run_python(
        """
        import daphne.server
        from twisted.internet.address import IPv4Address
        from gate import daphne_guard

        print(daphne_guard.install(), daphne_guard.install())
        server = type("Server", (), {"proxy_forwarded_address_header": None})()
        factory = daphne.server.HTTPFactory(server)
        protocol = factory.buildProtocol(IPv4Address("TCP", "192.0.2.1", 4000))
        print(type(factory).__name__, type(protocol).__name__)
        print(protocol.wrappedProtocol.requestFactory.__name__)
        print(daphne.server.WebSocketFactory.protocol.__name__)
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "True True",
        "SocketGuard GuardedSocket",
        "GuardedWebRequest",
        "GuardedWebSocketProtocol",
    ]


def test_install_leaves_an_unexpected_daphne_alone_and_says_so():
    result = run_python(
        """
        import daphne.server
        daphne.server.HTTPFactory = type("SomethingElse", (), {})
        from gate import daphne_guard
        print(daphne_guard.install(), daphne.server.HTTPFactory.__name__)
        """
    )
    assert result.stdout.split() == ["False", "SomethingElse"], result.stderr
    assert "daphne's sockets are not guarded" in result.stderr
    assert "daphne.server.HTTPFactory is daphne's HTTPFactory" in result.stderr


@pytest.mark.parametrize("limit", ["MAX_SOCKETS_PER_ADDRESS", "WS_PING_RATE"])
def test_limits_come_from_the_settings(settings, limit):
    settings.MQANT = {**settings.MQANT, limit: 7}
    limits = SocketLimits.from_settings()
    assert 7 in (limits.max_per_address, limits.ping_rate)


def test_the_access_log_is_bounded_and_says_what_it_held_back(settings):
    """daphne writes a line per request straight to its stream: a flood of requests was a
    flood of lines, each with a path of the client's choosing."""
    import io

    from daphne.access import AccessLogGenerator

    from gate.daphne_guard.access_log import ACCESS_LINE_REQUEST_CHARS, bounded_access_log

    settings.MQANT = {**settings.MQANT, "ACCESS_LOG_RATE": 0.001, "ACCESS_LOG_BURST": 5}
    stream = io.StringIO()
    log = bounded_access_log(AccessLogGenerator)(stream)
    details = {"client": "192.0.2.1:5000", "method": "GET", "path": "/x" * 5000}
    for _ in range(100):
        log("http", "complete", {**details, "status": 404, "size": 10})
    lines = stream.getvalue().splitlines()
    assert len(lines) == 5
    assert all(len(line) < ACCESS_LINE_REQUEST_CHARS + 200 for line in lines)
    log._lines = type(log._lines)(1000, 1)  # time passes: room for one more line
    log("http", "complete", {**details, "status": 404, "size": 10})
    assert stream.getvalue().splitlines()[-1].endswith('[95 access lines held back]" 404 10')
