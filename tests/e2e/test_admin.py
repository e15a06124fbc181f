"""The admin while clients talk: live connections with their gate, a kick that really
disconnects, a message sent from the admin, stored sessions."""

import time
from collections.abc import Iterator

import pytest

from tests.e2e.admin_client import AdminClient, create_superuser
from tests.e2e.clients import ChatClient
from tests.e2e.server import ServerProcess

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path_factory.mktemp("admin"))
    proc.start()
    create_superuser(proc, "boss", "boss-pass-1234")
    yield proc
    proc.stop()
    assert "Traceback" not in proc.output(), proc.output()


def test_staff_sees_live_connections_and_kicks_one(server):
    ann, bob = ChatClient(server.port), ChatClient(server.tcp_port, transport="tcp")
    try:
        for c, user in ((ann, "adm-ann"), (bob, "adm-bob")):
            assert (
                c.request("Login/HD_Login", {"userName": user, "passWord": "pw-x1-k3y9"})["Error"]
                == ""
            )
        admin = AdminClient(server, "boss", "boss-pass-1234")
        page = admin.get("/admin/sessions_store/liveconnection/?q=adm-")
        assert "adm-ann" in page
        assert "adm-bob" in page
        assert "websocket" in page
        assert "tcp" in page
        stored = admin.get("/admin/sessions_store/storedsession/?q=adm-ann")
        assert "adm-ann" in stored

        rows = admin.get("/admin/sessions_store/liveconnection/?q=adm-bob")
        bob_id = rows.split('name="_selected_action" value="')[1].split('"')[0]
        admin.action(
            "/admin/sessions_store/liveconnection/",
            "send_a_message",
            [bob_id],
            topic="System/OnMessage",
            text="hello from the admin",
        )
        assert bob.wait_for("System/OnMessage") == b"hello from the admin"

        admin.action("/admin/sessions_store/liveconnection/", "kick", [bob_id])
        deadline = time.monotonic() + 5
        while not bob.disconnects and time.monotonic() < deadline:
            time.sleep(0.05)
        assert bob.disconnects == 1
        assert ann.request("HelloWorld/HD_Say", {"say": "still"})["Result"] == "you say : still"
    finally:
        ann.close()
        bob.close()


def test_rooms_members_history_and_a_broadcast_from_the_admin(server):
    ann, bob = ChatClient(server.port), ChatClient(server.port)
    try:
        for c, user in ((ann, "room-ann"), (bob, "room-bob")):
            login = {"userName": user, "passWord": "pw-x2-k3y9"}
            assert c.request("Login/HD_Login", login)["Error"] == ""
            assert c.request("Chat/HD_JoinChat", {"roomName": "hall"})["Error"] == ""
        ann.request("Chat/HD_Say", {"roomName": "hall", "content": "kept"})
        admin = AdminClient(server, "boss", "boss-pass-1234")
        rooms = admin.get("/admin/chat/room/?q=hall")
        assert "room-ann, room-bob" in rooms
        room_id = rooms.split('name="_selected_action" value="')[1].split('"')[0]
        messages = admin.get(f"/admin/chat/message/?room__id__exact={room_id}")
        assert "kept" in messages
        admin.action(
            "/admin/chat/room/",
            "broadcast_a_system_message",
            [room_id],
            topic="Chat/OnChat",
            text="maintenance at noon",
        )
        for c in (ann, bob):
            while (event := c.wait_json("Chat/OnChat"))["from"] != "system":
                pass
            assert event == {
                "roomName": "hall", "from": "system", "target": "*", "msg": "maintenance at noon"
            }  # fmt: skip
        # History is stored: a newcomer reads it, after everyone has left.
        ann.close()
        bob.close()
        carl = ChatClient(server.port)
        carl.request("Login/HD_Login", {"userName": "room-carl", "passWord": "pw-x3-k3y9"})
        history = carl.request("Chat/HD_JoinChat", {"roomName": "hall"})["Result"]["history"]
        assert [(h["from"], h["msg"]) for h in history][-1] == ("room-ann", "kept")
        carl.close()
    finally:
        ann.close()
        bob.close()
