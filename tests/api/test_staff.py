"""The staff's endpoints: live connections, kicking one, a system message to a room."""

import datetime
import json

import pytest
from asgiref.sync import sync_to_async
from django.utils import timezone
from rest_framework.test import APIClient

from mqant import call
from mqant.ops import Close
from sessions_store.models import GateProcess, LiveConnection
from tests.api.fakes import FakeConnection

SESSIONS = "/api/staff/sessions/"
STAFF_REQUESTS = [
    ("get", SESSIONS),
    ("post", f"{SESSIONS}abc/kick/"),
    ("post", "/api/staff/rooms/lobby/broadcast/"),
]


def connection_row(session_id: str, *, gate: str, channel: str = "nowhere", **fields):
    gate_row, _ = GateProcess.objects.get_or_create(
        gate_id=gate, defaults={"last_seen": timezone.now()}
    )
    return LiveConnection.objects.create(
        session_id=session_id,
        gate=gate_row,
        channel=channel,
        last_seen=timezone.now(),
        **{"network": "websocket", **fields},
    )


def dead_gate(gate_id: str) -> None:
    GateProcess.objects.create(
        gate_id=gate_id, last_seen=timezone.now() - datetime.timedelta(hours=1)
    )


@pytest.mark.django_db
@pytest.mark.parametrize(("method", "path"), STAFF_REQUESTS)
def test_normal_users_get_403_and_guests_401(make_client, method, path):
    body = {"text": "hi"}
    user = make_client("someone")
    assert getattr(user, method)(path, body, format="json").status_code == 403
    assert getattr(APIClient(), method)(path, body, format="json").status_code == 401


@pytest.mark.django_db
def test_sessions_lists_the_connections_of_live_gates(make_client):
    dead_gate("gate-dead")
    connection_row("s-dead", gate="gate-dead")
    row = connection_row("s-live", gate="gate-1", user_id="ann", ip="10.0.0.7", network="tcp")
    response = make_client("boss", staff=True).get(SESSIONS)
    assert response.status_code == 200
    assert response.json()["results"] == [
        {
            "session_id": "s-live",
            "user_id": "ann",
            "ip": "10.0.0.7",
            "network": "tcp",
            "gate": "gate-1",
            "connected_at": row.connected_at.isoformat().replace("+00:00", "Z"),
            "last_seen": row.last_seen.isoformat().replace("+00:00", "Z"),
        }
    ]


@pytest.mark.django_db
def test_sessions_come_in_pages(make_client):
    for n in range(150):
        connection_row(f"s-{n:03}", gate="gate-1")
    staff = make_client("boss", staff=True)
    first = staff.get(SESSIONS).json()
    assert len(first["results"]) == 100
    second = staff.get(first["next"]).json()
    assert len(second["results"]) == 50
    ids = {row["session_id"] for row in first["results"] + second["results"]}
    assert len(ids) == 150


@pytest.mark.django_db(transaction=True)
async def test_kick_closes_the_connection(mqant_started, make_client):
    staff = await sync_to_async(make_client)("boss", staff=True)
    connection = await FakeConnection.open("ann")
    try:
        await sync_to_async(connection_row)(
            "s-ann", gate="gate-1", channel=connection.session.channel, user_id="ann"
        )
        response = await sync_to_async(staff.post)(f"{SESSIONS}s-ann/kick/")
    finally:
        connection.close()
    assert response.status_code == 202
    assert connection.ops == [Close()]


@pytest.mark.django_db
def test_kick_of_an_unknown_or_dead_connection_is_404(make_client):
    dead_gate("gate-dead")
    connection_row("s-dead", gate="gate-dead")
    staff = make_client("boss", staff=True)
    assert staff.post(f"{SESSIONS}nope/kick/").status_code == 404
    assert staff.post(f"{SESSIONS}s-dead/kick/").status_code == 404


@pytest.mark.django_db(transaction=True)
async def test_broadcast_reaches_the_rooms_members(mqant_started, make_client):
    staff = await sync_to_async(make_client)("boss", staff=True)
    connection = await FakeConnection.open("ann")
    try:
        await call("Chat", "HD_JoinChat", connection.session, {"roomName": "hall"})
        response = await sync_to_async(staff.post)(
            "/api/staff/rooms/hall/broadcast/", {"text": "maintenance at noon"}, format="json"
        )
        pushed = await connection.fanout()
    finally:
        connection.close()
    event = {"roomName": "hall", "from": "system", "target": "*", "msg": "maintenance at noon"}
    assert response.status_code == 200
    assert response.json() == event
    assert pushed["topic"] == "Chat/OnChat"
    assert json.loads(pushed["payload"]) == event


@pytest.mark.django_db
@pytest.mark.parametrize("body", [{}, {"text": ""}, {"text": "x" * 4001}])
def test_broadcast_needs_a_text(make_client, body):
    response = make_client("boss", staff=True).post(
        "/api/staff/rooms/hall/broadcast/", body, format="json"
    )
    assert response.status_code == 400
    assert "text" in response.json()
