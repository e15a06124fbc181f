"""gate.sockets.Socket, the listeners' socket, over real loopback sockets in this process: it
reads what arrives (one chunk as it came), stops reading past HIGH_WATER until it is read,
tells an end from a loss, and closes once its task is done."""

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from gate import sockets
from gate.sockets import Socket

Serve = Callable[[Socket], Awaitable[None]]


@pytest.fixture
async def listen() -> AsyncIterator[Callable[[Serve], Awaitable[int]]]:
    servers: list[asyncio.Server] = []

    async def start(serve: Serve) -> int:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: Socket(serve), "127.0.0.1", 0)
        servers.append(server)
        return int(server.sockets[0].getsockname()[1])

    yield start
    for server in servers:
        server.close()


async def test_reads_what_arrives_then_an_empty_read_at_the_end(listen):
    reads: list[bytes] = []
    done = asyncio.Event()

    async def serve(sock: Socket) -> None:
        while data := await sock.read():
            reads.append(data)
            sock.write(data.upper())
        done.set()

    port = await listen(serve)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"hello")
    assert await reader.readexactly(5) == b"HELLO"
    writer.write_eof()
    await asyncio.wait_for(done.wait(), 5)
    assert b"".join(reads) == b"hello"
    assert await reader.read() == b""  # the server closed once serve() returned
    writer.close()


async def test_past_high_water_it_stops_reading_until_read(listen, monkeypatch):
    monkeypatch.setattr(sockets, "HIGH_WATER", 64 * 1024)
    release = asyncio.Event()
    total = 0

    async def serve(sock: Socket) -> None:
        nonlocal total
        await release.wait()  # read nothing for a while: the client's sends must stall
        while data := await sock.read():
            total += len(data)

    port = await listen(serve)
    client = socket.create_connection(("127.0.0.1", port))
    client.setblocking(False)
    sent = 0
    chunk = b"x" * 65536
    for _ in range(2000):  # 128 MiB at most: far past what kernel buffers hold
        try:
            sent += client.send(chunk)
        except BlockingIOError:
            await asyncio.sleep(0.05)
            try:
                sent += client.send(chunk)
            except BlockingIOError:
                break
        await asyncio.sleep(0)
    assert sent < 64 * 1024 * 1024, "the socket kept reading: no backpressure"
    release.set()
    client.setblocking(True)
    client.shutdown(socket.SHUT_WR)
    for _ in range(100):
        if total == sent:
            break
        await asyncio.sleep(0.05)
    assert total == sent  # nothing lost once it reads again
    client.close()


async def test_a_reset_is_an_error_and_an_empty_read(listen):
    lost: list[Exception | None] = []
    done = asyncio.Event()

    async def serve(sock: Socket) -> None:
        while await sock.read():
            pass
        lost.append(sock.error)
        done.set()

    port = await listen(serve)
    client = socket.create_connection(("127.0.0.1", port))
    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    client.send(b"x")
    await asyncio.sleep(0.1)
    client.close()  # linger 0: a reset
    await asyncio.wait_for(done.wait(), 5)
    assert isinstance(lost[0], ConnectionResetError)


async def test_a_failing_serve_closes_the_socket_and_the_server_goes_on(listen, caplog):
    async def serve(sock: Socket) -> None:
        await sock.read()
        raise RuntimeError("a bug")

    port = await listen(serve)
    for _ in range(2):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"x")
        assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()
    assert caplog.text.count("serving failed") == 2
