"""Several gate processes on one machine share the MQTT-over-TCP port (``REUSE_PORT``, from
``MQANT_REUSE_PORT=1``): the kernel spreads new connections over both, clients on either
chat in one room through Redis, and once one gate stops the other takes every new
connection."""

import os
import socket
import time
from pathlib import Path

import pytest

from tests.e2e.clients import ChatClient
from tests.e2e.deployment import two_gates
from tests.e2e.server import free_port
from tests.e2e.test_scale_out import chat_across_gates, login, until_ok

pytestmark = pytest.mark.e2e

CLIENTS = 16  # all on one gate by chance: 2 in 2**16


def peers_of(pid: int, port: int) -> set[int]:
    """The client ports of the established TCP connections on local ``port`` whose sockets
    process ``pid`` holds (from /proc: which gate the kernel gave each connection to)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:  # closed meanwhile
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    peers = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, remote, state, inode = fields[1], fields[2], fields[3], fields[9]
            if int(local.rsplit(":", 1)[1], 16) == port and state == "01" and inode in inodes:
                peers.add(int(remote.rsplit(":", 1)[1], 16))
    return peers


def spread(pids: list[int], port: int, total: int) -> list[set[int]]:
    """Each process's connections on ``port``, once they add up to ``total`` (accepted)."""
    deadline = time.monotonic() + 10
    while True:
        peers = [peers_of(pid, port) for pid in pids]
        if sum(map(len, peers)) == total or time.monotonic() > deadline:
            return peers
        time.sleep(0.1)


def local_port(client: ChatClient) -> int:
    sock = client.client.socket()
    assert isinstance(sock, socket.socket), sock
    return int(sock.getsockname()[1])


def test_two_gates_share_one_tcp_port(tmp_path, redis_space, postgres_url):
    port = free_port()
    env = {**redis_space.env("pubsub"), "DATABASE_URL": postgres_url, "MQANT_REUSE_PORT": "1"}
    with two_gates(tmp_path, env, {"TCP_ADDR": f"127.0.0.1:{port}"}) as deployment:
        pids = [gate.pid() for gate in deployment.gates]
        clients = [ChatClient(port, transport="tcp") for _ in range(CLIENTS)]
        deployment.clients.extend(clients)
        until_ok(clients[0], "HelloWorld/HD_Say", {"say": "hi"})  # the module process is up
        peers = spread(pids, port, CLIENTS)
        counts = [len(p) for p in peers]
        print(f"{CLIENTS} connections on the shared port: {counts} per gate")
        assert sum(counts) == CLIENTS, counts
        assert all(counts), f"one gate took every connection: {counts}"

        # One client on each gate chats with the other through Redis.
        on_gate = [next(c for c in clients if local_port(c) in p) for p in peers]
        login(on_gate[0], "alice")
        login(on_gate[1], "bob")
        chat_across_gates(on_gate[0], on_gate[1], "shared-port")

        for client in clients:
            client.close()
        deployment.gates[0].stop()  # drains; its port stays the other gate's
        late = [ChatClient(port, transport="tcp") for _ in range(4)]
        deployment.clients.extend(late)
        for client in late:
            reply = client.request("HelloWorld/HD_Say", {"say": "still here"})
            assert reply["Error"] == "", reply
        assert [len(p) for p in spread(pids[1:], port, len(late))] == [len(late)]
