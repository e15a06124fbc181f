"""How many bytes wait in the socket under an ASGI WebSocket, so a client that stops reading
can be closed before it holds much memory (``MAX_OUTGOING_BYTES``).

ASGI has no word for this, and no public API of the servers gives the figure, so this module
reads it from their internals, written for the versions in ``WRITTEN_FOR`` (those
requirements.txt pins; ``check_versions`` warns when others are installed, and
tests/gate/test_wsbuffer.py fails). The names used, why, and the upstream change that would
remove each:

- daphne: the ``send`` it gives an application is ``functools.partial(Server.handle_reply,
  protocol)`` (undocumented), the protocol being the connection's Twisted protocol, whose
  ``transport`` is Twisted's. Upstream: an ASGI extension that reports the bytes a WebSocket
  has not sent yet (or hands out the transport), in daphne and uvicorn alike.
- Twisted: ``FileDescriptor`` keeps unsent bytes in ``dataBuffer`` from ``offset``, plus
  ``_tempDataLen`` bytes not joined yet (private); nothing public gives their size. Its
  producer API says only when the buffer passes ``bufferSize`` (64 KiB) and when it is empty,
  not how much waits, and daphne's HTTP channel already holds the producer slot. Upstream: an
  accessor like asyncio's ``get_write_buffer_size``. ``abortConnection`` is public.
- uvicorn: its ``send`` is a method of its protocol (``send.__self__``), whose ``transport``
  (undocumented) is asyncio's; ``get_write_buffer_size`` and ``abort`` are public asyncio.

When no server is recognised, ``SocketBuffer.of`` returns None; the connection then counts
what it queued itself.
"""

import functools
import importlib.metadata
import logging
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)

WRITTEN_FOR = {"daphne": "4.2.3", "Twisted": "26.10.0", "uvicorn": "0.54.0"}


@functools.cache
def check_versions() -> None:
    """Warn, once, of a server installed in another version than this module was written for."""
    for name, version in WRITTEN_FOR.items():
        try:
            installed = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        if installed != version:
            logger.warning(
                "%s %s is installed; gate/wsbuffer.py was written for %s and reads its "
                "internals: check them",
                name,
                installed,
                version,
            )


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
        check_versions()
        if isinstance(send, functools.partial) and send.args:  # daphne: handle_reply(protocol)
            transport = getattr(send.args[0], "transport", None)
            if transport is not None and hasattr(transport, "abortConnection"):
                pending = functools.partial(twisted_pending, transport)
                return cls(pending, transport.abortConnection, may_block=False)
        transport = getattr(getattr(send, "__self__", None), "transport", None)  # uvicorn
        if transport is not None and hasattr(transport, "get_write_buffer_size"):
            return cls(transport.get_write_buffer_size, transport.abort, may_block=True)
        return None


def twisted_pending(transport: Any) -> int:
    """The bytes a Twisted ``FileDescriptor`` holds unsent (0 for a transport without its
    attributes)."""
    return (
        len(getattr(transport, "dataBuffer", b""))
        - int(getattr(transport, "offset", 0))
        + int(getattr(transport, "_tempDataLen", 0))
    )
