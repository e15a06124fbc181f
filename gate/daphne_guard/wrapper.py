"""One socket of daphne's port, guarded: its bytes counted against its read budget (reading
paused while it is spent), its HTTP requests timed, its WebSocket pings and pongs counted.

daphne's upgrade to WebSocket replaces the ``wrappedProtocol`` of a ``ProtocolWrapper``
transport (it checks ``isinstance(transport, ProtocolWrapper)``, as for TLS), so the wrapper
goes on seeing the socket's bytes after the upgrade.
"""

from typing import Any

from twisted.internet.interfaces import IProtocol
from twisted.protocols.policies import ProtocolWrapper, WrappingFactory
from twisted.python.failure import Failure

from gate.daphne_guard.limits import Clock, SocketLimits, Timer
from gate.limits import TokenBucket, refusals

REQUEST_TIMED_OUT = "socket closed: an HTTP request not whole within HTTP_REQUEST_TIMEOUT"
PING_FLOOD = "WebSocket closed: pings and pongs past WS_PING_RATE"

# A close frame is given this long to reach a client before its socket is aborted.
CLOSE_GRACE_SECONDS = 2.0


class GuardedSocket(ProtocolWrapper):
    """One HTTP (later maybe WebSocket) socket: its bytes are counted against its read budget,
    its HTTP requests timed, its WebSocket pings counted. It is the transport of daphne's HTTP
    channel, and the network producer the channel pauses and resumes; after the upgrade it
    hands the bytes to the WebSocket protocol, which writes to the socket itself."""

    def __init__(
        self,
        factory: "WrappingFactory[GuardedSocket]",
        wrapped: IProtocol,
        address: str,
        limits: SocketLimits,
        clock: Clock,
    ) -> None:
        super().__init__(factory, wrapped)
        self.address = address
        self._limits = limits
        self._clock = clock
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
