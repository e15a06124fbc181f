"""The server internals gate.wsbuffer reads, against the versions it was written for: Twisted's
count of unsent bytes as its own write buffering changes it, and daphne's and uvicorn's shapes
of ``send``."""

import asyncio
import functools
import importlib.metadata
import logging
import re
import socket
from pathlib import Path
from typing import Any, cast

from twisted.internet.abstract import FileDescriptor
from twisted.internet.interfaces import IReactorFDSet

from gate import wsbuffer
from gate.wsbuffer import SocketBuffer, twisted_pending

REQUIREMENTS = Path(__file__).resolve().parents[2] / "requirements.txt"


def test_the_servers_are_the_pinned_versions_the_module_was_written_for():
    text = REQUIREMENTS.read_text()
    for name, version in wsbuffer.WRITTEN_FOR.items():
        pinned = re.search(rf"^{name}==(\S+)", text, re.MULTILINE | re.IGNORECASE)
        assert pinned is not None, f"{name} is not pinned in requirements.txt"
        assert version == pinned[1] == importlib.metadata.version(name)


def test_another_version_is_warned_of(monkeypatch, caplog):
    monkeypatch.setitem(wsbuffer.WRITTEN_FOR, "Twisted", "0.0.1")
    wsbuffer.check_versions.cache_clear()
    try:
        with caplog.at_level(logging.WARNING, logger=wsbuffer.__name__):
            wsbuffer.check_versions()
    finally:
        wsbuffer.check_versions.cache_clear()
    assert "was written for 0.0.1" in caplog.text


class Reactor:
    """As much of a reactor as a FileDescriptor's writes need."""

    def addWriter(self, descriptor: Any) -> None:
        pass

    def removeWriter(self, descriptor: Any) -> None:
        pass


class Socket(FileDescriptor):
    """Twisted's write buffering over a socket that takes ``room`` bytes per write."""

    connected = 1
    room = 0
    aborted = False

    def writeSomeData(self, data: bytes) -> int:
        taken = min(len(data), self.room)
        self.room -= taken
        return taken

    def abortConnection(self) -> None:
        self.aborted = True


def test_twisted_pending_counts_what_the_socket_has_not_taken():
    transport = Socket(reactor=cast(IReactorFDSet, Reactor()))
    assert twisted_pending(transport) == 0
    for _ in range(10):
        transport.write(b"x" * 10_000)
    assert twisted_pending(transport) == 100_000  # _tempDataLen: not joined yet
    transport.room = 30_000
    transport.doWrite()
    assert twisted_pending(transport) == 70_000  # dataBuffer from offset
    transport.write(b"y" * 5_000)
    assert twisted_pending(transport) == 75_000  # both
    transport.room = 10**6
    transport.doWrite()
    transport.doWrite()
    assert twisted_pending(transport) == 0


def test_daphnes_send_leads_to_the_twisted_transport():
    class Protocol:
        transport = Socket(reactor=cast(IReactorFDSet, Reactor()))

    async def handle_reply(protocol: Any, message: dict[str, Any]) -> None:
        pass

    buffer = SocketBuffer.of(functools.partial(handle_reply, Protocol()))
    assert buffer is not None
    assert not buffer.may_block
    Protocol.transport.write(b"z" * 123)
    assert buffer.pending_bytes() == 123
    buffer.abort()
    assert Protocol.transport.aborted


async def test_uvicorns_send_leads_to_the_asyncio_transport():
    ours, theirs = socket.socketpair()
    theirs.setblocking(False)
    transport, _ = await asyncio.get_running_loop().connect_accepted_socket(asyncio.Protocol, ours)

    class Protocol:
        def __init__(self) -> None:
            self.transport = transport

        async def send(self, message: dict[str, Any]) -> None:
            pass

    buffer = SocketBuffer.of(Protocol().send)
    assert buffer is not None
    assert buffer.may_block
    transport.write(b"w" * 10_000_000)  # more than the kernel takes
    assert buffer.pending_bytes() == transport.get_write_buffer_size() > 0
    buffer.abort()
    await asyncio.sleep(0)
    assert transport.is_closing()
    theirs.close()
