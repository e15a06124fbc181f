"""mqant's own clients' habits, against the default run, unchanged but for the host name.

From mqant's programs (its Python chat client, its Paho-JS page, its Go robots) and its docs:
MQTT 3.1 (``MQIsdp``) with the fixed CONNECT credentials ``admin``/``password``, the client id
``111`` on every connection at once, requests at QoS 0 and 1 with a constant or a counting
msgid, no SUBSCRIBE (pushes come anyway), keepalive 30 or 60, and WebSocket URLs with no
path, with ``/mqant`` and with ``/mqtt``, on the ASGI server's port and on the gate's own
(mqant's WSAddr, 3653 in the default run); then Login/HD_Login and the chat."""

import itertools
from collections.abc import Iterator

import pytest

from tests.e2e.clients import ChatClient, mqant_place
from tests.e2e.server import ServerProcess

pytestmark = pytest.mark.e2e

PASSWORD = "sturdy-pass-5521"
_rounds = itertools.count()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The default run's settings (CONNECT credentials ignored, every WebSocket path)."""
    proc = ServerProcess(tmp_path_factory.mktemp("mqant-clients"))
    yield proc.start()
    proc.stop()
    log = proc.output()
    assert "Traceback" not in log, log
    assert "locked" not in log.lower(), log


def mqant_client(server: ServerProcess, where: str, **habits: object) -> ChatClient:
    """A client as mqant's are written: ``where`` is "tcp", a WebSocket path on the ASGI
    server's port, or "ws:" and a path on the gate's own WebSocket port."""
    transport, path, port = mqant_place(server, where)
    return ChatClient(
        port,
        transport=transport,
        path=path,
        mqtt31=True,
        client_id="111",
        credentials=("admin", "password"),
        **habits,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    "places",
    [
        ("/", "/mqant", "tcp"),
        ("/mqtt", "/", "/mqant"),
        ("ws:/", "ws:/mqant", "ws:/mqtt"),
        ("ws:/mqant", "/mqtt", "tcp"),
    ],
    ids=["no-path,mqant,tcp", "mqtt,no-path,mqant", "own:no-path,mqant,mqtt", "own,asgi,tcp"],
)
def test_three_of_mqants_clients_log_in_and_chat(server, places):
    n = next(_rounds)
    names = [f"m{n}user{i}" for i in range(3)]
    clients = [
        mqant_client(server, places[0], keepalive=30),
        mqant_client(server, places[1], keepalive=60, qos=0),
        mqant_client(server, places[2], msgids=itertools.repeat(1)),  # a constant msgid
    ]
    try:
        room = f"mqant-room-{n}"
        for client, name in zip(clients, names, strict=True):
            login = client.request("Login/HD_Login", {"userName": name, "passWord": PASSWORD})
            assert login["Result"] == f"login success {name}", login
            assert client.request("Chat/HD_JoinChat", {"roomName": room})["Error"] == ""
        said = clients[0].request("Chat/HD_Say", {"roomName": room, "content": "hi", "target": "*"})
        assert said["Error"] == ""
        expected = {"roomName": room, "from": names[0], "target": "*", "msg": "hi"}
        for client in clients:  # all three, on one client id, none SUBSCRIBEd
            assert client.wait_json("Chat/OnChat") == expected
        assert all(client.disconnects == 0 for client in clients)
    finally:
        for client in clients:
            client.close()


def test_many_reconnects_with_fixed_credentials_lock_no_account_out(server):
    """mqant's Python client reconnects with admin/password each time; a real admin logs in
    afterwards."""
    first = mqant_client(server, "/")
    admin = first.request("Login/HD_Login", {"userName": "admin", "passWord": PASSWORD})
    assert admin["Error"] == ""
    first.close()
    for where in ["tcp", "ws:/"] * 4:
        client = mqant_client(server, where)
        assert client.request("HelloWorld/HD_Say", {"say": "x"})["Error"] == ""
        client.close()
    again = mqant_client(server, "/mqant")
    try:
        login = again.request("Login/HD_Login", {"userName": "admin", "passWord": PASSWORD})
        assert login["Result"] == "login success admin", login
    finally:
        again.close()
