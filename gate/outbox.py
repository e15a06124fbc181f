"""The bytes a connection has for its client, on their way to the transport.

A transport whose write may wait for the client to read (backpressure) gets its bytes from a
writer task of the outbox, so that no sender ever waits; a client that lets more than
MAX_OUTGOING_BYTES wait is cut off, so that it holds no memory and slows no sender.
"""

import asyncio
import contextlib
import logging
from typing import Protocol

from gate import conf
from mqant import metrics

logger = logging.getLogger(__name__)

# How long a closing connection waits for its queued bytes (a refusing CONNACK, a last
# reply) to be written before it closes anyway.
CLOSE_FLUSH_SECONDS = 1.0


class Transport(Protocol):
    """What a connection needs from whatever carries its bytes."""

    # Whether write() may wait for the client to read (backpressure); the connection then
    # queues its bytes and writes them from a task of its own.
    may_block: bool

    async def write(self, data: bytes) -> None:
        """Queue bytes for the client; returns without waiting for the client to read them."""
        ...

    def pending_bytes(self) -> int:
        """Bytes written but not yet taken by the client (0 when the transport cannot tell)."""
        ...

    async def close(self) -> None:
        """Close after the pending bytes are sent."""
        ...

    def abort(self) -> None:
        """Close at once, dropping the pending bytes."""
        ...


class Outbox:
    """One connection's way out; ``closed`` once it takes no more bytes. ``owner`` names
    the connection in the log."""

    def __init__(self, transport: Transport, owner: object) -> None:
        self.transport = transport
        self.owner = owner
        self.closed = False
        self.max_outgoing = int(conf.get("MAX_OUTGOING_BYTES"))
        self._buffer: bytearray | None = bytearray() if transport.may_block else None
        self._writer: asyncio.Task[None] | None = None

    async def send(self, data: bytes) -> None:
        """Hand ``data`` to the transport (or queue it for the writer task)."""
        if not data or self.closed:
            return
        if self._buffer is None:  # the transport queues: written here, without a task
            try:
                await self.transport.write(data)
            except Exception as err:
                self._failed(err)
            self._check(self.transport.pending_bytes())
            return
        self._buffer += data
        if self._writer is None:
            self._writer = asyncio.create_task(self._write_buffer())
        self._check(len(self._buffer) + self.transport.pending_bytes())

    async def close(self) -> None:
        """Close the transport once the queued bytes are written (for at most a second)."""
        if self.closed:
            return
        self.closed = True
        if self._writer is not None:
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                async with asyncio.timeout(CLOSE_FLUSH_SECONDS):
                    await asyncio.shield(self._writer)
        await self.transport.close()

    def seal(self) -> None:
        """Take no more bytes (the transport closes by itself)."""
        self.closed = True

    def stop(self) -> None:
        """Take no more bytes, and stop writing those queued (the transport is gone)."""
        self.closed = True
        if self._writer is not None:
            self._writer.cancel()

    async def _write_buffer(self) -> None:
        buffer = self._buffer
        try:
            while buffer:
                data = bytes(buffer)
                buffer.clear()
                await self._write(data)
        finally:
            self._writer = None

    async def _write(self, data: bytes) -> None:
        try:
            await self.transport.write(data)
        except Exception as err:
            self._failed(err)

    def _failed(self, err: Exception) -> None:
        """A write failed (e.g. a message over the ASGI server's WebSocket limit): close."""
        if not self.closed:
            logger.warning("%r: closing, a write failed: %s", self.owner, err)
            self.closed = True
            self.transport.abort()

    def _check(self, pending: int) -> None:
        if pending > self.max_outgoing and not self.closed:
            logger.info("%r: closing, %d bytes wait for it to read", self.owner, pending)
            metrics.SLOW_CONSUMERS.child().add()
            self.stop()
            self.transport.abort()
