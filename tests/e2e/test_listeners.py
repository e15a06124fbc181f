"""A gate whose listener port is taken does not start: under daphne and under uvicorn the
process exits with status 3 and says which listener could not listen where, instead of
serving some of its ports."""

import socket
import time
from pathlib import Path

import pytest

from tests.e2e.server import ServerProcess

pytestmark = pytest.mark.e2e

CANNOT_START_STATUS = 3  # mqant.asgi.CANNOT_START_STATUS; uvicorn's own for a failed startup
# Seconds for a refused start: Django's setup, the runtime's start and stop (a few seconds on
# a loaded machine), never a server left running.
EXIT_WITHIN = 30

# Per listener: its name in the reason, and the setting the reason says to change.
LISTENERS = {"ws": ("MQTT over WebSocket", "WS_ADDR"), "tcp": ("MQTT over TCP", "TCP_ADDR")}


@pytest.mark.parametrize("listener", ["ws", "tcp"])
@pytest.mark.parametrize("asgi_server", ["daphne", "uvicorn"])
def test_a_taken_listener_port_stops_the_server(tmp_path: Path, asgi_server: str, listener: str):
    server = ServerProcess(tmp_path, asgi_server=asgi_server)
    port = server.ws_port if listener == "ws" else server.tcp_port
    with socket.socket() as taken:  # another program's: bound and listening
        taken.bind(("127.0.0.1", port))
        taken.listen()
        started = time.monotonic()
        status, output = server.run_to_exit(EXIT_WITHIN)
        took = time.monotonic() - started
    print(f"{asgi_server}, {listener} port taken: exit {status} after {took:.1f} s")
    assert status == CANNOT_START_STATUS, output
    name, setting = LISTENERS[listener]
    expected = f"CRITICAL mqant.asgi: cannot start: {name} cannot listen on 127.0.0.1:{port}: "
    assert expected in output, output
    assert f"Set MQANT['{setting}']" in output, output
    assert "Traceback" not in output, output
