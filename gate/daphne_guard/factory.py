"""The guard on daphne's listening port: counts the open sockets of each address, refuses
those past MAX_SOCKETS_PER_ADDRESS, and wraps the others in a GuardedSocket."""

import typing
from typing import Any

from twisted.internet.interfaces import IProtocolNegotiationFactory
from twisted.internet.protocol import Factory, Protocol
from twisted.protocols.policies import WrappingFactory
from zope.interface import classImplements  # type: ignore[import-untyped]

from gate.daphne_guard.limits import Clock, SocketLimits
from gate.daphne_guard.wrapper import GuardedSocket
from gate.limits import address_key, refusals

SOCKET_REFUSED = "socket refused: MAX_SOCKETS_PER_ADDRESS reached"


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
        return GuardedSocket(self, inner, address, self.limits, self.clock)

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
