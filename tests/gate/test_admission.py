"""gate.admission over real loopback sockets in this process: a trusted proxy's socket is
counted against the client its PROXY protocol header names, once the header is read, and
closed without a valid header in time; any other socket is never parsed. And the listeners'
start: SO_REUSEPORT when REUSE_PORT says so, PROXY_PROTOCOL_FROM checked."""

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from gate import admission, listeners
from gate.limits import ConnectionSlot
from gate.sockets import Socket
from mqant.asgi import CannotStart
from tests.gate.test_proxyproto import V1, v2

Admitted = tuple[str, bytes] | None  # the client's address and the first read, or refused


@pytest.fixture
def trusting(settings: Any) -> Callable[..., None]:
    def configure(proxies: list[str], **more: object) -> None:
        settings.MQANT = {
            **settings.MQANT,
            "PROXY_PROTOCOL_FROM": proxies,
            "CONNECT_RATE_PER_ADDRESS": 0,
            **more,
        }

    return configure


@pytest.fixture
async def gate() -> AsyncIterator[Callable[[bytes], Awaitable[Admitted]]]:
    """Connect from 127.0.0.1, send some bytes, and see what admission made of the socket
    (holding its slot until the test ends)."""
    outcomes: asyncio.Queue[Admitted] = asyncio.Queue()
    slots: list[ConnectionSlot] = []
    writers: list[asyncio.StreamWriter] = []

    async def serve(sock: Socket) -> None:
        admitted = await admission.admit(sock, timeout=0.3)
        if admitted is None:
            await outcomes.put(None)
            return
        slot, client = admitted
        slots.append(slot)
        await outcomes.put((client, await sock.read()))
        await asyncio.sleep(30)  # hold the slot

    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Socket(serve), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]

    async def connect(data: bytes) -> Admitted:
        _reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writers.append(writer)
        if data:
            writer.write(data)
        return await asyncio.wait_for(outcomes.get(), 5)

    yield connect
    for writer in writers:
        writer.close()
    server.close()
    for slot in slots:
        slot.release()


async def test_a_trusted_proxy_names_the_client_and_its_bytes_follow(gate, trusting):
    trusting(["127.0.0.0/8"])
    assert await gate(V1 + b"\x10\x0c") == ("192.0.2.7", b"\x10\x0c")
    assert await gate(v2(source="198.51.100.1") + b"MQTT") == ("198.51.100.1", b"MQTT")


async def test_the_address_limits_count_the_client_not_the_proxy(gate, trusting):
    trusting(["127.0.0.1"], MAX_CONNECTIONS_PER_ADDRESS=2)
    assert await gate(V1 + b"a") == ("192.0.2.7", b"a")
    assert await gate(V1 + b"b") == ("192.0.2.7", b"b")
    assert await gate(V1 + b"c") is None  # the client's third
    other = b"PROXY TCP4 192.0.2.8 127.0.0.1 1 3563\r\n"
    assert await gate(other + b"d") == ("192.0.2.8", b"d")  # through the same proxy
    assert ConnectionSlot.addresses.connections("192.0.2.7") == 2
    assert ConnectionSlot.addresses.connections("127.0.0.1") == 0


async def test_without_a_valid_header_in_time_the_socket_is_refused(gate, trusting):
    trusting(["127.0.0.1"])
    held = ConnectionSlot.in_use
    assert await gate(b"\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c") is None  # MQTT, no header
    assert await gate(b"PROXY UNKNOWN " + b"x" * 200) is None  # oversized
    assert await gate(b"PROXY TCP4 192.0.2.7") is None  # slow: the rest never comes
    assert await gate(b"") is None  # silent
    assert ConnectionSlot.in_use == held  # every slot given back


async def test_a_full_process_refuses_a_trusted_proxy_before_its_header(gate, trusting):
    trusting(["127.0.0.1"], MAX_CONNECTIONS=ConnectionSlot.in_use)
    assert await gate(b"") is None  # at once, not after the header's deadline


async def test_an_untrusted_peer_is_never_parsed(gate, trusting):
    trusting(["10.0.0.0/8", "::1"])
    assert await gate(V1) == ("127.0.0.1", V1)  # its bytes are its own
    trusting([])
    assert await gate(V1) == ("127.0.0.1", V1)


@pytest.fixture
async def started_listeners() -> AsyncIterator[None]:
    yield
    await listeners.stop()


def free_port_reused() -> socket.socket:
    """A socket bound with SO_REUSEPORT (another gate process's), listening."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock


async def test_reuse_port_shares_a_port_with_another_gate(settings, started_listeners):
    with free_port_reused() as other:
        port = other.getsockname()[1]
        settings.MQANT = {**settings.MQANT, "TCP_ADDR": f"127.0.0.1:{port}", "WS_ADDR": ""}
        with pytest.raises(CannotStart, match="cannot listen"):
            await listeners.start()  # off by default: a taken port stops the start
        settings.MQANT = {**settings.MQANT, "REUSE_PORT": True}
        await listeners.start()
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            pass


@pytest.mark.parametrize(
    ("more", "reason"),
    [
        ({"PROXY_PROTOCOL_FROM": ["not an address"]}, "must list addresses"),
        ({"PROXY_PROTOCOL_FROM": "127.0.0.1"}, "must list addresses"),
        ({"PROXY_PROTOCOL_FROM": ["127.0.0.1"], "TLS_CERT": "c", "TLS_KEY": "k"}, "without TLS"),
    ],
)
async def test_proxy_protocol_settings_are_checked_at_start(
    settings, started_listeners, more, reason
):
    settings.MQANT = {**settings.MQANT, "TCP_ADDR": "127.0.0.1:0", "WS_ADDR": "", **more}
    with pytest.raises(CannotStart, match=reason):
        await listeners.start()
