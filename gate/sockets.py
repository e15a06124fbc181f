"""The sockets of the gate's own listeners (gate.listeners): asyncio's streams, in fewer
objects, and TLS after the connection slot.

An idle connection is what a gate holds most of. asyncio's StreamReader, StreamWriter and
StreamReaderProtocol cost some 2 KiB per socket in three objects, two futures, a deque and
a weak reference; a Socket is one object with slots, and the task that serves it.

A listener with TLS accepts plain sockets, and the task that serves one runs its TLS handshake
(``start_tls``) once it has taken the socket's connection slot: with asyncio's own TLS the
handshake came first, and a socket that never finished it counted against no limit.
"""

import asyncio
import logging
import ssl
from collections.abc import Awaitable, Callable

logger = logging.getLogger(__name__)

# Bytes buffered from the client before the socket stops reading (until they are read): as
# asyncio's streams, twice their 64 KiB limit.
HIGH_WATER = 128 * 1024
# Bytes one read returns at most: what the read budgets (READ_RATE) meter, read by read.
READ_SIZE = 64 * 1024

Serve = Callable[["Socket"], Awaitable[None]]
# The listener's TLS: its context, and the seconds a TLS handshake may take.
TLS = tuple[ssl.SSLContext, float]


class Socket(asyncio.Protocol):
    """One accepted socket, served by ``serve(socket)`` in a task of its own, which reads
    with :meth:`read`. Writes never wait: the bytes the client has not read yet are counted in
    :meth:`pending_bytes`."""

    __slots__ = (
        "_buffered", "_chunks", "_eof", "_serve", "_tls", "_waiter", "error", "task", "transport",
    )  # fmt: skip

    def __init__(self, serve: Serve, tls: "TLS | None" = None) -> None:
        self._serve = serve
        self._tls = tls
        self._chunks: list[bytes] = []  # received, not read yet: joined by read(), no copy
        self._buffered = 0
        self._eof = False
        self._waiter: asyncio.Future[None] | None = None
        self.task: asyncio.Task[None] | None = None
        self.transport: asyncio.Transport | None = None
        self.error: Exception | None = None  # why the socket was lost, if it was

    def __repr__(self) -> str:
        return f"<Socket {self.peer()}>"

    def peer(self) -> str:
        """The client's IP address ("" when unknown)."""
        peer = self.transport and self.transport.get_extra_info("peername")
        return str(peer[0]) if peer else ""

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if not isinstance(transport, asyncio.Transport):
            raise TypeError(f"Expected a stream transport, got {transport!r}")
        self.transport = transport
        if self._tls is not None:  # no byte is read before the TLS protocol reads them
            transport.pause_reading()
        self.task = asyncio.get_running_loop().create_task(self._run())

    def data_received(self, data: bytes) -> None:
        self._chunks.append(data)
        self._buffered += len(data)
        if self._buffered > HIGH_WATER and self.transport is not None:
            self.transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool:
        self._eof = True
        self._wake()
        return False  # close the socket

    def connection_lost(self, exc: Exception | None) -> None:
        self._eof = True
        self.error = exc
        self._wake()

    # For the task that serves the socket

    async def start_tls(self) -> None:
        """Run the TLS handshake, if the listener has TLS: the socket speaks TLS from then on.
        Raises TimeoutError past its deadline, ConnectionError or ssl.SSLError."""
        if self._tls is None or self.transport is None:
            return
        context, timeout = self._tls
        loop = asyncio.get_running_loop()
        transport = await loop.start_tls(  # which resumes reading, through the TLS protocol
            self.transport, self, context, server_side=True, ssl_handshake_timeout=timeout
        )
        if transport is None:
            raise ConnectionError("the socket closed during its TLS handshake")
        self.transport = transport

    async def read(self) -> bytes:
        """The bytes received since the last read, READ_SIZE at most (waiting for some); b""
        once the client has closed its side or the socket is gone."""
        while not self._chunks and not self._eof:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        data = b"".join(self._chunks)  # one chunk (the usual case): that very object
        self._chunks.clear()
        self._buffered = 0
        if len(data) > READ_SIZE:
            data, rest = data[:READ_SIZE], data[READ_SIZE:]
            self._chunks.append(rest)
            self._buffered = len(rest)
        if self.transport is not None and not self._eof and self._buffered <= HIGH_WATER:
            self.transport.resume_reading()
        return data

    def unread(self, data: bytes) -> None:
        """Put ``data``, read too far, back before what is buffered: the next read returns it."""
        if data:
            self._chunks.insert(0, data)
            self._buffered += len(data)

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def pending_bytes(self) -> int:
        return 0 if self.transport is None else self.transport.get_write_buffer_size()

    def is_closing(self) -> bool:
        return self.transport is None or self.transport.is_closing()

    def close(self) -> None:
        """Close once the bytes written are sent."""
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        """Close at once, dropping the bytes not sent."""
        if self.transport is not None:
            self.transport.abort()

    # Internals

    async def _run(self) -> None:
        try:
            await self._serve(self)
        except Exception:  # the socket must close; the server goes on
            logger.exception("%r: serving failed", self)
        finally:
            self.close()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)
