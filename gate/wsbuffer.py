"""How many bytes wait in the socket under an ASGI WebSocket, so a client that stops reading
can be closed before it holds much memory.

ASGI has no word for this, so it is read from the server's own transport: daphne's Twisted
transport (through the protocol its ``send`` is bound to) or uvicorn's asyncio transport.
When neither is found, ``SocketBuffer.of`` returns None; the connection then counts what it
queued itself.
"""

import functools
from collections.abc import Callable
from typing import Any


class SocketBuffer:
    """The write side of one server socket."""

    def __init__(
        self, pending: Callable[[], int], abort: Callable[[], None], *, may_block: bool
    ) -> None:
        self.pending_bytes = pending
        self.abort = abort
        # Twisted (daphne) buffers every write at once; uvicorn's send waits for the client.
        self.may_block = may_block

    @classmethod
    def of(cls, send: Any) -> "SocketBuffer | None":
        """The buffer behind an ASGI ``send`` callable, or None if it cannot be found."""
        if isinstance(send, functools.partial) and send.args:  # daphne: handle_reply(protocol)
            transport = getattr(send.args[0], "transport", None)
            if transport is not None and hasattr(transport, "abortConnection"):
                pending = functools.partial(_twisted_pending, transport)
                return cls(pending, transport.abortConnection, may_block=False)
        transport = getattr(getattr(send, "__self__", None), "transport", None)  # uvicorn
        if transport is not None and hasattr(transport, "get_write_buffer_size"):
            return cls(transport.get_write_buffer_size, transport.abort, may_block=True)
        return None


def _twisted_pending(transport: Any) -> int:
    # twisted.internet.abstract.FileDescriptor keeps unsent bytes in dataBuffer (from offset)
    # and _tempDataBuffer; it has no public accessor for their size.
    return (
        len(getattr(transport, "dataBuffer", b""))
        - int(getattr(transport, "offset", 0))
        + int(getattr(transport, "_tempDataLen", 0))
    )
