from collections.abc import Callable, Iterator

import pytest

from tests.e2e.clients import ChatClient
from tests.e2e.server import ServerProcess


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One daphne process serving the default site, shared by a test module."""
    proc = ServerProcess(tmp_path_factory.mktemp("server")).start()
    yield proc
    proc.stop()
    assert "Traceback" not in proc.output(), proc.output()


ClientFactory = Callable[..., ChatClient]


@pytest.fixture(params=["websockets", "tcp"])
def connect(request: pytest.FixtureRequest, server: ServerProcess) -> Iterator[ClientFactory]:
    """Opens paho clients to ``server`` over one transport; each test runs over both."""
    transport = request.param
    clients: list[ChatClient] = []

    def open_client(*, mqtt31: bool = False) -> ChatClient:
        port = server.port if transport == "websockets" else server.tcp_port
        client = ChatClient(port, mqtt31=mqtt31, transport=transport)
        clients.append(client)
        return client

    yield open_client
    for client in clients:
        client.close()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The hostile suites' figures: the bystanders' worst latencies, the peak memory."""
    from tests.e2e import attack

    for line in attack.summary():
        terminalreporter.write_line(line)
